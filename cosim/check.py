"""`cosim check`: every validation a command makes before it reads a package, and nothing else.

    cosim check --package build/package [--layout build/golden/layout.json]

Runs what `verify`, `golden` and `golden-verify` run before their first write: the
manifest against its schema and its semantic rules, every listed file (regular,
sha256), every txt/hex file decoded and cross-checked, params_float parsed, the
architecture check for MobileNetV2-ReLU packages, and the package's report.json
against its schema when there is one; with --layout, a layout.json too. No model is
rebuilt and nothing is written. Exit 0 and one summary line when everything holds;
a user error is one line, exit 2 (the top-level handler of cosim.cli).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["cmd_check", "register"]


def cmd_check(args: argparse.Namespace) -> int:
    """Handler: validate, print one line, return 0 (errors propagate as PackageError)."""
    from cosim.quant.package import load_checked_package
    from cosim.quant.schema import read_report

    read_report(args.package)
    package = load_checked_package(args.package)
    files = len(package.manifest["files"]) + sum(len(layer["files"])
                                                  for layer in package.layers)
    has_report = os.path.lexists(Path(args.package) / "report.json")
    line = (f"package {args.package}: valid ({len(package.layers)} layers, "
            f"{len(package.weighted_layers())} weighted, {files} files checked"
            f"{', report.json valid' if has_report else ''})")
    if args.layout is not None:
        from cosim.golden.image import check_layout_matches
        from cosim.golden.layout import LayoutError, read_layout_json
        from cosim.quant.formats import PackageError

        layout, _ = read_layout_json(args.layout)
        try:
            check_layout_matches(package, layout)
        except LayoutError as e:
            raise PackageError(args.layout, str(e)) from None
        line += f"; layout {args.layout}: valid, depth {layout.depth:,} words"
    print(line)
    for note in package.notes:  # e.g. a user factory's structure is not compared
        print(f"note: {note}")
    return 0


def register(subparsers: Any, parents: Sequence[argparse.ArgumentParser] = ()
             ) -> argparse.ArgumentParser:
    """Add the `check` subcommand to a cosim parser (handler in `handler`)."""
    parser = subparsers.add_parser(
        "check", parents=list(parents), help="validate a package (no rebuild, no writes)",
        description="Validate a package the way every command does before it reads it: "
                    "manifest schema and rules, file types and sha256, every txt/hex file, "
                    "cross-checks, architecture, report.json; optionally a layout.json. "
                    "Writes nothing.")
    parser.add_argument("--package", type=Path, default=Path("build/package"),
                        help="package directory (default: %(default)s)")
    parser.add_argument("--layout", type=Path, default=None,
                        help="also check this layout.json (from cosim golden) against the "
                             "package")
    parser.set_defaults(handler=cmd_check)
    return parser
