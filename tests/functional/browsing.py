"""What browser tests do on every page: sign in, wait for htmx to settle, check accessibility."""

import json

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page, expect

from accounts.models import User
from tests.factories import TEST_PASSWORD

BLOCKING_IMPACTS = {"serious", "critical"}


def wait_for_htmx(page: Page) -> None:
    """Waits until no htmx request is in flight and the last swap has settled."""
    page.wait_for_function(
        "() => window.htmx !== undefined && !document.querySelector("
        "'.htmx-request, .htmx-swapping, .htmx-settling, .htmx-added')"
    )


_axe = Axe()


def check_accessibility(page: Page, where: str) -> None:
    """Fails on serious or critical axe violations (and on any CSP violation seen so far)."""
    wait_for_htmx(page)
    results = _axe.run(page)
    blocking = [v for v in results.response["violations"] if v["impact"] in BLOCKING_IMPACTS]
    report = []
    for violation in blocking:
        report.append(f"{violation['id']} ({violation['impact']}): {violation['help']}")
        for node in violation["nodes"]:
            report.append(f"    {', '.join(map(str, node['target']))}: {node['html'][:200]}")
            summary = (node.get("failureSummary") or "").replace("\n", " ")
            if summary:
                report.append(f"      {summary}")
    assert not blocking, f"axe: serious or critical violations {where}:\n" + "\n".join(report)
    violations = page.evaluate("window.__cspViolations || []")
    assert violations == [], f"CSP violations {where}: {json.dumps(violations, indent=2)}"


def log_in(page: Page, user: User) -> None:
    page.goto("/accounts/login/")
    check_accessibility(page, "on the sign-in page")
    page.locator("#id_username").fill(user.username)
    page.locator("#id_password").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()


def spaced(nhs: str) -> str:
    """An NHS number as people write it: 999 123 4567."""
    return f"{nhs[:3]} {nhs[3:6]} {nhs[6:]}"


def listed_names(page: Page):
    return page.locator("#case-list .app-patient-name")


def type_nhs_number_and_wait_for_preview(page: Page, nhs: str) -> None:
    page.locator("#id_nhs_number").fill(nhs)
    expect(page.locator("#patient-preview")).not_to_be_empty()
    wait_for_htmx(page)


_NO_RELOAD_MARKER = "set before the first htmx request"


def mark_page_to_detect_reloads(page: Page) -> None:
    page.evaluate(f"window.__noReloadMarker = {_NO_RELOAD_MARKER!r}")


def assert_not_reloaded(page: Page) -> None:
    assert page.evaluate("window.__noReloadMarker") == _NO_RELOAD_MARKER, (
        "the page was reloaded: htmx should have swapped a fragment instead"
    )
