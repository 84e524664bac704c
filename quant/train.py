"""Float training of any ModelSpec, checkpoints, and top-1 evaluation.

Deterministic for a given seed on one machine: seeded torch and data order,
single-process data loading, CPU kernels.

A cosim checkpoint (`format: cnn-cosim-checkpoint`, version 1) is a dict of plain data
and tensors: the architecture (`arch`, `kwargs`: a quant.model.ModelSpec), `num_classes`
(and `width_mult` for mobilenet_v2_relu), the data and training settings, the measured
training wall time and float test top-1, and the `state_dict`. Files written before
`kwargs` existed are MobileNetV2-ReLU files and still load (their kwargs are
num_classes and width_mult). A state dict may be stored in float16
(`state_dict_dtype: "float16"`, to keep large networks small); loading converts it to
float32, so the float reference is then the float16-rounded weights, and `test_top1`
is measured on them. `load_checkpoint` also loads a plain state dict or a
torchvision-style checkpoint when the caller names the model.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import io
import random
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from cosim.quant.data import DataConfig, build_dataset, make_loader, num_classes
from cosim.quant.errors import UserError, one_line
from cosim.quant.formats import atomic_write_bytes
from cosim.quant.model import ARCH, ModelError, ModelSpec, build_model, output_classes
from cosim.quant.outdir import check_output
from cosim.quant.tensorfile import TensorFileError, read_regular_file
from tqdm import tqdm

CHECKPOINT_FORMAT = "cnn-cosim-checkpoint"
CHECKPOINT_VERSION = 1


class CheckpointError(UserError):
    """A checkpoint file that is missing or not one of ours (one-line message)."""


@dataclass(frozen=True)
class TrainConfig:
    """Float training settings. lr is the peak of a cosine schedule with warm-up.

    model: the network to train (built-ins get num_classes from the data).
    width_mult: mobilenet_v2_relu's width (kept for the command line; the model's own
    `width_mult` kwarg wins; any other value than 1.0 for another arch is refused).
    store_float16: store the trained state dict in float16 (test_top1 is then measured
    on the float16-rounded weights, which is what loading gives)."""

    epochs: int = 30
    batch_size: int = 64
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 4e-5
    label_smoothing: float = 0.0
    width_mult: float = 1.0
    seed: int = 0
    model: ModelSpec = field(default_factory=ModelSpec)
    store_float16: bool = False


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


def training_spec(data: DataConfig, config: TrainConfig) -> ModelSpec:
    """The ModelSpec train_float builds: config.model, with num_classes from the data for
    a built-in (and width_mult from config for mobilenet_v2_relu). ModelError (one line)
    when they disagree."""
    spec, classes = config.model, num_classes(data)
    if config.width_mult != 1.0 and spec.arch != ARCH:
        raise ModelError(f"width_mult {config.width_mult} applies to {ARCH} only, not to "
                         f"model {spec.arch} (give the model's own keyword arguments)")
    if spec.arch == ARCH:
        given = spec.kwargs.get("width_mult", config.width_mult)
        if config.width_mult != 1.0 and given != config.width_mult:
            raise ModelError(f"model {spec.describe()}: width_mult {given} disagrees with "
                             f"the training width_mult {config.width_mult}")
        spec = spec.with_defaults(width_mult=config.width_mult)
    if spec.is_builtin:
        spec = spec.with_defaults(num_classes=classes)
        if spec.kwargs["num_classes"] != classes:
            raise ModelError(f"model {spec.describe()}: num_classes "
                             f"{spec.kwargs['num_classes']!r} but the {data.name} data has "
                             f"{classes} classes; expected the same")
    return spec


def _rounded_to_float16(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's state dict with floating tensors in float16; the model's own floating
    tensors are replaced by the rounded values (so it computes what loading gives)."""
    state = {name: tensor.detach().half() if tensor.is_floating_point() else tensor.detach()
             for name, tensor in model.state_dict().items()}
    model.load_state_dict({name: tensor.float() if tensor.is_floating_point() else tensor
                           for name, tensor in state.items()})
    return state


def train_float(data: DataConfig, config: TrainConfig, quiet: bool = False,
                allow_import: bool = False) -> dict:
    """Train config.model from scratch on `data`; returns a checkpoint dict (see
    save_checkpoint). A user factory is imported only with allow_import=True."""
    start = time.perf_counter()
    spec = training_spec(data, config)
    classes = num_classes(data)
    seed_everything(config.seed)
    model = build_model(spec, allow_import=allow_import)
    if output_classes(model) != classes:
        raise ModelError(f"model {spec.describe()}: its last layer has "
                         f"{output_classes(model)} outputs but the {data.name} data has "
                         f"{classes} classes; expected the same")
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
    if spec.is_builtin:
        run_epochs(model, loader, optimizer, schedule, loss_fn, config.epochs, "train", quiet)
    else:
        try:  # a user's model can fail in its own forward or backward pass
            run_epochs(model, loader, optimizer, schedule, loss_fn, config.epochs, "train",
                       quiet)
        except (RuntimeError, ValueError, TypeError, IndexError) as error:
            hint = ("; an in-place op (x += y) on a tensor autograd still needs breaks "
                    "training: write x = x + y" if "inplace" in str(error) else "")
            raise ModelError(f"model {spec.describe():.200}: training failed in the "
                             f"model's forward or backward pass ({type(error).__name__}: "
                             f"{one_line(error)[:300]}){hint}") from None
    extra: dict[str, Any] = {}
    if config.store_float16:
        extra["test_top1_float32"] = evaluate_top1(model, test_set)
        state = _rounded_to_float16(model)
    else:
        state = model.state_dict()
    top1 = evaluate_top1(model, test_set, progress=None if quiet else "eval float")
    checkpoint = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "arch": spec.arch,
        "kwargs": dict(spec.kwargs),
        "num_classes": classes,
        "data": dataclasses.asdict(data),
        "train": dataclasses.asdict(dataclasses.replace(config, model=spec)),
        "test_top1": top1,
        **extra,
        "train_seconds": round(time.perf_counter() - start, 3),
        "train_threads": torch.get_num_threads(),
        "torch_version": str(torch.__version__),
        "state_dict_dtype": "float16" if config.store_float16 else "float32",
        "state_dict": state,
    }
    if spec.arch == ARCH:
        checkpoint["width_mult"] = spec.kwargs["width_mult"]
    return checkpoint


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
    reports one line). argparse.Namespace is allowed besides torch's own safe types:
    torchvision's reference training scripts store their arguments as one (plain
    attribute data; no code of the file runs)."""
    with warnings.catch_warnings(), torch.serialization.safe_globals([argparse.Namespace]):
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
    and version pinned, arch a built-in or a `package.module:function`, kwargs JSON-plain,
    num_classes in [1, 10000], width_mult in (0, 4] (mobilenet_v2_relu), data and train
    settings typed and range-checked, no unknown key; and the values that depend on each
    other agree (kwargs' num_classes / width_mult with the top-level ones)."""
    from cosim.quant.formats import PackageError
    from cosim.quant.schema import CHECKPOINT_SCHEMA, validate

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
    kwargs = checkpoint.get("kwargs", {})
    for key in ("num_classes", "width_mult"):
        if key in kwargs and key in checkpoint and kwargs[key] != checkpoint[key]:
            raise CheckpointError(f"{path}: kwargs {key} {kwargs[key]!r:.40} disagrees with "
                                  f"{key} {checkpoint[key]!r:.40}; expected the same")


def checkpoint_spec(checkpoint: Mapping[str, Any]) -> ModelSpec:
    """The ModelSpec a (checked) cosim checkpoint records; a file without `kwargs` is a
    MobileNetV2-ReLU of its num_classes and width_mult."""
    if "kwargs" not in checkpoint:
        return ModelSpec(ARCH, {"num_classes": checkpoint["num_classes"],
                                "width_mult": checkpoint["width_mult"]})
    return ModelSpec(checkpoint["arch"], checkpoint["kwargs"])


def _matches(given: ModelSpec, recorded: ModelSpec) -> bool:
    """Same arch, and every keyword argument `given` names has the recorded value."""
    return given.arch == recorded.arch and all(
        key in recorded.kwargs and recorded.kwargs[key] == value
        for key, value in given.kwargs.items())


def _shape(tensor: torch.Tensor) -> list[int]:
    return list(tensor.shape)


def foreign_state_dict(obj: Any, path: Path) -> tuple[dict[str, torch.Tensor], str]:
    """The state dict inside a file that is not a cosim checkpoint: `{"state_dict": ...}`,
    `{"model": ...}` (torchvision's reference scripts), `{"model_state_dict": ...}` or a
    bare state dict, with a leading "module." (DataParallel) stripped from every key when
    all keys have it. Returns (state dict, what was found)."""
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: a {type(obj).__name__}, not a state dict or a "
                              f"checkpoint dict; expected a mapping of names to tensors")
    found = "a bare state dict"
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(obj.get(key), dict):
            obj, found = obj[key], f"the state dict under {key!r}"
            break
    for name, value in obj.items():
        if not isinstance(name, str) or not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{path}: {found} has entry {name!r:.80} holding a "
                                  f"{type(value).__name__}; expected names mapped to tensors "
                                  "(a plain state_dict, or a dict with 'state_dict' or "
                                  "'model')")
    if not obj:
        raise CheckpointError(f"{path}: {found} is empty; expected names mapped to tensors")
    if all(name.startswith("module.") for name in obj):
        obj, found = {name[len("module."):]: value for name, value in obj.items()}, \
            found + " ('module.' prefix stripped)"
    return dict(obj), found


def load_weights(model: nn.Module, state: Mapping[str, Any], path: Path,
                 spec: ModelSpec) -> None:
    """Load `state` into `model` after checking names, shapes and kinds: CheckpointError
    (one line naming the first mismatching key, in the model's order, then the file's)
    for a missing, unexpected, misshapen or wrongly typed entry. Floating tensors are
    converted to the model's dtype (e.g. float16 -> float32)."""
    expected = model.state_dict()
    converted = {}
    for name, want in expected.items():
        if name not in state:
            raise CheckpointError(f"{path}: no weight {name!r} for model {spec.describe()} "
                                  f"(the file has {len(state)} entries, none of that name)")
        have = state[name]
        if not isinstance(have, torch.Tensor):
            raise CheckpointError(f"{path}: weight {name!r} is a {type(have).__name__}; "
                                  "expected a tensor")
        if _shape(have) != _shape(want):
            raise CheckpointError(f"{path}: weight {name!r} has shape {_shape(have)}, model "
                                  f"{spec.describe()} expects {_shape(want)}")
        if have.is_floating_point() != want.is_floating_point() or have.is_complex():
            raise CheckpointError(f"{path}: weight {name!r} has dtype {have.dtype}, model "
                                  f"{spec.arch} expects {want.dtype}")
        converted[name] = have.to(want.dtype)
    for name in state:
        if name not in expected:
            raise CheckpointError(f"{path}: unexpected weight {name!r:.120}: model "
                                  f"{spec.describe()} has no such parameter or buffer")
    try:
        model.load_state_dict(converted, strict=True)
    except RuntimeError as error:
        raise CheckpointError(f"{path}: weights do not fit the model "
                              f"({one_line(error)})") from None


def _read(path: Path) -> tuple[bytes, Any]:
    try:
        raw = read_regular_file(path, MAX_CHECKPOINT_BYTES, "a checkpoint")
    except TensorFileError as error:
        raise CheckpointError(f"{path}: checkpoint {error}") from None
    try:
        return raw, _load_plain(raw)
    except Exception as error:  # noqa: BLE001 - any unpickling failure is a bad file
        raise CheckpointError(f"{path}: not a readable torch checkpoint "
                              f"({type(error).__name__}: {one_line(error)}; not a file "
                              "written by cosim train, nor a state dict saved with "
                              "torch.save?)") from None


def _build(spec: ModelSpec, allow_import: bool, path: Path) -> nn.Module:
    try:
        return build_model(spec, allow_import=allow_import)
    except ModelError as error:
        raise CheckpointError(f"{path}: {error}") from None


def load_checkpoint(path: Path, model: ModelSpec | None = None,
                    allow_import: bool = False) -> tuple[nn.Module, dict]:
    """Load a float checkpoint; returns (float model in eval mode, info).

    - A cosim checkpoint builds the architecture it records. A built-in needs nothing
      more; a user factory (`package.module:function`) loads only when `model` names
      the same factory and allow_import=True. When `model` is given it must agree with
      the file (same arch; each kwarg it names has the recorded value).
    - Any other file (a plain state dict, or a dict holding one under 'state_dict' /
      'model', with or without a 'module.' prefix) loads only when `model` is given.

    Always torch.load(weights_only=True); every name and shape is checked (one
    CheckpointError line naming the first mismatching key). info: the file's metadata
    (cosim checkpoints) plus `arch`, `kwargs`, `num_classes` (of the built model's last
    layer), `width_mult` (mobilenet_v2_relu), `data` (None when the file does not record
    it: the caller must name the data), `source`, `path`, `sha256`.
    """
    path = Path(path)
    raw, obj = _read(path)
    ours = isinstance(obj, dict) and obj.get("format") == CHECKPOINT_FORMAT
    if ours:
        check_checkpoint_info(obj, path)
        spec = checkpoint_spec(obj)
        if model is not None and not _matches(model, spec):
            raise CheckpointError(f"{path}: the checkpoint records model {spec.describe()}, "
                                  f"not {model.describe()}; expected the model it was "
                                  "trained as (or leave the model out)")
        if not spec.is_builtin and model is None:
            raise CheckpointError(f"{path}: the checkpoint's model is the user factory "
                                  f"{spec.arch}; cosim imports code only when you name it "
                                  f"(--model {spec.arch})")
        state, source = obj["state_dict"], f"{CHECKPOINT_FORMAT} file"
        info = {key: value for key, value in obj.items() if key != "state_dict"}
    elif model is None:
        raise CheckpointError(f"{path}: not a {CHECKPOINT_FORMAT} file (expected 'format' "
                              "key); a plain state dict or a torchvision checkpoint loads "
                              "when you name its model (--model ARCH or "
                              "pkg.module:function, with --model-arg num_classes=N)")
    else:
        spec = model
        state, source = foreign_state_dict(obj, path)
        info = {"data": None}
    net = _build(spec, allow_import, path)
    load_weights(net, state, path, spec)
    classes = output_classes(net)
    if classes is None:
        raise CheckpointError(f"{path}: model {spec.describe()} has no Linear or Conv2d "
                              "layer; expected a classifier")
    if ours and info["num_classes"] != classes:
        raise CheckpointError(f"{path}: num_classes {info['num_classes']} but model "
                              f"{spec.describe()} has {classes} outputs; expected the same")
    kwargs = dict(spec.kwargs)
    if spec.is_builtin:
        kwargs.setdefault("num_classes", classes)
    if spec.arch == ARCH:
        kwargs.setdefault("width_mult", 1.0)
        info["width_mult"] = kwargs["width_mult"]
    info.update(arch=spec.arch, kwargs=kwargs, num_classes=classes, source=source,
                path=str(path), sha256=hashlib.sha256(raw).hexdigest())
    return net.eval(), info
