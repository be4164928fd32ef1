"""scripts/install.sh on a fresh Debian or Ubuntu machine (issue 3: `make demo` and `make test` work from a clone
with nothing installed by hand). There, python3 cannot make a virtual environment until the python3.X-venv package
(which holds ensurepip) is installed; the script installs it itself.

The script runs for real in a copy of the repository; only the machine around it is simulated: a `python3` that
behaves like Debian's without or with ensurepip, and `apt-get`/`sudo` that record what they were asked to do.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.conftest import REPO

#: Debian's python3.11: ensurepip (and so `-m venv`) only once python3.11-venv is installed (the marker file).
DEBIAN_PYTHON = """#!/usr/bin/env bash
case "$*" in
    *"import ensurepip"*) [[ -f "$VENV_PACKAGE_MARKER" ]]; exit $? ;;
    *"sys.version_info < (3, 11)"*) exit 0 ;;
    *"print(sys.version_info.minor)"*) echo 11 ;;
    "-m venv .venv")
        [[ -f "$VENV_PACKAGE_MARKER" ]] || { echo "ensurepip is not available" >&2; exit 1; }
        mkdir -p .venv/bin
        printf '#!/bin/sh\\nexit 0\\n' > .venv/bin/python
        cp .venv/bin/python .venv/bin/pip
        chmod +x .venv/bin/python .venv/bin/pip ;;
    *) echo "unexpected python3 call: $*" >&2; exit 3 ;;
esac
"""
APT_GET = """#!/usr/bin/env bash
echo "apt-get $*" >> "$APT_LOG"
[[ "$1" == install && " $* " == *" python3.11-venv "* ]] && touch "$VENV_PACKAGE_MARKER"
exit 0
"""
SUDO = """#!/usr/bin/env bash
exec "$@"
"""


def run_install(tmp_path: Path, *, ensurepip_installed: bool) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    repo = tmp_path / "clone"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy(REPO / "scripts" / "install.sh", repo / "scripts" / "install.sh")
    shutil.copy(REPO / "pyproject.toml", repo / "pyproject.toml")
    machine = tmp_path / "bin"
    machine.mkdir()
    for name, script in {"python3": DEBIAN_PYTHON, "apt-get": APT_GET, "sudo": SUDO}.items():
        (machine / name).write_text(script)
        (machine / name).chmod(0o755)
    marker = tmp_path / "python3.11-venv-installed"
    if ensurepip_installed:
        marker.touch()
    apt_log = tmp_path / "apt.log"
    env = {**os.environ, "PATH": f"{machine}{os.pathsep}{os.environ['PATH']}", "PYTHON": str(machine / "python3"),
           "VENV_PACKAGE_MARKER": str(marker), "APT_LOG": str(apt_log)}
    ran = subprocess.run(["bash", str(repo / "scripts" / "install.sh")], capture_output=True, text=True, env=env,
                         timeout=60)
    return ran, apt_log.read_text().splitlines() if apt_log.exists() else []


def test_a_fresh_debian_gets_the_venv_package_before_the_virtual_environment(tmp_path):
    ran, apt = run_install(tmp_path, ensurepip_installed=False)
    assert ran.returncode == 0, ran.stderr
    assert apt == ["apt-get update -qq", "apt-get install -y -qq --no-install-recommends python3.11-venv"]
    assert (tmp_path / "clone" / ".venv" / ".pvwatch-installed").is_file()


def test_nothing_is_installed_from_debian_when_python_can_make_a_venv(tmp_path):
    ran, apt = run_install(tmp_path, ensurepip_installed=True)
    assert ran.returncode == 0, ran.stderr
    assert apt == []
