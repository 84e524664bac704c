"""examples/small_cnn_32 run as a user would: copied to a folder outside the repository,
cnn-cosim pip-installed into a fresh venv (tests/test_install.py's venv), `cosim run`
there. The report shows the small CNN and the example's own accelerator, the RTL (the
example's own top around cosim's loader and memory) stores every word with 0
mismatches, and nothing is written into the repository or the installed package: an
audit hook in the venv logs every path the run's Python processes write (the
simulator's embedded Python included), site-packages is compared before and after, and
no entry git status gained during the run is a file the run wrote. (The repository's
build/ mtime is not compared: parallel tests write there.)"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from test_install import REPO, clean_env, installed_venv

EXAMPLE = REPO / "examples" / "small_cnn_32"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("iverilog") is None, reason="needs Icarus"),
    pytest.mark.skipif(shutil.which("git") is None, reason="needs git"),
]


def tree_state(root: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime_ns) of every file and folder under `root`."""
    out = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder, name)
            info = path.lstat()
            out[str(path.relative_to(root))] = (info.st_size, info.st_mtime_ns)
    return out


def repo_status() -> str:
    return subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"],
                          cwd=REPO, capture_output=True, text=True, check=True).stdout


def audited_writes(log: Path) -> list[tuple[int, str, Path]]:
    """(pid, event, path) of every write the run's Python processes made
    (tests/test_install.py's audit hook)."""
    out = []
    for line in log.read_text().splitlines():
        pid, event, path = line.split(" ", 2)
        out.append((int(pid), event, Path(path)))
    return out


@pytest.fixture(scope="module")
def example_run(tmp_path_factory):
    venv = installed_venv(tmp_path_factory.mktemp("install"))
    project = tmp_path_factory.mktemp("user") / "small_cnn_32"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("build"))
    assert REPO not in project.resolve().parents
    project_before = tree_state(project)
    site_before = tree_state(venv.site)
    repo_before = repo_status()
    audit = project.parent / "writes.log"
    run = subprocess.run([str(venv.cosim), "run"], cwd=project,
                         env={**clean_env(), "COSIM_TEST_AUDIT": str(audit)},
                         capture_output=True, text=True, timeout=900)
    return {"run": run, "project": project, "build": project / "build", "venv": venv,
            "site_before": site_before, "repo_before": repo_before,
            "project_before": project_before,
            "repo_after": repo_status(), "writes": audited_writes(audit)}


def read(path: Path) -> dict:
    return json.loads(path.read_text())


def test_cosim_run_passes_and_the_report_shows_the_project(example_run):
    run, build = example_run["run"], example_run["build"]
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    manifest = read(build / "package" / "manifest.json")
    layout = read(build / "golden" / "layout.json")
    summary = read(build / "report" / "summary.json")
    simulation = read(build / "test-results" / "WholeNetworkTest-icarus.json")
    assert manifest["model"]["arch"] == "small_cnn"
    assert layout["config"]["word_bits"] == 32
    assert layout["accelerator"]["name"] == "acc32-16x16-example"
    assert layout["accelerator"]["path"] == str(example_run["project"] / "accel.toml")
    assert summary["accelerator"] == "acc32-16x16-example"
    assert summary["project"]["name"] == "small-cnn-32"
    assert summary["project"]["rtl"]["top"] == "acc32_param_top"
    assert simulation["mismatches"] == 0
    assert simulation["words_checked"] == simulation["words_expected"] == layout["used_words"]
    assert summary["simulators"]["icarus"]["mismatches"] == 0
    page = (build / "report" / "index.html").read_text()
    assert "small_cnn" in page and "acc32-16x16-example" in page
    assert "acc32_param_top" in page
    assert "acc32-16x16-example" in run.stdout and "small_cnn" in run.stdout
    # the short waves run of the project's own top (RandomSubsetTest: 2-word headers)
    waves = example_run["project"] / summary["waves"]  # relative to the run's folder
    assert waves.is_file() and waves.is_relative_to(build / "sim" / "runs" / "icarus")
    assert waves.parent.name == "tests_uvm.RandomSubsetTest.waves"
    subset = read(build / "test-results" / "waves" / "RandomSubsetTest-icarus.json")
    assert subset["mismatches"] == 0 and subset["passed"]


def test_everything_went_into_the_projects_build_folder(example_run):
    project, build = example_run["project"], example_run["build"]
    # the project's own files are untouched; build/ is the only thing added
    after = {k: v for k, v in tree_state(project).items()
             if k != "build" and not k.startswith("build/")}
    assert after == example_run["project_before"]
    assert "build" not in example_run["project_before"]
    # the simulator builds and runs too (COSIM_BUILD), not the checkout's build/
    assert list((build / "sim").glob("icarus/*/build.ok"))
    assert list((build / "sim" / "runs" / "icarus").iterdir())
    # every write of every Python process of the run (cosim, the simulator's embedded
    # Python) went into the build folder or a temporary folder: none into the
    # repository or the installed package
    writes = example_run["writes"]
    site = example_run["venv"].site.resolve()
    for pid, event, path in writes:
        for forbidden in (REPO, site):
            assert not path.is_relative_to(forbidden), (pid, event, path)
    results = build.resolve() / "test-results" / "WholeNetworkTest-icarus.json"
    writers = {pid for pid, event, path in writes if path == results}
    assert writers and writers != {min(pid for pid, _, _ in writes)}, \
        "the simulator's Python was not audited"
    assert any(path.is_relative_to(build.resolve() / "sim") for _, _, path in writes)
    assert tree_state(example_run["venv"].site) == example_run["site_before"]
    # git status may change under other processes (a parallel test, an editor); what
    # changed must not be something this run wrote
    before = set(example_run["repo_before"].splitlines())
    changed = [line[3:] for line in example_run["repo_after"].splitlines()
               if line not in before]
    written = {path for _, _, path in writes}
    assert not [name for name in changed if (REPO / name).resolve() in written], changed


def example_copy(dest: Path) -> Path:
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("build"))
    return dest


def test_a_wiring_bug_in_the_projects_top_fails_the_run(tmp_path, capsys):
    """Fault injection: the example's top with the memory's write data off by one bit
    (a wiring bug of the user's RTL): cosim run exits 1 and the run's summary counts
    the mismatched words (the unchanged example passes: the tests above)."""
    from cosim import cli

    project = example_copy(tmp_path / "bad")
    top = project / "rtl" / "acc32_param_top.sv"
    text = top.read_text()
    assert ".wdata   (mem_wdata)," in text
    top.write_text(text.replace(".wdata   (mem_wdata),", ".wdata   (mem_wdata ^ 1'b1),"))
    # the folder (its cosim.toml); the waves run is skipped, the verdict is the main test's
    status = cli.main(["run", "--project", str(project), "-q", "--no-waves"])
    assert status == 1
    simulation = read(project / "build" / "test-results" / "WholeNetworkTest-icarus.json")
    assert simulation["mismatches"] > 0
    summary = read(project / "build" / "report" / "summary.json")
    assert summary["simulators"]["icarus"]["mismatches"] == simulation["mismatches"]
    assert "mismatches" in capsys.readouterr().out


def test_rtl_that_does_not_compile_is_one_line_naming_the_step_and_log(tmp_path, capsys):
    """A user's top with a syntax error: cosim run stops at the RTL step with one line
    (the step, the compiler's complaint, the log), exit status 2."""
    from cosim import cli

    project = example_copy(tmp_path / "broken")
    top = project / "rtl" / "acc32_param_top.sv"
    top.write_text(top.read_text().replace("assign wlog_tick = wlog_tick_q;",
                                           "assign wlog_tick = ;"))
    status = cli.main(["run", "--project", str(project), "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1, err
    log = project / "build" / "logs" / "4-sim-icarus.log"
    assert err[0].startswith("cosim: error: RTL on icarus (acc32_param_top")
    assert str(log) in err[0] and log.is_file()
    assert "acc32_param_top.sv" in err[0]


@pytest.mark.parametrize("stimulus", ["axi4", "axi4lite", "dma"])
def test_cosim_run_drives_the_pushed_and_fetched_paths(stimulus, tmp_path):
    """A project naming only a stimulus path gets that path's testbench and reference
    RTL (cnn_param_axi_top): the small CNN on the shipped 32-bit accelerator, every
    word stored with 0 mismatches."""
    from cosim import cli
    from cosim.project import STIMULUS_TESTBENCH, available_stimuli

    if stimulus not in available_stimuli():
        pytest.skip(f"the {stimulus} path is not in this cosim")
    (tmp_path / "cosim.toml").write_text(
        'format_version = 1\nname = "paths"\n[model]\ncheckpoint = "small_cnn"\n'
        "[quantization]\ncalibration_images = 32\n"
        "[verify]\nimages = 4\ngolden_images = 2\ngolden_images_224 = 0\n"
        '[accelerator]\nfile = "acc32_16x16"\n'
        f'[simulation]\nstimulus = "{stimulus}"\n')
    assert cli.main(["run", "--project", str(tmp_path), "-q"]) == 0
    test = STIMULUS_TESTBENCH[stimulus][1][0]
    simulation = read(tmp_path / "build" / "test-results" / f"{test}-icarus.json")
    layout = read(tmp_path / "build" / "golden" / "layout.json")
    assert simulation["mismatches"] == 0
    assert simulation["words_checked"] == simulation["words_expected"] == layout["used_words"]
    summary = read(tmp_path / "build" / "report" / "summary.json")
    assert summary["simulators"]["icarus"]["words_checked"] == simulation["words_checked"]
    assert summary["simulators"]["icarus"]["mismatches"] == 0
    page = (tmp_path / "build" / "report" / "index.html").read_text()
    assert f"{test}-&lt;sim&gt;.json" in page and f"the {stimulus} path" in page
    assert summary["project"]["stimulus"] == stimulus
    assert summary["project"]["rtl"]["top"] == "cnn_param_axi_top"
    assert summary["accelerator"] == "acc32_16x16"
