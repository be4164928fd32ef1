"""The monitoring files docker-compose.yml mounts, checked with the real Debian binaries (promtool, amtool):
the compose file parses and mounts exactly these files, tags are pinned, every rule and route behaves as
documented, a real worker's exposition passes `promtool check metrics`, and every metric name a rule or a
Grafana panel queries exists in pvwatch's registry (a renamed metric must break this test, not a dashboard)."""

from __future__ import annotations

import fnmatch
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

import pytest
import yaml
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, InfoMetricFamily
from prometheus_client.parser import text_string_to_metric_families

from pvwatch.cohort import generate_cohort
from pvwatch.config import Settings
from pvwatch.domain.engine import RULE_IDS
from pvwatch.events import AdverseEventReported
from pvwatch.events.alert import alert_id_for
from pvwatch.metrics import REGISTRY
from pvwatch.metrics_client import scrape_labelled
from pvwatch.streams.producer import EventPublisher
from tests.alerting_stack import first_serious_event
from tests.conftest import REPO, Workers, wait_for

pytestmark = pytest.mark.integration

MONITORING = REPO / "dashboards" / "monitoring"
PROMETHEUS = MONITORING / "prometheus"
ALERT_RULES = PROMETHEUS / "rules" / "pvwatch-alerts.yml"
RECORDING_RULES = PROMETHEUS / "rules" / "pvwatch-recording.yml"
ALERTMANAGER = MONITORING / "alertmanager" / "alertmanager.yml"
GRAFANA = MONITORING / "grafana"
DATASOURCE_UID = "pvwatch-prometheus"
#: Series Prometheus itself makes: `up` per scrape target, `ALERTS` per alert (Prometheus docs, "Alerting rules").
PROMETHEUS_SERIES = {"up", "ALERTS"}


def run(*command: str | Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    if shutil.which(str(command[0])) is None:
        pytest.fail(f"{command[0]} is not installed: run `bash scripts/install.sh --system`")
    return subprocess.run([str(c) for c in command], capture_output=True, text=True, input=stdin, timeout=60)


def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def bind_mounts() -> dict[str, list[tuple[Path, str]]]:
    """Service -> [(file in the repository, path in the container)] for every `./...` volume."""
    mounts: dict[str, list[tuple[Path, str]]] = {}
    for name, service in compose()["services"].items():
        for volume in service.get("volumes", []):
            source, target, *_ = volume.split(":")
            if source.startswith("./"):
                mounts.setdefault(name, []).append(((REPO / source).resolve(), target))
    return mounts


def alerting_rules() -> list[dict]:
    return [rule for group in yaml.safe_load(ALERT_RULES.read_text())["groups"] for rule in group["rules"]]


def dashboards() -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in sorted((GRAFANA / "dashboards").glob("*.json"))}


# --- docker-compose.yml -------------------------------------------------------------------------------------

def test_compose_runs_kafka_in_kraft_mode_the_worker_prometheus_alertmanager_and_grafana():
    services = compose()["services"]
    assert set(services) == {"kafka", "worker", "dashboard", "prometheus", "alertmanager", "grafana"}
    kafka = services["kafka"]["environment"]
    assert kafka["KAFKA_PROCESS_ROLES"] == "broker,controller", "single-node KRaft, no ZooKeeper"
    worker = services["worker"]
    assert worker["build"] == "." and (REPO / "Dockerfile").is_file()
    assert worker["environment"]["PVWATCH_KAFKA_BOOTSTRAP"] == "kafka:9092"
    assert worker["environment"]["PVWATCH_ALERTMANAGER_URL"] == "http://alertmanager:9093"
    scrape = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())["scrape_configs"]
    pvwatch_job = next(job for job in scrape if job["job_name"] == "pvwatch")
    assert pvwatch_job["static_configs"][0]["targets"] == [f"worker:{worker['environment']['PVWATCH_METRICS_PORT']}"]


def test_compose_references_resolve_and_the_worker_settings_are_real_settings():
    spec = compose()
    for name, service in spec["services"].items():
        for dependency in service.get("depends_on", []):
            assert dependency in spec["services"], f"{name} depends on unknown {dependency}"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert source.startswith("./") or source in spec["volumes"], f"{name}: volume {source} not declared"
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name}: {port} must be bound to loopback"
    known = {f"PVWATCH_{field.upper()}" for field in Settings.model_fields} | {"PVWATCH_FETCH_MAX_WAIT_MS"}
    unknown = set(spec["services"]["worker"]["environment"]) - known
    assert not unknown, f"not pvwatch settings (typo?): {sorted(unknown)}"


def test_the_compose_dashboard_reads_the_snapshot_the_worker_publishes_with_options_pvwatch_accepts():
    from pvwatch.cli import cli

    services = compose()["services"]
    worker, dashboard = services["worker"], services["dashboard"]
    assert dashboard["image"] == worker["image"], "the dashboard runs the image compose builds for the worker"
    args = dashboard["command"]
    assert args[0] == "dashboard"
    context = cli.commands["dashboard"].make_context("dashboard", list(args[1:]))  # click rejects unknown options
    worker_settings = Settings(db=Path(worker["environment"]["PVWATCH_DB"]))
    assert context.params["snapshot"] == worker_settings.snapshot_target
    assert context.params["metrics_url"] == f"http://worker:{worker['environment']['PVWATCH_METRICS_PORT']}/metrics"
    store_volume = next(v.split(":")[0] for v in worker["volumes"] if v.split(":")[1] == str(worker_settings.db.parent))
    data_mounts = [v for v in dashboard["volumes"] if v.split(":")[0] == store_volume]
    assert data_mounts and all(v.endswith(":ro") for v in data_mounts), "the dashboard never writes the store"
    users_dir = context.params["users_file"].parent
    assert any(v.split(":")[1] == str(users_dir) for v in dashboard["volumes"]), "users and audit log persist"
    assert f"install -d -o pvwatch -g pvwatch -m 0750 {users_dir}" in (REPO / "Dockerfile").read_text(), \
        "the image creates the users folder owned by the service user, so a fresh named volume is writable"


def test_admins_edit_the_rules_file_the_compose_worker_reads_at_its_next_start():
    """The dashboard's /admin/rules writes PVWATCH_RULES_FILE; the worker must read that same file, from a volume
    that starts with the packaged rules (a worker given a missing rules file refuses to start)."""
    services = compose()["services"]
    worker, dashboard = services["worker"], services["dashboard"]
    rules_file = Path(worker["environment"]["PVWATCH_RULES_FILE"])
    assert dashboard["environment"]["PVWATCH_RULES_FILE"] == str(rules_file)
    mount = {service: next(v for v in services[service]["volumes"] if v.split(":")[1] == str(rules_file.parent))
             for service in ("worker", "dashboard")}
    assert mount["worker"].split(":")[0] == mount["dashboard"].split(":")[0], "one shared volume"
    assert mount["worker"].endswith(":ro") and not mount["dashboard"].endswith(":ro"), "only admins edit it"
    dockerfile = (REPO / "Dockerfile").read_text()
    seed = re.search(r'python -c "([^"]+)"\s*\\\n\s*\| xargs -I\{\} install .* \{\} (\S+)', dockerfile)
    assert seed and seed.group(2) == str(rules_file), "the image seeds the volume with the packaged rules file"
    packaged = subprocess.run([sys.executable, "-c", seed.group(1)], capture_output=True, text=True, check=True)
    assert Path(packaged.stdout.strip()).read_text() == (REPO / "pvwatch" / "rules.yaml").read_text()


def test_the_worker_image_copies_every_source_folder_the_distribution_maps():
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    copied = set(re.findall(r"^COPY (\S+)/ ", (REPO / "Dockerfile").read_text(), re.M))
    assert set(setuptools["package-dir"].values()) <= copied


def test_every_image_tag_is_pinned_to_a_version():
    for name, service in compose()["services"].items():
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and re.fullmatch(r"v?\d+\.\d+\.\d+", tag), f"{name}: {image} is not pinned to a version"
    base = re.search(r"^FROM (\S+)", (REPO / "Dockerfile").read_text(), re.M)
    assert base and re.search(r":\d+\.\d+\.\d+-", base.group(1)), "the Dockerfile's base image is pinned"


@pytest.mark.parametrize(("service", "binary"),
                         [("prometheus", "prometheus"), ("alertmanager", "prometheus-alertmanager")])
def test_compose_runs_the_versions_whose_checkers_validate_these_files(service, binary):
    printed = run(binary, "--version")
    version = re.search(r"version (\d+\.\d+\.\d+)", printed.stdout + printed.stderr)
    assert version, f"{binary} --version"
    assert compose()["services"][service]["image"].endswith(f":v{version.group(1)}")


def test_every_mounted_file_exists_and_every_monitoring_file_is_mounted():
    mounted = [source for mounts in bind_mounts().values() for source, _ in mounts]
    for source in mounted:
        assert source.is_file(), f"{source} is mounted but missing"
    shipped = {p.resolve() for p in MONITORING.rglob("*")
               if p.is_file() and "tests" not in p.relative_to(MONITORING).parts}
    assert set(mounted) == shipped, "docker-compose mounts exactly the monitoring files, no more, no fewer"


def test_prometheus_finds_its_rule_files_where_compose_mounts_them():
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    targets = {target for _, target in bind_mounts()["prometheus"]}
    for rule_file in config["rule_files"]:
        assert f"/etc/prometheus/{rule_file}" in targets
    assert "external_labels" not in config.get("global", {}), "they would change the alerts' label sets"


def test_grafana_finds_its_dashboards_and_prometheus_where_compose_puts_them():
    services = compose()["services"]
    mounts = bind_mounts()["grafana"]
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "pvwatch.yml").read_text())["providers"]
    [folder] = [p["options"]["path"] for p in provider]
    shipped = {p.resolve() for p in (GRAFANA / "dashboards").glob("*.json")}
    assert {source for source, target in mounts if target.startswith(folder + "/")} == shipped
    home = services["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home in {target for _, target in mounts}, "the home dashboard is one of the mounted files"
    [datasource] = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "pvwatch-prometheus.yml").read_text())[
        "datasources"]
    listen = next(a for a in services["prometheus"]["command"] if a.startswith("--web.listen-address="))
    assert datasource["url"] == f"http://prometheus:{listen.rpartition(':')[2]}"
    alertmanager = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())["alerting"]["alertmanagers"][0]
    listen = next(a for a in services["alertmanager"]["command"] if a.startswith("--web.listen-address="))
    assert alertmanager["static_configs"][0]["targets"] == [f"alertmanager:{listen.rpartition(':')[2]}"]


def test_monitoring_files_are_package_data_so_the_worker_image_can_read_the_rules():
    package_data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    patterns = package_data["pvwatch.dashboards"]
    for path in MONITORING.rglob("*.yml"):
        relative = path.relative_to(REPO / "dashboards").as_posix()
        assert any(fnmatch.fnmatch(relative, pattern) for pattern in patterns), relative


# --- promtool and amtool ------------------------------------------------------------------------------------

def test_promtool_check_config_and_rules():
    checked = run("promtool", "check", "config", PROMETHEUS / "prometheus.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    rules = run("promtool", "check", "rules", ALERT_RULES, RECORDING_RULES)
    assert rules.returncode == 0, rules.stdout + rules.stderr


def test_promtool_rule_unit_tests_pass():
    tested = subprocess.run(["promtool", "test", "rules", "tests/pvwatch-alerts_test.yml"], cwd=PROMETHEUS,
                            capture_output=True, text=True, timeout=120)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_alert_is_unit_tested_and_documented():
    tests = yaml.safe_load((PROMETHEUS / "tests" / "pvwatch-alerts_test.yml").read_text())["tests"]
    tested = {case["alertname"] for test in tests for case in test.get("alert_rule_test", []) if case["exp_alerts"]}
    runbooks = (REPO / "docs" / "runbooks.md").read_text()
    anchors = {heading.strip().lower() for heading in re.findall(r"^## (.+)$", runbooks, re.M)}
    for rule in alerting_rules():
        assert rule["alert"] in tested, f"{rule['alert']} has no promtool test in which it fires"
        assert {"severity", "team"} <= set(rule["labels"]), rule["alert"]
        assert {"summary", "description", "runbook_url"} <= set(rule["annotations"]), rule["alert"]
        path, _, anchor = rule["annotations"]["runbook_url"].partition("#")
        assert path == "docs/runbooks.md" and anchor in anchors, f"{rule['alert']}: runbook {anchor} missing"


def test_amtool_check_config():
    checked = run("amtool", "check-config", ALERTMANAGER)
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.parametrize(("labels", "receiver"), [
    ({"alertname": "SeriousAdverseEvent", "team": "safety", "severity": "critical", "rule": "serious-ae"},
     "safety-officer"),
    # the worker's direct posts: the rule's labels plus pvwatch's alert id (streams/alertmanager.py)
    ({"alertname": "SeriousAdverseEvent", "team": "safety", "severity": "critical", "rule": "serious-ae",
      "alert_id": "0b9c3e4e-5d7f-5e0a-9a51-1f2d3c4b5a69"}, "safety-officer"),
    ({"alertname": "CriticalSafetyAlert", "team": "safety", "severity": "critical", "rule": "hys-law",
      "alert_id": "6f1e2d3c-4b5a-5968-8776-a5b4c3d2e1f0"}, "safety-officer"),
    ({"alertname": "ExpeditedReportOverdue", "team": "safety", "severity": "critical"}, "safety-officer"),
    ({"alertname": "ExpeditedReportDueSoon", "team": "safety", "severity": "warning"}, "safety-team"),
    ({"alertname": "WorkerDown", "team": "platform", "severity": "critical"}, "platform-oncall"),
    ({"alertname": "DeadLetterQueueNotEmpty", "team": "platform", "severity": "warning"}, "platform-team"),
    ({"alertname": "Unknown", "severity": "info"}, "platform-team"),
])
def test_amtool_routes_each_severity_to_its_receiver(labels, receiver):
    routed = run("amtool", "config", "routes", "test", f"--config.file={ALERTMANAGER}",
                 *(f"{k}={v}" for k, v in labels.items()))
    assert routed.returncode == 0, routed.stderr
    assert routed.stdout.split() == [receiver]


def test_each_direct_alert_is_its_own_group_so_every_serious_adverse_event_pages_at_once():
    """A group is notified at once (group_wait) only on its first alert, later alerts wait group_interval: the
    route that amtool picks for a direct post must group by alert_id (each post its own group). How the real
    Alertmanager then pages each one, and mutes the rule's alert: tests/e2e/test_alert_path.py."""
    labels = {"alertname": "SeriousAdverseEvent", "team": "safety", "severity": "critical", "rule": "serious-ae",
              "alert_id": "0b9c3e4e-5d7f-5e0a-9a51-1f2d3c4b5a69"}
    routed = run("amtool", "config", "routes", "test", f"--config.file={ALERTMANAGER}",
                 *(f"{k}={v}" for k, v in labels.items()))
    [receiver] = routed.stdout.split()
    route = next(r for r in yaml.safe_load(ALERTMANAGER.read_text())["route"]["routes"] if r["receiver"] == receiver)
    assert "alert_id" in route["group_by"] and route["group_wait"] == "0s"


def test_critical_safety_alerts_go_out_at_once_and_warnings_are_grouped():
    route = yaml.safe_load(ALERTMANAGER.read_text())["route"]
    safety = next(r for r in route["routes"] if r["receiver"] == "safety-officer")
    assert safety["group_wait"] == "0s"
    warning_routes = [r for r in route["routes"] if 'severity="warning"' in r.get("matchers", [])]
    assert all(r["group_wait"] != "0s" for r in [route, *warning_routes])


def test_every_alert_routes_to_the_receiver_its_team_and_severity_call_for():
    expected = {("safety", "critical"): "safety-officer", ("safety", "warning"): "safety-team",
                ("platform", "critical"): "platform-oncall", ("platform", "warning"): "platform-team"}
    for rule in alerting_rules():
        labels = {"alertname": rule["alert"], **rule["labels"]}
        routed = run("amtool", "config", "routes", "test", f"--config.file={ALERTMANAGER}",
                     *(f"{k}={v}" for k, v in labels.items()))
        assert routed.stdout.split() == [expected[labels["team"], labels["severity"]]], rule["alert"]


# --- metric names -------------------------------------------------------------------------------------------

def exported_series_names() -> set[str]:
    """Every series name pvwatch's registry can expose, by metric type (prometheus-client's suffixes)."""
    names: set[str] = set()
    for family in REGISTRY.collect():
        suffixes = {
            CounterMetricFamily("x", "").type: ("_total", "_created"),
            HistogramMetricFamily("x", "").type: ("_bucket", "_sum", "_count", "_created"),
            InfoMetricFamily("x", "").type: ("_info",),
            GaugeMetricFamily("x", "").type: ("",),
        }[family.type]
        names.update(family.name + suffix for suffix in suffixes)
    return names


def metric_names(promql: str) -> set[str]:
    """Metric and recording-rule names in an expression (label values and function names excluded)."""
    without_strings = re.sub(r'"[^"]*"', '""', promql)
    without_matchers = re.sub(r"\{[^}]*\}", "", without_strings)
    without_grouping = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", without_matchers)
    tokens = re.findall(r"(?<![\w:.])([a-zA-Z_:][\w:]*)(?![\w:])(?!\s*\()", without_grouping)
    keywords = {"and", "or", "unless", "offset", "bool", "group_left", "group_right", "inf", "nan"}
    return {t for t in tokens if t.lower() not in keywords}


def all_expressions() -> list[tuple[str, str]]:
    found = [(f"rule {r.get('alert') or r.get('record')}", r["expr"])
             for path in (ALERT_RULES, RECORDING_RULES)
             for g in yaml.safe_load(path.read_text())["groups"] for r in g["rules"]]
    for name, dashboard in dashboards().items():
        for panel in dashboard["panels"]:
            found += [(f"{name} panel {panel['title']!r}", target["expr"]) for target in panel["targets"]]
    return found


def test_metric_name_extraction_sees_names_and_skips_labels_and_functions():
    expr = 'sum by (rule) (increase(pv_alerts_raised_total{rule="x"}[10m])) > 0 and on(instance) up == 1'
    assert metric_names(expr) == {"pv_alerts_raised_total", "up"}


def test_every_metric_in_every_rule_and_panel_exists_in_pvwatch_registry():
    recorded = {r["record"] for g in yaml.safe_load(RECORDING_RULES.read_text())["groups"] for r in g["rules"]}
    known = exported_series_names() | recorded | PROMETHEUS_SERIES
    used: set[str] = set()
    for where, expr in all_expressions():
        names = metric_names(expr)
        assert names, f"{where}: no metric found in {expr!r}"
        assert names <= known, f"{where}: unknown metric(s) {sorted(names - known)} in {expr!r}"
        used |= names
    assert {"pv_alerts_raised_total", "pv_expedited_reports_overdue", "pv_dead_letter_messages"} <= used


def test_grafana_dashboards_have_stable_uids_and_use_the_provisioned_datasource_by_uid():
    datasource = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "pvwatch-prometheus.yml").read_text())
    assert [d["uid"] for d in datasource["datasources"]] == [DATASOURCE_UID]
    found = dashboards()
    assert {d["uid"] for d in found.values()} == {"pv-safety-overview", "pv-pipeline-health", "pv-signals"}
    for name, dashboard in found.items():
        for panel in dashboard["panels"]:
            refs = [panel["datasource"], *(target["datasource"] for target in panel["targets"])]
            assert all(ref == {"type": "prometheus", "uid": DATASOURCE_UID} for ref in refs), (name, panel["title"])


def test_grafana_panels_fit_the_24_column_grid_without_overlapping():
    for name, dashboard in dashboards().items():
        cells: dict[tuple[int, int], str] = {}
        assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"]), name
        for panel in dashboard["panels"]:
            grid = panel["gridPos"]
            assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, (name, panel["title"])
            for x in range(grid["x"], grid["x"] + grid["w"]):
                for y in range(grid["y"], grid["y"] + grid["h"]):
                    assert (x, y) not in cells, f"{name}: {panel['title']!r} overlaps {cells[x, y]!r}"
                    cells[x, y] = panel["title"]


# --- a real worker's exposition -----------------------------------------------------------------------------

def test_a_real_workers_exposition_passes_promtool_and_serves_every_metric_the_issue_names(
    workers: Workers, demo_pseudonymiser
):
    """Issue 7's metric list, read from a real worker after real events: each family served with its labels
    and with values that follow from what was sent (a metric declared but never recorded fails here)."""
    started = time.time()
    worker = workers.start()
    events = [AdverseEventReported.model_validate(demo_pseudonymiser.pseudonymise_record(record))
              for record in generate_cohort(10, 3) if record["type"] == "adverse-event"]
    serious_cases = {e.case_id for e in events if e.seriousness.is_serious}  # ICH E2A II.B criteria
    assert serious_cases, "cohort seed 3 holds a serious AE"
    with EventPublisher(workers.broker.bootstrap) as publisher:
        for event in events:
            publisher.publish(event)
        publisher.publish_raw(AdverseEventReported.topic, b"{not json", key=b"pt-bad")
    wait_for(lambda: workers.metric(worker, "pv_events_rejected_total") >= 1
             and workers.metric(worker, "pv_events_ingested_total") >= len(events), 30, what="events processed")
    # lag is sampled once a batch is acknowledged and alert latency once its alerts are published: after the counts
    def caught_up() -> bool:
        lag = scrape_labelled(worker.metrics_url, "pv_consumer_lag_messages")
        return (any(dict(labels)["topic"] == AdverseEventReported.topic for labels in lag)
                and all(value == 0 for value in lag.values()))

    wait_for(lambda: caught_up() and workers.metric(worker, "pv_alert_latency_seconds_count") >= len(serious_cases),
             10, what="lag sampled at 0 and alerts published")
    with urllib.request.urlopen(worker.metrics_url, timeout=5) as response:
        exposition = response.read().decode()
    checked = run("promtool", "check", "metrics", stdin=exposition)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    served = {line.split("{")[0].split(" ")[0] for line in exposition.splitlines() if line and line[0] != "#"}
    assert {n for n in served if n.startswith("pv_")} <= exported_series_names()

    samples = [s for family in text_string_to_metric_families(exposition) for s in family.samples]

    def value(name: str, **labels: str) -> float:
        [found] = [s.value for s in samples if s.name == name and s.labels == labels]
        return found

    def labelled(name: str) -> list[dict[str, str]]:
        return [s.labels for s in samples if s.name == name]

    ae_topic = AdverseEventReported.topic
    # ingested and rejected by type and reason; the dead-letter queue size
    assert value("pv_events_ingested_total", type="adverse-event") == len(events)
    assert value("pv_events_rejected_total", topic=ae_topic, reason="not_json") == 1
    assert value("pv_dead_letter_messages") == 1
    # rule evaluations by rule (serious-ae judges every report version once); alerts by rule and severity
    assert {labels["rule"] for labels in labelled("pv_rule_evaluations_total")} == set(RULE_IDS)
    assert value("pv_rule_evaluations_total", rule="serious-ae") == len(events)
    assert value("pv_alerts_raised_total", rule="serious-ae", severity="critical") == len(serious_cases)
    alerts_raised = sum(s.value for s in samples if s.name == "pv_alerts_raised_total")
    # expedited clocks: the cohort's cases are years old, so each open clock is overdue
    open_clocks = sum(s.value for s in samples if s.name == "pv_expedited_clocks_open")
    assert open_clocks >= 1 and value("pv_expedited_reports_overdue") == open_clocks
    assert value("pv_expedited_nearest_deadline_seconds") < 0
    # consumer lag per topic and partition: caught up on every partition the events went to
    lag = {(labels["topic"], labels["partition"]): v for labels, v in
           ((s.labels, s.value) for s in samples if s.name == "pv_consumer_lag_messages")}
    assert {partition for topic, partition in lag if topic == ae_topic} <= {"0", "1", "2", "3"}
    assert any(topic == ae_topic for topic, _ in lag) and set(lag.values()) == {0.0}
    # end-to-end latency histograms: one store observation per stored event, one alert observation per alert
    assert value("pv_event_store_latency_seconds_count") == len(events)
    assert 0 < value("pv_event_store_latency_seconds_sum") < 30 * len(events)
    assert len(serious_cases) <= value("pv_alert_latency_seconds_count") <= alerts_raised
    assert value("pv_alert_latency_seconds_sum") > 0
    # store batch size (stored events per transaction) and write latency
    assert value("pv_store_batch_size_events_sum") == len(events)
    batches = value("pv_store_batch_size_events_count")
    assert batches >= 1 and value("pv_store_write_seconds_count") == batches
    assert value("pv_store_write_seconds_sum") > 0
    # worker up, build info, last batch time
    assert value("pv_worker_up") == 1
    [build] = labelled("pv_build_info")
    assert build["version"] == importlib.metadata.version("pvwatch") and build["store_schema"].isdigit()
    assert started <= value("pv_last_event_processed_timestamp_seconds") <= time.time()
    # no patient pseudonym, case id, event id or message key in any label value
    identifiers = {e.patient for e in events} | {e.case_id for e in events} | {str(e.event_id) for e in events}
    label_values = {v for s in samples if s.name.startswith("pv_") for v in s.labels.values()}
    leaked = {v for v in label_values if v in identifiers or "pt-" in v}
    assert not leaked, f"identifiers as label values: {sorted(leaked)}"


# --- the runbooks' commands, run the way the person paged runs them: while the worker runs ------------------

def runbook_commands() -> list[tuple[str, str]]:
    """(runbook heading, command line) of every `pvwatch ...` line in the runbooks' sh blocks."""
    found, heading = [], ""
    text = (REPO / "docs" / "runbooks.md").read_text()
    for block_start, line in ((m.start(), m.group(0)) for m in re.finditer(r"^.*$", text, re.M)):
        if line.startswith("## "):
            heading = line[3:]
        elif line.startswith("pvwatch ") and text.rfind("```sh", 0, block_start) > text.rfind("```\n", 0, block_start):
            found.append((heading, line.split("  #")[0].strip()))
    return found


def test_every_runbook_command_works_while_the_worker_runs(workers: Workers, demo_pseudonymiser, tmp_path: Path):
    commands = runbook_commands()
    assert {heading for heading, _ in commands} >= {"SeriousAdverseEvent", "CriticalSafetyAlert",
                                                    "DeadLetterQueueNotEmpty"}
    worker = workers.start()
    serious = first_serious_event(demo_pseudonymiser)
    with EventPublisher(workers.broker.bootstrap) as publisher:
        publisher.publish(serious)
        publisher.publish_raw(AdverseEventReported.topic, b"{not json", key=b"pt-bad")
    wait_for(lambda: workers.metric(worker, "pv_dead_letter_messages") >= 1
             and workers.metric(worker, "pv_alerts_raised_total") >= 1, 30, what="alert and dead letter stored")
    stored = time.time()
    wait_for(lambda: workers.metric(worker, "pv_snapshot_taken_timestamp_seconds") > stored, 30,
             what="a snapshot published after them")
    env = {**os.environ, "PVWATCH_DB": str(workers.db)}
    outputs = {}
    for heading, command in commands:
        ran = subprocess.run(["bash", "-c", f"PATH={REPO / '.venv' / 'bin'}:$PATH {command}"], env=env,
                             capture_output=True, text=True, timeout=60, cwd=tmp_path)
        assert ran.returncode == 0, f"runbook {heading}: `{command}` failed while the worker runs:\n{ran.stderr}"
        outputs[heading, command] = ran.stdout
    paged = str(alert_id_for("serious-ae", 1, serious.case_id))
    assert any(paged in out for (heading, _), out in outputs.items() if heading == "SeriousAdverseEvent")
    assert any("not_json" in out for (heading, _), out in outputs.items() if heading == "DeadLetterQueueNotEmpty")
