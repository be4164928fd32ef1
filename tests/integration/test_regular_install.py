"""A regular (non-editable) install, as the Docker image makes it (`pip install .`), ships the folders events/,
streams/, store/ and dashboards/ as pvwatch.events, pvwatch.streams, pvwatch.store and pvwatch.dashboards with
their data files, and never as top-level `events`, `streams` or `store`, names other distributions own (issue 3)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.integration

#: pyproject's package-dir mapping, folder -> path inside the installed distribution
MAPPED = {"pvwatch": "pvwatch", "events": "pvwatch/events", "streams": "pvwatch/streams", "store": "pvwatch/store",
          "dashboards": "pvwatch/dashboards"}


def tracked_files(folder: str) -> list[str]:
    listed = subprocess.run(["git", "ls-files", folder], cwd=REPO, capture_output=True, text=True, check=True)
    return [path for path in listed.stdout.splitlines() if "__pycache__" not in path]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built offline from a copy of the tracked sources (the build leaves nothing in the working tree)."""
    source = tmp_path_factory.mktemp("source")
    for path in ["pyproject.toml", "README.md", *(f for folder in MAPPED for f in tracked_files(folder))]:
        (source / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / path, source / path)
    out = tmp_path_factory.mktemp("wheel")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(out), str(source)], capture_output=True, text=True, timeout=180)
    assert built.returncode == 0, built.stderr[-2000:]
    return next(out.glob("pvwatch-*.whl"))


def test_the_wheel_has_one_top_level_package_pvwatch(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/")[0] for name in names} == {"pvwatch", wheel.name.split("-py3")[0] + ".dist-info"}
    top_level = next(n for n in names if n.endswith(".dist-info/top_level.txt"))
    assert zipfile.ZipFile(wheel).read(top_level).decode().split() == ["pvwatch"]


def test_every_tracked_source_and_data_file_is_in_the_wheel_at_its_mapped_path(wheel):
    shipped = set(zipfile.ZipFile(wheel).namelist())
    for folder, package in MAPPED.items():
        missing = [f for f in tracked_files(folder) if f"{package}/{f.split('/', 1)[1]}" not in shipped]
        assert not missing, f"not in a regular install: {missing}"


def test_the_installed_package_runs_from_outside_the_source_tree(wheel, tmp_path):
    target = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(target)
    # opens a store (its migrations are package data) and loads the packaged rules.yaml and rsi.yaml
    script = """
import sys
from pathlib import Path
import pvwatch.events, pvwatch.store.eventstore as eventstore
from pvwatch.rulebook import load_rule_parameters
from pvwatch.store.migrations import latest_version
store = eventstore.EventStore(Path(sys.argv[1]))
version = store.con.execute("SELECT max(version) FROM schema_migrations").fetchone()[0]
assert version == latest_version() > 1, version
load_rule_parameters()
print(pvwatch.events.__file__)
"""
    ran = subprocess.run([sys.executable, "-c", script, str(tmp_path / "s.duckdb")], cwd=tmp_path,
                         env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
                         timeout=120)
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert Path(ran.stdout.strip()).is_relative_to(target), "imported the installed copy, not the source tree"
