"""`make waves` (scripts/waves.sh): every failure is one line and a non-zero exit status.

The script runs in a copy of the repository layout under tmp_path, with a fake
`gtkwave` first on PATH, so no display, GTKWave or simulation is needed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "scripts").mkdir(parents=True)
    shutil.copy(REPO / "scripts" / "waves.sh", root / "scripts" / "waves.sh")
    (root / "tb").mkdir()
    shutil.copy(REPO / "tb" / "cnn_param.gtkw", root / "tb" / "cnn_param.gtkw")
    return root


def _fake_gtkwave(tmp_path: Path, body: str) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    tool = bin_dir / "gtkwave"
    tool.write_text(f"#!/bin/sh\n{body}\n")
    tool.chmod(0o755)
    return bin_dir


def _run(repo: Path, path: str, display: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["PATH"] = path
    if display is not None:
        env["DISPLAY"] = display
    return subprocess.run(["bash", str(repo / "scripts" / "waves.sh")], env=env,
                          capture_output=True, text=True, timeout=60)


def _with_fst(repo: Path) -> Path:
    fst = repo / "build" / "sim" / "runs" / "icarus" / "t" / "cnn_param_top.fst"
    fst.parent.mkdir(parents=True)
    fst.write_bytes(b"not really an fst")
    return fst


def test_no_waves_yet(repo, tmp_path):
    run = _run(repo, f"{_fake_gtkwave(tmp_path, 'exit 0')}:/usr/bin:/bin", ":0")
    assert run.returncode == 2 and run.stderr.count("\n") == 1
    assert "no FST" in run.stderr and "WAVES=1" in run.stderr


def test_gtkwave_missing(repo, tmp_path):
    _with_fst(repo)
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    for tool in ("bash", "ls", "head", "dirname", "mktemp", "rm", "tee", "grep"):
        found = shutil.which(tool)
        if found:
            (empty / tool).symlink_to(found)
    run = _run(repo, str(empty), ":0")
    assert run.returncode == 2 and run.stderr.count("\n") == 1
    assert "gtkwave is not installed" in run.stderr


def test_no_display_is_one_line_naming_the_xvfb_recipe(repo, tmp_path):
    fst = _with_fst(repo)
    marker = tmp_path / "started"
    bin_dir = _fake_gtkwave(tmp_path, f"touch {marker}")
    run = _run(repo, f"{bin_dir}:/usr/bin:/bin", None)
    assert run.returncode == 2 and run.stderr.count("\n") == 1, run.stderr
    assert "no display" in run.stderr and "xvfb-run" in run.stderr
    assert "docs/waveforms.md" in run.stderr and str(fst.relative_to(repo)) in run.stderr
    assert not marker.exists()  # GTKWave was not even started


def test_display_gtkwave_cannot_open(repo, tmp_path):
    """GTKWave exits 0 when it cannot open the display; the script must not."""
    _with_fst(repo)
    bin_dir = _fake_gtkwave(tmp_path, 'echo "Could not initialize GTK!  Is DISPLAY env var/xhost '
                                      'set?" >&2; exit 0')
    run = _run(repo, f"{bin_dir}:/usr/bin:/bin", ":99")
    assert run.returncode == 2
    assert run.stderr.strip().splitlines()[-1].startswith("waves: GTKWave could not open the "
                                                          "display ':99'")


def test_display_ok_passes_gtkwave_status_and_arguments(repo, tmp_path):
    fst = _with_fst(repo)
    args = tmp_path / "args"
    bin_dir = _fake_gtkwave(tmp_path, f'echo "$@" > {args}; exit 3')
    run = _run(repo, f"{bin_dir}:/usr/bin:/bin", ":0")
    assert run.returncode == 3
    assert args.read_text().split() == [str(fst.relative_to(repo)), "tb/cnn_param.gtkw"]
