"""Run mypy on the installed layout: pvwatch.events lives in events/, and so on (setuptools package-dir).

mypy cannot follow a package-dir mapping from the source tree, so this mirrors it as a tree of symlinks under
build/typecheck/ (rebuilt on every run, so new modules are always seen) and checks that.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    mapping: dict[str, str] = config["tool"]["setuptools"]["package-dir"]
    tree = ROOT / "build" / "typecheck"
    shutil.rmtree(tree, ignore_errors=True)
    for package, folder in mapping.items():
        target = tree.joinpath(*package.split("."))
        for source in (ROOT / folder).rglob("*.py"):
            relative = source.relative_to(ROOT / folder)
            if relative.parts[0] in {"tests", "__pycache__"}:
                continue
            link = target / relative
            if link.exists():
                continue
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(source)
    (tree / "pvwatch" / "py.typed").touch()
    return subprocess.call([sys.executable, "-m", "mypy", *sys.argv[1:], str(tree / "pvwatch")], cwd=ROOT)


if __name__ == "__main__":
    sys.exit(main())
