"""Options several cosim commands share (data), without importing torch."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from cosim.quant.choices import BUILTIN_ARCH_NAMES, DATASETS


def add_data_options(parser: argparse.ArgumentParser, defaults: bool) -> None:
    group = parser.add_argument_group("data")
    group.add_argument("--data", choices=DATASETS, default="digits" if defaults else None,
                       help="dataset: digits (offline, bundled with scikit-learn), imagenette, "
                            "or any imagefolder with train/ and val/ (default: %(default)s)")
    group.add_argument("--root", default=None,
                       help="dataset folder (imagenette: the folder holding imagenette2-*/)")
    group.add_argument("--image-size", type=int, default=32 if defaults else None,
                       help="square input size in pixels (default: %(default)s)")
    group.add_argument("--download", action="store_true",
                       help="download Imagenette with torchvision (needs internet)")
    group.add_argument("--imagenette-size", choices=("full", "320px", "160px"),
                       default="160px" if defaults else None,
                       help="which Imagenette archive (default: %(default)s)")


def data_from_options(args: argparse.Namespace, base: Any = None) -> Any:
    """quant.data.DataConfig from options; with `base`, only the options given override it
    (None when no option is given and there is no base)."""
    from cosim.quant.data import DataConfig

    given = {"name": args.data, "root": args.root, "image_size": args.image_size,
             "imagenette_size": args.imagenette_size}
    given = {key: value for key, value in given.items() if value is not None}
    if args.download:
        given["download"] = True
    if base is None:
        return DataConfig(**given) if given else None
    return DataConfig(**{**base.__dict__, **given})


def add_model_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """--model and --model-arg: which network a checkpoint holds."""
    parser.add_argument("--model", default=None, metavar="ARCH|PKG.MODULE:FACTORY",
                        help="the network: a built-in arch (" + ", ".join(BUILTIN_ARCH_NAMES)
                             + ") or your factory returning an nn.Module, imported from the "
                               "working directory or the Python path (default: what the "
                               "checkpoint records)")
    parser.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE",
                        help="keyword argument of the model factory, e.g. num_classes=10 "
                             "(repeatable; ints, floats, true/false, strings)")


def model_spec(args: argparse.Namespace) -> Any:
    """quant.model.ModelSpec from --model/--model-arg (None without --model). A user
    factory is imported from the working directory too, as `python -m` would."""
    if getattr(args, "model", None) is None:
        if getattr(args, "model_arg", None):
            from cosim.quant.model import ModelError

            raise ModelError("--model-arg needs --model (the factory it is an argument of)")
        return None
    from cosim.quant.model import ModelSpec, is_factory, parse_model_args

    spec = ModelSpec(args.model, parse_model_args(list(args.model_arg)))
    if is_factory(spec.arch) and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    return spec
