"""`pvwatch signals` refuses an output path it cannot write before it computes anything (issue 6 leftovers): a
directory, a path under a file or no permission for --out, --hyperparameters-out or --plot is the CLI's usual
`error: ...` (click's usage error for a directory) with exit code 2, no traceback, and no file of the run is left
behind."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import TEST_DATA

pytestmark = pytest.mark.integration

CAERS = TEST_DATA / "caers" / "caers-2012.csv"
FLAGS = {"--out": ("out.csv", "OUT.csv"), "--hyperparameters-out": ("hyper.json", "HYPER.json"),
         "--plot": ("top.svg", "the plot")}


def signals(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pvwatch", "signals", "--reports", str(CAERS), *arguments],
                          capture_output=True, text=True, timeout=300)


def a_directory(tmp_path: Path, name: str) -> Path:
    (tmp_path / name).mkdir()
    return tmp_path / name


def under_a_file(tmp_path: Path, name: str) -> Path:
    (tmp_path / "results").write_text("a file where a folder should be\n")
    return tmp_path / "results" / name


def without_permission(tmp_path: Path, name: str) -> Path:
    if os.geteuid() == 0:  # root writes into any folder whatever its mode; sysfs refuses even root a new file
        if not Path("/sys/kernel").is_dir():
            pytest.skip("running as root without Linux's /sys: no folder refuses root")
        return Path("/sys") / name
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    return folder / name


@pytest.mark.parametrize("unwritable", [a_directory, under_a_file, without_permission])
@pytest.mark.parametrize("flag", list(FLAGS))
def test_an_unwritable_output_is_a_clear_error_before_the_computation(
        tmp_path: Path, flag: str, unwritable: Callable[[Path, str], Path]) -> None:
    name, what = FLAGS[flag]
    bad = unwritable(tmp_path, name)
    outputs = {other: tmp_path / "good" / other_name for other, (other_name, _) in FLAGS.items()}
    outputs[flag] = bad
    result = signals(*(part for option, path in outputs.items() for part in (option, str(path))))
    assert result.returncode == 2, result.stderr
    if unwritable is a_directory:  # click's own check of the option (dir_okay=False), its usage error
        assert f"'{bad}' is a directory" in result.stderr, result.stderr
    else:
        assert result.stderr.startswith(f"error: {bad}: {what} not written: "), result.stderr
    assert "Traceback" not in result.stderr
    # refused before computing: not even the outputs that could be written were started
    assert not (tmp_path / "good").exists()
    assert not bad.is_file()


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs Linux's /dev/full")
def test_a_write_failing_after_the_computation_is_a_clear_error_and_leaves_the_device_alone(tmp_path: Path) -> None:
    # /dev/full passes the check (a device is left to the write) and fails on writing, after the computation
    result = signals("--out", str(tmp_path / "out.csv"), "--hyperparameters-out", "/dev/full")
    assert result.returncode == 2, result.stderr
    assert "error: /dev/full: HYPER.json not written: No space left on device" in result.stderr
    assert "Traceback" not in result.stderr
    assert stat.S_ISCHR(Path("/dev/full").stat().st_mode)
    assert (tmp_path / "out.csv").read_text().count("\n") == 17_189 + 1  # data README: 17,189 CAERS pairs


def test_an_existing_output_file_is_replaced_and_a_missing_folder_is_made(tmp_path: Path) -> None:
    hyper = tmp_path / "runs" / "2012" / "hyper.json"
    out = tmp_path / "out.csv"
    out.write_text("an older OUT.csv\n")
    result = signals("--out", str(out), "--hyperparameters-out", str(hyper))
    assert result.returncode == 0, result.stderr
    assert json.loads(hyper.read_text())["converged"] is True
    assert out.read_text().startswith("product,event,")


def test_new_outputs_get_the_umask_s_mode_and_a_replaced_out_csv_keeps_its_own(tmp_path: Path) -> None:
    # as a plain open gave them before outputs were written beside and renamed: 0666 less the umask for a new file
    # (not a temporary file's 0600, which would hide a shared folder's results from the group), the mode an
    # officer set on an existing OUT.csv kept
    out, hyper = tmp_path / "out.csv", tmp_path / "hyper.json"
    out.write_text("an older OUT.csv\n")
    out.chmod(0o600)
    result = subprocess.run([sys.executable, "-m", "pvwatch", "signals", "--reports", str(CAERS), "--out", str(out),
                             "--hyperparameters-out", str(hyper)], capture_output=True, text=True, timeout=300,
                            umask=0o027)
    assert result.returncode == 0, result.stderr
    assert out.read_text().startswith("product,event,")
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert stat.S_IMODE(hyper.stat().st_mode) == 0o640
    assert sorted(path.name for path in tmp_path.iterdir()) == ["hyper.json", "out.csv"], "no temporary file left"


KILLED_WHILE_WRITING = """
import os, signal, sys
from pathlib import Path
from pvwatch.store.output_files import write_output

def killed_halfway(out):
    out.write(b"product,event,a\\n" * 10_000)
    out.flush()
    os.kill(os.getpid(), signal.SIGKILL)

write_output(Path(sys.argv[1]), "OUT.csv", killed_halfway)
"""


def test_a_run_killed_while_writing_leaves_the_previous_out_csv_whole(tmp_path: Path) -> None:
    # kill -9 or the OOM killer (10M reports take 2.5 GB, docs/signals.md) halfway through the write: the name still
    # holds the previous complete file, never a truncated one that reads as complete
    out = tmp_path / "out.csv"
    out.write_text("an older OUT.csv\n")
    killed = subprocess.run([sys.executable, "-c", KILLED_WHILE_WRITING, str(out)], capture_output=True, timeout=60)
    assert killed.returncode == -9, killed.stderr
    assert out.read_text() == "an older OUT.csv\n"
    (partial,) = (path for path in tmp_path.iterdir() if path != out)
    assert partial.name.startswith(".out.csv.") and partial.name.endswith(".partial"), "hidden, named for cleanup"
