"""`cosim demo`: the whole flow on the offline default, step by step, then a summary.

Steps (each one is an ordinary `cosim` subcommand or the regular testbench,
so the demo shows exactly what a user runs by hand):

1. package        quantize the shipped checkpoint, export build/package/, rebuild check
2. golden         stream, expected memory image, address map (build/golden/)
3. golden-verify  NumPy integer model vs PyTorch on every layer (build/golden/verify.json)
4. simulate       the pyuvm whole-network test through the loader RTL (Icarus by default)
5. waves          a short run with WAVES=1, so the report can link an FST
6. report         build/report/index.html

Simulator output goes to build/demo/*.log; the terminal shows one line per step.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table

from cosim.options import add_data_options, add_model_options
from cosim.quant.choices import SHIPPED_CHECKPOINT
from cosim.quant.errors import UserError

REPO = Path(__file__).resolve().parents[1]
SIMS = ("icarus", "verilator")


class DemoError(UserError):
    """A demo step failed (one line: which step, and where its log is)."""


def _console() -> Console:
    return Console(highlight=False, width=None if sys.stdout.isatty() else 132)


def _run_logged(command: list[str], log: Path, console: Console, label: str,
                env: dict[str, str] | None = None) -> None:
    """Run a command with its output in `log`, showing a spinner with elapsed time."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as handle, console.status(f"{label} (log {log})") as status:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, cwd=REPO,
                                   env={**os.environ, **(env or {})})
        start = time.perf_counter()
        while process.poll() is None:
            status.update(f"{label}: {time.perf_counter() - start:.0f} s (log {log})")
            time.sleep(0.5)
    if process.returncode != 0:
        tail = log.read_text().strip().splitlines()[-3:]
        raise DemoError(f"{label} failed (exit {process.returncode}); see {log}: "
                        + " | ".join(line.strip() for line in tail))


def _simulate(sim: str, test: str, build: Path, console: Console) -> dict:
    """The pyuvm test on one simulator, on this run's package and golden image."""
    results = (build / "test-results").resolve()
    env = {"COCOSIM_SIM": sim, "COCOSIM_RESULTS": str(results),
           "COCOSIM_PACKAGE": str((build / "package").resolve()),
           "COCOSIM_GOLDEN": str((build / "golden").resolve())}
    dump = (build / "demo" / f"memory-{sim}.hex").resolve()
    code = ("from cosim.tb import sim; "
            f"sim.run_cocotb({sim!r}, 'cosim.tb.tests_uvm', {test!r}, extra_env={env!r}, "
            f"plusargs=['+DUMP_FILE={dump}'])")
    summary = results / f"{test}-{sim}.json"
    summary.unlink(missing_ok=True)
    _run_logged([sys.executable, "-c", code], build / "demo" / f"sim-{sim}.log", console,
                f"simulate {test} on {sim}")
    if not summary.is_file():
        raise DemoError(f"{test} on {sim} wrote no summary {summary}; see "
                        f"{build / 'demo' / f'sim-{sim}.log'}")
    return json.loads(summary.read_text())


def _waves(build: Path, console: Console) -> Path:
    """A short WAVES=1 run (the first two and the last weighted layer) so the report links
    a real FST."""
    log = build / "demo" / "waves.log"
    manifest = json.loads((build / "package" / "manifest.json").read_text())
    last = sum(layer["op"] in ("conv2d", "linear") for layer in manifest["layers"]) - 1
    layers = ",".join(str(i) for i in sorted({0, min(1, last), last}))
    env = {"BARE_LAYERS": layers, "BARE_BENCH_DIR": "",
           "COCOSIM_PACKAGE": str((build / "package").resolve()),
           "BARE_GOLDEN_DIR": str((build / "golden").resolve())}
    code = ("from cosim.tb import sim; "
            "sim.run_cocotb('icarus', 'cosim.tb.test_bare', 'bare_loop', waves=True, "
            "tag='demo-waves', "
            f"extra_env={env!r})")
    _run_logged([sys.executable, "-c", code], log, console,
                f"waves (layers {layers}, Icarus)")
    # tb/sim.py keeps every simulator run under the repository's build/sim/runs/
    from cosim.tb.sim import RUNS_ROOT

    fst = RUNS_ROOT / "icarus" / "test_bare.bare_loop.demo-waves" / \
        "cnn_param_top.fst"
    if not fst.is_file():
        raise DemoError(f"the waves run left no {fst}; see {log}")
    return fst


def run_demo(args: argparse.Namespace) -> int:
    """The demo's steps in order; prints a summary table; exit status 0 when all pass."""
    from cosim.quant.outdir import check_output, prepare_output_dir

    console = _console()
    build = Path(args.build)
    package, golden = build / "package", build / "golden"
    force = getattr(args, "force", False)
    forced = ["--force"] if force else []
    # --build is written into, never replaced; the folders the steps replace are
    # checked now, before the first step (quant/outdir.py)
    checkpoint = Path(args.checkpoint)
    prepare_output_dir(build, "build", force=force, inputs=[checkpoint, REPO],
                       any_folder=True)
    for folder in (package, golden, build / "report", build / "demo"):
        check_output(folder, folder=True, force=force, inputs=[checkpoint])
    prepare_output_dir(build / "demo", "demo-logs", force=force)
    prepare_output_dir(build / "report", "report", force=force)
    steps: list[tuple[str, float, str]] = []

    def step(name: str, action: Callable[[], str]) -> None:
        console.rule(f"[bold]{len(steps) + 1}. {name}")
        start = time.perf_counter()
        outcome = action()
        steps.append((name, time.perf_counter() - start, outcome))

    def cosim(argv: list[str]) -> None:
        status = args.run_cosim(argv)
        if status != 0:
            raise DemoError(f"cosim {' '.join(argv)} exited with status {status}")

    sims: dict[str, dict] = {}
    artifacts: dict[str, Path] = {}

    def quantize() -> str:
        cosim(["package", "--out", str(package), "--images", str(args.images),
               "--calibration-images", str(args.calibration_images),
               *_network_options(args), *forced])
        return str(package)

    def lay_out() -> str:
        cosim(["golden", "--package", str(package), "--out", str(golden), *forced])
        return str(golden)

    def verify() -> str:
        cosim(["golden-verify", "--package", str(package), "--out", str(golden),
               "--images", str(args.verify_images),
               "--images-224", str(args.verify_images_224), *forced])
        return str(golden / "verify.json")

    def simulate(sim: str) -> str:
        sims[sim] = summary = _simulate(sim, args.sim_test, build, console)
        return (f"{summary['words_checked']:,}/{summary['words_expected']:,} writes, "
                f"{summary['mismatches']} mismatches")

    def record_waves() -> str:
        artifacts["waves"] = _waves(build, console)
        return str(artifacts["waves"])

    def report() -> str:
        from cosim.report import build_report

        artifacts["report"] = build_report(build, waves=artifacts.get("waves"))
        return str(artifacts["report"])

    step("quantize, export, rebuild check", quantize)
    step("golden stream and memory image", lay_out)
    step("golden model vs PyTorch, every layer", verify)
    for sim in args.sims:
        step(f"RTL simulation on {sim} (pyuvm {args.sim_test})",
             lambda sim=sim: simulate(sim))
    if not args.no_waves:
        step("waves", record_waves)
    step("report", report)
    _summary(console, build, sims, steps, artifacts["report"])
    failed = [sim for sim, summary in sims.items()
              if summary["mismatches"] or summary["words_checked"] != summary["words_expected"]]
    return 1 if failed else 0


def _network_options(args: argparse.Namespace) -> list[str]:
    """The `cosim package` options that pick the network and its data."""
    options = ["--checkpoint", str(args.checkpoint)]
    if args.model:
        options += ["--model", args.model]
    for item in args.model_arg or ():
        options += ["--model-arg", item]
    for flag, value in (("--data", args.data), ("--root", args.root),
                        ("--image-size", args.image_size),
                        ("--imagenette-size", args.imagenette_size)):
        if value is not None:
            options += [flag, str(value)]
    return options + (["--download"] if args.download else [])


def _summary(console: Console, build: Path, sims: dict[str, dict],
             steps: list[tuple[str, float, str]], report: Path) -> None:
    """The closing table: what the run proved, with its numbers."""
    package = json.loads((build / "package" / "report.json").read_text())
    verify = json.loads((build / "golden" / "verify.json").read_text())
    identical = sum(layer["identical_fraction"] == 1.0 for layer in verify["layers"])
    table = Table(title="cnn-cosim demo: summary", title_justify="left")
    table.add_column("check")
    table.add_column("result", justify="right")
    manifest = json.loads((build / "package" / "manifest.json").read_text())
    table.add_row("network", f"{manifest['model'].get('arch')}, "
                  f"{manifest['model'].get('weighted_layers')} weighted layers, "
                  f"{manifest['model'].get('weights'):,} weights")
    table.add_row(f"float top-1 ({package.get('test_split', 'test split')})",
                  f"{package['float_top1']:.2f}%")
    table.add_row("int8 top-1, po2 scales", f"{package['int8_top1']:.2f}% "
                  f"(drop {package['top1_drop']:.2f} points)")
    table.add_row("package rebuilt from txt files = reference",
                  f"{package['rebuild_identical_fraction']:.6f} identical")
    table.add_row("golden integer model = PyTorch",
                  f"{identical}/{len(verify['layers'])} layers identical on "
                  f"{verify['images']} images")
    for sim, summary in sims.items():
        table.add_row(f"RTL on {sim}: writes checked / mismatches",
                      f"{summary['words_checked']:,}/{summary['words_expected']:,} / "
                      f"{summary['mismatches']}")
        table.add_row(f"RTL on {sim}: throughput",
                      f"{summary['words_per_s']:,} words/s "
                      f"({summary['words_per_s'] * 8 / 1e3:,.0f} kB/s)")
    for name, seconds, _ in steps:
        table.add_row(f"time: {name}", f"{seconds:.1f} s")
    table.add_row("total time", f"{sum(seconds for _, seconds, _ in steps):.1f} s")
    console.print(table)
    console.print(f"report: {report}")


def register(subparsers, parents=(),
             run_cosim: Callable[[list[str]], int] | None = None) -> argparse.ArgumentParser:
    """Add `cosim demo` to a cosim parser. `run_cosim(argv) -> status` runs one cosim
    command in this process (cosim.cli.main, handed in so that this module does not
    import the CLI that imports it)."""
    parser = subparsers.add_parser(
        "demo", parents=list(parents), help="the whole flow, offline, with a report",
        description="Quantize a checkpoint (default: the shipped MobileNetV2-ReLU), export, "
                    "build the golden image, verify the golden model, stream the network "
                    "through the RTL under the pyuvm environment, and write "
                    "build/report/index.html.")
    network = parser.add_argument_group("network (default: the shipped MobileNetV2-ReLU)")
    network.add_argument("--checkpoint", type=Path, default=SHIPPED_CHECKPOINT,
                         help="float checkpoint: a cosim checkpoint, or with --model a plain "
                              "state_dict / torchvision checkpoint (default: the shipped "
                              "one)")
    add_model_options(network)
    add_data_options(parser, defaults=False)
    parser.add_argument("--build", type=Path, default=Path("build"),
                        help="output root (default: %(default)s)")
    parser.add_argument("--sims", type=lambda text: [s for s in text.split(",") if s],
                        default=["icarus"],
                        help="comma-separated simulators: icarus, verilator (default: icarus)")
    parser.add_argument("--sim-test", default="WholeNetworkTest",
                        choices=("WholeNetworkTest", "RandomSubsetTest", "BackpressureTest"),
                        help="pyuvm test to run (default: %(default)s)")
    parser.add_argument("--calibration-images", type=int, default=512,
                        help="default: %(default)s")
    parser.add_argument("--images", type=int, default=64,
                        help="rebuild-check images (default: %(default)s)")
    parser.add_argument("--verify-images", type=int, default=54,
                        help="golden-verify images (default: %(default)s)")
    parser.add_argument("--verify-images-224", type=int, default=4,
                        help="golden-verify images at 224x224 (default: %(default)s)")
    parser.add_argument("--no-waves", action="store_true", help="skip the short waves run")
    parser.add_argument("--force", action="store_true",
                        help="write into --build and replace its package/, golden/ and "
                             "report/ even if they are not folders this tool wrote (a link "
                             "there is replaced, never followed); never /, home, the "
                             "working directory or a folder holding an input")
    parser.set_defaults(handler=_checked_run, run_cosim=run_cosim)
    return parser


def _checked_run(args: argparse.Namespace) -> int:
    unknown = [sim for sim in args.sims if sim not in SIMS]
    if unknown:
        raise DemoError(f"--sims: unknown simulator {unknown[0]!r}; expected {', '.join(SIMS)}")
    return run_demo(args)
