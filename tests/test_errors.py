"""The one top-level handler (quant.errors.run_command) and the one-line argparse errors."""

from __future__ import annotations

import errno
import os
import subprocess
import sys

import pytest
from cosim.golden.layout import LayoutError
from cosim.quant.data import DataError
from cosim.quant.errors import (
    BUG_STATUS,
    INTERRUPTED_STATUS,
    USER_ERROR_STATUS,
    OneLineArgumentParser,
    UserError,
    run_command,
)
from cosim.quant.formats import PackageError
from cosim.quant.graph import GraphError
from cosim.quant.pipeline import FlowError
from cosim.quant.train import CheckpointError

from cosim import cli, cli_golden, cli_golden_verify
from cosim.demo import DemoError


@pytest.mark.parametrize("error_class", [PackageError, DataError, CheckpointError, GraphError,
                                         FlowError, LayoutError, DemoError])
def test_every_error_class_of_the_tool_is_a_user_error(error_class):
    assert issubclass(error_class, UserError)


def _raise(error: BaseException):
    def action() -> int:
        raise error
    return action


def test_user_error_is_one_line_and_exit_2(capsys):
    status = run_command("cosim", _raise(PackageError("pkg/manifest.json", "bad\nthing", 3)))
    err = capsys.readouterr().err
    assert status == USER_ERROR_STATUS
    assert err == "cosim: error: pkg/manifest.json:3: bad thing\n"


def test_os_error_naming_a_file_is_a_user_error(capsys):
    error = PermissionError(errno.EACCES, "Permission denied", "/root/out")
    assert run_command("cosim", _raise(error)) == USER_ERROR_STATUS
    assert capsys.readouterr().err == "cosim: error: /root/out: Permission denied\n"


def test_bug_is_one_line_exit_1_and_the_traceback_is_saved(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COSIM_BUILD", str(tmp_path / "build"))  # crash/ is in the build folder

    def buggy() -> int:
        return {}["missing"]  # a KeyError inside the tool, not the user's fault

    assert run_command("cosim", buggy) == BUG_STATUS
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("cosim: internal error: KeyError: ")
    saved = sorted((tmp_path / "build" / "crash").glob("cosim-*.txt"))
    assert len(saved) == 1 and str(saved[0].relative_to(tmp_path)) in err
    text = saved[0].read_text()
    assert "Traceback (most recent call last)" in text and "in buggy" in text


def test_full_disk_without_a_file_name_is_a_user_error(capsys):
    assert run_command("cosim", _raise(OSError(errno.ENOSPC, "No space left on device"))) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("cosim: error: No space left on device")


def test_os_error_without_a_file_is_a_bug(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run_command("cosim", _raise(OSError("no file named"))) == BUG_STATUS
    assert "internal error: OSError" in capsys.readouterr().err


def test_interrupt(capsys):
    assert run_command("cosim", _raise(KeyboardInterrupt())) == INTERRUPTED_STATUS
    assert capsys.readouterr().err == "cosim: interrupted\n"


def test_messages_are_bounded(capsys):
    run_command("cosim", _raise(DataError("x" * 10_000)))
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and len(err) < 600


@pytest.mark.parametrize("argv", [
    ["nope"],
    ["verify", "--images", "many"],
    ["golden", "--word-bits", "x"],
    [],
])
def test_option_errors_are_one_line_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(argv)
    assert stop.value.code == USER_ERROR_STATUS
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("cosim") and "error:" in err
    assert "--help" in err


def test_subparsers_inherit_the_one_line_parser():
    parser = cli.build_parser()
    assert isinstance(parser, OneLineArgumentParser)
    subparsers = next(a for a in parser._actions if a.dest == "command")
    assert all(isinstance(p, OneLineArgumentParser) for p in subparsers.choices.values())


@pytest.mark.parametrize("entry", [cli_golden.main, cli_golden_verify.main])
def test_standalone_golden_entries_use_the_same_handler(entry, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = ["--package", str(tmp_path / "none"), "--out", str(tmp_path / "g")]
    status = entry(["golden", *argv] if entry is cli_golden.main else argv)
    err = capsys.readouterr().err
    assert status == USER_ERROR_STATUS and err.count("\n") == 1 and "none" in err


def test_real_command_bug_path(tmp_path):
    """Through the installed entry point: a bug injected into a handler gives exit 1, one
    line, and a traceback file; no traceback on the terminal."""
    code = ("import sys; from cosim import cli\n"
            "cli.cmd_verify = lambda args: 1 / 0\n"
            "p = cli.build_parser\n"
            "def build():\n"
            "    parser = p()\n"
            "    sub = next(a for a in parser._actions if a.dest == 'command')\n"
            "    sub.choices['verify'].set_defaults(handler=cli.cmd_verify)\n"
            "    return parser\n"
            "cli.build_parser = build\n"
            "sys.exit(cli.main(['verify']))\n")
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120,
                         env={**os.environ, "COSIM_BUILD": str(tmp_path / "build")})
    assert run.returncode == BUG_STATUS, run.stderr
    assert run.stderr.count("\n") == 1 and "ZeroDivisionError" in run.stderr
    assert "Traceback" not in run.stderr
    assert len(list((tmp_path / "build" / "crash").glob("*.txt"))) == 1
