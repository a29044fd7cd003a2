"""Browser tests: real Chromium through Playwright against the live server. Every test fails on a
Content Security Policy violation, a JavaScript error, an htmx request or swap error or a missing
static file seen on any page it visits."""

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from accounts.models import Role
from tests.factories import OrganisationFactory, TeamFactory, make_member

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]

# Runs in every document before the page's own scripts. Problems are kept on window (for a look
# in the middle of a test) and reported to Python through a binding, which survives navigation.
WATCH_PAGE_SCRIPT = """
(() => {
  window.__cspViolations = [];
  window.__htmxErrors = [];
  const report = (kind, detail) => {
    if (window.__reportProblem) window.__reportProblem(kind, JSON.stringify(detail));
  };
  window.addEventListener("securitypolicyviolation", (event) => {
    const violation = {
      directive: event.violatedDirective,
      blocked: event.blockedURI,
      source: event.sourceFile,
      line: event.lineNumber,
      sample: event.sample,
      page: location.href,
    };
    window.__cspViolations.push(violation);
    report("csp", violation);
  }, true);
  for (const name of ["htmx:responseError", "htmx:sendError", "htmx:swapError",
                      "htmx:targetError", "htmx:oobErrorNoTarget", "htmx:onLoadError"]) {
    window.addEventListener(name, (event) => {
      const xhr = event.detail && event.detail.xhr;
      const problem = {
        event: name,
        path: event.detail && event.detail.pathInfo && event.detail.pathInfo.requestPath,
        status: xhr ? xhr.status : null,
        target: event.detail && String(event.detail.target || ""),
      };
      window.__htmxErrors.push(problem);
      report("htmx", problem);
    }, true);
  }
})();
"""


@pytest.fixture(scope="session")
def browser():
    # Playwright's sync API runs an event loop in this thread, so Django would refuse the ORM
    # calls the tests make to set up data; the tests are synchronous, so that is safe.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            yield chromium
            chromium.close()


@pytest.fixture
def base_url(live_server):
    # Session cookies are Secure: Chromium sends them to http://localhost, not to 127.0.0.1.
    return live_server.url.replace("127.0.0.1", "localhost")


class PageProblems:
    """What went wrong in the browser during a test, whatever page it happened on."""

    def __init__(self):
        self.csp: list[str] = []
        self.page_errors: list[str] = []
        self.htmx: list[str] = []
        self.static_files: list[str] = []

    def record(self, kind: str, detail: str) -> None:
        {"csp": self.csp, "htmx": self.htmx}[kind].append(detail)

    def on_console(self, message) -> None:
        if "Content Security Policy" in message.text:
            self.csp.append(f"console {message.type}: {message.text}")

    def on_response(self, response) -> None:
        if "/static/" in response.url and response.status >= 400:
            self.static_files.append(f"{response.status} {response.url}")

    def summary(self) -> str:
        lines = []
        for title, found in [
            ("Content Security Policy violations", self.csp),
            ("JavaScript errors", self.page_errors),
            ("htmx errors", self.htmx),
            ("static files not served", self.static_files),
        ]:
            if found:
                lines.append(f"{title}:")
                lines.extend(f"  - {item}" for item in found)
        return "\n".join(lines)


@pytest.fixture
def page_problems():
    return PageProblems()


@pytest.fixture
def page(browser, base_url, transactional_db, page_problems) -> Page:
    context = browser.new_context(base_url=base_url, locale="en-GB", timezone_id="Europe/London")
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.expose_function("__reportProblem", page_problems.record)
    page.add_init_script(WATCH_PAGE_SCRIPT)
    page.on("console", page_problems.on_console)
    page.on("pageerror", lambda error: page_problems.page_errors.append(str(error)))
    page.on("response", page_problems.on_response)
    yield page
    context.close()
    problems = page_problems.summary()
    assert not problems, f"The browser reported problems during the test:\n{problems}"


@pytest.fixture(autouse=True, scope="session")
def _short_expect_timeout():
    expect.set_options(timeout=5_000)


@pytest.fixture
def team():
    return TeamFactory(name="Lung MDT", host=OrganisationFactory(name="Midlands Hospitals"))


@pytest.fixture
def coordinator(team):
    return make_member(team, role=Role.COORDINATOR, username="coordinator")
