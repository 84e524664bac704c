"""The networks cosim builds: built-in architectures, user factories, `--model-arg` parsing.

A network is described by a `ModelSpec(arch, kwargs)`: `arch` is a built-in name
(`BUILTIN_ARCHS`) or a user factory `"package.module:function"`, and `kwargs` are the
JSON-plain keyword arguments of its factory. Checkpoints and the package manifest record
both, so the same network can be rebuilt.

Built-ins:

- `mobilenet_v2_relu` (the default, the original project's): torchvision's MobileNetV2
  with every ReLU6 replaced by ReLU. ReLU is positively homogeneous
  (relu(a*x) = a*relu(x) for a > 0), which is what lets cross-layer equalization rescale
  channels across it. kwargs: num_classes, width_mult, dropout.
- `resnet18`: torchvision's `resnet18(num_classes=N)`, its layer names unchanged.
  kwargs: num_classes.
- `small_cnn`: a small plain CNN with max pooling for 32x32 input (`SmallCNN`).
  kwargs: num_classes, channels, in_channels.

A user factory is imported only with `allow_import=True`: cosim never imports code
because a file names it, only when the user names it (`--model pkg.mod:fn` on the
command line, or this Python API).
"""

from __future__ import annotations

import importlib
import math
import re
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch.nn as nn
from cosim.quant.choices import BUILTIN_ARCH_NAMES, DEFAULT_ARCH, FACTORY_PATTERN
from cosim.quant.errors import UserError, one_line
from torchvision.models import mobilenet_v2
from torchvision.models import resnet18 as _torchvision_resnet18

ARCH = DEFAULT_ARCH  # "mobilenet_v2_relu"

#: Most keyword arguments a ModelSpec carries, and the longest string value.
MAX_KWARGS = 64
MAX_KWARG_STRING = 1000
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_FACTORY = re.compile(FACTORY_PATTERN)


class ModelError(UserError):
    """A model description that cannot be built (one-line message)."""


# --------------------------------------------------------------------------- built-ins


def replace_relu6(module: nn.Module) -> nn.Module:
    """Replace every nn.ReLU6 under `module` by nn.ReLU, in place; returns `module`."""
    for name, child in module.named_children():
        if isinstance(child, nn.ReLU6):
            setattr(module, name, nn.ReLU(inplace=False))
        else:
            replace_relu6(child)
    return module


def _check_classes(num_classes: int) -> None:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be an integer >= 1, got {num_classes!r}")


def mobilenet_v2_relu(num_classes: int = 10, width_mult: float = 1.0,
                      dropout: float = 0.2) -> nn.Module:
    """MobileNetV2 (torchvision layout and layer names) with ReLU instead of ReLU6.

    With width_mult=1.0 it has 52 convolutions and one linear layer, i.e.
    53 weighted layers; with 10 classes they hold 2,202,560 weights.
    """
    _check_classes(num_classes)
    if isinstance(width_mult, bool) or not isinstance(width_mult, int | float) \
            or not width_mult > 0:
        raise ValueError(f"width_mult must be > 0, got {width_mult!r}")
    model = mobilenet_v2(weights=None, num_classes=num_classes, width_mult=width_mult,
                         dropout=dropout)
    return replace_relu6(model)


def resnet18(num_classes: int = 10) -> nn.Module:
    """torchvision's ResNet-18 with `num_classes` outputs (layer names as torchvision's,
    so a torchvision checkpoint's state_dict loads into it). 20 convolutions (including
    the three 1x1 downsample convolutions) and one linear layer; 11,181,642 parameters
    with 10 classes. At 32x32 input the 7x7/2 stem and the 3x3/2 max pool leave 8x8,
    the last stage 1x1."""
    _check_classes(num_classes)
    return _torchvision_resnet18(weights=None, num_classes=num_classes)


class SmallCNN(nn.Sequential):
    """A small plain CNN with max pooling for 32x32 input (any size divisible by 4 works).

    Layers, with c = `channels` (default 32):

    ====================  =====================================  ==============
    name                  module                                 output (32x32)
    ====================  =====================================  ==============
    conv1, bn1, relu1     Conv2d(in, c, 3, padding=1), BN, ReLU   c x 32 x 32
    conv2, bn2, relu2     Conv2d(c, c, 3, padding=1), BN, ReLU    c x 32 x 32
    pool1                 MaxPool2d(2)                            c x 16 x 16
    conv3, bn3, relu3     Conv2d(c, 2c, 3, padding=1), BN, ReLU   2c x 16 x 16
    conv4, bn4, relu4     Conv2d(2c, 2c, 3, padding=1), BN, ReLU  2c x 16 x 16
    pool2                 MaxPool2d(2)                            2c x 8 x 8
    avgpool               AdaptiveAvgPool2d(1) (global)           2c x 1 x 1
    flatten               Flatten()                               2c
    fc                    Linear(2c, num_classes)                 num_classes
    ====================  =====================================  ==============

    Four convolutions and one linear layer; with c = 32, 3 input channels and 10
    classes, 66,026 weights and biases (plus 384 BatchNorm parameters), about 7.6 MMAC
    per 32x32 image. The convolutions have no bias (BatchNorm follows); folding the
    BatchNorm gives them one.
    """

    def __init__(self, num_classes: int = 10, channels: int = 32, in_channels: int = 3):
        _check_classes(num_classes)
        for name, value in (("channels", channels), ("in_channels", in_channels)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        c, c2 = channels, 2 * channels

        def conv(i: int, cin: int, cout: int) -> list[tuple[str, nn.Module]]:
            return [(f"conv{i}", nn.Conv2d(cin, cout, 3, padding=1, bias=False)),
                    (f"bn{i}", nn.BatchNorm2d(cout)), (f"relu{i}", nn.ReLU())]

        super().__init__(OrderedDict([
            *conv(1, in_channels, c), *conv(2, c, c), ("pool1", nn.MaxPool2d(2)),
            *conv(3, c, c2), *conv(4, c2, c2), ("pool2", nn.MaxPool2d(2)),
            ("avgpool", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten(1)),
            ("fc", nn.Linear(c2, num_classes)),
        ]))


def small_cnn(num_classes: int = 10, channels: int = 32, in_channels: int = 3) -> nn.Module:
    """The built-in small plain CNN (see SmallCNN for its layers)."""
    return SmallCNN(num_classes, channels, in_channels)


#: The built-in architectures: name -> factory (each takes num_classes).
BUILTIN_ARCHS: dict[str, Callable[..., nn.Module]] = {
    "mobilenet_v2_relu": mobilenet_v2_relu,
    "resnet18": resnet18,
    "small_cnn": small_cnn,
}
assert tuple(BUILTIN_ARCHS) == BUILTIN_ARCH_NAMES


# --------------------------------------------------------------------------- the description


def _check_value(value: Any, where: str) -> Any:
    """A JSON-plain kwarg value (str, int, finite float, bool, None, or a list of those);
    tuples become lists. ModelError otherwise."""
    if isinstance(value, list | tuple):
        if len(value) > MAX_KWARGS:
            raise ModelError(f"{where}: a list of {len(value)} items; expected at most "
                             f"{MAX_KWARGS}")
        return [_check_scalar(item, f"{where}[{i}]") for i, item in enumerate(value)]
    return _check_scalar(value, where)


def _check_scalar(value: Any, where: str) -> Any:
    if value is None or isinstance(value, bool | int):
        if isinstance(value, int) and not isinstance(value, bool) \
                and abs(value) >= 1 << 63:
            raise ModelError(f"{where}: integer {value} is out of range")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ModelError(f"{where}: {value} is not a finite number")
        return value
    if isinstance(value, str):
        if len(value) > MAX_KWARG_STRING:
            raise ModelError(f"{where}: a string of {len(value)} characters; expected at "
                             f"most {MAX_KWARG_STRING}")
        return value
    raise ModelError(f"{where}: a {type(value).__name__}; expected a string, number, "
                     "boolean, null or a list of those (JSON-plain)")


def check_kwargs(kwargs: Mapping[str, Any], where: str = "model kwargs") -> dict[str, Any]:
    """A plain dict copy of `kwargs` (identifier keys, JSON-plain values); ModelError
    (one line naming the key) otherwise."""
    if not isinstance(kwargs, Mapping):
        raise ModelError(f"{where}: a {type(kwargs).__name__}; expected a mapping")
    if len(kwargs) > MAX_KWARGS:
        raise ModelError(f"{where}: {len(kwargs)} keyword arguments; expected at most "
                         f"{MAX_KWARGS}")
    plain = {}
    for key, value in kwargs.items():
        if not isinstance(key, str) or not _KEY.match(key):
            raise ModelError(f"{where}: key {key!r:.60} is not a Python identifier")
        plain[key] = _check_value(value, f"{where}: {key}")
    return plain


def is_factory(arch: str) -> bool:
    """True if `arch` is written as a user factory, `package.module:function`."""
    return isinstance(arch, str) and _FACTORY.match(arch) is not None


def check_arch(arch: Any) -> str:
    """`arch` if it is a built-in name or a well-formed `package.module:function`;
    ModelError (one line) otherwise."""
    if isinstance(arch, str) and (arch in BUILTIN_ARCHS or is_factory(arch)):
        return arch
    if isinstance(arch, str) and ":" in arch:
        raise ModelError(f"model {arch!r:.120}: not a factory name; expected "
                         "'package.module:function' (dotted Python identifiers, one colon)")
    raise ModelError(f"model {arch!r:.120}: unknown architecture; expected one of "
                     f"{', '.join(BUILTIN_ARCHS)} or a factory 'package.module:function'")


@dataclass(frozen=True)
class ModelSpec:
    """What builds a network: `arch` (a built-in name or `"package.module:function"`) and
    the factory's keyword arguments (JSON-plain). Validated when made (ModelError)."""

    arch: str = ARCH
    kwargs: dict[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        check_arch(self.arch)
        object.__setattr__(self, "kwargs", check_kwargs(self.kwargs,
                                                        f"model {self.arch} kwargs"))

    @property
    def is_builtin(self) -> bool:
        """True for a built-in architecture (no user code is imported to build it)."""
        return self.arch in BUILTIN_ARCHS

    def to_dict(self) -> dict[str, Any]:
        """{"arch": ..., "kwargs": {...}} (plain data, as checkpoints record it)."""
        return {"arch": self.arch, "kwargs": dict(self.kwargs)}

    def with_defaults(self, **defaults: Any) -> ModelSpec:
        """The same spec with `defaults` added for keys it does not set."""
        return ModelSpec(self.arch, {**defaults, **self.kwargs})

    def describe(self) -> str:
        """`arch(key=value, ...)` for messages."""
        args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        return f"{self.arch}({args})"


def _resolve_factory(arch: str) -> Callable[..., Any]:
    """Import `package.module` and look up `function` (dotted attributes allowed)."""
    module_name, _, attr_path = arch.partition(":")
    try:
        module = importlib.import_module(module_name)
    except BaseException as error:  # noqa: BLE001 - a user's module may raise anything
        if isinstance(error, KeyboardInterrupt):
            raise
        raise ModelError(f"model {arch}: module {module_name!r} does not import "
                         f"({type(error).__name__}: {one_line(error)})") from None
    target: Any = module
    for part in attr_path.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ModelError(f"model {arch}: module {module_name!r} has no attribute "
                             f"{attr_path!r}; expected a function returning an "
                             "nn.Module") from None
    if not callable(target):
        raise ModelError(f"model {arch}: {attr_path!r} is not callable (it is of type "
                         f"{type(target).__name__}); expected a function returning an "
                         "nn.Module")
    return target


def build_model(spec: ModelSpec, allow_import: bool = False) -> nn.Module:
    """Build the float network `spec` describes (training mode, fresh weights).

    A user factory is imported only with `allow_import=True` (the CLI sets it only when
    the user typed `--model`); otherwise ModelError. Every failure (bad kwargs, a module
    that does not import, a missing attribute, a factory that raises, a result that is
    not an nn.Module) is one ModelError line naming the model."""
    if not isinstance(spec, ModelSpec):
        raise TypeError(f"build_model expects a ModelSpec, got {type(spec).__name__}")
    if spec.is_builtin:
        factory: Callable[..., Any] = BUILTIN_ARCHS[spec.arch]
    elif not allow_import:
        raise ModelError(f"model {spec.arch}: a user factory; cosim imports code only when "
                         f"you name it (--model {spec.arch}, or build_model(..., "
                         "allow_import=True))")
    else:
        factory = _resolve_factory(spec.arch)
    try:
        model = factory(**spec.kwargs)
    except BaseException as error:  # noqa: BLE001 - a user's factory may raise anything
        if isinstance(error, KeyboardInterrupt):
            raise
        raise ModelError(f"model {spec.describe():.300}: the factory raised "
                         f"{type(error).__name__}: {one_line(error)}") from None
    if not isinstance(model, nn.Module):
        raise ModelError(f"model {spec.arch}: the factory returned a "
                         f"{type(model).__name__}; expected a torch.nn.Module")
    return model


def output_classes(model: nn.Module) -> int | None:
    """The number of outputs of the model's last weighted layer (the last nn.Linear or
    nn.Conv2d in module order): its out_features / out_channels; None if it has none."""
    last: nn.Module | None = None
    for module in model.modules():
        if isinstance(module, nn.Linear | nn.Conv2d):
            last = module
    if isinstance(last, nn.Linear):
        return int(last.out_features)
    if isinstance(last, nn.Conv2d):
        return int(last.out_channels)
    return None


# --------------------------------------------------------------------------- --model-arg

_INT = re.compile(r"^[+-]?[0-9]+$")
_FLOAT = re.compile(r"^[+-]?([0-9]+\.[0-9]*|\.[0-9]+|[0-9]+)([eE][+-]?[0-9]+)?$")


def parse_model_value(text: str) -> Any:
    """One `--model-arg` value: `true`/`false` (any case) -> bool, an integer -> int, a
    decimal or exponent number -> float, `none`/`null` -> None, a quoted `'...'` or
    `"..."` -> the string inside, a comma list `[a,b]` -> a list of these, anything
    else -> the string as written."""
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    if _INT.match(text):
        return int(text)
    if _FLOAT.match(text):
        return float(text)
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    if len(text) >= 2 and text[0] == "[" and text[-1] == "]":
        inner = text[1:-1].strip()
        return [] if not inner else [parse_model_value(item.strip())
                                     for item in inner.split(",")]
    return text


def parse_model_args(items: list[str]) -> dict[str, Any]:
    """`--model-arg key=value` items -> kwargs (see parse_model_value for the values).
    ModelError (one line naming the item) for a missing `=`, a key that is not an
    identifier, a repeated key or a value that is not JSON-plain."""
    kwargs: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep:
            raise ModelError(f"--model-arg {item!r:.80}: expected key=value")
        if not _KEY.match(key):
            raise ModelError(f"--model-arg {item!r:.80}: key {key!r:.40} is not a Python "
                             "identifier")
        if key in kwargs:
            raise ModelError(f"--model-arg {item!r:.80}: {key} is given twice")
        kwargs[key] = parse_model_value(text.strip())
    return check_kwargs(kwargs, "--model-arg")
