"""Remake the shipped small_cnn and resnet18 checkpoints (quant/checkpoints/).

    OMP_NUM_THREADS=1 .venv/bin/python scripts/train_checkpoints.py [--arch small_cnn]
        [--out-dir quant/checkpoints] [--force]

Both train on the offline digits (scikit-learn's bundled 8x8 digits, upscaled to 32x32;
no download) with the recipes below, seeds pinned, on one CPU thread (on the 2-core
machine the second thread did not make training faster). Each checkpoint records its
recipe, the measured wall time (train_seconds, train_threads) and the float test top-1
(quant.train.evaluate_top1 on the digits test split). resnet18 is stored in float16
(11.2M parameters: 22 MB instead of 45 MB); loading converts it to float32, so its float
reference is the float16-rounded weights, and test_top1 is measured on those
(test_top1_float32 is the top-1 before rounding). The same seed on the same machine and
torch version gives the same weights; another CPU or torch build may differ slightly.
The MobileNetV2 checkpoint is not remade here (`cosim train` with its defaults made it).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cosim.quant.choices import SHIPPED_CHECKPOINTS  # noqa: E402
from cosim.quant.data import DataConfig  # noqa: E402
from cosim.quant.model import ModelSpec  # noqa: E402
from cosim.quant.train import TrainConfig, save_checkpoint, train_float  # noqa: E402

DATA = DataConfig(name="digits", image_size=32)
#: The recipes of the shipped checkpoints (everything else is TrainConfig's default:
#: SGD momentum 0.9 Nesterov, weight decay 4e-5, one warm-up epoch then cosine decay).
RECIPES = {
    "small_cnn": TrainConfig(epochs=30, batch_size=64, lr=0.05, seed=0,
                             model=ModelSpec("small_cnn", {"num_classes": 10})),
    "resnet18": TrainConfig(epochs=20, batch_size=64, lr=0.05, seed=0,
                            model=ModelSpec("resnet18", {"num_classes": 10}),
                            store_float16=True),
}
THREADS = 1


def main(argv: list[str] | None = None) -> int:
    """Train the chosen recipes and write their checkpoints; prints one JSON line each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", choices=[*RECIPES, "all"], default="all")
    parser.add_argument("--out-dir", type=Path, default=None,
                        help="folder for the checkpoints (default: quant/checkpoints)")
    parser.add_argument("--force", action="store_true", help="replace existing files")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(THREADS)
    for arch in RECIPES if args.arch == "all" else [args.arch]:
        checkpoint = train_float(DATA, RECIPES[arch], quiet=args.quiet)
        target = SHIPPED_CHECKPOINTS[arch]
        path = target if args.out_dir is None else args.out_dir / target.name
        save_checkpoint(checkpoint, path, force=args.force)
        summary = {key: checkpoint.get(key) for key in (
            "arch", "kwargs", "test_top1", "test_top1_float32", "train_seconds",
            "train_threads", "state_dict_dtype")}
        summary.update(path=str(path), bytes=path.stat().st_size,
                       recipe={k: v for k, v in checkpoint["train"].items() if k != "model"})
        print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
