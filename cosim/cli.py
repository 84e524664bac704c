"""`cosim`: the command-line entry point of the flow.

    cosim train     train the float MobileNetV2-ReLU, write a checkpoint
    cosim quantize  po2 PTQ of a checkpoint, write a quantize result
    cosim export    write the parameter package from a quantize result
    cosim verify    validate a package and rebuild the model from its files
    cosim package   quantize + export + verify in one go, with report.json
    cosim golden    lay the package out in memory: stream, expected image, address map
    cosim golden-verify  NumPy integer model vs PyTorch, every layer, bit for bit
    cosim svpkg     the SystemVerilog layout package for an accelerator file
    cosim run       the whole flow for a project file (cosim.toml): all of the above,
                    the RTL simulation of the project's sources, and its report
    cosim demo      `cosim run` on the shipped project (cosim/projects/demo.toml)
    cosim mutate    the mutation test on the project's own RTL (mutants.toml)

User mistakes (missing or malformed files, bad options) print one line
`cosim: error: ...` and exit with status 2; no traceback.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from cosim.options import add_data_options, add_model_options, data_from_options, model_spec
from cosim.quant.choices import METHODS, SHIPPED_CHECKPOINT, WEIGHT_RANGE_NAMES
from cosim.quant.errors import OneLineArgumentParser, run_command

# torch and torchvision are imported by the handlers that need them, not here: the
# parser, `cosim check` and every option error start without them (quant/choices.py).

# Tables are wider than 80 columns; when output goes to a file or CI log, do not
# squeeze them to rich's default width.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 132)


def _add_quant_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("quantization")
    group.add_argument("--checkpoint", type=Path, default=SHIPPED_CHECKPOINT,
                       help="float checkpoint: a cosim checkpoint, or with --model a plain "
                            "state_dict or torchvision checkpoint (default: the shipped "
                            "digits MobileNetV2-ReLU)")
    add_model_options(group)
    group.add_argument("--method", choices=METHODS, default="mse",
                       help="po2 scale choice for weights and activations (default: %(default)s)")
    group.add_argument("--per-channel", action="store_true",
                       help="per-output-channel weight scales (default: per-tensor)")
    group.add_argument("--weight-range", choices=sorted(WEIGHT_RANGE_NAMES), default="guarded",
                       help="guarded: int8 weights limited to [-64, 64] so fbgemm never "
                            "saturates (bit-exact on any CPU); full: [-128, 127] "
                            "(default: %(default)s)")
    group.add_argument("--no-cle", action="store_true", help="skip cross-layer equalization")
    group.add_argument("--bias-correction", action="store_true",
                       help="empirical bias correction of the weight quantization error "
                            "(docs/quantization.md)")
    group.add_argument("--calibration-images", type=int, default=512,
                       help="training images used for calibration (default: %(default)s)")
    group.add_argument("--qat-epochs", type=int, default=0,
                       help="optional QAT fine-tune epochs with po2 fake-quant (default: 0)")
    group.add_argument("--qat-lr", type=float, default=1e-3, help="QAT learning rate")
    group.add_argument("--seed", type=int, default=0, help="seed (default: %(default)s)")
    add_data_options(parser, defaults=False)


def _add_force_option(parser: argparse.ArgumentParser, what: str) -> None:
    """--force: the one way past the --out policy of quant.outdir."""
    parser.add_argument("--force", action="store_true",
                        help=f"replace --out even if it is not {what} this tool wrote (a "
                             "foreign file or folder, a symbolic link: the link itself); "
                             "never /, home, the working directory or a folder holding "
                             "an input")


def _quant_config(args: argparse.Namespace) -> Any:
    """quant.ptq.QuantConfig from the options."""
    from cosim.quant.data import DataError
    from cosim.quant.ptq import QuantConfig

    if args.calibration_images < 1:
        raise DataError(f"--calibration-images must be >= 1, got {args.calibration_images}")
    if args.qat_epochs < 0:
        raise DataError(f"--qat-epochs must be >= 0, got {args.qat_epochs}")
    return QuantConfig(method=args.method, per_channel=args.per_channel,
                       weight_range=args.weight_range, cle=not args.no_cle,
                       calibration_images=args.calibration_images, qat_epochs=args.qat_epochs,
                       qat_lr=args.qat_lr, seed=args.seed,
                       bias_correction=args.bias_correction)


def _print_accuracy(result) -> None:
    table = Table(title="top-1 on the test split", title_justify="left")
    for column in ("dataset", "float %", "int8 %", "drop (points)", "agreement %",
                   "logit SQNR dB", "PTQ s"):
        table.add_column(column, justify="right")
    table.add_row(result.data.name, f"{result.float_top1:.2f}", f"{result.int8_top1:.2f}",
                  f"{result.float_top1 - result.int8_top1:+.2f}",
                  f"{result.top1_agreement:.2f}", f"{result.logit_sqnr_db:.1f}",
                  f"{result.seconds:.1f}")
    console.print(table)


def _print_graph_notes(result, verbose: bool) -> None:
    """With -v: what BN folding, CLE and bias correction did or skipped, and why."""
    notes = result.details.get("graph_notes") or []
    if verbose and notes:
        console.print(f"graph notes ({len(notes)}):")
        for note in notes:
            console.print(f"  {note}", markup=False)


def _print_check(check, package_dir: Path) -> None:
    table = Table(title=f"rebuild from {package_dir} (txt files only) vs reference model",
                  title_justify="left")
    for column in ("images", "int8 elements", "identical", "fraction", "top-1 ref %",
                   "top-1 rebuilt %"):
        table.add_column(column, justify="right")
    table.add_row(str(check.images), str(check.elements), str(check.identical_elements),
                  f"{check.identical_fraction:.6f}", f"{check.top1_reference:.2f}",
                  f"{check.top1_rebuilt:.2f}")
    console.print(table)


def _print_layers(manifest: dict) -> None:
    table = Table(title="weighted layers", title_justify="left")
    for column in ("#", "name", "kind", "weight shape", "x scale", "w scale", "y scale", "n",
                   "bias sat."):
        table.add_column(column, justify="right" if column != "name" else "left")
    weighted = [layer for layer in manifest["layers"] if layer["op"] in ("conv2d", "linear")]
    for index, layer in enumerate(weighted):
        w_scale = layer["weight"]["scale"]
        table.add_row(str(index), layer["name"], layer["kind"],
                      "x".join(map(str, layer["weight_shape"])),
                      f"2^{_log2(layer['input']['scale'])}",
                      "per-ch" if isinstance(w_scale, list) else f"2^{_log2(w_scale)}",
                      f"2^{_log2(layer['output']['scale'])}", str(layer["shift"]),
                      str(layer["bias_saturated"]))
    console.print(table)


def _log2(scale: float) -> int:
    from cosim.quant.po2 import log2_exact

    return log2_exact(scale)


def _quantize(args: argparse.Namespace) -> Any:
    """The quantize step of `quantize` and `package`: load the checkpoint once (never
    unpickled; --model names a plain or torchvision checkpoint, or a factory), take the
    data it records with the data options over it, and quantize (a QuantResult)."""
    from cosim.quant.data import DataConfig, DataError
    from cosim.quant.pipeline import quantize_module
    from cosim.quant.train import load_checkpoint

    spec = model_spec(args)
    float_model, info = load_checkpoint(args.checkpoint, model=spec,
                                        allow_import=spec is not None)
    recorded = info.get("data")
    data = data_from_options(args, DataConfig(**recorded) if recorded else None)
    if data is None:
        raise DataError(f"{args.checkpoint}: the checkpoint records no dataset; name it "
                        "with --data (and --root, --image-size)")
    return quantize_module(float_model, _quant_config(args), data, info=info,
                           quiet=args.quiet, where=str(args.checkpoint))


# --- subcommands -----------------------------------------------------------------------


def cmd_train(args: argparse.Namespace) -> int:
    from cosim.quant.data import DataError
    from cosim.quant.outdir import check_output
    from cosim.quant.train import TrainConfig, is_checkpoint, save_checkpoint, train_float

    if args.epochs < 1:
        raise DataError(f"--epochs must be >= 1, got {args.epochs}")
    data = data_from_options(args)
    spec = model_spec(args)
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                         width_mult=args.width_mult, seed=args.seed,
                         **({"model": spec} if spec is not None else {}))
    check_output(args.out, folder=False, force=args.force, recognize=is_checkpoint)
    checkpoint = train_float(data, config, quiet=args.quiet, allow_import=spec is not None)
    save_checkpoint(checkpoint, args.out, force=args.force)
    console.print(f"float top-1 {checkpoint['test_top1']:.2f}% on the {data.name} test split; "
                  f"checkpoint {args.out}")
    return 0


def cmd_quantize(args: argparse.Namespace) -> int:
    from cosim.quant.pipeline import check_quant_out, save_quant_result

    check_quant_out(args.out, args.force, [args.checkpoint])
    result = _quantize(args)
    save_quant_result(result, args.out, force=args.force, inputs=[args.checkpoint])
    _print_graph_notes(result, args.verbose)
    _print_accuracy(result)
    console.print(f"quantize result {args.out}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from cosim.quant.outdir import check_output
    from cosim.quant.pipeline import load_quant_result, run_export

    check_output(args.out, folder=True, force=args.force, inputs=[args.quantized])
    result = load_quant_result(args.quantized)
    manifest, seconds = run_export(result, args.out, force=args.force, inputs=[args.quantized])
    if args.verbose:
        _print_layers(manifest)
    console.print(f"package {args.out}: {manifest['model']['weighted_layers']} weighted layers, "
                  f"{manifest['model']['weights']:,} weights ({seconds:.1f} s)")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from cosim.quant.pipeline import run_verify, write_report
    from cosim.quant.verify import data_config

    package_dir = Path(args.package)
    from cosim.quant.package import load_package

    data = data_from_options(args, data_config(load_package(package_dir)))
    check = run_verify(package_dir, args.images, data, quiet=args.quiet)
    write_report(package_dir, None, check)
    _print_check(check, package_dir)
    if check.identical_fraction != 1.0:
        console.print("[red]rebuilt model differs from the reference model[/red]")
        return 1
    return 0


def cmd_package(args: argparse.Namespace) -> int:
    from cosim.quant.outdir import check_output
    from cosim.quant.pipeline import run_export, run_verify, write_report

    check_output(args.out, folder=True, force=args.force, inputs=[args.checkpoint])
    result = _quantize(args)
    manifest, export_seconds = run_export(result, args.out, force=args.force,
                                          inputs=[args.checkpoint])
    check = run_verify(args.out, args.images, result.data, quiet=args.quiet)
    write_report(args.out, result, check, {
        "export_seconds": export_seconds,
        "weighted_layers": manifest["model"]["weighted_layers"],
        "weights": manifest["model"]["weights"],
        "bias_saturated": sum(layer.get("bias_saturated", 0) for layer in manifest["layers"]),
    })
    if args.verbose:
        _print_layers(manifest)
    _print_graph_notes(result, args.verbose)
    _print_accuracy(result)
    _print_check(check, Path(args.out))
    console.print(f"package {args.out}: {manifest['model']['weighted_layers']} weighted layers, "
                  f"{manifest['model']['weights']:,} weights")
    console.print(f"report {Path(args.out) / 'report.json'}")
    return 0 if check.identical_fraction == 1.0 else 1


def _first_line(doc: str | None) -> str | None:
    """A module docstring's first sentence line, without a leading "`cosim x`: "."""
    lines = (doc or "").strip().splitlines()
    return re.sub(r"^`[^`]+`:\s*", "", lines[0]) if lines else None


def _register_svpkg(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    """`cosim svpkg` (cosim/cli_svpkg.py: add_arguments(parser), run(args)); its errors
    say `cosim svpkg: error: ...`, as when cli_svpkg runs alone."""
    from cosim import cli_svpkg

    parser = sub.add_parser("svpkg", parents=parents,
                            help="write the SystemVerilog layout package for an accelerator",
                            description=_first_line(cli_svpkg.__doc__))
    cli_svpkg.add_arguments(parser)
    parser.set_defaults(handler=lambda args: run_command("cosim svpkg",
                                                         lambda: cli_svpkg.run(args)))


def _register_mutate(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    """`cosim mutate` (cosim/cli_mutate.py: add_arguments(parser), run(args)); its errors
    say `cosim mutate: error: ...`, as when cli_mutate runs alone."""
    from cosim import cli_mutate

    parser = cli_mutate.add_arguments(sub.add_parser(
        "mutate", parents=parents, help="the mutation test on your RTL (mutants.toml)",
        description="Run the testbench on each mutant of the project's mutants.toml; every "
                    "one must fail it (docs/bring-your-own-rtl.md)."))
    parser.set_defaults(handler=lambda args: run_command(cli_mutate.PROG,
                                                         lambda: cli_mutate.run(args)))


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineArgumentParser(
        prog="cosim",
        description="po2 int8 quantization and parameter export for CNN accelerators.",
        epilog="Everything is written under build/ unless --out says otherwise. "
               "See docs/cli.md.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    common.add_argument("-v", "--verbose", action="store_true", help="print per-layer tables")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = sub.add_parser("train", parents=[common], help="train the float model",
                           description="Train a network from scratch (float; default "
                                       "MobileNetV2-ReLU, or --model).")
    add_data_options(train, defaults=True)
    add_model_options(train)
    train.add_argument("--epochs", type=int, default=30, help="default: %(default)s")
    train.add_argument("--batch-size", type=int, default=64, help="default: %(default)s")
    train.add_argument("--lr", type=float, default=0.05, help="peak SGD lr (default: %(default)s)")
    train.add_argument("--width-mult", type=float, default=1.0, help="default: %(default)s")
    train.add_argument("--seed", type=int, default=0, help="default: %(default)s")
    train.add_argument("--out", type=Path, default=Path("build/checkpoint.pt"),
                       help="checkpoint to write (default: %(default)s)")
    _add_force_option(train, "a file")
    train.set_defaults(handler=cmd_train)

    quantize = sub.add_parser("quantize", parents=[common], help="po2 PTQ of a checkpoint",
                              description="Quantize a float checkpoint with po2 scales and "
                                          "measure float vs int8 top-1.")
    _add_quant_options(quantize)
    quantize.add_argument("--out", type=Path, default=Path("build/quantized.safetensors"),
                          help="quantize result to write (default: %(default)s)")
    _add_force_option(quantize, "a file")
    quantize.set_defaults(handler=cmd_quantize)

    export = sub.add_parser("export", parents=[common], help="write the parameter package",
                            description="Write the parameter package from a quantize result.")
    export.add_argument("--quantized", type=Path, default=Path("build/quantized.safetensors"),
                        help="quantize result (default: %(default)s)")
    export.add_argument("--out", type=Path, default=Path("build/package"),
                        help="package directory (default: %(default)s)")
    _add_force_option(export, "a folder")
    export.set_defaults(handler=cmd_export)

    verify = sub.add_parser("verify", parents=[common], help="check a package",
                            description="Validate every file of a package (sha256, formats, "
                                        "cross-checks) and rebuild the quantized model from "
                                        "its txt files; compare with the reference model.")
    verify.add_argument("--package", type=Path, default=Path("build/package"),
                        help="package directory (default: %(default)s)")
    verify.add_argument("--images", type=int, default=64,
                        help="test images compared (default: %(default)s)")
    add_data_options(verify, defaults=False)
    verify.set_defaults(handler=cmd_verify)

    package = sub.add_parser("package", parents=[common], help="quantize, export and verify",
                             description="The whole flow on a checkpoint: quantize, export, "
                                         "verify; writes report.json in the package.")
    _add_quant_options(package)
    package.add_argument("--out", type=Path, default=Path("build/package"),
                         help="package directory (default: %(default)s)")
    _add_force_option(package, "a folder")
    package.add_argument("--images", type=int, default=64,
                         help="test images in the rebuild check (default: %(default)s)")
    package.set_defaults(handler=cmd_package)

    from cosim.cli_golden import register as register_golden
    from cosim.cli_golden_verify import register as register_golden_verify

    register_golden(sub, parents=[common])
    register_golden_verify(sub, parents=[common])

    _register_svpkg(sub, parents=[common])
    _register_mutate(sub, parents=[common])

    from cosim.run import register as register_run

    register_run(sub, parents=[common], run_cosim=main)

    from cosim.demo import register as register_demo

    register_demo(sub, parents=[common], run_cosim=main)

    from cosim.check import register as register_check

    register_check(sub, parents=[common])
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run `cosim <command> ...`; the exit status follows quant.errors.run_command:
    0 success, 1 a failed check or a bug of the tool (traceback saved under
    build/crash/), 2 a user error (one line), 130 interrupted."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    return run_command("cosim", lambda: args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
