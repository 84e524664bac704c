"""`cosim mutate`: the mutation test on a user's own RTL (cosim/mutate.py, cosim/cli_mutate.py).

(a) The mutants file: every key of a [[mutant]] table (enumerated from the schema) with
    a bad value, missing, an unknown key, a pattern found 0 or 2 times: one line
    `<file>: <key>: expected ..., got ...`, exit status 2, before anything runs.
(b) End to end on a copy of examples/small_cnn_32 in a temporary folder: `cosim run`
    there (a subprocess, COSIM_BUILD unset, cwd the copy), then `cosim mutate`: every
    mutant of the example's mutants.toml killed, exit 0, the report under the copy's
    build folder; a harmless "mutant" (a comment change) comes out ALIVE with exit 1
    (the check of the checker); a mutant that hangs the simulator is ended at the
    timeout and counts as killed; a design that fails the killer unmutated stops with
    one line.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cosim import cli_mutate
from cosim.mutate import MUTANTS_FILE, SCHEMA, schema_keys

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "small_cnn_32"
TOP = "rtl/acc32_param_top.sv"

GOOD = {"name": "wlog-addr-off-by-one", "file": TOP,
        "pattern": "wlog_addr[log_slot] <= mem_addr;",
        "replacement": "wlog_addr[log_slot] <= mem_addr + 1'b1;",
        "description": "the write log records each write's address plus one"}


def toml_value(value) -> str:
    return json.dumps(value) if isinstance(value, str) else str(value).lower() \
        if isinstance(value, bool) else str(value)


def mutants_text(*tables: dict) -> str:
    out = []
    for table in tables:
        out.append("[[mutant]]")
        out += [f"{key} = {toml_value(value)}" for key, value in table.items()]
    return "\n".join(out) + "\n"


@pytest.fixture()
def project(tmp_path) -> Path:
    """A copy of the example project (no build: validation runs before anything else)."""
    dest = tmp_path / "proj"
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("build"))
    return dest


def mutate_error(project: Path, text: str, capsys) -> str:
    (project / MUTANTS_FILE).write_text(text)
    status = cli_mutate.main(["--project", str(project)])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1, (status, err)
    assert err[0].startswith(f"cosim mutate: error: {project / MUTANTS_FILE}: "), err
    assert not (project / "build").exists()
    return err[0]


def test_the_example_mutants_file_is_valid(project):
    from cosim.mutate import load_mutants
    from cosim.project import load_project

    mutants = load_mutants(project / MUTANTS_FILE, load_project(project / "cosim.toml"))
    assert 4 <= len(mutants) <= 6
    assert {m.source.name for m in mutants} == {"acc32_param_top.sv"}


BAD_VALUES = {  # key -> (bad value, what the message says was expected)
    "name": ("Wlog Addr", "expected a name of a-z, 0-9, _ and -"),
    "file": ("rtl/nope.sv", "expected a file of the project's rtl.sources"),
    "pattern": ("", "expected a non-empty string"),
    "replacement": (7, "expected a string"),
    "description": ("", "expected a non-empty string"),
}


@pytest.mark.parametrize("key", schema_keys())
def test_every_key_bad_missing_or_mistyped_is_one_line(key, project, capsys):
    assert set(BAD_VALUES) == set(schema_keys())
    bad, expected = BAD_VALUES[key]
    line = mutate_error(project, mutants_text(GOOD, {**GOOD, "name": "second", key: bad}),
                        capsys)
    assert f": mutant[1].{key}: {expected}" in line and ", got " in line, line
    mistyped = mutate_error(project, mutants_text({**GOOD, key: [1, 2]}), capsys)
    assert f": mutant[0].{key}: expected a string, got [1, 2]" in mistyped, mistyped
    if key in SCHEMA["properties"]["mutant"]["items"]["required"]:
        missing = mutate_error(project, mutants_text(
            {k: v for k, v in GOOD.items() if k != key}), capsys)
        assert f": mutant[0].{key}: expected " in missing and missing.endswith("got nothing")


@pytest.mark.parametrize("text, where, expected", [
    (mutants_text({**GOOD, "area": "x"}), "mutant[0].area", "expected no such key"),
    ("format = 1\n" + mutants_text(GOOD), "format", "expected no such key"),
    ("", "mutant", "expected [[mutant]] tables, got nothing"),
    ("mutant = []\n", "mutant", "expected at least one [[mutant]] table, got 0"),
    ("mutant = 3\n", "mutant", "expected a list of tables, got 3"),
    (mutants_text(GOOD, GOOD), "mutant[1].name", "expected a name no other mutant has"),
    (mutants_text({**GOOD, "pattern": "no such text"}), "mutant[0].pattern",
     "got 0 occurrences (mutant wlog-addr-off-by-one)"),
    (mutants_text({**GOOD, "pattern": "wlog_addr"}), "mutant[0].pattern",
     "expected text that occurs exactly once in rtl/acc32_param_top.sv, got"),
    (mutants_text({**GOOD, "replacement": GOOD["pattern"]}), "mutant[0].replacement",
     "expected a text other than pattern"),
    ("[[mutant]\n", "", "expected TOML, got a syntax error"),
])
def test_file_level_mistakes_are_one_line(text, where, expected, project, capsys):
    line = mutate_error(project, text, capsys)
    assert (f": {where}: " if where else ": expected") in line and expected in line, line


def test_a_pattern_found_twice_names_the_mutant_file_and_count(project, capsys):
    line = mutate_error(project, mutants_text({**GOOD, "pattern": "log_write) begin"}),
                        capsys)
    assert line.endswith("expected text that occurs exactly once in rtl/acc32_param_top.sv, "
                         "got 2 occurrences (mutant wlog-addr-off-by-one)"), line


def test_file_names_a_source_three_ways(project):
    """A mutant's file: its path in the project, its bare name, or cosim:NAME."""
    from cosim.mutate import load_mutants
    from cosim.project import load_project

    loader = {"name": "loader", "file": "cosim:param_loader.sv",
              "pattern": "assign mem_wdata = s_axis_tdata;",
              "replacement": "assign mem_wdata = ~s_axis_tdata;", "description": "inverted"}
    (project / "m.toml").write_text(mutants_text({**GOOD, "file": "acc32_param_top.sv"},
                                                 loader))
    top, shipped = load_mutants(project / "m.toml", load_project(project / "cosim.toml"))
    assert top.source == (project / TOP).resolve()
    assert shipped.source.name == "param_loader.sv" and shipped.source.parent.name == "rtl"


def test_without_a_finished_cosim_run_it_says_run_first(project, capsys):
    status = cli_mutate.main(["--project", str(project)])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1, err
    assert "no finished cosim run" in err[0] and "run `cosim run --project" in err[0]
    assert "first" in err[0]


def test_cosim_mutate_names_itself_in_its_errors(tmp_path, capsys):
    """Typed as `cosim mutate`, a mistake reads as it does from cli_mutate alone."""
    from cosim import cli

    missing = tmp_path / "nowhere"
    assert cli.main(["mutate", "--project", str(missing)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"cosim mutate: error: {missing}"), err
    assert cli_mutate.main(["--project", str(missing)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == err


def test_options_are_checked(project, capsys):
    assert cli_mutate.main(["--project", str(project), "--test", "AxiLiteTest"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--test: expected a comma-separated list of tests of the " \
        "stream path" in err[0], err
    with pytest.raises(SystemExit) as stop:
        cli_mutate.main(["--sim", "modelsim"])
    assert stop.value.code == 2


# --------------------------------------------------------------------------- end to end


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("COSIM_BUILD", "WAVES")
           and not k.startswith(("COCOSIM_", "COCOTB_", "MUTATION_"))}
    return {**env, "OMP_NUM_THREADS": "1"}


def cosim(args: list[str], cwd: Path, module: str = "cosim.cli") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=clean_env(),
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def example_run(tmp_path_factory) -> Path:
    """A copy of the example project after `cosim run` (no waves run: not needed here)."""
    if shutil.which("iverilog") is None:
        pytest.skip("needs Icarus")
    dest = tmp_path_factory.mktemp("user") / "small_cnn_32"
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("build"))
    run = cosim(["run", "--no-waves", "-q"], dest)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    return dest


@pytest.mark.slow
def test_every_mutant_of_the_example_is_killed(example_run):
    before = sorted(p.name for p in example_run.iterdir())
    run = cosim([], example_run, module="cosim.cli_mutate")
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    report = json.loads((example_run / "build" / "mutants" / "report.json").read_text())
    assert report["killed"] == report["total"] >= 4
    assert f"mutants killed: {report['total']}/{report['total']}" in lines
    assert report["top"] == "acc32_param_top"
    assert report["killer"] == "cosim.tb.tests_uvm:MalformedTest,WholeNetworkTest"
    assert not report["baseline"]["failed"]
    for mutant in report["mutants"]:
        assert mutant["killed"] and mutant["killed_by"] and mutant["checks"], mutant
        assert any(line.startswith(f"  KILLED {mutant['name']} ") for line in lines)
    # every mutant is caught by a different kind of check: the write log, the dump,
    # the pre-run check, the writes-in-reset counter
    fired = {check for mutant in report["mutants"] for check in mutant["checks"]}
    assert {"write", "dump", "prerun", "reset_writes"} <= fired, fired
    # nothing outside the project's build folder: the project's files are unchanged and
    # the mutated copies, runs and results are in its build folder
    assert sorted(p.name for p in example_run.iterdir()) == before
    build = example_run / "build"
    for mutant in report["mutants"]:
        assert (build / "mutants" / "rtl" / mutant["name"] / "acc32_param_top.sv").is_file()
        assert list((build / "sim" / "runs" / "icarus").glob(f"*mutant-{mutant['name']}"))
        assert not list((REPO / "build" / "sim" / "runs" / "icarus").glob(
            f"*mutant-{mutant['name']}")), "a run went into the checkout's build folder"
    assert not (REPO / "build" / "mutants" / "rtl").exists()


@pytest.mark.slow
def test_a_harmless_mutant_stays_alive_and_a_hang_is_ended(example_run):
    """The check of the checker: a comment change is not a bug, no test may fail on it,
    and cosim mutate says ALIVE with exit status 1. In the same run a mutant that stops
    simulated time (a zero-delay loop: no testbench timer can fire) is ended at
    --timeout, its simulator too, and counts as killed."""
    harmless = example_run / "harmless.toml"
    harmless.write_text(mutants_text({
        "name": "comment-only", "file": TOP, "pattern": "// ---- write log",
        "replacement": "// ---- the write log", "description": "a comment change"}, {
        "name": "zero-delay-loop", "file": TOP,
        "pattern": "  assign wlog_tick = wlog_tick_q;\n",
        "replacement": "  logic osc;\n  initial osc = 1'b0;\n  always @(osc) osc <= !osc;\n"
                       "  assign wlog_tick = wlog_tick_q;\n",
        "description": "a zero-delay oscillation: simulated time stops"}))
    try:
        run = cosim(["--mutants", str(harmless), "--test", "WholeNetworkTest",
                     "--timeout", "12"], example_run, module="cosim.cli_mutate")
    finally:
        harmless.unlink()
    assert run.returncode == 1, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert "mutants killed: 1/2" in lines
    assert any(line.startswith("  ALIVE  comment-only ") and "every test passed" in line
               for line in lines), run.stdout
    assert any(line.startswith("  KILLED zero-delay-loop ") and "did not finish within 12 s"
               in line for line in lines), run.stdout
    report = json.loads((example_run / "build" / "mutants" / "report.json").read_text())
    assert report["killed"] == 1 and report["total"] == 2
    assert report["killer"].endswith(":WholeNetworkTest")
    alive, hang = report["mutants"]
    assert not alive["killed"] and not alive["error"] and not alive["timed_out"]
    assert hang["killed"] and hang["timed_out"] and 12 <= hang["seconds"] < 40
    # the hung simulator was ended with its Python process (its process group)
    vvp = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert "mutant-zero-delay-loop" not in vvp and str(example_run) not in vvp


@pytest.mark.slow
def test_a_design_that_fails_unmutated_is_one_line(example_run):
    """Fault injection: the project's top itself broken (a wrong cfg constant): the
    killer fails on the unmutated design, so no kill would mean anything: one line,
    exit status 2."""
    top = example_run / TOP
    text = top.read_text()
    broken = text.replace("assign cfg_num_layers = 32'(NUM_LAYERS);",
                          "assign cfg_num_layers = 32'(NUM_LAYERS + 1);")
    assert broken != text
    top.write_text(broken)
    try:
        run = cosim(["--test", "WholeNetworkTest"], example_run, module="cosim.cli_mutate")
    finally:
        top.write_text(text)
    err = run.stderr.strip().splitlines()
    assert run.returncode == 2 and len(err) == 1, run.stdout + run.stderr
    assert "fails on the unmutated design" in err[0] and "WholeNetworkTest" in err[0], err
