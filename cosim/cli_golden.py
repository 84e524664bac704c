"""`cosim golden`: write the parameter stream, expected memory image and address map.

    cosim golden --package build/package --out build/golden [--accel FILE] [overrides]

The layout comes from an accelerator file (`--accel`, a path or a shipped name such as
acc32_16x16; default: the shipped default.toml, docs/accelerator-file.md). The older
layout options (--word-bits, --tile-oc, --tile-ic, --kernel-order, --segment-align,
--region-align) override the file's value; a combination the layout refuses is a
one-line error. layout.json records the accelerator (name, sha256, path, overrides).

`register(subparsers)` adds the subcommand to a `cosim` parser (handler in the
`handler` default, like the other subcommands); `main(argv)` runs a parser with
only this subcommand. User errors are PackageError (package problems),
AcceleratorError (the accelerator file) and LayoutError (bad layout options): one
line, exit status 2 from `main`.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cosim.golden.layout import KERNEL_ORDERS, Layout, LayoutConfig
from cosim.quant.errors import OneLineArgumentParser, run_command

__all__ = ["OVERRIDES", "add_accel_option", "add_layout_options", "build_parser", "cmd_golden",
           "layout_config", "main", "make_golden", "register"]

#: Layout override options: option -> LayoutConfig field.
OVERRIDES = {"--word-bits": "word_bits", "--tile-oc": "tile_oc", "--tile-ic": "tile_ic",
             "--kernel-order": "kernel_order", "--segment-align": "segment_align",
             "--region-align": "region_align"}


def add_accel_option(parser: argparse.ArgumentParser | Any, default_help: str = "the "
                     "shipped default.toml (today's 64-bit layout)") -> None:
    """--accel FILE: an accelerator file or the name of a shipped one."""
    from cosim.golden.accelerator import SHIPPED_ACCELERATORS

    parser.add_argument("--accel", metavar="FILE", default=None,
                        help="accelerator file (TOML, docs/accelerator-file.md) or a shipped "
                             f"name ({', '.join(SHIPPED_ACCELERATORS)}); default: "
                             f"{default_help}")


def add_layout_options(parser: argparse.ArgumentParser) -> None:
    """--accel and the LayoutConfig override options (default: the file's value)."""
    group = parser.add_argument_group(
        "layout (alignments in words; each option overrides the accelerator file)")
    add_accel_option(group)
    group.add_argument("--word-bits", type=int, default=None,
                       help="memory word width, a multiple of 8 in [8, 1024]")
    group.add_argument("--tile-oc", type=int, default=None, help="output-channel tile")
    group.add_argument("--tile-ic", type=int, default=None,
                       help="input-channel tile (independent of the word width)")
    group.add_argument("--kernel-order", choices=KERNEL_ORDERS, default=None,
                       help="kh_kw: kh outer, kw inner (swaps kh and kw in the file's loop "
                            "orders when it differs)")
    group.add_argument("--segment-align", type=int, default=None,
                       help="every segment base is a multiple of this")
    group.add_argument("--region-align", type=int, default=None,
                       help="every region base is a multiple of this")


def _with_overrides(config: LayoutConfig, values: dict[str, Any]) -> LayoutConfig:
    """`config` with the given LayoutConfig fields replaced (LayoutError if refused)."""
    changes = {k: v for k, v in values.items() if v is not None}
    order = changes.pop("kernel_order", None)
    if order is not None and order != config.kernel_order:
        swap = {"kh": "kw", "kw": "kh"}
        changes["weight_loop_order"] = tuple(swap.get(n, n) for n in config.weight_loop_order)
        changes["depthwise_loop_order"] = tuple(swap.get(n, n)
                                                for n in config.depthwise_loop_order)
        changes["kernel_order"] = order
    elif order is not None:
        changes["kernel_order"] = order
    if "tile_ic" in changes and config.tile_dw == config.tile_ic:
        changes["tile_dw"] = changes["tile_ic"]  # tile.dw follows tile.ic unless set apart
    return dataclasses.replace(config, **changes) if changes else config


def layout_config(args: argparse.Namespace, accelerator: Any = None) -> LayoutConfig:
    """LayoutConfig of the accelerator (default: args.accel, else default.toml) with the
    override options applied; LayoutError if they are inconsistent."""
    if accelerator is None:
        accelerator = _accelerator(args)
    values = {field: getattr(args, opt[2:].replace("-", "_"), None)
              for opt, field in OVERRIDES.items()}
    return _with_overrides(accelerator.layout_config, values)


def _accelerator(args: argparse.Namespace) -> Any:
    from cosim.golden.accelerator import default_accelerator, load_accelerator

    accel = getattr(args, "accel", None)
    return load_accelerator(accel) if accel else default_accelerator()


def _overrides(args: argparse.Namespace) -> list[str]:
    """The override options given, as 'OPTION VALUE' strings (recorded in layout.json)."""
    out = []
    for opt in OVERRIDES:
        value = getattr(args, opt[2:].replace("-", "_"), None)
        if value is not None:
            out.append(f"{opt} {value}")
    return out


def make_golden(package_dir: Path, out: Path, config: LayoutConfig | None = None,
                force: bool = False, plot: bool = True, accelerator: Any = None,
                overrides: Sequence[str] = ()) -> tuple[Layout, Any]:
    """Check the package (every check verify makes, before writing), lay it out with
    `config` (default: the accelerator's) and write the golden files into `out` under
    the --out policy (quant.outdir); returns (layout, golden.image.write_golden's
    result). `accelerator` (golden.accelerator.Accelerator, default default.toml when
    config is None too) is recorded in layout.json with `overrides`."""
    from cosim.golden.accelerator import default_accelerator
    from cosim.golden.image import write_golden
    from cosim.golden.layout import package_shapes
    from cosim.quant.outdir import check_output, prepare_output_dir
    from cosim.quant.package import load_checked_package

    if accelerator is None and config is None:
        accelerator = default_accelerator()
    check_output(out, folder=True, force=force, inputs=[package_dir])
    package = load_checked_package(package_dir)
    if accelerator is not None:
        layout = accelerator.layout(package_shapes(package), config, overrides)
    else:
        layout = Layout.from_package(package, config)
    target = prepare_output_dir(out, "golden", force=force, inputs=[package_dir])
    return layout, write_golden(package, layout, target, plot=plot)


def cmd_golden(args: argparse.Namespace) -> int:
    """Handler: load the package, lay it out, write the golden files, print a summary."""
    accelerator = _accelerator(args)
    config = layout_config(args, accelerator)
    layout, result = make_golden(args.package, args.out, config,
                                 force=getattr(args, "force", False), plot=not args.no_plot,
                                 accelerator=accelerator, overrides=_overrides(args))
    regions = ", ".join(f"{r.name} {r.used:,}" for r in layout.regions)
    print(f"golden {args.out}: depth {layout.depth:,} words of {config.word_bits} bits "
          f"({layout.addr_bits} address bits), {layout.used_words:,} stored ({regions})")
    print(f"stream {result.stream_words:,} words in {3 * len(layout.layers)} segments; "
          f"image built in {result.build_seconds:.2f} s, files written in "
          f"{result.write_seconds:.2f} s")
    extra = f", overrides {', '.join(_overrides(args))}" if _overrides(args) else ""
    print(f"accelerator {accelerator.name} ({accelerator.path}{extra})")
    if getattr(args, "verbose", False):
        for name, path in result.files.items():
            print(f"  {name:<20} {path}")
    return 0


def register(subparsers: Any, parents: Sequence[argparse.ArgumentParser] = ()
             ) -> argparse.ArgumentParser:
    """Add the `golden` subcommand to `subparsers` (from add_subparsers); return it."""
    parser = subparsers.add_parser(
        "golden", parents=list(parents), help="write the stream and expected memory image",
        description="Lay out a parameter package in the accelerator's parameter memory and "
                    "write the stream (stream.hex), the expected image (image.hex, "
                    "image.npz), the address map and layout.json, for the accelerator of "
                    "--accel (default: the shipped default.toml). See docs/layout.md and "
                    "docs/accelerator-file.md.")
    parser.add_argument("--package", type=Path, default=Path("build/package"),
                        help="package directory (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("build/golden"),
                        help="output directory (default: %(default)s)")
    parser.add_argument("--no-plot", action="store_true", help="skip memory_map.png")
    parser.add_argument("--force", action="store_true",
                        help="write into --out even if it is not a folder this tool wrote "
                             "(a foreign folder; a file or symbolic link there is replaced, "
                             "never followed); never /, home, the working directory or a "
                             "folder holding the package")
    add_layout_options(parser)
    parser.set_defaults(handler=cmd_golden)
    return parser


def build_parser() -> argparse.ArgumentParser:
    """A `cosim`-like parser with only the golden subcommand."""
    parser = OneLineArgumentParser(prog="cosim")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    common.add_argument("-v", "--verbose", action="store_true", help="list the files written")
    register(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"),
             parents=[common])
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run `cosim golden ...`; user errors print one line and return 2."""
    args = build_parser().parse_args(argv)
    return run_command("cosim", lambda: args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
