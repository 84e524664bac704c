"""`cosim golden`: write the parameter stream, expected memory image and address map.

    cosim golden --package build/package --out build/golden [layout options]

`register(subparsers)` adds the subcommand to a `cosim` parser (handler in the
`handler` default, like the other subcommands); `main(argv)` runs a parser with
only this subcommand. User errors are PackageError (package problems) and
LayoutError (bad layout options): one line, exit status 2 from `main`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cosim.golden.layout import KERNEL_ORDERS, Layout, LayoutConfig
from cosim.quant.errors import OneLineArgumentParser, run_command

__all__ = ["add_layout_options", "build_parser", "cmd_golden", "layout_config",
           "main", "register"]


def add_layout_options(parser: argparse.ArgumentParser) -> None:
    """The LayoutConfig options (defaults from LayoutConfig)."""
    d = LayoutConfig()
    group = parser.add_argument_group("layout (alignments in words)")
    group.add_argument("--word-bits", type=int, default=d.word_bits,
                       help="memory word width, a multiple of 64 (default: %(default)s)")
    group.add_argument("--tile-oc", type=int, default=d.tile_oc,
                       help="output-channel tile (default: %(default)s)")
    group.add_argument("--tile-ic", type=int, default=d.tile_ic,
                       help="input-channel tile = int8 lanes per word, word_bits / 8 "
                            "(default: %(default)s)")
    group.add_argument("--kernel-order", choices=KERNEL_ORDERS, default=d.kernel_order,
                       help="kh_kw: kh outer, kw inner (default: %(default)s)")
    group.add_argument("--segment-align", type=int, default=d.segment_align,
                       help="every segment base is a multiple of this (default: %(default)s)")
    group.add_argument("--region-align", type=int, default=d.region_align,
                       help="every region base is a multiple of this (default: %(default)s)")


def layout_config(args: argparse.Namespace) -> LayoutConfig:
    """LayoutConfig from parsed options; LayoutError if they are inconsistent."""
    return LayoutConfig(word_bits=args.word_bits, tile_oc=args.tile_oc, tile_ic=args.tile_ic,
                        kernel_order=args.kernel_order, segment_align=args.segment_align,
                        region_align=args.region_align)


def make_golden(package_dir: Path, out: Path, config: LayoutConfig, force: bool = False,
                plot: bool = True) -> tuple[Layout, Any]:
    """Check the package (every check verify makes, before writing), lay it out with
    `config` and write the golden files into `out` under the --out policy
    (quant.outdir); returns (layout, golden.image.write_golden's result)."""
    from cosim.golden.image import write_golden
    from cosim.quant.outdir import check_output, prepare_output_dir
    from cosim.quant.package import load_checked_package

    check_output(out, folder=True, force=force, inputs=[package_dir])
    package = load_checked_package(package_dir)
    layout = Layout.from_package(package, config)
    target = prepare_output_dir(out, "golden", force=force, inputs=[package_dir])
    return layout, write_golden(package, layout, target, plot=plot)


def cmd_golden(args: argparse.Namespace) -> int:
    """Handler: load the package, lay it out, write the golden files, print a summary."""
    config = layout_config(args)
    layout, result = make_golden(args.package, args.out, config,
                                 force=getattr(args, "force", False), plot=not args.no_plot)
    regions = ", ".join(f"{r.name} {r.used:,}" for r in layout.regions)
    print(f"golden {args.out}: depth {layout.depth:,} words of {config.word_bits} bits "
          f"({layout.addr_bits} address bits), {layout.used_words:,} stored ({regions})")
    print(f"stream {result.stream_words:,} words in {3 * len(layout.layers)} segments; "
          f"image built in {result.build_seconds:.2f} s, files written in "
          f"{result.write_seconds:.2f} s")
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
                    "image.npz), the address map and layout.json. See docs/layout.md.")
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
