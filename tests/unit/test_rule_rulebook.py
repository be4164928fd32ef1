"""The officer's rules file: the shipped rules.yaml says exactly what the code's published defaults are, every
typo is a ConfigError naming the file, rule and key, and a changed parameter changes the engine's behaviour."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
import yaml

from pvwatch.domain.parameters import DEFAULT_VERSIONS, RuleParameters
from pvwatch.errors import ConfigError
from pvwatch.rulebook import load_rsi, load_rule_parameters

PACKAGED = Path(__file__).resolve().parents[2] / "pvwatch" / "rules.yaml"


def test_shipped_rules_file_matches_the_published_defaults():
    loaded = load_rule_parameters()
    defaults = RuleParameters()
    for name in ("versions", "disabled", "ctcae_lab", "hys_law", "clocks", "flare", "jia_categories",
                 "tapered_classes", "infusion_temporal", "lot_cluster", "duplicate_case"):
        assert getattr(loaded, name) == getattr(defaults, name), name


def test_every_rule_is_documented_in_the_rules_file_with_a_source():
    document = yaml.safe_load(PACKAGED.read_text())
    assert set(document) == set(DEFAULT_VERSIONS)
    assert all(section.get("source") for section in document.values())


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("hys-law:\n  pairing_window_dayz: 30\n", "hys-law: unknown parameter 'pairing_window_dayz'"),
        ("hys-laws:\n  version: 2\n", "unknown rule(s) ['hys-laws']"),
        ("lot-cluster:\n  min_events: three\n", "lot-cluster: min_events must be int"),
        ("ctcae-lab:\n  version: 0\n", "ctcae-lab: version 0 is older than this pvwatch's rule (version 1"),
        # an old rules file kept after an upgrade: version 1 would label reporter-comparing alerts as version 1's
        ("duplicate-case:\n  version: 1\n", "duplicate-case: version 1 is older than this pvwatch's rule (version 2"),
        ("flare-after-taper:\n  jia_default: pauciarticular\n", "jia_default must be one of"),
        ("flare-after-taper:\n  tapered_classes: [steroids]\n", "tapered_classes must be a list of"),
        ("infusion-temporal:\n  windows: [{category: fever, hours: -1, terms: [fever]}]\n", "hours must be a positive"),
        ("serious-ae:\n  threshold: 2\n", "serious-ae: takes no parameters"),
        ("[not, a, mapping]\n", "expected a mapping of rule id"),
    ],
)
def test_a_mistake_in_the_rules_file_is_a_clear_config_error(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
                       .replace("]", r"\]")):
        load_rule_parameters(write(tmp_path, text))


def test_changed_parameters_and_versions_are_loaded(tmp_path):
    loaded = load_rule_parameters(write(tmp_path, "hys-law:\n  version: 2\n  pairing_window_days: 14\n"
                                                  "lot-cluster:\n  enabled: false\n"))
    assert loaded.version("hys-law") == 2 and loaded.hys_law.pairing_window_days == 14
    assert not loaded.enabled("lot-cluster") and loaded.enabled("hys-law")


def test_rsi_versions_load_with_their_effective_dates():
    rsi = load_rsi()
    tocilizumab = rsi.products["tocilizumab"]
    assert tocilizumab.in_force_on(date(2025, 6, 1)).version == "TCZ-RSI-1"
    assert tocilizumab.in_force_on(date(2026, 6, 1)).version == "TCZ-RSI-2"


def test_a_broken_rsi_file_is_a_config_error(tmp_path):
    path = tmp_path / "rsi.yaml"
    path.write_text("products:\n  - product: x\n    versions: [{version: 1, effective_from: yesterday}]\n")
    with pytest.raises(ConfigError, match="effective_from must be a date"):
        load_rsi(path)


def test_worker_refuses_to_start_with_a_broken_rules_file(tmp_path):
    """Before touching the broker: the officer sees the mistake at once, not a half-configured worker."""
    import os
    import subprocess
    import sys

    bad = write(tmp_path, "hys-law:\n  pairing_window_dayz: 30\n")
    result = subprocess.run(
        [sys.executable, "-m", "pvwatch", "worker", "--bootstrap-servers", "127.0.0.1:1", "--db",
         str(tmp_path / "x.duckdb")],
        env={**os.environ, "PVWATCH_RULES_FILE": str(bad), "PVWATCH_DEMO_MODE": "1"},
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert "hys-law: unknown parameter 'pairing_window_dayz'" in result.stderr + result.stdout
