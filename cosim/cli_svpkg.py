"""Write the SystemVerilog layout package (cnn_layout_pkg.sv) for a network and an accelerator.

    cosim svpkg --accel FILE [--package DIR | --golden DIR] [--out DIR]

The network's weighted layers come from a parameter package (--package), from a golden
folder's layout.json (--golden: its layers, and its accelerator's layout unless --accel
is given), or by default from the shipped MobileNetV2-ReLU (as the committed
rtl/cnn_layout_pkg.sv). The layout is the accelerator file's (--accel: a path or a
shipped name; default: default.toml). The package is written to DIR/cnn_layout_pkg.sv
(default DIR: <build>/svpkg/<accelerator name>) under the --out policy of the other
commands. `add_arguments(parser)` adds the options to a parser; `main(argv)` runs the
command (user errors: one line, exit status 2).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from cosim.quant.errors import OneLineArgumentParser, run_command

__all__ = ["FILE_NAME", "add_arguments", "build_parser", "main", "write_svpkg"]

FILE_NAME = "cnn_layout_pkg.sv"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `cosim svpkg`."""
    from cosim.cli_golden import add_accel_option

    add_accel_option(parser, "the shipped default.toml; with --golden, the golden folder's "
                             "own layout")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--package", type=Path, default=None,
                        help="parameter package whose weighted layers are laid out")
    source.add_argument("--golden", type=Path, default=None,
                        help="golden folder (cosim golden --out) whose layout.json gives the "
                             "layers")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"output folder for {FILE_NAME} (default: "
                             "<build>/svpkg/<accelerator name>)")
    parser.add_argument("--force", action="store_true",
                        help="write into --out even if it is not a folder this tool wrote")


def build_parser() -> argparse.ArgumentParser:
    """A parser for `cosim svpkg` alone (argv without the subcommand name)."""
    parser = OneLineArgumentParser(prog="cosim svpkg", description=(__doc__ or "").split(
        "\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    parser.add_argument("-v", "--verbose", action="store_true", help="print the layout summary")
    add_arguments(parser)
    return parser


def write_svpkg(accel: Any = None, package: Path | None = None, golden: Path | None = None,
                out: Path | None = None, force: bool = False,
                command: str | None = None) -> tuple[Path, Any]:
    """Generate and write cnn_layout_pkg.sv; returns (file written, the Layout)."""
    from cosim.golden import svpkg
    from cosim.golden.accelerator import Accelerator, default_accelerator, load_accelerator
    from cosim.golden.layout import package_shapes
    from cosim.quant.formats import atomic_write_bytes
    from cosim.quant.outdir import check_output, prepare_output_dir
    from cosim.quant.workdir import build_root

    acc = (accel if isinstance(accel, Accelerator) else load_accelerator(accel)
           if accel is not None else None)
    inputs: list[Path] = []
    if golden is not None:
        from cosim.golden.layout import read_layout_json

        described, table = read_layout_json(golden / "layout.json")
        shapes = described.layers
        inputs.append(golden)
        source = f"{len(shapes)} weighted layers of the golden folder {golden}"
        if acc is None:
            layout = described
            name = (table.get("accelerator") or {}).get("name", "golden")
            accel_text = name + " (the golden folder's layout)"
        else:
            layout = acc.layout(shapes)
    else:
        if package is not None:
            from cosim.quant.package import load_package

            shapes = package_shapes(load_package(package))
            inputs.append(package)
            source = f"{len(shapes)} weighted layers of the package {package}"
        else:
            shapes = svpkg.model_shapes()
            source = (f"MobileNetV2-ReLU, 10 classes, per-tensor weights ({len(shapes)} "
                      "weighted layers; the shipped checkpoint)")
        acc = acc or default_accelerator()
        layout = acc.layout(shapes)
    if acc is not None:
        name = acc.name
        accel_text = f"{acc.name} ({acc.path}, sha256 {acc.sha256[:16]}...)"
    target = out if out is not None else build_root() / "svpkg" / name
    check_output(target, folder=True, force=force, inputs=inputs)
    made_by = command or ("cosim svpkg" + (f" --accel {acc.path}" if acc is not None else "")
                          + (f" --package {package}" if package is not None else "")
                          + (f" --golden {golden}" if golden is not None else "")
                          + f" --out {target}")
    text = svpkg.generate(layout, source, made_by=None, accelerator=accel_text)
    text = text.replace(f"//     {svpkg.MADE_BY}\n", f"//     {made_by}\n", 1)
    folder = prepare_output_dir(target, "svpkg", force=force, inputs=inputs)
    path = folder / FILE_NAME
    atomic_write_bytes(path, text.encode("ascii"))
    return path, layout


def main(argv: list[str] | None = None) -> int:
    """Run `cosim svpkg ...` (argv without the subcommand name); user errors print one
    line and return 2."""
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    return run_command("cosim svpkg", lambda: run(args))


def run(args: argparse.Namespace) -> int:
    """The body of `cosim svpkg` on parsed options (UserError subclasses for mistakes)."""
    path, layout = write_svpkg(args.accel, args.package, args.golden, args.out,
                               force=args.force)
    if not args.quiet:
        cfg = layout.config
        print(f"wrote {path}: {len(layout.layers)} layers, {cfg.word_bits}-bit words, "
              f"tile {cfg.tile_oc}x{cfg.tile_ic}, depth {layout.depth:,} words "
              f"({layout.mem_addr_bits} address bits, {cfg.address_unit} addresses)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
