"""`cosim` starts without torch: the parser, option errors and `cosim check` import only
what they need (quant/choices.py holds the names the parser offers)."""

from __future__ import annotations

import subprocess
import sys

from cosim.quant import choices
from tiny_package import make_tiny_package


def _modules_after(code: str) -> set[str]:
    run = subprocess.run([sys.executable, "-c", code + "\nimport sys\n"
                          "print(' '.join(sorted(m for m in sys.modules)))"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    return set(run.stdout.split())


def test_parser_and_check_do_not_import_torch(tmp_path):
    root = make_tiny_package(tmp_path / "pkg")
    code = ("from cosim import cli\n"
            "cli.build_parser()\n"
            f"assert cli.main(['check', '--package', {str(root)!r}]) == 0\n")
    modules = _modules_after(code)
    assert "cosim.quant.package" in modules  # the check really ran
    assert "torch" not in modules and "torchvision" not in modules


def test_the_light_names_are_the_ones_the_implementations_use():
    from cosim.quant import data, po2, ptq

    assert data.DATASETS is choices.DATASETS
    assert po2.METHODS is choices.METHODS
    assert sorted(ptq.WEIGHT_RANGES) == sorted(choices.WEIGHT_RANGE_NAMES)
    assert choices.SHIPPED_CHECKPOINT.is_file()


def test_a_project_file_mistake_is_reported_without_torch(tmp_path):
    """`cosim run` validates cosim.toml (and the accelerator file it names) before any
    heavy import: a mistake is one line, torch is never loaded."""
    project = tmp_path / "cosim.toml"
    project.write_text('format_version = 1\n[quantization]\nmethod = "guess"\n')
    code = ("from cosim import cli\n"
            f"assert cli.main(['run', '--project', {str(project)!r}]) == 2\n")
    modules = _modules_after(code)
    assert "cosim.project" in modules
    assert "torch" not in modules and "torchvision" not in modules
    project.write_text('format_version = 1\n[accelerator]\nfile = "acc32_16x16"\n'
                       '[rtl]\nsources = ["nothing/*.sv"]\ntop = "x"\n')
    modules = _modules_after(code)
    assert "torch" not in modules and "torchvision" not in modules
