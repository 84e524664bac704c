"""Float training of MobileNetV2-ReLU, checkpoints, and top-1 evaluation.

Deterministic for a given seed on one machine: seeded torch and data order,
single-process data loading, CPU kernels.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import random
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from tqdm import tqdm

from quant.data import DataConfig, build_dataset, make_loader, num_classes
from quant.errors import UserError
from quant.formats import atomic_write_bytes
from quant.model import ARCH, mobilenet_v2_relu
from quant.outdir import check_output
from quant.tensorfile import TensorFileError, read_regular_file

CHECKPOINT_FORMAT = "cnn-cosim-checkpoint"
CHECKPOINT_VERSION = 1


class CheckpointError(UserError):
    """A checkpoint file that is missing or not one of ours (one-line message)."""


@dataclass(frozen=True)
class TrainConfig:
    """Float training settings. lr is the peak of a cosine schedule with warm-up."""

    epochs: int = 30
    batch_size: int = 64
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 4e-5
    label_smoothing: float = 0.0
    width_mult: float = 1.0
    seed: int = 0


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU kernels used here are deterministic)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@torch.no_grad()
def evaluate_top1(model: nn.Module, dataset, batch_size: int = 256,
                  progress: str | None = None) -> float:
    """Top-1 accuracy in percent of `model` on `dataset` (model put in eval mode)."""
    model.eval()
    loader = make_loader(dataset, batch_size, shuffle=False, seed=0)
    correct = total = 0
    for images, labels in tqdm(loader, desc=progress, disable=progress is None, leave=False):
        logits = model(images)
        correct += int((logits.argmax(dim=1) == labels).sum())
        total += int(labels.numel())
    return 100.0 * correct / max(total, 1)


def run_epochs(model: nn.Module, loader, optimizer: torch.optim.Optimizer,
               schedule: torch.optim.lr_scheduler.LRScheduler, loss_fn: nn.Module, epochs: int,
               desc: str, quiet: bool) -> None:
    """Plain supervised loop: `epochs` passes over `loader`, schedule stepped per batch,
    one progress bar; leaves the model in eval mode."""
    bar = tqdm(total=epochs * len(loader), desc=desc, unit="step", disable=quiet,
               leave=False)
    for epoch in range(epochs):
        model.train()
        for images, labels in loader:
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(images), labels)
            loss.backward()
            optimizer.step()
            schedule.step()
            bar.set_postfix(epoch=epoch + 1, loss=f"{loss.item():.3f}")
            bar.update()
    bar.close()
    model.eval()


def train_float(data: DataConfig, config: TrainConfig, quiet: bool = False) -> dict:
    """Train from scratch; returns a checkpoint dict (see save_checkpoint)."""
    seed_everything(config.seed)
    model = mobilenet_v2_relu(num_classes(data), config.width_mult)
    train_set = build_dataset(data, "train", augment=True)
    test_set = build_dataset(data, "test")
    loader = make_loader(train_set, config.batch_size, shuffle=True, seed=config.seed)
    steps = config.epochs * len(loader)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay, nesterov=True)
    warmup = max(1, len(loader))
    schedule = torch.optim.lr_scheduler.SequentialLR(optimizer, [
        torch.optim.lr_scheduler.LinearLR(optimizer, 0.1, 1.0, warmup),
        torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(1, steps - warmup)),
    ], milestones=[warmup])
    loss_fn = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    run_epochs(model, loader, optimizer, schedule, loss_fn, config.epochs, "train", quiet)
    top1 = evaluate_top1(model, test_set, progress=None if quiet else "eval float")
    return {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "arch": ARCH,
        "num_classes": num_classes(data),
        "width_mult": config.width_mult,
        "data": dataclasses.asdict(data),
        "train": dataclasses.asdict(config),
        "test_top1": top1,
        "torch_version": str(torch.__version__),
        "state_dict": model.state_dict(),
    }


#: Largest checkpoint file read (bytes), checked before it is parsed.
MAX_CHECKPOINT_BYTES = 1 << 30
_PLAIN = (str, int, float, bool, type(None))


def _check_plain(value: object, where: str) -> None:
    """Only what torch.load(weights_only=True) loads: dicts with str keys, lists,
    tuples, plain scalars and tensors (ValueError otherwise)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{where}: key {key!r} is not a string")
            _check_plain(item, f"{where}[{key!r}]")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_plain(item, f"{where}[{index}]")
    elif type(value) not in _PLAIN and not isinstance(value, torch.Tensor):
        raise ValueError(f"{where}: a {type(value).__name__} cannot be stored in a "
                         "checkpoint loaded with weights_only=True")


def _load_plain(raw: bytes) -> object:
    """torch.load(weights_only=True) of bytes already read (no pickle code runs; torch's
    warnings about the file, e.g. a TorchScript archive, are not shown: the caller
    reports one line)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)


def is_checkpoint(path: Path) -> bool:
    """True if `path` is a file torch.load(weights_only=True) reads as one of our
    checkpoints (used by the --out policy)."""
    try:
        raw = read_regular_file(path, MAX_CHECKPOINT_BYTES, "a checkpoint")
        checkpoint = _load_plain(raw)
    except Exception:  # noqa: BLE001 - anything unreadable is not ours
        return False
    return isinstance(checkpoint, dict) and checkpoint.get("format") == CHECKPOINT_FORMAT


def save_checkpoint(checkpoint: dict, path: Path, force: bool = False,
                    inputs: Sequence[Path] = ()) -> None:
    """Write a checkpoint atomically (unique temp name, then rename) under the --out
    policy of quant.outdir. Only plain data and tensors are written, and the bytes are
    checked to load with torch.load(weights_only=True) before they replace anything."""
    path = check_output(path, folder=False, force=force, inputs=inputs,
                        recognize=is_checkpoint)
    _check_plain(checkpoint, "checkpoint")
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    torch.load(io.BytesIO(buffer.getvalue()), map_location="cpu", weights_only=True)
    atomic_write_bytes(path, buffer.getvalue())


def check_checkpoint_info(checkpoint: Any, path: Path) -> None:
    """CheckpointError (one line naming `path`) unless `checkpoint` is a dict of ours whose
    metadata (everything but state_dict) matches quant.schema.CHECKPOINT_SCHEMA: format
    and version pinned, arch, num_classes in [1, 10000], width_mult in (0, 4], data and
    train settings typed and range-checked, no unknown key."""
    from quant.formats import PackageError
    from quant.schema import CHECKPOINT_SCHEMA, validate

    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not a {CHECKPOINT_FORMAT} file (expected 'format' key)")
    if checkpoint.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"{path}: checkpoint version {checkpoint.get('version')!r:.40}, "
                              f"expected {CHECKPOINT_VERSION}")
    if not isinstance(checkpoint.get("state_dict"), dict):
        raise CheckpointError(f"{path}: checkpoint has no state_dict mapping; expected one")
    try:
        validate(checkpoint, CHECKPOINT_SCHEMA, path)
    except PackageError as error:
        raise CheckpointError(str(error)) from None


def load_checkpoint(path: Path) -> tuple[nn.Module, dict]:
    """Load a checkpoint written by save_checkpoint; returns (float model in eval mode, info)."""
    path = Path(path)
    try:
        raw = read_regular_file(path, MAX_CHECKPOINT_BYTES, "a checkpoint")
    except TensorFileError as error:
        raise CheckpointError(f"{path}: checkpoint {error}") from None
    try:
        checkpoint = _load_plain(raw)
    except Exception as error:  # noqa: BLE001 - any unpickling failure is a bad file
        raise CheckpointError(f"{path}: not a readable torch checkpoint "
                              f"({type(error).__name__}: {error}; not a file written by "
                              f"cosim train?)") from None
    check_checkpoint_info(checkpoint, path)
    model = mobilenet_v2_relu(checkpoint["num_classes"], checkpoint["width_mult"])
    try:
        model.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as error:
        first = str(error).strip().splitlines()[0]
        raise CheckpointError(f"{path}: weights do not fit the model ({first})") from None
    info = {key: value for key, value in checkpoint.items() if key != "state_dict"}
    info["path"] = str(path)
    info["sha256"] = hashlib.sha256(raw).hexdigest()
    return model.eval(), info
