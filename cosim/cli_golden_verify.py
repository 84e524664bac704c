"""`cosim golden-verify`: the golden model against PyTorch, every layer, on real images.

Writes `<out>/verify.json` (atomically) and prints a per-layer table. Exit status 0
when every layer is identical in half-even mode (half-up mode only reports), 1 when
a layer differs or the rebuilt model differs from reference_model.safetensors, 2 on a user
error (missing or malformed package, bad option).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from cosim.options import add_data_options, data_from_options
from cosim.quant.errors import OneLineArgumentParser, run_command
from cosim.quant.formats import atomic_write_bytes
from cosim.quant.outdir import check_output, prepare_output_dir

__all__ = ["add_arguments", "main", "register", "run"]

REPORT_NAME = "verify.json"


def _console() -> Console:
    return Console(highlight=False, width=None if sys.stdout.isatty() else 132)


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of golden-verify."""
    parser.add_argument("--package", type=Path, default=Path("build/package"),
                        help="package directory (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("build/golden"),
                        help=f"directory for {REPORT_NAME} (default: %(default)s)")
    parser.add_argument("--images", type=_count, default=54,
                        help="test images at the package's input size (default: %(default)s)")
    parser.add_argument("--images-224", type=_count, default=4,
                        help="test images at 224x224 (default: %(default)s)")
    parser.add_argument("--rounding", choices=("half-even", "half-up"), default=None,
                        help="requantization rounding of the golden model: half-even is "
                             "PyTorch's (must match exactly), half-up a typical hardware "
                             "shift (differences are reported) (default: the --accel "
                             "file's datapath.rounding, else half-even)")
    parser.add_argument("--accel", metavar="FILE", default=None,
                        help="accelerator file (path or shipped name) whose datapath.rounding "
                             "is the default of --rounding")
    parser.add_argument("--force", action="store_true",
                        help=f"write {REPORT_NAME} into --out even if it is not a folder "
                             "this tool wrote (a foreign folder; a file or symbolic link "
                             "there is replaced, never followed); never /, home, the "
                             "working directory or a folder holding the package")
    add_data_options(parser, defaults=False)


def register(subparsers: argparse._SubParsersAction,
             parents: list[argparse.ArgumentParser] | tuple = ()) -> argparse.ArgumentParser:
    """Add the `golden-verify` subcommand (handler in `handler`) to a cosim parser;
    `parents` supply the common -q/-v options."""
    parser = subparsers.add_parser(
        "golden-verify", parents=list(parents), help="golden model vs PyTorch, every layer",
        description="Run the NumPy golden model and the PyTorch model rebuilt from the "
                    "package on real test images and compare every layer's integer "
                    "output; write <out>/verify.json.")
    add_arguments(parser)
    parser.set_defaults(handler=run)
    return parser


def _table(report: dict) -> Table:
    half_up = report["rounding"] == "half_up"
    table = Table(title=f"golden ({report['rounding'].replace('_', '-')}) vs PyTorch, "
                        f"{report['images']} images ({report['images_224']} at 224x224)",
                  title_justify="left")
    columns = ["#", "layer", "op", "elements", "identical", "max |diff|"]
    if half_up:
        columns += ["differing", "alone"]
    for column in columns:
        table.add_column(column, justify="left" if column in ("layer", "op") else "right")
    for index, layer in enumerate(report["layers"]):
        fraction = layer["identical_fraction"]
        style = None if fraction == 1.0 or half_up else "red"
        row = [str(index), layer["name"], layer["op"], f"{layer['elements']:,}",
               f"{fraction:.6f}", f"{layer['max_abs_diff']:g}"]
        if half_up:
            row += [f"{layer['differing_fraction']:.4%}",
                    f"{layer['differing_fraction_isolated']:.4%}"]
        table.add_row(*row, style=style)
    return table


def _status(report: dict) -> int:
    if not report["reference_identical"]:
        return 1
    return 0 if report["rounding"] == "half_up" or report["identical"] else 1


def run(args: argparse.Namespace) -> int:
    """Run the comparison, write the report, print the table; the exit status."""
    from cosim.golden.verify import normalize_rounding, verify_golden  # torch: only when run
    from cosim.quant.data import DataError
    from cosim.quant.package import load_checked_package
    from cosim.quant.verify import data_config

    if args.images + args.images_224 < 1:
        raise DataError("--images and --images-224 are both 0; nothing to compare")
    rounding = args.rounding
    if rounding is None:
        rounding = "half-even"
        if getattr(args, "accel", None):
            from cosim.golden.accelerator import load_accelerator

            rounding = load_accelerator(args.accel).rounding
    force = getattr(args, "force", False)
    check_output(args.out, folder=True, force=force, inputs=[args.package])
    package = load_checked_package(args.package)
    data = data_from_options(args, data_config(package))  # --data/--root/... override
    report = verify_golden(package, images=args.images, images_224=args.images_224,
                           rounding=normalize_rounding(rounding), quiet=args.quiet,
                           data=data)
    out = prepare_output_dir(args.out, "golden", force=force, inputs=[args.package])
    path = Path(args.out) / REPORT_NAME
    atomic_write_bytes(out / REPORT_NAME, (json.dumps(report, indent=1) + "\n").encode())
    console = _console()
    console.print(_table(report))
    differing = [layer["name"] for layer in report["layers"]
                 if layer["identical_fraction"] != 1.0]
    if report["rounding"] == "half_even":
        verdict = (f"all {len(report['layers'])} layers identical" if not differing else
                   f"[red]{len(differing)} layer(s) differ, first {differing[0]}[/red]")
    else:
        verdict = f"{len(differing)} of {len(report['layers'])} layers differ (expected)"
    console.print(f"{verdict}; top-1 agreement {report['top1_agreement']:.2f}%; "
                  f"reference model "
                  f"{'identical' if report['reference_identical'] else '[red]differs[/red]'}")
    console.print(f"report {path}")
    return _status(report)


def main(argv: list[str] | None = None) -> int:
    """Standalone entry: `python -m cosim.cli_golden_verify [options]`."""
    parser = OneLineArgumentParser(prog="cosim golden-verify",
                                     description="Golden model vs PyTorch, every layer.")
    add_arguments(parser)
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    return run_command("cosim golden-verify", lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
