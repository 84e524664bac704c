"""`cosim run`: the whole flow for a project file (cosim.toml), step by step.

    cosim run [--project cosim.toml] [--build DIR] [--sims icarus,verilator] [-v|-q]

Steps (each an ordinary `cosim` subcommand or the regular testbench, so a run shows
exactly what a user would type by hand):

1. package        quantize the project's checkpoint, export <build>/package/, rebuild check
2. golden         stream, expected memory image, address map for the project's
                  accelerator (<build>/golden/)
3. golden-verify  NumPy integer model vs PyTorch on every layer (<build>/golden/verify.json)
4. simulate       the pyuvm test through the project's RTL sources and top, on each
                  simulator (the layout package generated for the network and accelerator)
5. waves          (optional) a short WAVES=1 run so the report links an FST
6. report         <build>/report/index.html, with the project's network and accelerator

Everything is written under the project's build folder (the simulator builds too:
COSIM_BUILD is set for the simulator processes); each step's output goes to
<build>/logs/<n>-<step>.log. By default a progress bar and a closing summary table
are shown; -v shows every step's own output, -q only the summary.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from cosim.project import PROJECT_FILE, Project, load_project
from cosim.quant.errors import UserError

__all__ = ["RunError", "register", "run_project"]


class RunError(UserError):
    """A step of the run failed on a user mistake (one line: which step, why, its log)."""


class StepFailed(Exception):
    """A step ran and its check failed (exit status 1)."""


def _console() -> Console:
    """The run's console, bound to the stdout of now: the steps that run in this process
    have their output redirected to their logs, the progress display is not."""
    return Console(file=sys.stdout, highlight=False,
                   width=None if sys.stdout.isatty() else 132)


def _tail(log: Path, lines: int = 2, limit: int = 240) -> str:
    """What went wrong, from a step's log: its `cosim: error:` line, else the first
    compiler-style `...: error: ...` line, else the last lines (at most `limit` chars)."""
    try:
        text = [line.strip() for line in log.read_text(errors="replace").splitlines()]
    except OSError:
        return "no log"
    errors = [line for line in text if line.startswith("cosim: error:")]
    compiler = [line for line in text if re.search(r":\d+: (?:error|syntax error)|%Error", line)]
    found = errors[-1] if errors else compiler[0] if compiler else \
        " | ".join(line for line in text[-lines:] if line)
    return found if len(found) <= limit else found[:limit - 3] + "..."


def _failure(log: Path) -> str:
    """The first exception line of a cocotb log (a test that died before its report)."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return "no log"
    for line in lines:
        text = line.strip()
        if re.match(r"^[A-Za-z_.]*(Error|Exception|StopIteration)\b", text):
            return text[:300]
    return "the test failed (see the log)"


class _Tee:
    """A text stream writing to a log and to the terminal (-v)."""

    def __init__(self, log: Any, terminal: Any) -> None:
        self.log, self.terminal = log, terminal

    def write(self, text: str) -> int:
        self.log.write(text)
        return self.terminal.write(text)

    def flush(self) -> None:
        self.log.flush()
        self.terminal.flush()

    def isatty(self) -> bool:
        return False


@dataclass
class _Run:
    """The state of one run: where it writes, how it shows progress, what it found."""

    project: Project
    run_cosim: Callable[[list[str]], int]
    console: Console
    verbose: bool = False
    quiet: bool = False
    steps: list[tuple[str, float, str]] = field(default_factory=list)
    sims: dict[str, dict] = field(default_factory=dict)
    artifacts: dict[str, Path] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)  # checks that failed (exit status 1)
    progress: Any = None
    task: Any = None

    @property
    def build(self) -> Path:
        return self.project.build

    @property
    def logs(self) -> Path:
        return self.build / "logs"

    def log_of(self, name: str) -> Path:
        return self.logs / f"{len(self.steps) + 1}-{name}.log"

    # ---- running things

    def cosim(self, argv: list[str], log: Path) -> None:
        """One cosim command in this process, its output in `log` (shown with -v)."""
        argv = [*argv, "-v" if self.verbose else "-q"]
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("w") as handle:
            out = _Tee(handle, sys.stdout) if self.verbose else handle
            err = _Tee(handle, sys.stderr) if self.verbose else handle
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                print(f"$ cosim {' '.join(argv)}", flush=True)
                status = self.run_cosim(argv)
        if status == 1:
            raise StepFailed(f"cosim {argv[0]} exited with status 1; see {log}")
        if status != 0:
            raise RunError(f"cosim {argv[0]} failed (exit {status}; log {log}): {_tail(log)}")

    def python(self, code: str, log: Path, env: dict[str, str]) -> None:
        """A Python process (the simulator runs), output in `log` (and shown with -v);
        COSIM_BUILD points every cosim build path at the project's build folder."""
        log.parent.mkdir(parents=True, exist_ok=True)
        full_env = {**os.environ, **env, "COSIM_BUILD": str(self.build)}
        with log.open("w") as handle:
            process = subprocess.Popen([sys.executable, "-c", code], cwd=self.build,
                                       stdout=subprocess.PIPE if self.verbose else handle,
                                       stderr=subprocess.STDOUT, env=full_env, text=True)
            if self.verbose:
                assert process.stdout is not None
                for line in process.stdout:
                    handle.write(line)
                    self.console.print(line.rstrip("\n"), markup=False, highlight=False)
            process.wait()
        if process.returncode != 0:
            raise RunError(f"failed (exit {process.returncode}; log {log}): {_tail(log)}")

    def step(self, name: str, action: Callable[[], str]) -> None:
        """Run one step with progress display; record its time and outcome."""
        if self.verbose:
            self.console.rule(f"[bold]{len(self.steps) + 1}. {name}")
        elif self.progress is not None:
            self.progress.update(self.task, description=name)
        start = time.perf_counter()
        try:
            outcome = action()
        except RunError as error:
            raise RunError(f"{name}: {error}") from None
        seconds = time.perf_counter() - start
        self.steps.append((name, seconds, outcome))
        if self.progress is not None:
            self.progress.advance(self.task)
            self.progress.console.print(f"[green]✓[/green] {name} ({seconds:.1f} s): "
                                        f"{outcome}", highlight=False)
        elif not self.verbose and not self.quiet:
            self.console.print(f"✓ {name} ({seconds:.1f} s): {outcome}", highlight=False)


# --------------------------------------------------------------------------- the steps


def _package_argv(project: Project, package: Path) -> list[str]:
    """`cosim package` for the project's model, data and quantization options."""
    argv = ["package", "--out", str(package), "--images", str(project.images),
            "--checkpoint", str(project.checkpoint)]
    if project.arch:
        argv += ["--model", project.arch]
    for key, value in project.model_args.items():
        argv += ["--model-arg", f"{key}={_arg_text(value)}"]
    data = project.data
    for key, flag in (("name", "--data"), ("root", "--root"), ("image_size", "--image-size"),
                      ("imagenette_size", "--imagenette-size")):
        if data.get(key) is not None:
            argv += [flag, str(data[key])]
    if data.get("download"):
        argv.append("--download")
    quant = project.quant
    for key, flag in (("method", "--method"), ("weight_range", "--weight-range"),
                      ("calibration_images", "--calibration-images"),
                      ("qat_epochs", "--qat-epochs"), ("qat_lr", "--qat-lr"),
                      ("seed", "--seed")):
        if quant.get(key) is not None:
            argv += [flag, str(quant[key])]
    if quant.get("per_channel"):
        argv.append("--per-channel")
    if quant.get("cle") is False:
        argv.append("--no-cle")
    if quant.get("bias_correction"):
        argv.append("--bias-correction")
    return argv


def _arg_text(value: Any) -> str:
    """A model argument as `--model-arg` parses it back (quant.model.parse_model_value)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ",".join(_arg_text(v) for v in value) + "]"
    return repr(value)


def _sim_code(project: Project, sim: str, module: str, testcase: str, env: dict[str, str],
              plusargs: list[str], tag: str | None = None, waves: bool = False,
              record: Path | None = None) -> str:
    """The simulator process: cosim.tb.sim.run_cocotb on the project's sources and top,
    with the layout package of COCOSIM_PACKAGE/COCOSIM_GOLDEN compiled first."""
    sources = None if project.reference_rtl else [str(p) for p in project.sources]
    lines = [
        "import json, sys",
        "from pathlib import Path",
        "from cosim.tb import sim",
        f"env = {env!r}",
        f"sources = {sources!r}",
        "if sources is not None:",
        "    sources = [sim.select_network(env, check=False).sources[0], *sources]",
        f"xml = sim.run_cocotb({sim!r}, {module!r}, {testcase!r}, extra_env=env, "
        f"plusargs={plusargs!r}, sources=sources, toplevel={project.top!r}, "
        f"waves={waves!r}, tag={tag!r}, check=False)",
    ]
    if record is not None:  # where the waves are and which tests failed
        lines.append(f"run_dir = sim.run_dir_of({sim!r}, {module!r}, {testcase!r}, {tag!r})")
        lines.append("tests, failed = sim.results_summary(xml)")
        lines.append(f"Path({str(record)!r}).write_text(json.dumps("
                     "{'waves': str(run_dir / sim.WAVES_FILE), 'tests': tests, "
                     "'failed': failed}))")
    return "\n".join(lines) + "\n"


def _prepare(project: Project, force: bool) -> None:
    """Check every folder the run writes before the first step (quant/outdir.py)."""
    from cosim.quant.outdir import check_output, is_tool_folder, prepare_output_dir

    inputs = [project.checkpoint, *project.sources, project.root]
    if project.path is not None:
        inputs.append(project.path)
    if project.accelerator is not None:
        inputs.append(project.accelerator)
    from cosim.quant.workdir import checkout_root

    checkout = checkout_root()
    if checkout is not None:
        inputs.append(checkout)
    prepare_output_dir(project.build, "build", force=force, inputs=inputs, any_folder=True)
    for name in ("package", "golden", "report", "logs"):
        check_output(project.build / name, folder=True, force=force, inputs=inputs)
    logs = prepare_output_dir(project.build / "logs", "run-logs", force=force)
    if is_tool_folder(logs):  # a previous run's logs (never a forced foreign folder's files)
        for stale in [*logs.glob("*.log"), *logs.glob("memory-*.hex"), logs / "waves.json"]:
            if stale.is_file() and not stale.is_symlink():
                stale.unlink()
    prepare_output_dir(project.build / "report", "report", force=force)


@contextlib.contextmanager
def _build_folder(build: Path):
    """COSIM_BUILD = the project's build folder while the run's steps run in this process
    (what they write by default, e.g. a crash report, goes there too)."""
    before = os.environ.get("COSIM_BUILD")
    os.environ["COSIM_BUILD"] = str(build)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("COSIM_BUILD", None)
        else:
            os.environ["COSIM_BUILD"] = before


def run_project(project: Project, run_cosim: Callable[[list[str]], int], *,
                force: bool = False, verbose: bool = False, quiet: bool = False,
                title: str = "cosim run", command: str | None = None) -> int:
    """Run the whole flow for `project`; print the summary; 0 when every check passed,
    1 when one failed (RunError, one line, for user mistakes). `command`: how to rerun
    it, for the report (default `cosim run --project <file>`)."""
    _prepare(project, force)
    console = _console()
    run = _Run(project, run_cosim, console, verbose=verbose, quiet=quiet)
    build = project.build
    package, golden = build / "package", build / "golden"
    forced = ["--force"] if force else []
    if project.arch and ":" in project.arch and str(project.root) not in sys.path:
        sys.path.insert(0, str(project.root))  # the factory's module lives in the project
    accel: list[str] = []
    sim_accel: dict[str, str] = {}
    if project.accelerator is not None:
        accel = ["--accel", str(project.accelerator)]
        sim_accel = {"COCOSIM_ACCEL": str(project.accelerator)}

    def quantize() -> str:
        run.cosim([*_package_argv(project, package), *forced], run.log_of("package"))
        report = json.loads((package / "report.json").read_text())
        return (f"int8 top-1 {report['int8_top1']:.2f}% (float {report['float_top1']:.2f}%), "
                f"rebuild identical {report['rebuild_identical_fraction']:.6f}")

    def lay_out() -> str:
        run.cosim(["golden", "--package", str(package), "--out", str(golden), *accel,
                   *forced], run.log_of("golden"))
        layout = json.loads((golden / "layout.json").read_text())
        return (f"{layout['used_words']:,} words of {layout['config']['word_bits']} bits "
                f"({project.accelerator_name})")

    def verify() -> str:
        run.cosim(["golden-verify", "--package", str(package), "--out", str(golden),
                   "--images", str(project.golden_images),
                   "--images-224", str(project.golden_images_224),
                   "--rounding", project.rounding.replace("_", "-"), *forced],
                  run.log_of("golden-verify"))
        report = json.loads((golden / "verify.json").read_text())
        same = sum(layer["identical_fraction"] == 1.0 for layer in report["layers"])
        return (f"{same}/{len(report['layers'])} layers identical on {report['images']} "
                f"images ({project.rounding.replace('_', '-')})")

    def simulate(sim: str) -> str:
        results = build / "test-results"
        env = {"COCOSIM_SIM": sim, "COCOSIM_RESULTS": str(results),
               "COCOSIM_PACKAGE": str(package), "COCOSIM_GOLDEN": str(golden), **sim_accel}
        dump = build / "logs" / f"memory-{sim}.hex"
        summary = results / f"{project.test}-{sim}.json"
        summary.unlink(missing_ok=True)
        log = run.log_of(f"sim-{sim}")
        run.python(_sim_code(project, sim, project.test_module, project.test, env,
                             [f"+DUMP_FILE={dump}"]), log, env)
        if not summary.is_file():
            raise RunError(f"{project.test} on {sim} ended before writing its summary "
                           f"(log {log}): {_failure(log)}")
        result = json.loads(summary.read_text())
        if result.get("prerun_error"):
            raise RunError(f"pre-run check on {sim}: {result['prerun_error']}")
        run.sims[sim] = result
        return (f"{result['words_checked']:,}/{result['words_expected']:,} writes, "
                f"{result['mismatches']} mismatches")

    def record_waves() -> str:
        """A short WAVES=1 run on Icarus: the bare test streaming the first two and the
        last layer for the default layout (one-word headers), else the pyuvm
        RandomSubsetTest (any accelerator file)."""
        from cosim.golden.layout import LayoutConfig

        config = json.loads((golden / "layout.json").read_text())["config"]
        env = {"COCOSIM_PACKAGE": str(package), "COCOSIM_GOLDEN": str(golden), **sim_accel}
        record = build / "logs" / "waves.json"
        record.unlink(missing_ok=True)
        if LayoutConfig(**config) == LayoutConfig():
            manifest = json.loads((package / "manifest.json").read_text())
            last = sum(layer["op"] in ("conv2d", "linear") for layer in manifest["layers"]) - 1
            layers = ",".join(str(i) for i in sorted({0, min(1, last), last}))
            what = f"layers {layers}"
            env |= {"BARE_LAYERS": layers, "BARE_BENCH_DIR": "", "BARE_GOLDEN_DIR": str(golden)}
            code = _sim_code(project, "icarus", "cosim.tb.test_bare", "bare_loop", env, [],
                             tag="demo-waves", waves=True, record=record)
        else:
            what = "RandomSubsetTest"
            env |= {"COCOSIM_SIM": "icarus",  # its summary apart from the run's own tests
                    "COCOSIM_RESULTS": str(build / "test-results" / "waves")}
            dump = build / "logs" / "memory-waves.hex"
            code = _sim_code(project, "icarus", "cosim.tb.tests_uvm", "RandomSubsetTest", env,
                             [f"+DUMP_FILE={dump}"], tag="waves", waves=True, record=record)
        log = run.log_of("waves")
        run.python(code, log, env)
        result = json.loads(record.read_text()) if record.is_file() else {}
        fst = Path(result["waves"]) if result.get("waves") else None
        if fst is None or not fst.is_file():
            raise RunError(f"the waves run left no waves file (log {log}): {_failure(log)}")
        run.artifacts["waves"] = fst
        if result.get("failed") or not result.get("tests"):
            run.failed.append(f"the waves run's {what} failed (log {log})")
            return f"{what} FAILED: {fst}"
        return f"{what}: {fst}"

    def report() -> str:
        from cosim.report import build_report

        info = project.describe()
        info["command"] = command or f"cosim run --project {project.path}"
        run.artifacts["report"] = build_report(build, waves=run.artifacts.get("waves"),
                                               project=info)
        return str(run.artifacts["report"])

    plan: list[tuple[str, Callable[[], str]]] = [
        ("quantize, export, rebuild check", quantize),
        (f"golden stream and memory image ({project.accelerator_name})", lay_out),
        ("golden model vs PyTorch, every layer", verify),
        *[(f"RTL on {sim} ({project.top}, {project.stimulus}, pyuvm {project.test})",
           lambda sim=sim: simulate(sim)) for sim in project.simulators],
        *([("waves", record_waves)] if project.waves else []),
        ("report", report),
    ]
    progress_cm: Any = contextlib.nullcontext()
    if not verbose and not quiet and console.is_terminal:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        run.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                MofNCompleteColumn(), TimeElapsedColumn(), console=console,
                                redirect_stdout=False, redirect_stderr=False, transient=True)
        run.task = run.progress.add_task("starting", total=len(plan))
        progress_cm = run.progress
    if not quiet:
        console.print(f"{title}: project {project.name}"
                      + (f" ({project.path})" if project.path else "")
                      + f", build folder {build}", highlight=False)
    try:
        with progress_cm, _build_folder(build):
            for name, action in plan:
                run.step(name, action)
    except StepFailed as error:
        console.print(f"[red]{title}: {error}[/red]", highlight=False)
        return 1
    _summary(run, title)
    failed = [f"{project.test} on {sim}" for sim, summary in run.sims.items()
              if summary["mismatches"] or summary["words_checked"] != summary["words_expected"]]
    failed += run.failed
    if failed:
        console.print(f"[red]{title}: failed: {'; '.join(failed)}[/red]", highlight=False)
    return 1 if failed else 0


def _summary(run: _Run, title: str) -> None:
    """The closing table: what the run proved, with its numbers."""
    build, project = run.build, run.project
    package = json.loads((build / "package" / "report.json").read_text())
    verify = json.loads((build / "golden" / "verify.json").read_text())
    manifest = json.loads((build / "package" / "manifest.json").read_text())
    layout = json.loads((build / "golden" / "layout.json").read_text())
    identical = sum(layer["identical_fraction"] == 1.0 for layer in verify["layers"])
    table = Table(title=f"{title}: summary", title_justify="left")
    table.add_column("check")
    table.add_column("result", justify="right")
    table.add_row("project", project.name)
    table.add_row("network", f"{manifest['model'].get('arch')}, "
                  f"{manifest['model'].get('weighted_layers')} weighted layers, "
                  f"{manifest['model'].get('weights'):,} weights")
    table.add_row("accelerator", f"{project.accelerator_name}, "
                  f"{layout['config']['word_bits']}-bit words, depth {layout['depth']:,}")
    table.add_row("RTL top", f"{project.top} ({len(project.sources)} sources, "
                  f"{project.stimulus})")
    table.add_row(f"float top-1 ({package.get('test_split', 'test split')})",
                  f"{package['float_top1']:.2f}%")
    table.add_row("int8 top-1, po2 scales", f"{package['int8_top1']:.2f}% "
                  f"(drop {package['top1_drop']:.2f} points)")
    table.add_row("package rebuilt from txt files = reference",
                  f"{package['rebuild_identical_fraction']:.6f} identical")
    table.add_row("golden integer model = PyTorch",
                  f"{identical}/{len(verify['layers'])} layers identical on "
                  f"{verify['images']} images")
    word_bytes = layout["config"]["word_bits"] / 8
    for sim, summary in run.sims.items():
        table.add_row(f"RTL on {sim}: writes checked / mismatches",
                      f"{summary['words_checked']:,}/{summary['words_expected']:,} / "
                      f"{summary['mismatches']}")
        table.add_row(f"RTL on {sim}: throughput",
                      f"{summary['words_per_s']:,} words/s "
                      f"({summary['words_per_s'] * word_bytes / 1e3:,.0f} kB/s)")
    for name, seconds, _ in run.steps:
        table.add_row(f"time: {name}", f"{seconds:.1f} s")
    table.add_row("total time", f"{sum(seconds for _, seconds, _ in run.steps):.1f} s")
    run.console.print(table)
    run.console.print(f"report: {run.artifacts['report']}", highlight=False)


def _sims(text: str) -> list[str]:
    return [s for s in text.split(",") if s]


def _cmd_run(args: argparse.Namespace) -> int:
    from cosim.project import SIMULATORS, ProjectError

    path = args.project or Path(PROJECT_FILE)
    if path.is_dir():  # a project folder: its cosim.toml
        path = path / PROJECT_FILE
    project = load_project(path, build=args.build)
    if args.sims is not None:
        unknown = [sim for sim in args.sims if sim not in SIMULATORS]
        if unknown or not args.sims:
            raise ProjectError(path, "--sims", f"expected a comma-separated list of "
                               f"{', '.join(SIMULATORS)}, got {','.join(args.sims)!r}")
        project = project.with_options(simulators=tuple(args.sims))
    if args.no_waves:
        project = project.with_options(waves=False)
    return run_project(project, args.run_cosim, force=args.force, verbose=args.verbose,
                       quiet=args.quiet)


def register(subparsers: Any, parents: Any = (),
             run_cosim: Callable[[list[str]], int] | None = None) -> argparse.ArgumentParser:
    """Add `cosim run` to a cosim parser. `run_cosim(argv) -> status` runs one cosim
    command in this process (cosim.cli.main, handed in so that this module does not
    import the CLI that imports it)."""
    parser = subparsers.add_parser(
        "run", parents=list(parents), help="the whole flow for a project file (cosim.toml)",
        description="Quantize, export, verify, lay out for the project's accelerator, "
                    "golden-verify, simulate the project's RTL on each simulator and write "
                    "the report, as the project file says (docs/your-repository.md). "
                    "Everything goes under the project's build folder.")
    parser.add_argument("--project", type=Path, default=None,
                        help=f"the project file, or a folder holding {PROJECT_FILE} "
                             f"(default: ./{PROJECT_FILE})")
    parser.add_argument("--build", type=Path, default=None,
                        help="build folder (default: the project's build.dir, else build "
                             "next to the project file)")
    parser.add_argument("--sims", type=_sims, default=None,
                        help="comma-separated simulators, instead of the project's")
    parser.add_argument("--no-waves", action="store_true", help="skip the short waves run")
    parser.add_argument("--force", action="store_true",
                        help="write into the build folder and replace its package/, golden/ "
                             "and report/ even if they are not folders this tool wrote")
    parser.set_defaults(handler=_cmd_run, run_cosim=run_cosim)
    return parser
