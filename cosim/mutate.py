"""`cosim mutate`: the mutation test on a user's own RTL, from their project.

A mutants file (`mutants.toml`, beside the project file) lists realistic bugs of the
user's design as text substitutions::

    [[mutant]]
    name = "wlog_addr_off_by_one"            # [a-z0-9_-], unique
    file = "rtl/my_top.sv"                   # a file of rtl.sources (its name, its path
                                             # relative to the project, or cosim:NAME)
    pattern = "wlog_addr[log_slot] <= mem_addr;"      # must occur exactly once
    replacement = "wlog_addr[log_slot] <= mem_addr + 1'b1;"
    description = "the write log records the address plus one"

`load_mutants` parses it (tomllib), validates it against `SCHEMA` (JSON Schema Draft
2020-12; unknown keys are errors) and checks every pattern against its file; every
mistake is one MutantsError line `<file>: <key>: expected ..., got ...` (exit status 2).

`run_mutation` needs a finished `cosim run` of the project (the package, the golden
folder and the generated layout package in its build folder). It runs the killer
(cosim.tb.mutants.Killer with the project's top) on the unmutated design, which must
pass, then on each mutant, two at a time, each run in its own Python process with
COSIM_BUILD = the project's build folder (so every simulator build and run stays
there). A mutant is KILLED when a test of the killer fails on it (or its run hangs
past the timeout: the run is ended), ALIVE when every test passes. The report goes
to <build>/mutants/report.json, the mutated copies to <build>/mutants/rtl/<name>/, each
run's log to <build>/mutants/logs/.

The default killer of the stream path is `MalformedTest,WholeNetworkTest` in one
simulator run: MalformedTest exercises resets, stalls, idle gaps, malformed headers
and every status output; WholeNetworkTest writes every word of the network (a bug at
any address of the memory map shows). The other paths run all their tests.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cosim.project import SHIPPED_RTL_PREFIX, STIMULUS_TESTBENCH, Project, shipped_rtl_dir
from cosim.quant import tomlfile
from cosim.quant.errors import UserError

__all__ = ["KILLER_TESTS", "MUTANTS_FILE", "SCHEMA", "MutateError", "MutantsError",
           "UserMutant", "default_killer", "load_mutants", "run_mutation", "schema_keys"]

#: The mutants file `cosim mutate` reads beside the project file.
MUTANTS_FILE = "mutants.toml"
#: Largest mutants file read (bytes).
MUTANTS_MAX_BYTES = 4 << 20
#: Parallel simulator processes (the machine's two cores).
JOBS = 2
#: The killer's seed (its verdict must not depend on the run).
SEED = 1

#: Tests a killer may run, per stimulus path (--test), and the default killer.
KILLER_TESTS: dict[str, tuple[str, ...]] = {
    "stream": ("MalformedTest", "WholeNetworkTest", "RandomSubsetTest", "BackpressureTest",
               "ResetReloadTest"),
    **{name: tests for name, (_, tests, _, _) in STIMULUS_TESTBENCH.items() if name != "stream"},
}
DEFAULT_KILLER: dict[str, str] = {
    "stream": "MalformedTest,WholeNetworkTest",
    **{name: ",".join(tests) for name, tests in KILLER_TESTS.items() if name != "stream"},
}

_NAME = r"^[a-z0-9_-]{1,64}$"

#: JSON Schema of the parsed mutants file (Draft 2020-12). Every table is closed.
SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "mutants.toml",
    "type": "object",
    "additionalProperties": False,
    "required": ["mutant"],
    "properties": {
        "mutant": {
            "type": "array", "minItems": 1, "maxItems": 500,
            "description": "[[mutant]] tables",
            "items": {
                "type": "object", "additionalProperties": False,
                "required": ["name", "file", "pattern", "replacement", "description"],
                "properties": {
                    "name": {"type": "string", "pattern": _NAME,
                             "description": "a name of a-z, 0-9, _ and - (at most 64)"},
                    "file": {"type": "string", "minLength": 1,
                             "description": "a file of the project's rtl.sources (its name, "
                                            "its path or cosim:NAME)"},
                    "pattern": {"type": "string", "minLength": 1, "maxLength": 10_000,
                                "description": "the text to replace (exactly once in file)"},
                    "replacement": {"type": "string", "maxLength": 10_000,
                                    "description": "the text that replaces pattern"},
                    "description": {"type": "string", "minLength": 1, "maxLength": 500,
                                    "description": "the bug, in words"},
                },
            },
        },
    },
}


class MutantsError(tomlfile.TomlFileError):
    """A mistake in a mutants file: one line naming the file, the key and what was
    expected."""


class MutateError(UserError):
    """The mutation test cannot run (no finished cosim run, the killer fails on the
    unmutated design, a bad option): one line."""


@dataclass(frozen=True)
class UserMutant:
    """One mutant of the mutants file, its file resolved to a source of the project."""

    name: str
    file: str          # as written in the mutants file
    source: Path       # the project source it mutates
    pattern: str
    replacement: str
    description: str


# --------------------------------------------------------------------------- the file


def _got(value: Any) -> str:
    return tomlfile.shown(value)


def _words(error: Any) -> tuple[str, str]:
    """(expected, got) of a violation other than an unknown or missing key."""
    v, value, schema = error.validator, error.validator_value, error.schema
    got = _got(error.instance)
    if v == "type":
        want = {"string": "a string", "object": "a table", "array": "a list of tables"
                }.get(value, value)
    elif v == "pattern":
        want = schema.get("description", f"a string matching {value}")
    elif v == "minLength":
        want = "a non-empty string"
    elif v == "maxLength":
        want, got = f"at most {value:,} characters", f"{len(error.instance):,} characters"
    elif v == "minItems":
        want, got = "at least one [[mutant]] table", f"{len(error.instance)}"
    elif v == "maxItems":
        want, got = f"at most {value} [[mutant]] tables", f"{len(error.instance)}"
    else:
        want = " ".join(error.message.split())[:200]
    return want, got


def _schema_error(path: Path, document: Any) -> MutantsError | None:
    """The most relevant schema violation as one MutantsError line, or None."""
    found = tomlfile.schema_error(SCHEMA, document, describe=_words)
    return None if found is None else MutantsError(path, *found)


def schema_keys() -> list[str]:
    """Every key of a [[mutant]] table (the tests enumerate them)."""
    return tomlfile.schema_keys(SCHEMA["properties"]["mutant"]["items"])


def _read(path: Path) -> dict[str, Any]:
    def error(problem: tomlfile.TomlProblem) -> MutantsError:
        return MutantsError(path, "", tomlfile.problem_text(
            problem, missing=f"no such mutants file; expected {MUTANTS_FILE} beside the "
            "project file, or --mutants FILE", folder="is a folder; expected a mutants file",
            limit="4 MiB"))

    return tomlfile.read_toml(path, MUTANTS_MAX_BYTES, error)


def _source_of(path: Path, key: str, text: str, project: Project) -> Path:
    """The project source a mutant's `file` names: cosim:NAME, a path relative to the
    project folder, or a file name (unique among the sources)."""
    sources = list(project.sources)
    found: list[Path] = []
    if text.startswith(SHIPPED_RTL_PREFIX):
        candidate = shipped_rtl_dir() / text[len(SHIPPED_RTL_PREFIX):]
        found = [p for p in sources if p == candidate.resolve()]
    else:
        candidate = (project.root / Path(text).expanduser()).resolve()
        found = [p for p in sources if p == candidate]
        if not found and "/" not in text:
            found = [p for p in sources if p.name == text]
    names = ", ".join(_shown(p, project) for p in sources)
    if not found:
        raise MutantsError(path, key, f"expected a file of the project's rtl.sources "
                                      f"({names}), got {_got(text)}")
    if len(found) > 1:
        raise MutantsError(path, key, f"expected one file of rtl.sources, got {_got(text)} "
                                      f"naming {len(found)} ({', '.join(map(str, found))})")
    return found[0]


def _shown(source: Path, project: Project) -> str:
    """A source as a mutants file names it: relative to the project, else cosim:NAME."""
    try:
        return str(source.relative_to(project.root))
    except ValueError:
        return SHIPPED_RTL_PREFIX + source.name


def load_mutants(path: str | Path, project: Project) -> list[UserMutant]:
    """Parse, validate and resolve a mutants file against the project's sources
    (MutantsError: one line). Every pattern must occur exactly once in its file."""
    path = Path(path).expanduser().absolute()
    document = _read(path)
    error = _schema_error(path, document)
    if error is not None:
        raise error
    by_name = [source.name for source in project.sources]
    out: list[UserMutant] = []
    seen: dict[str, int] = {}
    texts: dict[Path, str] = {}
    for index, table in enumerate(document["mutant"]):
        where = f"mutant[{index}]"
        name = table["name"]
        if name in seen:
            raise MutantsError(path, f"{where}.name", f"expected a name no other mutant has, "
                               f"got {_got(name)} (also mutant[{seen[name]}])")
        seen[name] = index
        source = _source_of(path, f"{where}.file", table["file"], project)
        if by_name.count(source.name) > 1:
            raise MutantsError(path, f"{where}.file", f"expected a file whose name no other "
                               f"source has (the mutated copies share one folder), got "
                               f"{_got(table['file'])}")
        if source not in texts:
            texts[source] = source.read_text(errors="replace")
        count = texts[source].count(table["pattern"])
        if count != 1:
            raise MutantsError(path, f"{where}.pattern", f"expected text that occurs exactly "
                               f"once in {_shown(source, project)}, got {count} occurrences "
                               f"(mutant {name})")
        if table["replacement"] == table["pattern"]:
            raise MutantsError(path, f"{where}.replacement", f"expected a text other than "
                               f"pattern (mutant {name}), got the pattern itself")
        out.append(UserMutant(name, table["file"], source, table["pattern"],
                              table["replacement"], table["description"]))
    return out


# --------------------------------------------------------------------------- the run


def default_killer(project: Project) -> str:
    """The killer tests of the project's stimulus path (comma-separated)."""
    return DEFAULT_KILLER[project.stimulus]


def killer_tests(project: Project, text: str | None) -> str:
    """--test checked against the tests of the project's path (MutateError)."""
    if text is None:
        return default_killer(project)
    allowed = KILLER_TESTS[project.stimulus]
    names = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in names if t not in allowed]
    if bad or not names:
        raise MutateError(f"--test: expected a comma-separated list of tests of the "
                          f"{project.stimulus} path ({', '.join(allowed)}), got {text!r}")
    return ",".join(dict.fromkeys(names))


def check_finished_run(project: Project) -> None:
    """The package and the golden folder of a finished `cosim run` are in the build
    folder (MutateError naming the first missing file)."""
    build = project.build
    for rel in ("package/manifest.json", "golden/layout.json", "golden/stream.hex",
                "golden/image.npz"):
        if not (build / rel).is_file():
            raise MutateError(f"{build}: no finished cosim run of project {project.name} "
                              f"({build / rel} is missing); run `cosim run --project "
                              f"{project.path or project.root}` first")


#: One killer run in its own Python process (COSIM_BUILD = the project's build folder,
#: so every simulator build and run stays there). argv: the spec file, the job ("" for
#: the unmutated design, else a mutant's index), the output file.
_WORKER = r'''
import json, sys, time
from pathlib import Path

spec = json.loads(Path(sys.argv[1]).read_text())
job, out = sys.argv[2], Path(sys.argv[3])
from cosim.tb import mutants as mm
from cosim.tb import sim

root = Path(spec["root"])
results = root / "results"
if job == "":
    layouts = Path(spec["build"]) / "sim" / "layout"
    before = set(layouts.glob("*/cnn_layout_pkg.sv"))
    pkg = sim.select_network(spec["env"], check=False).sources[0]
    if pkg not in sim.RTL_SOURCES and pkg not in before:
        out.write_text(json.dumps({"missing_layout": str(pkg)}))
        sys.exit(0)
else:
    pkg = Path(spec["layout_package"])
sources = [pkg, *map(Path, spec["sources"])]
killer = mm.Killer(spec["module"], spec["tests"],
                   {"COCOSIM_STOP_ON_ERROR": "1", **spec["env"]},
                   ("+DUMP_FILE=param_memory.hex",), spec["seed"], spec["top"])
t0 = time.perf_counter()
if job == "":
    failed, xml = mm.run_killer(killer, spec["sim"], sources, tag="mutant-baseline",
                                results_root=results)
    checks, first = mm.killer_checks(spec["sim"], "mutant-baseline", results)
    out.write_text(json.dumps({"layout_package": str(pkg), "failed": failed,
                               "checks": checks, "first_error": first, "xml": str(xml),
                               "seconds": round(time.perf_counter() - t0, 1)}))
else:
    m = spec["mutants"][int(job)]
    mutant = mm.Mutant(m["name"], Path(m["source"]).name, m["pattern"], m["replacement"],
                       m["description"], "user")
    r = mm.run_mutant(mutant, killer, spec["sim"], sources, root / "rtl", results)
    out.write_text(json.dumps({
        "name": r.mutant.name, "killed": r.killed, "killed_by": r.failed,
        "checks": r.checks, "first_error": r.first_error, "error": r.error,
        "timed_out": False, "seconds": round(r.seconds, 1),
        "xml": str(r.xml) if r.xml else None}))
'''


@dataclass
class _Job:
    """One killer run: its process's output file and log, how it ended."""

    tag: str
    out: Path
    log: Path
    status: int | None = None
    timed_out: bool = False
    seconds: float = 0.0


def _run_job(spec_file: Path, job: str, tag: str, root: Path, build: Path,
             timeout: float) -> _Job:
    """Run one killer process; on timeout end its whole process group (the simulator
    too: it was started in a new session)."""
    entry = _Job(tag, root / "jobs" / f"{tag}.json", root / "logs" / f"{tag}.log")
    entry.out.parent.mkdir(parents=True, exist_ok=True)
    entry.log.parent.mkdir(parents=True, exist_ok=True)
    entry.out.unlink(missing_ok=True)
    env = {**os.environ, "COSIM_BUILD": str(build),
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    t0 = time.perf_counter()
    with entry.log.open("w") as handle:
        process = subprocess.Popen([sys.executable, "-c", _WORKER, str(spec_file), job,
                                    str(entry.out)], cwd=build, stdout=handle,
                                   stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            entry.status = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            entry.timed_out = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            entry.status = process.wait()
    entry.seconds = time.perf_counter() - t0
    return entry


def _why(result: Mapping[str, Any]) -> str:
    """What caught a mutant (or why it is not caught), for its report line."""
    if result.get("timed_out"):
        return (f"the killer did not finish within {result['timeout_s']:.0f} s (a hang: "
                "counted as killed)")
    if result["error"]:
        return f"did not build or simulate: {result['error']}"
    if not result["killed"]:
        return "every test passed"
    checks = ", ".join(sorted(result["checks"]))
    first = " ".join(str(result["first_error"]).split())
    first = first if len(first) <= 120 else first[:117] + "..."
    return (f"{', '.join(result['killed_by'])} failed"
            + (f", checks {checks}" if checks else "") + (f": {first}" if first else ""))


def report_lines(report: Mapping[str, Any]) -> list[str]:
    """`mutants killed: K/N`, then one line per mutant."""
    lines = [f"mutants killed: {report['killed']}/{report['total']}"]
    width = max((len(m["name"]) for m in report["mutants"]), default=0)
    for m in report["mutants"]:
        status = "KILLED" if m["killed"] else ("ERROR " if m["error"] else "ALIVE ")
        lines.append(f"  {status} {m['name']:{width}s}  {m['description']}  "
                     f"[{_why(m)}] {m['seconds']:.1f} s")
    return lines


#: The unmutated design's run may take this long; a mutant's, `TIMEOUT_FACTOR` times
#: the unmutated one's and at least `MIN_TIMEOUT_S` (unless --timeout says otherwise).
BASELINE_TIMEOUT_S = 3600.0
TIMEOUT_FACTOR = 5.0
MIN_TIMEOUT_S = 60.0


def run_mutation(project: Project, mutants: Sequence[UserMutant], *, mutants_file: Path,
                 sim: str | None = None, tests: str | None = None, jobs: int = JOBS,
                 timeout: float | None = None, echo: Callable[[str], None] = print) -> int:
    """Run the killer on the unmutated design and on each mutant, each in its own process
    (`jobs` at a time); print the report and write <build>/mutants/report.json. A
    mutant's run that exceeds `timeout` seconds (default: 5x the unmutated run, at
    least 60 s) is ended and counts as killed (a hang). 0: every mutant killed; 1: one
    is not."""
    tests = killer_tests(project, tests)
    if timeout is not None and timeout <= 0:
        raise MutateError(f"--timeout: expected seconds > 0, got {timeout:g}")
    check_finished_run(project)
    sim = sim or project.simulators[0]
    build = project.build
    root = build / "mutants"
    root.mkdir(parents=True, exist_ok=True)
    env = {"COCOSIM_PACKAGE": str(build / "package"), "COCOSIM_GOLDEN": str(build / "golden")}
    if project.accelerator is not None:
        env["COCOSIM_ACCEL"] = str(project.accelerator)
    module = project.test_module
    jobs = max(1, min(jobs, len(mutants)))
    spec_file = root / "spec.json"
    spec: dict[str, Any] = {
        "build": str(build), "env": env, "sources": [str(p) for p in project.sources],
        "module": module, "tests": tests, "seed": SEED, "top": project.top,
        "root": str(root), "sim": sim,
        "mutants": [{"name": m.name, "source": str(m.source), "pattern": m.pattern,
                     "replacement": m.replacement, "description": m.description}
                    for m in mutants]}
    spec_file.write_text(json.dumps(spec, indent=1) + "\n")
    echo(f"cosim mutate: project {project.name}, top {project.top}, {len(mutants)} mutants "
         f"from {mutants_file}; killer {module}:{tests} on {sim} (seed {SEED}, "
         f"{jobs} at a time)")
    t0 = time.perf_counter()
    base = _run_job(spec_file, "", "baseline", root, build, BASELINE_TIMEOUT_S)
    if base.timed_out:
        raise MutateError(f"the killer {tests} did not finish on the unmutated design within "
                          f"{BASELINE_TIMEOUT_S:.0f} s; see {base.log}")
    if base.status != 0 or not base.out.is_file():
        raise MutateError(f"the killer's run on the unmutated design stopped (exit "
                          f"{base.status}): {_last_line(base.log)}; see {base.log}")
    baseline = json.loads(base.out.read_text())
    if "missing_layout" in baseline:
        raise MutateError(f"{build}: the layout package of the golden folder is missing "
                          f"({baseline['missing_layout']} was not there); run `cosim run "
                          f"--project {project.path or project.root}` first")
    if baseline["failed"]:
        first = " ".join(str(baseline["first_error"]).split())[:200]
        raise MutateError(f"the killer {tests} fails on the unmutated design "
                          f"({', '.join(baseline['failed'])}"
                          + (f": {first}" if first else "") + f"); a kill would mean "
                          f"nothing; see {baseline['xml']}")
    echo(f"unmutated design: {tests} passed ({baseline['seconds']:.1f} s)")
    spec["layout_package"] = baseline["layout_package"]
    spec_file.write_text(json.dumps(spec, indent=1) + "\n")
    limit = timeout if timeout is not None else max(MIN_TIMEOUT_S,
                                                    TIMEOUT_FACTOR * base.seconds)

    def one(index: int) -> dict[str, Any]:
        m = mutants[index]
        job = _run_job(spec_file, str(index), f"mutant-{m.name}", root, build, limit)
        row: dict[str, Any] = {"name": m.name, "killed": False, "killed_by": [],
                               "checks": {}, "first_error": "", "error": "", "xml": None}
        if job.timed_out:
            row |= {"killed": True, "timed_out": True}
        elif job.status == 0 and job.out.is_file():
            row |= json.loads(job.out.read_text())
            if row["killed"] and not row["first_error"]:  # died before its summary
                row["first_error"] = _exception(job.log)
        else:
            row["error"] = f"exit {job.status}: {_last_line(job.log)} (log {job.log})"
        return {**row, "timed_out": job.timed_out, "timeout_s": limit,
                "seconds": round(job.seconds, 1), "log": str(job.log), "file": m.file,
                "source": str(m.source), "description": m.description}

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        rows = list(pool.map(one, range(len(mutants))))
    wall = time.perf_counter() - t0
    killed = sum(r["killed"] for r in rows)
    report = {"project": project.name, "project_file": str(project.path) if project.path
              else None, "mutants_file": str(mutants_file), "top": project.top,
              "stimulus": project.stimulus, "sim": sim, "killer": f"{module}:{tests}",
              "seed": SEED, "jobs": jobs, "timeout_s": limit, "baseline": baseline,
              "layout_package": baseline["layout_package"], "killed": killed,
              "total": len(rows), "wall_s": round(wall, 1), "mutants": rows}
    from cosim.quant.formats import atomic_write_bytes

    path = root / "report.json"
    atomic_write_bytes(path, (json.dumps(report, indent=1) + "\n").encode())
    for line in report_lines(report):
        echo(line)
    echo(f"mutation test: {wall:.1f} s wall; report {path}")
    return 0 if killed == len(rows) else 1


def _last_line(log: Path) -> str:
    """The most telling line of a job's log: its last exception line, else its last line."""
    try:
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines()]
    except OSError:
        return "no log"
    errors = [line for line in lines
              if re.match(r"^[A-Za-z_.]*(Error|Exception|Failure)\b", line)]
    text = errors[-1] if errors else next((line for line in reversed(lines) if line), "")
    return text[:300]


def _exception(log: Path) -> str:
    """The first exception line of a killer's log (a test that died before its summary:
    the driver's tready timeout, cocotb's SimTimeoutError), or ""."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    for line in lines:
        text = line.strip()
        if re.match(r"^[A-Za-z_.]*(Error|Exception)\b", text):
            return text[:300]
    return ""
