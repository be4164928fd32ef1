"""The rules files are parsed by libyaml (CSafeLoader) for speed; the officer's files must mean exactly what
PyYAML's pure-Python safe loader reads in them: the same rule parameters and reference safety information."""

from __future__ import annotations

import pytest
import yaml

from pvwatch import rulebook


def test_the_fast_loader_reads_the_shipped_files_as_the_safe_loader_does(monkeypatch):
    fast = rulebook.load_rule_parameters()
    assert rulebook._SAFE_LOADER is yaml.CSafeLoader  # libyaml is installed here: the fast path is the one tested
    monkeypatch.setattr(rulebook, "_SAFE_LOADER", yaml.SafeLoader)
    assert rulebook.load_rule_parameters() == fast


def test_the_fast_loader_constructs_only_safe_types(tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text("serious-ae: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(rulebook.ConfigError, match="not valid YAML"):
        rulebook.load_rule_parameters(rules)
