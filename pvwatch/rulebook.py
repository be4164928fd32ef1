"""Read the officer's rules file (pvwatch/rules.yaml) and the reference safety information (pvwatch/rsi.yaml)
once, at start-up, into the typed `RuleParameters` the engine runs on. Anything the files say that pvwatch does
not understand is a ConfigError naming the file, the rule and the key: a typo must never silently fall back to
a default.
"""

from __future__ import annotations

from dataclasses import fields
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from pvwatch.domain.expectedness import ProductRsi, ReferenceSafetyInformation, RsiVersion
from pvwatch.domain.expedited import ClockParameters
from pvwatch.domain.flare import FlareParameters, JiaCategory
from pvwatch.domain.hys_law import HysLawParameters
from pvwatch.domain.infusion_temporal import InfusionTemporalParameters, RiskWindow
from pvwatch.domain.lot_cluster import LotClusterParameters
from pvwatch.domain.parameters import (
    DEFAULT_TAPERED_CLASSES,
    DEFAULT_VERSIONS,
    CtcaeLabParameters,
    DuplicateCaseParameters,
    JiaCategoryParameters,
    RuleParameters,
)
from pvwatch.errors import ConfigError

COMMON_KEYS = {"version", "source", "enabled"}
#: libyaml's parser with PyYAML's safe constructor (the same documents, the same types): rules.yaml and rsi.yaml
#: parse in ~1 ms instead of ~17 ms, which every `pvwatch replay` (a ~0.3 s run) and worker start pays.
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _read_yaml(path: Path | None, packaged: str) -> tuple[str, Any]:
    if path is None:
        text = (resources.files("pvwatch") / packaged).read_text()
        name = f"pvwatch/{packaged}"
    else:
        try:
            text = path.read_text()
        except OSError as error:
            raise ConfigError(f"cannot read {path}: {error.strerror}") from None
        name = str(path)
    try:
        return name, yaml.load(text, Loader=_SAFE_LOADER)
    except yaml.YAMLError as error:
        raise ConfigError(f"{name} is not valid YAML: {error}") from None


def _typed(where: str, key: str, value: Any, expected: type) -> Any:
    if expected is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if (expected is int and isinstance(value, bool)) or not isinstance(value, expected):
        raise ConfigError(f"{where}: {key} must be {expected.__name__}, got {value!r}")
    return value


def _scalar_parameters(cls: type, where: str, section: dict[str, Any], skip: frozenset[str] = frozenset()) -> Any:
    """Build a parameters dataclass from the rule's section; every non-common key must be one of its fields."""
    known = {f.name: f for f in fields(cls)}
    values = {}
    for key, value in section.items():
        if key in COMMON_KEYS or key in skip:
            continue
        if key not in known:
            raise ConfigError(f"{where}: unknown parameter {key!r}; expected one of {sorted(known)}")
        default = getattr(cls(), key)
        values[key] = _typed(where, key, value, type(default))
    return cls(**values)


def _windows(where: str, raw: Any) -> tuple[RiskWindow, ...]:
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{where}: windows must be a non-empty list")
    found = []
    for index, item in enumerate(raw):
        here = f"{where}.windows[{index}]"
        if not isinstance(item, dict) or set(item) - {"category", "hours", "terms", "serious_only"}:
            raise ConfigError(f"{here}: expected keys category, hours, terms, serious_only")
        terms = item.get("terms")
        if not isinstance(terms, list) or not terms or not all(isinstance(t, str) for t in terms):
            raise ConfigError(f"{here}: terms must be a non-empty list of strings")
        hours = item.get("hours")
        if hours is not None and (not isinstance(hours, int | float) or hours <= 0):
            raise ConfigError(f"{here}: hours must be a positive number or null")
        found.append(RiskWindow(str(item.get("category")), tuple(t.casefold() for t in terms),
                                None if hours is None else float(hours), bool(item.get("serious_only", False))))
    return tuple(found)


def load_rsi(path: Path | None = None) -> ReferenceSafetyInformation:
    name, document = _read_yaml(path, "rsi.yaml")
    products = document.get("products") if isinstance(document, dict) else None
    if not isinstance(products, list):
        raise ConfigError(f"{name}: expected a top-level 'products' list")
    found = []
    for index, product in enumerate(products):
        where = f"{name}: products[{index}]"
        try:
            versions = tuple(
                RsiVersion(str(v["version"]), _as_date(v["effective_from"], where),
                           frozenset(str(t).casefold() for t in v.get("terms", [])),
                           frozenset(str(c) for c in v.get("pt_codes", [])))
                for v in product["versions"]
            )
            found.append(ProductRsi(str(product["product"]), versions))
        except (KeyError, TypeError) as error:
            raise ConfigError(f"{where}: expected product and versions[version, effective_from, terms] ({error})") \
                from None
    return ReferenceSafetyInformation.of(found)


def _as_date(value: Any, where: str) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise ConfigError(f"{where}: effective_from must be a date (YYYY-MM-DD), got {value!r}") from None


def load_rule_parameters(rules_file: Path | None = None, rsi_file: Path | None = None) -> RuleParameters:
    """The packaged rules.yaml and rsi.yaml unless other files are given."""
    name, document = _read_yaml(rules_file, "rules.yaml")
    if not isinstance(document, dict):
        raise ConfigError(f"{name}: expected a mapping of rule id to its settings")
    unknown = set(document) - set(DEFAULT_VERSIONS)
    if unknown:
        raise ConfigError(f"{name}: unknown rule(s) {sorted(unknown)}; known: {sorted(DEFAULT_VERSIONS)}")
    sections: dict[str, dict[str, Any]] = {}
    for rule_id, section in document.items():
        if section is None:
            section = {}
        if not isinstance(section, dict):
            raise ConfigError(f"{name}: {rule_id} must be a mapping")
        sections[rule_id] = section
    versions = dict(DEFAULT_VERSIONS)
    disabled = set()
    for rule_id, section in sections.items():
        where = f"{name}: {rule_id}"
        if "version" in section:
            versions[rule_id] = _typed(where, "version", section["version"], int)
            if versions[rule_id] < DEFAULT_VERSIONS[rule_id]:
                # The version is part of every alert id: an older number would label the current logic's alerts
                # as the old rule's (an old rules file kept after an upgrade).
                raise ConfigError(f"{where}: version {versions[rule_id]} is older than this pvwatch's rule "
                                  f"(version {DEFAULT_VERSIONS[rule_id]}, see the shipped rules.yaml); set version: "
                                  f"{DEFAULT_VERSIONS[rule_id]} or more")
        if section.get("enabled", True) is False:
            disabled.add(rule_id)

    def section_of(rule_id: str) -> tuple[str, dict[str, Any]]:
        return f"{name}: {rule_id}", sections.get(rule_id, {})

    flare_where, flare_section = section_of("flare-after-taper")
    jia = JiaCategoryParameters(
        polyarticular=frozenset(flare_section.get("jia_polyarticular", JiaCategoryParameters().polyarticular)),
        default=_jia_default(flare_where, flare_section.get("jia_default", "oligoarticular")),
    )
    temporal_where, temporal_section = section_of("infusion-temporal")
    windows = (_windows(temporal_where, temporal_section["windows"]) if "windows" in temporal_section
               else InfusionTemporalParameters().windows)
    extra = set(temporal_section) - COMMON_KEYS - {"windows"}
    if extra:
        raise ConfigError(f"{temporal_where}: unknown parameter(s) {sorted(extra)}; expected windows")
    for plain in ("serious-ae", "expedited-due-soon", "expedited-overdue", "undocumented-benefit"):
        where, section = section_of(plain)
        if set(section) - COMMON_KEYS:
            raise ConfigError(f"{where}: takes no parameters, got {sorted(set(section) - COMMON_KEYS)}")
    return RuleParameters(
        versions=versions,
        disabled=frozenset(disabled),
        ctcae_lab=_scalar_parameters(CtcaeLabParameters, *section_of("ctcae-lab")),
        hys_law=_scalar_parameters(HysLawParameters, *section_of("hys-law")),
        clocks=_scalar_parameters(ClockParameters, *section_of("expedited-clock")),
        flare=_scalar_parameters(FlareParameters, flare_where, flare_section,
                                 frozenset({"jia_polyarticular", "jia_default", "tapered_classes"})),
        tapered_classes=_classes(flare_where, flare_section.get("tapered_classes", sorted(DEFAULT_TAPERED_CLASSES))),
        jia_categories=jia,
        infusion_temporal=InfusionTemporalParameters(windows),
        lot_cluster=_scalar_parameters(LotClusterParameters, *section_of("lot-cluster")),
        duplicate_case=_scalar_parameters(DuplicateCaseParameters, *section_of("duplicate-case")),
        rsi=load_rsi(rsi_file),
    )


def _jia_default(where: str, value: Any) -> JiaCategory:
    try:
        return JiaCategory(value)
    except ValueError:
        raise ConfigError(f"{where}: jia_default must be one of {[c.value for c in JiaCategory]}") from None


def _classes(where: str, value: Any) -> frozenset[str]:
    known = {"csDMARD", "bDMARD", "tsDMARD", "glucocorticoid", "other"}  # pvwatch.events.vocabulary.DrugClass
    if not isinstance(value, list) or not set(value) <= known:
        raise ConfigError(f"{where}: tapered_classes must be a list of {sorted(known)}, got {value!r}")
    return frozenset(value)
