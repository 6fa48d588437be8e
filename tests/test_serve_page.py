"""`retain serve` as a real process, and the support leads' page in headless Chromium.

The server is started through the CLI on a free port against a SQLite file holding a small
published list; the page is driven by Playwright with the system's Chromium (no browser
download). Skipped, saying why, only where Chromium or Playwright is not installed.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from retain.serve import auth
from retain.serve.db import open_database
from serve_fixtures import publish_two_runs

pytestmark = pytest.mark.slow

CHROMIUM = os.environ.get("RETAIN_TEST_CHROMIUM", shutil.which("chromium") or "/usr/bin/chromium")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str], Path]]:
    workdir = tmp_path_factory.mktemp("serve")
    url = f"sqlite:///{workdir / 'retain.db'}"
    engine = open_database(url)
    publish_two_runs(engine)
    tokens = {}
    with engine.begin() as conn:
        for role in ("viewer", "lead"):
            tokens[role] = auth.create_token(conn, f"{role}-holder", role)
    engine.dispose()
    from retain.insight.report import ReportParts, insight_report

    (workdir / "report.html").write_text(insight_report(ReportParts(title="retain report", facts={"customers": "5"})))
    port = _free_port()
    log = workdir / "serve.log"
    process = subprocess.Popen(
        [
            sys.executable, "-m", "retain.cli", "serve", "--database-url", url, "--port", str(port),
            "--report", str(workdir / "report.html"),
        ],
        stdout=log.open("w"), stderr=subprocess.STDOUT, cwd=workdir,
    )
    base = f"http://127.0.0.1:{port}"
    import httpx

    for _ in range(150):
        try:
            if httpx.get(f"{base}/api/ready", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            pytest.fail(f"retain serve exited with {process.returncode}: {log.read_text()}")
        time.sleep(0.2)
    else:
        process.kill()
        pytest.fail(f"retain serve did not become ready: {log.read_text()}")
    yield base, tokens, log
    process.terminate()
    process.wait(timeout=20)


def test_the_served_process_answers_and_logs_no_customer_data(server) -> None:  # type: ignore[no-untyped-def]
    import httpx

    base, tokens, log = server
    assert httpx.get(f"{base}/api/health").json() == {"status": "ok"}
    assert httpx.get(f"{base}/api/customers").status_code == 401
    headers = {"Authorization": f"Bearer {tokens['viewer']}"}
    assert httpx.get(f"{base}/api/customers/c2", headers=headers).status_code == 200
    text = log.read_text()
    assert "GET /api/customers/{customer_id} 200" in text
    assert "c2" not in text and tokens["viewer"] not in text and "billed twice" not in text


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set RETAIN_TEST_CHROMIUM)")
    with playwright_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], headless=True)
        yield launched
        launched.close()


def _sign_in(page, base: str, token: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(base + "/")
    page.fill("#token", token)
    page.click("#sign-in-form button[type=submit]")
    page.wait_for_selector("#list tbody tr")


def test_a_lead_works_the_list_in_the_page(server, browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    base, tokens, _ = server
    page = browser.new_page(accept_downloads=True, bypass_csp=True)  # for wait_for_function
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    _sign_in(page, base, tokens["lead"])

    rows = page.locator("#list tbody tr")
    assert rows.count() == 5
    assert rows.first.locator("td").nth(1).inner_text() == "c1"
    assert "As of 2025-06-01" in page.inner_text("#run-info")

    # filter: the high tier only
    page.select_option("#filters select[name=tier]", "high")
    page.click("#filters button[type=submit]")
    page.wait_for_function("document.querySelectorAll('#list tbody tr').length === 2")
    assert page.inner_text("#list-status").startswith("2 customers")

    # sort by churn risk, highest first
    page.select_option("#filters select[name=tier]", "")
    page.click("#filters button[type=submit]")
    page.wait_for_function("document.querySelectorAll('#list tbody tr').length === 5")
    page.click("#list th[data-sort=churn_probability]")
    page.wait_for_function("document.querySelector('#list tbody tr td:nth-child(2)').textContent === 'c1'")

    # detail with evidence: feedback text is shown as text, never run as markup
    page.click("#list tbody tr[data-customer=c2]")
    page.wait_for_selector("#detail:not([hidden]) #detail-reasons li")
    assert page.inner_text("#detail-title") == "Customer c2"
    quote = page.locator("#detail-reasons blockquote").first.inner_text()
    assert quote.startswith("<script>alert('x')</script>")
    assert dialogs == []
    assert page.locator("#detail-history tbody tr").count() == 2

    # log outreach; it shows in the detail and the customer leaves "not yet contacted"
    assert page.is_visible("#outreach-form")
    page.select_option("#outreach-form select[name=channel]", "email")
    page.select_option("#outreach-form select[name=outcome]", "reached")
    page.fill("#outreach-form textarea[name=notes]", "sent the billing credit")
    page.click("#outreach-form button[type=submit]")
    page.wait_for_function("document.querySelector('#outreach-status').textContent === 'Logged.'")
    assert "sent the billing credit" in page.inner_text("#detail-outreach")
    page.check("#filters input[name=not_contacted]")
    page.click("#filters button[type=submit]")
    page.wait_for_function("document.querySelectorAll('#list tbody tr').length === 4")

    # export the filtered list
    with page.expect_download() as download:
        page.click("#export")
    saved = tmp_path / "export.csv"
    download.value.save_as(saved)
    lines = saved.read_text().splitlines()
    assert lines[0].startswith("rank,customer_id") and len(lines) == 5 and not any(",c2," in x for x in lines)

    # the effect section says what to run before anything is measured
    assert "retain outreach report" in page.inner_text("#effect-status")


def test_a_viewer_cannot_log_outreach_and_a_bad_token_is_refused(server, browser) -> None:  # type: ignore[no-untyped-def]
    base, tokens, _ = server
    page = browser.new_page(bypass_csp=True)  # wait_for_function evaluates strings
    _sign_in(page, base, tokens["viewer"])
    page.click("#list tbody tr[data-customer=c1]")
    page.wait_for_selector("#detail:not([hidden])")
    assert not page.is_visible("#outreach-form")

    page.click("#sign-out")
    # signing in again in the same page (no reload) does not list the choices twice
    page.fill("#token", tokens["viewer"])
    page.click("#sign-in-form button[type=submit]")
    page.wait_for_selector("#app:not([hidden]) #list tbody tr")
    page.wait_for_function("document.querySelectorAll('#filters select[name=tier] option').length > 1")
    tiers = page.locator("#filters select[name=tier] option").all_inner_texts()
    assert tiers == ["any", "high", "low", "medium"]
    page.click("#sign-out")
    page.fill("#token", "rtn_wrong")
    page.click("#sign-in-form button[type=submit]")
    page.wait_for_function("document.querySelector('#sign-in-error').textContent.length > 0")
    assert "not accepted" in page.inner_text("#sign-in-error")
    assert not page.is_visible("#app")


def test_the_page_says_why_a_reason_list_is_empty_and_hides_empty_filters(server, browser) -> None:  # type: ignore[no-untyped-def]
    """What a flat table or a purchase log publishes: no segment or region, reasons without
    tickets behind them, customers no reason stands out for. The API's answers are taken from the
    real server and trimmed to that shape on their way to the page."""
    import json

    base, tokens, _ = server
    page = browser.new_page(bypass_csp=True)  # wait_for_function evaluates strings

    def trimmed(route, change) -> None:  # type: ignore[no-untyped-def]
        body = route.fetch().json()
        change(body)
        route.fulfill(status=200, content_type="application/json", body=json.dumps(body))

    page.route("**/api/filters", lambda route: trimmed(route, lambda b: b.update(
        segment=[], region=[], reason=["column:Contract", "engagement"])))
    page.route("**/api/customers/c4", lambda route: trimmed(route, lambda b: b["customer"].update(reasons=[])))
    page.route("**/api/runs/current", lambda route: trimmed(route, lambda b: b.update(value_basis="purchases")))
    effect = {"as_of": "2025-03-01", "horizon_days": 90, "per_protocol": False, "rows": [
        {"action": "(all actions)", "analysis": "intention_to_treat", "n_treated": 60, "n_control": 5,
         "churn_rate_treated": 0.42, "churn_rate_control": 0.6, "difference": -0.18, "ci_low": -0.49, "ci_high": 0.21}]}
    page.route("**/api/outreach/effect", lambda route: route.fulfill(
        status=200, content_type="application/json", body=json.dumps(effect)))
    _sign_in(page, base, tokens["viewer"])

    page.wait_for_function("document.querySelector('#effect-status').textContent.includes('cannot yet tell')")
    assert "60 assigned against 5 held out cannot yet tell" in page.inner_text("#effect-status")
    # what "value" means on this data is a hover away
    assert page.get_attribute("#value-head", "title") == "churn risk × monthly value; monthly value: purchases"

    assert not page.is_visible("#filters select[name=segment]")
    assert not page.is_visible("#filters select[name=region]")
    assert page.is_visible("#filters select[name=tier]")
    options = page.locator("#filters select[name=reason] option")
    assert options.all_inner_texts() == ["any", "Contract", "engagement"]
    assert options.nth(1).get_attribute("value") == "column:Contract"

    page.click("#list tbody tr[data-customer=c3]")  # a reason with no ticket or comment behind it
    page.wait_for_function("document.querySelector('#detail-title').textContent === 'Customer c3'")
    assert "come from the customer's account" in page.inner_text("#detail-reasons-note")

    page.click("#list tbody tr[data-customer=c4]")  # no reason at all
    page.wait_for_function("document.querySelector('#detail-title').textContent === 'Customer c4'")
    assert page.locator("#detail-reasons li").count() == 0
    assert page.inner_text("#detail-reasons-note").startswith("No reason stands out")

    page.click("#list tbody tr[data-customer=c2]")  # reasons with the feedback behind them
    page.wait_for_function("document.querySelector('#detail-title').textContent === 'Customer c2'")
    assert not page.is_visible("#detail-reasons-note")


def test_the_page_works_under_its_content_security_policy(server, browser) -> None:  # type: ignore[no-untyped-def]
    """The other page tests bypass the policy (Playwright's wait_for_function evaluates
    strings); this one keeps it and checks the page still signs in, lists and opens a customer."""
    base, tokens, _ = server
    page = browser.new_page()
    messages: list[str] = []
    page.on("console", lambda m: messages.append(m.text))
    _sign_in(page, base, tokens["viewer"])
    page.click("#list tbody tr[data-customer=c2]")
    page.wait_for_selector("#detail:not([hidden]) #detail-reasons blockquote")
    assert not [m for m in messages if "Content Security Policy" in m], messages


def test_the_page_opens_the_insight_report_while_it_exists(server, browser) -> None:  # type: ignore[no-untyped-def]
    import httpx

    base, tokens, log = server
    report = log.parent / "report.html"
    assert httpx.get(f"{base}/api/report").status_code == 401  # the token is needed, as for the list
    page = browser.new_page()
    _sign_in(page, base, tokens["viewer"])
    page.wait_for_selector("#open-report:not([hidden])")
    with page.context.expect_page() as opened:
        page.click("#open-report")
    shown = opened.value
    shown.wait_for_load_state()
    assert shown.locator("h1").inner_text() == "retain report"
    assert "customers" in shown.locator("#overview").inner_text()
    # the report's own inline styles apply (its policy, not the list page's)
    assert shown.evaluate("getComputedStyle(document.querySelector('th')).backgroundColor") == "rgb(243, 243, 243)"
    link = shown.url
    shown.close()
    assert "/report/" in link and tokens["viewer"] not in link
    assert httpx.get(f"{base}/report/not-a-link").status_code == 404
    # Without the file the page shows no link, and the API says why
    kept = report.read_text()
    report.unlink()
    try:
        page.reload()  # the token is kept for the tab
        page.wait_for_selector("#list tbody tr")
        page.wait_for_function("document.querySelector('#open-report').hidden === true")
        missing = httpx.get(f"{base}/api/report", headers={"Authorization": f"Bearer {tokens['viewer']}"})
        assert missing.status_code == 404 and "retain report" in missing.json()["detail"]
    finally:
        report.write_text(kept)
    page.close()
