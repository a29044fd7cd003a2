"""The checks every browser test relies on do catch what they are for: a check that never fails
would let CSP, script and accessibility regressions through silently."""

import pytest
from playwright.sync_api import Page

from .browsing import check_accessibility, wait_for_htmx

pytestmark = pytest.mark.browser


def test_browser_checks_catch_csp_violations_script_errors_htmx_errors_and_axe_violations(
    page: Page, page_problems
):
    page.goto("/accounts/login/")
    wait_for_htmx(page)

    # An inline script without the nonce is blocked and reported.
    page.evaluate(
        """() => {
          const script = document.createElement("script");
          script.textContent = "window.__inlineScriptRan = true";
          document.body.append(script);
        }"""
    )
    page.wait_for_function("() => window.__cspViolations.length > 0")
    assert page.evaluate("window.__inlineScriptRan") is None
    with pytest.raises(AssertionError, match="CSP violations"):
        check_accessibility(page, "after an inline script")

    # An uncaught error and a failed htmx request are reported.
    page.evaluate("() => { setTimeout(() => { throw new Error('deliberate failure'); }); }")
    page.evaluate("() => htmx.ajax('GET', '/no-such-page/', {target: 'main'})")
    page.wait_for_function("() => window.__htmxErrors.length > 0")

    # An image without alternative text is a critical axe violation.
    page.evaluate("() => { window.__cspViolations = []; }")
    page.evaluate(
        """() => {
          const image = document.createElement("img");
          image.src = "/static/vendor/nhsuk-frontend/assets/images/favicon.svg";
          document.querySelector("main").append(image);
        }"""
    )
    with pytest.raises(AssertionError, match="image-alt"):
        check_accessibility(page, "with an image without alternative text")

    page.wait_for_timeout(100)  # let the bindings deliver what the page reported
    assert any("script-src" in violation for violation in page_problems.csp)
    assert page_problems.page_errors == ["deliberate failure"]
    assert any("htmx:responseError" in error for error in page_problems.htmx)
    # Seen and checked: clear them so the page fixture's own check passes.
    page_problems.csp.clear()
    page_problems.page_errors.clear()
    page_problems.htmx.clear()
