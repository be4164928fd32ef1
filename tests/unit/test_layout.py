"""The layout the product keeps (issue 3): the domain is pure, so rules and statistics run the same live, in
replay and in tests, without a broker or a database."""

from __future__ import annotations

import subprocess
import sys

#: Top-level modules of the adapters the domain must never import: Kafka clients, Faust, DuckDB.
ADAPTERS = ("kafka", "aiokafka", "faust", "mode", "duckdb")

IMPORT_EVERY_DOMAIN_MODULE = f"""
import importlib, pkgutil, sys
import pvwatch.domain
for module in pkgutil.walk_packages(pvwatch.domain.__path__, "pvwatch.domain."):
    importlib.import_module(module.name)
print(sorted({{name.split(".")[0] for name in sys.modules}} & set({ADAPTERS!r})))
"""


def test_the_domain_imports_neither_kafka_nor_duckdb():
    # a fresh interpreter: this test process may already hold Kafka or DuckDB from other tests
    found = subprocess.run([sys.executable, "-c", IMPORT_EVERY_DOMAIN_MODULE], capture_output=True, text=True,
                           timeout=60, check=True)
    assert found.stdout.strip() == "[]", f"pvwatch.domain pulls in adapters: {found.stdout.strip()}"
