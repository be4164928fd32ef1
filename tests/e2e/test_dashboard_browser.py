"""The dashboard in headless Chromium against a running demo-like stack: embedded broker, a real worker process
publishing snapshots, and `pvwatch dashboard` as its own process. Screenshots go to test-artifacts/."""

from __future__ import annotations

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
from pvwatch.dashboards.users import Role, UserStore
from pvwatch.domain.engine import evaluate_events
from pvwatch.events import AdverseEventReported
from pvwatch.events.codec import parse_event
from pvwatch.pseudonym import Pseudonymiser
from pvwatch.streams.broker import free_port
from pvwatch.streams.producer import EventPublisher
from tests.conftest import REPO, Workers, wait_for

pytestmark = pytest.mark.e2e
ARTIFACTS = REPO / "test-artifacts"
OFFICER, ANALYST = ("olivia", "officer-password-1"), ("anders", "analyst-password-1")
COHORT = (20, 12)


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


@pytest.fixture
def stack(workers: Workers, tmp_path: Path) -> Iterator[dict[str, object]]:
    snapshot = workers.db.with_name(workers.db.name + ".snapshot.duckdb")
    worker = workers.start(env={"PVWATCH_SNAPSHOT_INTERVAL_S": "1", "PVWATCH_SNAPSHOT_PATH": str(snapshot)})
    p = Pseudonymiser.from_secret(None, demo_mode=True)
    # every clinical type of a 20-child cohort with its planted stories (pvwatch.cohort), as the demo sends it
    events = [parse_event(p.pseudonymise_record(r)) for r in generate_cohort(*COHORT)]
    with EventPublisher(workers.broker.bootstrap) as publisher:
        for event in events:
            publisher.publish(event)
    wait_for(lambda: snapshot_count(snapshot, "SELECT event_count FROM snapshot_meta") >= len(events), 30,
             what=f"the worker to publish a snapshot at {snapshot} holding every event (PVWATCH_SNAPSHOT_*)")

    users = UserStore(tmp_path / "users.yaml")
    users.add(*OFFICER[:1], Role.OFFICER, OFFICER[1])
    users.add(*ANALYST[:1], Role.ANALYST, ANALYST[1])
    port = free_port()
    log = (tmp_path / "dashboard.log").open("wb")
    dashboard = subprocess.Popen(
        [sys.executable, "-m", "pvwatch", "dashboard", "--snapshot", str(snapshot), "--users",
         str(tmp_path / "users.yaml"), "--port", str(port), "--bootstrap-servers", workers.broker.bootstrap,
         "--metrics-url", worker.metrics_url], stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        import urllib.request

        def up() -> bool:
            try:
                return urllib.request.urlopen(base + "/login", timeout=1).status == 200
            except OSError:
                return False

        wait_for(up, 20, what="the dashboard to listen")
        yield {"base": base, "snapshot": snapshot, "bootstrap": workers.broker.bootstrap, "pseudonymiser": p,
               "audit": tmp_path / "audit.jsonl"}
    finally:
        dashboard.terminate()
        dashboard.wait(10)
        log.close()


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
    driver.delete_all_cookies()
    driver.get(base + page)
    assert "/login" in driver.current_url
    driver.find_element(By.ID, "username").send_keys(user[0])
    driver.find_element(By.ID, "password").send_keys(user[1])
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


def test_officer_sees_an_alert_arrive_acknowledges_it_and_analyst_queries(stack, browser):
    base = str(stack["base"])
    sign_in(browser, base, OFFICER, "/alerts")
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
                            "AND action = 'acknowledge' AND actor = 'olivia'")
    assert landed == 1, "the action is an event in the worker's store, seen through the next snapshot"
    browser.save_screenshot(str(ARTIFACTS / "dashboard-acknowledged.png"))

    row = browser.find_element(By.CSS_SELECTOR, f'{rows}[data-alert-id="{alert_id}"]')
    row.find_element(By.CSS_SELECTOR, "td:nth-child(5) a").click()
    WebDriverWait(browser, 10).until(lambda d: "/patients/" in d.current_url)
    assert browser.find_elements(By.CSS_SELECTOR, "#timeline svg g.adverse-event.serious")
    assert browser.find_elements(By.CSS_SELECTOR, "#timeline svg g.alert-flag")
    assert "Anaphylactic reaction" in browser.find_element(By.ID, "patient-events").text
    browser.save_screenshot(str(ARTIFACTS / "dashboard-patient-timeline.png"))
    audit = Path(str(stack["audit"])).read_text()
    assert '"action":"read-patient"' in audit and '"action":"alert-action"' in audit

    sign_in(browser, base, ANALYST, "/sql")
    query = browser.find_element(By.ID, "sql")
    query.clear()
    query.send_keys("SELECT status, count(*) AS alerts FROM alert_status GROUP BY status ORDER BY status")
    browser.find_element(By.ID, "run-sql").click()
    WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.ID, "sql-result"))
    result = browser.find_element(By.ID, "sql-result").text
    assert "acknowledged 1" in result
    browser.save_screenshot(str(ARTIFACTS / "dashboard-sql.png"))
    assert not browser.find_elements(By.CSS_SELECTOR, "button.act-acknowledge")


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

    sign_in(browser, base, OFFICER, f"/patients/{patient}")
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

    sign_in(browser, base, ANALYST, f"/cases/{case['case_id']}")
    text = browser.find_element(By.TAG_NAME, "main").text
    assert case["term"] in text and case["narrative"] not in text
    assert not browser.find_elements(By.ID, "export-e2b")
    browser.get(f"{base}/cases/{case['case_id']}/e2b")
    assert "may not export e2b" in browser.find_element(By.TAG_NAME, "main").text
    screenshot(browser, "dashboard-analyst-case.png")
