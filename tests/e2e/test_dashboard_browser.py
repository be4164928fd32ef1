"""The dashboard in headless Chromium against a running demo (`pvwatch demo --forever`: embedded broker, a worker
process publishing snapshots, the dashboard as its own process), signed in to with the accounts the demo prints.
Screenshots go to test-artifacts/."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from pvwatch.cohort import generate_cohort, planted_stories
from pvwatch.domain.engine import evaluate_events
from pvwatch.events import AdverseEventReported
from pvwatch.pseudonym import Pseudonymiser
from pvwatch.store.snapshot import REDACTED
from pvwatch.streams.broker import free_port
from pvwatch.streams.producer import EventPublisher
from tests.conftest import REPO, wait_for

pytestmark = pytest.mark.e2e
ARTIFACTS = REPO / "test-artifacts"
COHORT = (20, 12)
#: an officer's free-text reason for closing an alert: kept in the officers' snapshot, removed from the analysts'
CLOSE_REASON = "Mother phoned: same reaction as in March, reported to the competent authority"


def snapshot_rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def snapshot_count(path: Path, sql: str) -> int:
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error:
        return -1
    try:
        row = con.execute(sql).fetchone()
        return int(row[0]) if row else 0
    except duckdb.Error:
        return -1
    finally:
        con.close()


#: the accounts `pvwatch demo --forever` prints: "  officer  demo-officer / <password>"
DEMO_ACCOUNT = re.compile(r"^  (officer|analyst|admin) +(\S+) / (\S+)$", re.MULTILINE)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[dict[str, object]]:
    """`pvwatch demo --forever` as a user runs it: the embedded broker, a worker publishing snapshots, the cohort
    COHORT streamed through the ingest edge, then the dashboard, signed in to with the accounts the demo prints."""
    db, workdir, printed = tmp_path / "demo.duckdb", tmp_path / "run", tmp_path / "demo.out"
    with printed.open("wb") as out, (tmp_path / "demo.err").open("wb") as err:
        demo = subprocess.Popen(
            [sys.executable, "-m", "pvwatch", "demo", "--forever", "--patients", str(COHORT[0]), "--seed",
             str(COHORT[1]), "--db", str(db), "--workdir", str(workdir), "--dashboard-port", str(free_port())],
            stdout=out, stderr=err, stdin=subprocess.DEVNULL)
    try:
        wait_for(lambda: demo.poll() is not None or "running until Ctrl-C" in printed.read_text(), 180,
                 what="`pvwatch demo --forever` to serve the dashboard")
        text = printed.read_text()
        assert demo.poll() is None, text + (tmp_path / "demo.err").read_text()[-3000:]
        accounts = {role: (name, password) for role, name, password in DEMO_ACCOUNT.findall(text)}
        assert set(accounts) == {"officer", "analyst", "admin"}, text
        base = re.search(r"^dashboard (http://127\.0\.0\.1:\d+)/ ", text, re.MULTILINE)
        bootstrap = re.search(r"^broker +(\S+) ", text, re.MULTILINE)
        assert base and bootstrap, text
        yield {"base": base.group(1), "snapshot": db.with_name(db.name + ".snapshot.duckdb"),
               "bootstrap": bootstrap.group(1), "pseudonymiser": Pseudonymiser.from_secret(None, demo_mode=True),
               "audit": workdir / "audit.jsonl", **accounts}
    finally:
        demo.send_signal(signal.SIGINT)  # Ctrl-C
        stopped = demo.wait(60)
    assert stopped == 0 and "stopping" in printed.read_text(), "Ctrl-C stops the demo cleanly"


@pytest.fixture
def downloads(tmp_path: Path) -> Path:
    folder = tmp_path / "downloads"
    folder.mkdir()
    return folder


@pytest.fixture
def browser(downloads: Path) -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1400,1000",
                     f"--user-data-dir={tempfile.mkdtemp(prefix='pvwatch-chromium-')}"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    ARTIFACTS.mkdir(exist_ok=True)
    yield driver
    driver.quit()


def screenshot(driver: webdriver.Chrome, name: str) -> None:
    """The whole page (the window grown to the page's height), kept in test-artifacts/."""
    height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    driver.set_window_size(1400, min(max(height, 800), 4000))
    driver.save_screenshot(str(ARTIFACTS / name))
    driver.set_window_size(1400, 1000)


def sign_in(driver: webdriver.Chrome, base: str, user: tuple[str, str], page: str) -> None:
    name, password = user
    driver.delete_all_cookies()
    driver.get(base + page)
    assert "/login" in driver.current_url
    driver.find_element(By.ID, "username").send_keys(name)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.ID, "sign-in").click()
    WebDriverWait(driver, 10).until(lambda d: "/login" not in d.current_url)


def serious_event(p: Pseudonymiser) -> AdverseEventReported:
    now = datetime.now(UTC)
    return AdverseEventReported.model_validate(p.pseudonymise_record({
        "event_id": str(uuid.uuid4()), "type": "adverse-event", "occurred_at": (now - timedelta(hours=3)).isoformat(),
        "recorded_at": now.isoformat(), "source": "site-lyon", "patient_ref": "MRN-E2E-000001",
        "case_id": "CASE-E2E-000001", "reporter_type": "clinician", "awareness_date": now.date().isoformat(),
        "onset_date": (now - timedelta(hours=3)).date().isoformat(), "term": "Anaphylactic reaction",
        "seriousness": {"life_threatening": True}, "outcome": "recovering",
        "products": [{"name": "UC-MSC (clinic-made)", "role": "suspect", "causality": "probable",
                      "lot_id": "LOT-E2E-7"}],
    }))


def withdraw_a_hys_law_alert(stack: dict[str, object]) -> str:
    """The Hy's law withdrawal story (tests/integration/test_alert_withdrawal.py: ALT 4 x ULN and bilirubin 3 x ULN,
    then a late ALP 2.5 x ULN between them, FDA DILI guidance 2009) sent to the demo's worker; the alert's id once
    the snapshot holds its withdrawal."""
    from tests.unit.test_rule_withdrawal import ALP, ALT, BILIRUBIN, PATIENT, lab

    snapshot = Path(str(stack["snapshot"]))
    raised = f"SELECT count(*) FROM alerts WHERE rule_id = 'hys-law' AND patient = '{PATIENT}'"
    with EventPublisher(str(stack["bootstrap"])) as publisher:
        publisher.publish(lab(ALT, 4.0, 1))
        publisher.publish(lab(BILIRUBIN, 3.0, 3))
        publisher.flush()
        wait_for(lambda: snapshot_count(snapshot, raised) == 1, 30, what="the Hy's law alert in the snapshot")
        publisher.publish(lab(ALP, 2.5, 2))
    withdrawn = f"SELECT count(*) FROM alert_withdrawals WHERE rule_id = 'hys-law' AND patient = '{PATIENT}'"
    wait_for(lambda: snapshot_count(snapshot, withdrawn) == 1, 30, what="its withdrawal in the snapshot")
    return str(snapshot_rows(snapshot, withdrawn.replace("count(*)", "alert_id::VARCHAR"))[0][0])


def test_officer_sees_an_alert_arrive_acknowledges_it_and_analyst_queries(stack, browser):
    base = str(stack["base"])
    sign_in(browser, base, stack["officer"], "/alerts")
    rows = "#alert-queue tbody tr[data-alert-id]"
    WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.CSS_SELECTOR, rows))
    before = len(browser.find_elements(By.CSS_SELECTOR, rows))

    event = serious_event(stack["pseudonymiser"])  # type: ignore[arg-type]
    with EventPublisher(str(stack["bootstrap"])) as publisher:
        publisher.publish(event)
    # every alert this one event raises on its own (serious-ae, its expedited clock, ...), as the engine says
    expected, _ = evaluate_events([event], datetime.now(UTC))
    expected_ids = {str(alert.alert_id) for alert in expected}
    arrived = f"{rows}.new-alert"
    # rows are redrawn whenever the queue changes (any alert, anywhere): a row read across a redraw is re-found
    settled = WebDriverWait(browser, 20, ignored_exceptions=[StaleElementReferenceException])
    settled.until(
        lambda d: {r.get_attribute("data-alert-id") for r in d.find_elements(By.CSS_SELECTOR, arrived)}
        >= expected_ids)
    assert settled.until(
        lambda d: any("Anaphylactic reaction" in r.text for r in d.find_elements(By.CSS_SELECTOR, arrived)))
    assert len(browser.find_elements(By.CSS_SELECTOR, rows)) == before + len(expected_ids), "arrived without a reload"
    browser.save_screenshot(str(ARTIFACTS / "dashboard-alert-arrived.png"))

    alert_id = settled.until(lambda d: next((r.get_attribute("data-alert-id") for r in d.find_elements(
        By.CSS_SELECTOR, arrived) if "Anaphylactic reaction" in r.text), None))
    ack = f'{rows}[data-alert-id="{alert_id}"] button.act-acknowledge'
    settled.until(lambda d: d.find_element(By.CSS_SELECTOR, ack).click() or True)
    status = f'{rows}[data-alert-id="{alert_id}"] td.status'
    WebDriverWait(browser, 30, ignored_exceptions=[StaleElementReferenceException]).until(
        lambda d: d.find_element(By.CSS_SELECTOR, status).text.startswith("acknowledged"))
    assert not browser.find_elements(By.CSS_SELECTOR, f'{rows}[data-alert-id="{alert_id}"].new-alert'), \
        "marked new only until someone acts on it"
    landed = snapshot_count(Path(str(stack["snapshot"])),
                            f"SELECT count(*) FROM alert_actions WHERE alert_id = '{alert_id}' "
                            f"AND action = 'acknowledge' AND actor = '{stack['officer'][0]}'")
    assert landed == 1, "the action is an event in the worker's store, seen through the next snapshot"
    browser.save_screenshot(str(ARTIFACTS / "dashboard-acknowledged.png"))

    # assign, then close with a reason, through the action dialog; each lands as an event with who and when
    acting = WebDriverWait(browser, 30, ignored_exceptions=[StaleElementReferenceException])
    for action, field, value, shown in (("assign", "action-assignee", "dr-lindqvist", "assigned"),
                                        ("close", "action-reason", CLOSE_REASON, "closed")):
        button = f'{rows}[data-alert-id="{alert_id}"] button.act-{action}'
        acting.until(lambda d: d.find_element(By.CSS_SELECTOR, button).click() or True)  # noqa: B023
        acting.until(lambda d: d.find_element(By.ID, field).is_displayed())  # noqa: B023
        browser.find_element(By.ID, field).send_keys(value)
        if action == "close":
            browser.save_screenshot(str(ARTIFACTS / "dashboard-close-dialog.png"))
        browser.find_element(By.ID, "action-ok").click()
        acting.until(lambda d: d.find_element(By.CSS_SELECTOR, status).text.startswith(shown))  # noqa: B023
        # the assignee column: the latest assign's, cleared by a close (store/migrations/003_alert_status.sql)
        assignee = f'{rows}[data-alert-id="{alert_id}"] td:nth-child(10)'
        expected_assignee = "dr-lindqvist" if action == "assign" else ""
        acting.until(lambda d: d.find_element(By.CSS_SELECTOR, assignee).text == expected_assignee)  # noqa: B023
    officer = stack["officer"][0]  # type: ignore[index]
    actions = snapshot_rows(Path(str(stack["snapshot"])),
                            f"SELECT action, actor, assignee, reason FROM alert_actions WHERE alert_id = '{alert_id}' "
                            "ORDER BY acted_at, log_seq")
    assert actions == [("acknowledge", officer, None, None), ("assign", officer, "dr-lindqvist", None),
                       ("close", officer, None, CLOSE_REASON)]

    row = browser.find_element(By.CSS_SELECTOR, f'{rows}[data-alert-id="{alert_id}"]')
    row.find_element(By.CSS_SELECTOR, "td:nth-child(5) a").click()
    WebDriverWait(browser, 10).until(lambda d: "/patients/" in d.current_url)
    assert browser.find_elements(By.CSS_SELECTOR, "#timeline svg g.adverse-event.serious")
    assert browser.find_elements(By.CSS_SELECTOR, "#timeline svg g.alert-flag")
    assert "Anaphylactic reaction" in browser.find_element(By.ID, "patient-events").text
    browser.save_screenshot(str(ARTIFACTS / "dashboard-patient-timeline.png"))
    audit = Path(str(stack["audit"])).read_text()
    assert '"action":"read-patient"' in audit and '"action":"alert-action"' in audit

    # an alert a late event made untrue leaves the open queue, which says so; the withdrawn page lists it with why
    browser.get(f"{base}/alerts")
    WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.CSS_SELECTOR, rows))
    withdrawn_id = withdraw_a_hys_law_alert(stack)
    WebDriverWait(browser, 20).until(
        lambda d: "1 withdrawn since you opened this page" in d.find_element(By.ID, "withdrawn-note").text)
    screenshot(browser, "dashboard-withdrawn-note.png")
    browser.find_element(By.ID, "withdrawn-link").click()
    WebDriverWait(browser, 10).until(lambda d: d.current_url.endswith("/alerts/withdrawn"))
    row = browser.find_element(By.CSS_SELECTOR, f'#withdrawn-alerts tr[data-alert-id="{withdrawn_id}"]')
    assert "hys-law" in row.text and "cholestatic pattern" in row.text and "lab-result" in row.text
    screenshot(browser, "dashboard-withdrawn.png")
    # and the patient's timeline draws it struck through, saying when and why, beside the legend
    from tests.unit.test_rule_withdrawal import PATIENT

    browser.get(f"{base}/patients/{PATIENT}")
    flag = browser.find_element(By.CSS_SELECTOR,
                                f'#timeline svg g.alert-flag.withdrawn[data-alert-id="{withdrawn_id}"]')
    title = flag.find_element(By.TAG_NAME, "title").get_attribute("textContent") or ""
    assert "withdrawn " in title and "cholestatic pattern" in title, title
    assert browser.find_elements(By.CSS_SELECTOR, "#timeline svg g.legend.alert-withdrawn")
    screenshot(browser, "dashboard-timeline-withdrawn.png")

    sign_in(browser, base, stack["analyst"], "/sql")
    query = browser.find_element(By.ID, "sql")
    query.clear()
    query.send_keys("SELECT action, reason FROM alert_actions ORDER BY acted_at, log_seq")
    browser.find_element(By.ID, "run-sql").click()
    WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.ID, "sql-result"))
    result = browser.find_element(By.ID, "sql-result").text
    assert "acknowledge" in result and "assign" in result and f"close {REDACTED}" in result
    assert CLOSE_REASON not in result, "the analyst reads the analyst snapshot: the officer's free text removed"
    browser.save_screenshot(str(ARTIFACTS / "dashboard-sql.png"))
    assert not browser.find_elements(By.CSS_SELECTOR, "button.act-acknowledge")
    browser.get(f"{base}/alerts/withdrawn")
    assert "cholestatic pattern" in browser.find_element(
        By.CSS_SELECTOR, f'#withdrawn-alerts tr[data-alert-id="{withdrawn_id}"]').text, "the analyst sees it too"


def test_officer_opens_a_timeline_with_every_lane_a_case_and_downloads_its_e2b_export(stack, browser, downloads):
    """The infusion-reaction story of the cohort: courses, the MSC infusion, labs, disease-activity charts, the
    adverse event and its alerts on one axis; its case page; the E2B(R3) download; the analyst's view of it."""
    base = str(stack["base"])
    p = stack["pseudonymiser"]
    planted = planted_stories(*COHORT)["infusion-reaction"]
    patient = p.pseudonym(planted.patient_refs[0])  # type: ignore[attr-defined]
    case = next(r for r in generate_cohort(*COHORT)
                if r["event_id"] in planted.event_ids and r["type"] == "adverse-event")
    wait_for(lambda: snapshot_count(Path(str(stack["snapshot"])),
                                    f"SELECT count(*) FROM alerts WHERE case_id = '{case['case_id']}'") > 0,
             30, what="the story's alerts in the snapshot")

    sign_in(browser, base, stack["officer"], f"/patients/{patient}")
    for lane in ("g.course", "g.infusion", "g.lab", "g.activity-chart", "g.adverse-event", "g.alert-flag",
                 "path.activity.clinician-documented"):
        assert browser.find_elements(By.CSS_SELECTOR, f"#timeline svg {lane}"), lane
    assert "Neutrophils" in browser.find_element(By.ID, "timeline").text
    screenshot(browser, "dashboard-timeline-all-lanes.png")

    browser.find_element(By.CSS_SELECTOR, "#timeline svg a[href^='/cases/'] g.adverse-event").click()
    WebDriverWait(browser, 10).until(lambda d: "/cases/" in d.current_url)
    versions = browser.find_element(By.ID, "versions").text
    assert case["term"] in versions and case["narrative"] in versions, "the officer reads the narrative"
    screenshot(browser, "dashboard-case.png")
    browser.find_element(By.ID, "export-e2b").click()
    expected_file = downloads / f"{case['case_id']}-e2b-r3.xml"
    wait_for(expected_file.exists, 20, what=f"the E2B(R3) download {expected_file.name}")
    from lxml import etree

    icsr = etree.parse(str(expected_file)).getroot()
    assert icsr.tag.endswith("MCCI_IN200100UV01") and case["term"] in etree.tostring(icsr).decode()
    (ARTIFACTS / expected_file.name).write_bytes(expected_file.read_bytes())
    audit = Path(str(stack["audit"])).read_text()
    assert '"action":"export-e2b"' in audit and '"action":"read-case"' in audit

    browser.get(f"{base}/health")
    health = browser.find_element(By.ID, "health").text
    assert "Worker up yes" in health and "Dead-lettered 0" in health
    screenshot(browser, "dashboard-health.png")

    # signals: the worker recomputes the table (every 15 s in the demo); the EBGM plot and sortable columns
    def signals_shown(driver: webdriver.Chrome) -> bool:
        driver.get(f"{base}/signals")
        return bool(driver.find_elements(By.CSS_SELECTOR, "#signals tbody tr td[data-sort]"))

    wait_for(lambda: signals_shown(browser), 60, interval_s=2, what="the demo's worker to compute the signals table")
    assert browser.find_elements(By.CSS_SELECTOR, ".plot svg[aria-label='EBGM intervals'] circle")
    headings = [th.text for th in browser.find_elements(By.CSS_SELECTOR, "#signals thead th")]

    def column(name: str) -> list[str]:
        index = headings.index(name) + 1
        cells = browser.find_elements(By.CSS_SELECTOR, f"#signals tbody tr td:nth-child({index})")
        return [td.text if (exact := td.get_attribute("data-sort")) is None else exact for td in cells]

    in_order = "return arguments[0].every((v, i, a) => i === 0 || a[i - 1].localeCompare(v) <= 0)"
    for name in ("PRR", "Event"):
        heading = f"//table[@id='signals']//th[text()='{name}']"
        browser.find_element(By.XPATH, heading).click()
        ascending = column(name)
        browser.find_element(By.XPATH, heading).click()
        descending = column(name)
        assert sorted(ascending) == sorted(descending) and len(set(ascending)) > 1, name
        if name == "PRR":  # by the exact value in data-sort; pairs without one ("–") first when ascending
            values = [float(v) if v else float("-inf") for v in ascending]
            assert values == sorted(values)
            values = [float(v) if v else float("-inf") for v in descending]
            assert values == sorted(values, reverse=True)
        else:  # by text, in the browser's collation
            assert browser.execute_script(in_order, ascending) and browser.execute_script(in_order, descending[::-1])
    screenshot(browser, "dashboard-signals.png")

    sign_in(browser, base, stack["analyst"], f"/cases/{case['case_id']}")
    text = browser.find_element(By.TAG_NAME, "main").text
    assert case["term"] in text and case["narrative"] not in text
    assert not browser.find_elements(By.ID, "export-e2b")
    browser.get(f"{base}/cases/{case['case_id']}/e2b")
    assert "may not export e2b" in browser.find_element(By.TAG_NAME, "main").text
    screenshot(browser, "dashboard-analyst-case.png")
