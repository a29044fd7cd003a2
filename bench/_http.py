"""An HTTP client for the app as a browser uses it. The session and CSRF cookies are Secure, so
httpx's cookie jar would not send them over plain http to 127.0.0.1: this client reads Set-Cookie
and sends a Cookie header itself."""

import re
import time
from http.cookies import SimpleCookie

import httpx

CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken"\s+value="([^"]+)"')


class Browser:
    def __init__(self, base_url: str, timeout_s: float = 30.0):
        self.base_url = base_url
        self.client = httpx.Client(base_url=base_url, timeout=timeout_s, follow_redirects=False)
        self.cookies: dict[str, str] = {}

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def request(
        self, method: str, path: str, *, cookies: bool = True, headers=None, **kwargs
    ) -> tuple[httpx.Response, float]:
        """Sends one request; returns the response (body read) and the seconds it took."""
        headers = dict(headers or {})
        if cookies and self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        started = time.perf_counter()
        response = self.client.request(method, path, headers=headers, **kwargs)
        elapsed = time.perf_counter() - started
        self.client.cookies.clear()  # ours are kept below, not in httpx's jar
        if cookies:
            self._remember(response)
        return response, elapsed

    def get(self, path: str, **kwargs) -> tuple[httpx.Response, float]:
        return self.request("GET", path, **kwargs)

    def _remember(self, response: httpx.Response) -> None:
        for header in response.headers.get_list("set-cookie"):
            jar = SimpleCookie()
            jar.load(header)
            for name, morsel in jar.items():
                if morsel["max-age"] == "0" or not morsel.value:
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value

    def login(self, username: str, password: str, path: str = "/accounts/login/") -> None:
        page, _ = self.get(path)
        if page.status_code != 200:
            raise RuntimeError(f"GET {path} answered {page.status_code}")
        match = CSRF_INPUT.search(page.text)
        if not match or "csrftoken" not in self.cookies:
            raise RuntimeError("the sign-in page gave no CSRF token")
        response, _ = self.request(
            "POST",
            path,
            data={
                "username": username,
                "password": password,
                "csrfmiddlewaretoken": match.group(1),
                "next": "",
            },
            headers={"Referer": f"{self.base_url}{path}"},
        )
        if response.status_code != 302 or "sessionid" not in self.cookies:
            raise RuntimeError(
                f"signing in as {username} failed: {response.status_code} "
                f"{response.headers.get('location', '')}"
            )
