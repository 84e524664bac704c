"""The parameter package: manifest.json schema, a validated reader, consistency checks.

A package is a directory holding `manifest.json` and the txt/hex files it lists
(formats in `quant.formats`, documented in docs/file-formats.md). `load_package`
validates the manifest and every file's presence and SHA-256; the `Package`
readers decode files against the shapes and counts the manifest gives;
`Package.check_consistency` cross-checks txt, hex, qparams and shifts.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from cosim.quant import schema
from cosim.quant.choices import BUILTIN_ARCH_NAMES, unchecked_architecture_note
from cosim.quant.formats import (
    INT8,
    PackageError,
    PathLike,
    atomic_write_bytes,
    check_path,
    read_float_txt,
    read_hex,
    read_int_txt,
    read_qparams_txt,
    read_regular_file,
    read_scaling_factor_hex,
    read_scaling_factor_txt,
    sha256_file,
)
from cosim.quant.schema import MANIFEST_SCHEMA, validate

__all__ = [
    "DEFAULT_FILE_NAMES",
    "FORMAT",
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "MANIFEST_SCHEMA",
    "OPS",
    "Package",
    "check_manifest",
    "conv_kind",
    "expected_shift",
    "file_entry",
    "layer_shifts",
    "load_checked_package",
    "load_package",
    "manifest_qparams",
    "po2_exponent",
    "qparam_roles",
    "write_manifest",
]

FORMAT = schema.MANIFEST_FORMAT
FORMAT_VERSION = schema.MANIFEST_VERSION
MANIFEST_NAME = "manifest.json"

OPS = schema.OPS
WEIGHTED_OPS = ("conv2d", "linear")
#: Ops whose output has their input's scale and zero point (cat: its first input's).
SAME_QPARAMS_OPS = ("max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "relu", "relu6",
                    "flatten", "cat")
WEIGHTED_FILE_ROLES = schema.WEIGHTED_FILE_ROLES
QPARAM_FILE_ROLES = schema.QPARAM_FILE_ROLES
OP_FILE_ROLES = schema.OP_FILE_ROLES
PACKAGE_FILE_ROLES = schema.PACKAGE_FILE_ROLES

#: Suggested file names (layer files go under `layers/<layer name>/`).
DEFAULT_FILE_NAMES = {
    "weight_float_txt": "weight_float.txt",
    "bias_float_txt": "bias_float.txt",
    "weight_txt": "weight.txt",
    "weight_hex": "weight.hex",
    "bias_txt": "bias.txt",
    "bias_int16_txt": "bias_int16.txt",
    "bias_int16_hex": "bias_int16.hex",
    "scale_txt": "scale.txt",
    "zero_point_txt": "zero_point.txt",
    "scaling_factor_txt": "scaling_factor.txt",
    "scaling_factor_hex": "scaling_factor.hex",
}

INT16 = (-32768, 32767)


# ---------------------------------------------------------------- small shared rules


def conv_kind(weight_shape: Sequence[int], groups: int) -> str:
    """The kind of a conv2d of OIHW `weight_shape` and `groups`: 'depthwise' (groups ==
    in == out channels: one input and one output channel per group), 'grouped' (any
    other groups > 1), 'pointwise' (1x1, groups == 1) or 'regular'."""
    if groups > 1 and weight_shape[1] == 1 and weight_shape[0] == groups:
        return "depthwise"
    if groups > 1:
        return "grouped"
    if tuple(weight_shape[2:]) == (1, 1):
        return "pointwise"
    return "regular"


def po2_exponent(scale: float) -> int | None:
    """e if `scale` == 2**e exactly, else None."""
    if not (isinstance(scale, int | float) and scale > 0 and math.isfinite(scale)):
        return None
    mantissa, exponent = math.frexp(scale)
    return exponent - 1 if mantissa == 0.5 else None


def expected_shift(x_scale: float, w_scale: float, y_scale: float) -> int:
    """n = log2(y_scale / (x_scale * w_scale)) for po2 scales; n <= 0 is a left shift.

    ValueError if a scale is not an exact power of two.
    """
    exps = [po2_exponent(s) for s in (x_scale, w_scale, y_scale)]
    for name, s, e in zip(("x_scale", "w_scale", "y_scale"), (x_scale, w_scale, y_scale), exps,
                          strict=True):
        if e is None:
            raise ValueError(f"{name} {s!r} is not a power of two")
    ex, ew, ey = exps
    return ey - ex - ew  # type: ignore[operator]


def _as_list(v: Any) -> list:
    return list(v) if isinstance(v, list | tuple) else [v]


def layer_shifts(layer: Mapping[str, Any]) -> list[int]:
    """The manifest `shift` of a weighted layer as a list (1 or out_channels values)."""
    return [int(n) for n in _as_list(layer["shift"])]


def qparam_roles(layer: Mapping[str, Any]) -> dict[str, int]:
    """Roles of a layer's scale.txt/zero_point.txt and each role's value count."""
    op = layer["op"]
    if op in WEIGHTED_OPS:
        per_channel = layer["weight"]["qscheme"] == "per_channel_symmetric"
        return {"input": 1, "weight": layer["weight_shape"][0] if per_channel else 1, "output": 1}
    if op == "quantize":
        return {"output": 1}
    if op in ("add", "cat"):
        return {**{f"input{k}": 1 for k in range(len(layer["inputs"]))}, "output": 1}
    return {}


def manifest_qparams(layer: Mapping[str, Any]) -> dict[str, dict[str, list]]:
    """The manifest's qparams of a layer, shaped like `Package.qparams`:
    {"scale": {role: [floats]}, "zero_point": {role: [ints]}}."""
    op = layer["op"]
    entries: dict[str, Any] = {}
    if op in WEIGHTED_OPS:
        entries = {"input": layer["input"], "weight": layer["weight"], "output": layer["output"]}
    elif op == "quantize":
        entries = {"output": layer["output"]}
    elif op in ("add", "cat"):
        entries = {f"input{k}": q for k, q in enumerate(layer["input"])}
        entries["output"] = layer["output"]
    return {
        "scale": {r: [float(s) for s in _as_list(q["scale"])] for r, q in entries.items()},
        "zero_point": {r: [int(z) for z in _as_list(q["zero_point"])] for r, q in entries.items()},
    }


# ---------------------------------------------------------------- writing


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def write_manifest(path: PathLike, manifest: Mapping[str, Any]) -> None:
    """Write `manifest` as JSON to the file `path`: atomic, sorted keys, indent=1.

    NumPy scalars and arrays are converted; NaN/inf are refused (ValueError).
    """
    text = json.dumps(manifest, indent=1, sort_keys=True, allow_nan=False,
                      default=_json_default) + "\n"
    atomic_write_bytes(path, text.encode("ascii"))


def file_entry(package_root: PathLike, path: PathLike) -> dict[str, str]:
    """{"path": <POSIX path relative to the root>, "sha256": <hex>} for a written file.

    `path` is absolute or relative to `package_root`; it must lie inside it.
    """
    root = Path(package_root).resolve()
    p = Path(path)
    full = (p if p.is_absolute() else root / p).resolve()
    if not full.is_relative_to(root):
        raise ValueError(f"{path} is outside the package {package_root}")
    return {"path": full.relative_to(root).as_posix(), "sha256": sha256_file(full)}


# ---------------------------------------------------------------- manifest validation

#: No weighted layer may hold more weights than this (64 Mi), whatever its shape says.
MAX_LAYER_WEIGHTS = 1 << 26


def _q(value: Any) -> tuple[float, int] | None:
    """(scale, zero_point) of a qparams dict, for equality checks."""
    if not isinstance(value, dict):
        return None
    return float(value["scale"]), int(value["zero_point"])


class _Semantics:
    """The manifest rules a schema cannot state: values that depend on each other.

    Run after the schema check, so every key exists with its type and range. Every
    error is a PackageError on manifest.json naming the layer and what was expected.
    """

    def __init__(self, root: Path, manifest_path: Path, manifest: dict[str, Any]) -> None:
        self.root = root
        self.path = manifest_path
        self.m = manifest

    def fail(self, message: str) -> PackageError:
        return PackageError(self.path, message)

    def run(self) -> None:
        for role, entry in self.m["files"].items():
            self.file_path(entry, f"package file '{role}'")
        layers = self.m["layers"]
        by_name: dict[str, dict[str, Any]] = {}
        shapes: dict[str, tuple[int | None, ...] | None] = {}
        for index, layer in enumerate(layers):
            name = layer["name"]
            where = f"$.layers[{index}] ({json.dumps(name)})"
            if name in by_name:
                raise self.fail(f"{where}: the name appears twice; layer names must be unique")
            for role, entry in layer["files"].items():
                self.file_path(entry, f"{where} file '{role}'")
            for x in layer["inputs"]:
                if x not in by_name:
                    raise self.fail(f"{where}: input {x!r} is not an earlier layer; inputs "
                                    "must name earlier layers")
                if by_name[x]["op"] == "dequantize":
                    raise self.fail(f"{where}: input {x!r} is a dequantize; only the last "
                                    "layer may be a dequantize")
            op = layer["op"]
            if (op == "quantize") != (index == 0):
                raise self.fail(f"{where}: op {op!r}; expected the first layer, and only it, "
                                "to be the input quantize")
            producers = [by_name[x] for x in layer["inputs"]]
            if op in WEIGHTED_OPS:
                self.weighted(layer, where)
            self.qparams_chain(layer, producers, where)
            shapes[name] = self.shape(layer, [shapes[x] for x in layer["inputs"]], producers,
                                      where)
            by_name[name] = layer
        self.model(layers, shapes)

    # -- one file entry
    def file_path(self, entry: dict[str, str], where: str) -> None:
        rel = entry["path"]
        pure = PurePosixPath(rel)
        if pure.is_absolute() or ".." in pure.parts or ":" in pure.parts[0] or rel.endswith("/"):
            raise self.fail(f"{where} path {rel!r} escapes the package or names a folder; "
                            "expected a relative POSIX file path without '..'")
        if any(len(part.encode()) > 255 for part in pure.parts):
            raise self.fail(f"{where} path {rel[:60]!r}... has a name longer than 255 bytes")
        if not (self.root / rel).resolve().is_relative_to(self.root.resolve()):
            raise self.fail(f"{where} path {rel!r} escapes the package (through a link)")

    # -- a conv2d or linear layer on its own
    def weighted(self, layer: dict[str, Any], where: str) -> None:
        shape = layer["weight_shape"]
        out_ch = shape[0]
        if math.prod(shape) > MAX_LAYER_WEIGHTS:
            raise self.fail(f"{where}: weight_shape {shape} holds {math.prod(shape):,} weights; "
                            f"expected at most {MAX_LAYER_WEIGHTS:,}")
        if layer["bias_shape"] != [out_ch]:
            raise self.fail(f"{where}: bias_shape {layer['bias_shape']}; expected [{out_ch}] "
                            "(one bias per output channel)")
        if layer["op"] == "conv2d":
            groups = layer["groups"]
            if out_ch % groups:
                raise self.fail(f"{where}: groups {groups} with weight_shape {shape}; expected "
                                f"groups to divide the {out_ch} output channels")
            kind = conv_kind(shape, groups)
        else:
            kind = "linear"
        if layer["kind"] != kind:
            raise self.fail(f"{where}: kind {layer['kind']!r}; expected {kind!r} for "
                            f"weight_shape {shape} and groups {layer.get('groups', 1)}")
        w = layer["weight"]
        per_channel = w["qscheme"] == "per_channel_symmetric"
        for key, value in (("weight.scale", w["scale"]), ("weight.zero_point", w["zero_point"]),
                           ("shift", layer["shift"])):
            if per_channel != isinstance(value, list) or (per_channel and len(value) != out_ch):
                want = f"a list of {out_ch} values" if per_channel else "a single value"
                raise self.fail(f"{where}: {key} {_short(value)}; expected {want} "
                                f"({w['qscheme']})")
        if "range" in w and not w["range"][0] < 0 < w["range"][1]:
            raise self.fail(f"{where}: weight.range {w['range']}; expected [lo, hi] with "
                            "lo < 0 < hi")
        if layer["bias_saturated"] > out_ch:
            raise self.fail(f"{where}: bias_saturated {layer['bias_saturated']}; expected at "
                            f"most {out_ch} (the number of biases)")
        x_scale, y_scale = layer["input"]["scale"], layer["output"]["scale"]
        for c, (w_scale, n) in enumerate(zip(_as_list(w["scale"]), layer_shifts(layer),
                                             strict=True)):
            want = expected_shift(x_scale, w_scale, y_scale)
            if n != want:
                chan = f" channel {c}" if per_channel else ""
                raise self.fail(
                    f"{where}{chan}: shift {n} != log2(y_scale / (x_scale * w_scale)) "
                    f"= log2({y_scale!r} / ({x_scale!r} * {w_scale!r})) = {want}")

    # -- qparams along the edges: a layer reads what its producer wrote
    def qparams_chain(self, layer: dict[str, Any], producers: list[dict[str, Any]],
                      where: str) -> None:
        op = layer["op"]
        if op == "quantize":
            return
        many = op in ("add", "cat")
        seen = layer["input"] if many else [layer.get("input")] * len(producers)
        if len(seen) != len(producers):
            raise self.fail(f"{where}: {len(seen)} input qparams for {len(producers)} inputs; "
                            "expected one per input")
        for k, (q, producer) in enumerate(zip(seen, producers, strict=True)):
            want = self.output_q(producer)
            if q is None or want is None:
                continue
            if _q(q) != _q(want):
                which = f"input[{k}]" if many else "input"
                raise self.fail(
                    f"{where}: {which} qparams {_short(q)} differ from the output qparams "
                    f"{_short(want)} of its input layer {producer['name']!r}; expected equal")
        if op in SAME_QPARAMS_OPS and "output" in layer and "input" in layer:
            first = layer["input"][0] if op == "cat" else layer["input"]
            if _q(layer["output"]) != _q(first):
                keeps = ("cat keeps the first input's (PyTorch requantizes the others to it)"
                         if op == "cat" else f"{op} keeps the scale and zero point")
                raise self.fail(f"{where}: output qparams {_short(layer['output'])} differ from "
                                f"its {'input[0]' if op == 'cat' else 'input'} qparams "
                                f"{_short(first)}; {keeps}")

    def output_q(self, layer: dict[str, Any]) -> dict[str, Any] | None:
        """The qparams of a layer's output (flatten without them passes its input's on)."""
        while "output" not in layer:
            if layer["op"] != "flatten":
                return None
            layer = next(x for x in self.m["layers"] if x["name"] == layer["inputs"][0])
        return layer["output"]

    # -- tensor shapes along the edges: (C, H, W), (C, None, None) or (features,)
    def shape(self, layer: dict[str, Any], ins: list[tuple | None],
              producers: list[dict[str, Any]], where: str) -> tuple | None:
        op = layer["op"]
        if op == "quantize":
            shape = self.m["model"].get("input_shape")
            return tuple(shape) if shape else None
        x = ins[0] if ins else None
        if op in ("conv2d", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "cat",
                  "flatten"):
            for shape_in, producer in zip(ins, producers, strict=True):
                if shape_in is not None and len(shape_in) != 3:
                    raise self.fail(f"{where}: input {producer['name']!r} gives "
                                    f"{_dims(shape_in)}; {op} expects (C, H, W)")
        if op == "conv2d":
            s = layer["weight_shape"]
            in_ch = s[1] * layer["groups"]
            if x is not None and x[0] != in_ch:
                raise self.fail(
                    f"{where}: takes {in_ch} input channels (weight_shape[1] * groups) but its "
                    f"input {producers[0]['name']!r} gives {_dims(x)}; expected equal")
            return (s[0], *self.window(layer, x, s[2:], layer["padding"], layer["dilation"],
                                       layer["stride"], False, where))
        if op in ("max_pool2d", "avg_pool2d"):
            kernel, padding = layer["kernel_size"], layer["padding"]
            dilation = layer.get("dilation", [1, 1])
            for k, p, d in zip(kernel, padding, dilation, strict=True):
                if 2 * p > (k - 1) * d + 1:
                    raise self.fail(f"{where}: padding {padding} with kernel_size {kernel}"
                                    + (f" and dilation {dilation}" if op == "max_pool2d"
                                       else "")
                                    + "; expected padding at most half the window")
            if x is None:
                return None
            return (x[0], *self.window(layer, x, kernel, padding, dilation, layer["stride"],
                                       layer["ceil_mode"], where))
        if op == "linear":
            features = layer["weight_shape"][1]
            if producers[0]["op"] not in ("flatten", "linear", "relu", "relu6"):
                raise self.fail(f"{where}: input {producers[0]['name']!r} is a "
                                f"{producers[0]['op']}; expected a flatten or linear layer")
            if x is not None and x != (features,) and None not in x:
                raise self.fail(f"{where}: takes {features} features (weight_shape[1]) but its "
                                f"input {producers[0]['name']!r} gives {_dims(x)}")
            return (layer["weight_shape"][0],)
        if op == "add":
            a, b = ins
            if a is not None and b is not None and a != b:
                raise self.fail(f"{where}: adds {_dims(a)} to {_dims(b)}; expected equal shapes")
            return a if a is not None else b
        if op == "cat":
            known = [(shape_in, producer) for shape_in, producer in zip(ins, producers,
                                                                      strict=True)
                     if shape_in is not None]
            for shape_in, producer in known:
                if shape_in[1:] != known[0][0][1:]:
                    raise self.fail(f"{where}: concatenates {_dims(known[0][0])} "
                                    f"({known[0][1]['name']!r}) with {_dims(shape_in)} "
                                    f"({producer['name']!r}); expected the same H x W")
            if len(known) != len(ins):
                return None
            channels = sum(shape_in[0] for shape_in, _ in known)
            if channels > schema.MAX_CHANNELS:
                raise self.fail(f"{where}: concatenates {channels} channels; expected at most "
                                f"{schema.MAX_CHANNELS}")
            return (channels, *known[0][0][1:])
        if op == "adaptive_avg_pool2d":
            return None if x is None else (x[0], *layer["output_size"])
        if op == "flatten":
            if x is None or None in x:
                return (None,)
            return (math.prod(x),)
        return x  # relu, relu6, dequantize

    def window(self, layer: dict[str, Any], x: tuple | None, kernel: Sequence[int],
               padding: Sequence[int], dilation: Sequence[int], stride: Sequence[int],
               ceil_mode: bool, where: str) -> tuple:
        """Output H, W of a conv or pool window over input (C, H, W) `x` (PyTorch's
        formula; ceil_mode: rounded up, but the last window must start inside the
        input or its left padding)."""
        if x is None or x[1] is None:
            return (None, None)
        out = []
        for dim, k, p, d, st in zip(x[1:], kernel, padding, dilation, stride, strict=True):
            span = dim + 2 * p - d * (k - 1) - 1
            size = (-(-span // st) if ceil_mode else span // st) + 1 if span >= 0 else 0
            if ceil_mode and size > 0 and (size - 1) * st >= dim + p:
                size -= 1
            if size < 1:
                raise self.fail(f"{where}: an input of {_dims(x)} gives an output of size "
                                f"{size}; expected at least 1 (kernel, padding, dilation)")
            out.append(size)
        return tuple(out)

    # -- the model section against the layers
    def model(self, layers: list[dict[str, Any]], shapes: dict[str, tuple | None]) -> None:
        model = self.m["model"]
        weighted = [layer for layer in layers if layer["op"] in WEIGHTED_OPS]
        if not weighted:
            raise self.fail("$.layers: no conv2d or linear layer; expected at least one")
        counts = {"weighted_layers": len(weighted),
                  "weights": sum(math.prod(layer["weight_shape"]) for layer in weighted)}
        for key, value in counts.items():
            if key in model and model[key] != value:
                raise self.fail(f"$.model.{key}: {model[key]}; the layers give {value}")
        for key in ("num_classes", "width_mult"):
            kwargs = model.get("kwargs", {})
            if key in model and key in kwargs and kwargs[key] != model[key]:
                raise self.fail(f"$.model.{key}: {model[key]}; model.kwargs.{key} says "
                                f"{_short(kwargs[key])} (expected the same)")
        if "num_classes" in model:
            last = layers[-1] if layers[-1]["op"] != "dequantize" else layers[-2]
            got = shapes.get(last["name"])
            if last["op"] != "linear" or got != (model["num_classes"],):
                raise self.fail(f"$.model.num_classes: {model['num_classes']}; the last layer "
                                f"{last['name']!r} gives {_dims(got) if got else 'no classes'}")
        shape = model.get("input_shape")
        data = self.m.get("data", {})
        if shape and "image_size" in data and shape[1:] != [data["image_size"]] * 2:
            raise self.fail(f"$.model.input_shape: {shape}; expected [C, "
                            f"{data['image_size']}, {data['image_size']}] (data.image_size)")
        quant = self.m["quantization"]
        if isinstance(quant.get("per_channel"), bool):
            want = "per_channel_symmetric" if quant["per_channel"] else "per_tensor_symmetric"
            for layer in weighted:
                if layer["weight"]["qscheme"] != want:
                    raise self.fail(f"layer {json.dumps(layer['name'])}: weight.qscheme "
                                    f"{layer['weight']['qscheme']!r}; quantization.per_channel "
                                    f"says {want!r}")
        if isinstance(quant.get("weight_range"), list):
            for layer in weighted:
                if layer["weight"].get("range", quant["weight_range"]) != quant["weight_range"]:
                    raise self.fail(f"layer {json.dumps(layer['name'])}: weight.range "
                                    f"{layer['weight']['range']}; quantization.weight_range "
                                    f"says {quant['weight_range']}")


def _short(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, sort_keys=True, default=repr)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _dims(shape: Sequence[int | None] | None) -> str:
    if shape is None:
        return "an unknown shape"
    return "x".join("?" if d is None else str(d) for d in shape)


def check_manifest(manifest: Any, root: PathLike, manifest_path: PathLike) -> None:
    """Validate a parsed manifest: the declared schema (quant.schema.MANIFEST_SCHEMA:
    keys, types, ranges, versions), then the rules between values (unique names,
    inputs naming earlier layers, kinds, groups, per-channel lengths, the shift rule,
    every layer's input qparams equal to its producer's output qparams, channel and
    spatial sizes along every edge, the model section against the layers).
    PackageError (one line, naming manifest.json) on the first problem."""
    validate(manifest, MANIFEST_SCHEMA, manifest_path)
    _Semantics(Path(root), Path(manifest_path), manifest).run()


# ---------------------------------------------------------------- the package


class Package:
    """A loaded, validated package. Readers decode files against the manifest."""

    def __init__(self, root: Path, manifest: dict[str, Any]) -> None:
        self.root = root
        self.manifest = manifest
        self.layers: list[dict[str, Any]] = manifest["layers"]
        self._by_name = {layer["name"]: layer for layer in self.layers}
        self.manifest_path = root / MANIFEST_NAME
        #: What the checks did not do (e.g. no reference structure for a user factory).
        self.notes: list[str] = []

    # -- lookup
    def layer(self, name: str) -> dict[str, Any]:
        """The manifest entry of layer `name`."""
        try:
            return self._by_name[name]
        except KeyError:
            raise PackageError(self.manifest_path, f"unknown layer {name!r}") from None

    def weighted_layers(self) -> list[dict[str, Any]]:
        """conv2d and linear layers in execution order."""
        return [layer for layer in self.layers if layer["op"] in WEIGHTED_OPS]

    def file_path(self, role: str, layer: str | None = None) -> Path:
        """Path of a package-level file (layer None) or of a layer's file role."""
        files = self.manifest["files"] if layer is None else self.layer(layer)["files"]
        if role not in files:
            owner = "the package" if layer is None else f"layer {layer!r}"
            raise PackageError(self.manifest_path, f"{owner} has no file '{role}'")
        return self.root / files[role]["path"]

    def _weighted(self, name: str) -> dict[str, Any]:
        layer = self.layer(name)
        if layer["op"] not in WEIGHTED_OPS:
            raise PackageError(self.manifest_path,
                               f"layer {name!r} is {layer['op']}, not conv2d or linear")
        return layer

    # -- readers (int64 for integers, float32 for floats)
    def weight_int8(self, name: str) -> np.ndarray:
        """weight.txt: int8 values, shape weight_shape (OIHW or [out, in])."""
        layer = self._weighted(name)
        return read_int_txt(self.file_path("weight_txt", name), layer["weight_shape"], *INT8)

    def weight_hex(self, name: str) -> np.ndarray:
        """weight.hex: int8 words, reshaped to weight_shape."""
        shape = self._weighted(name)["weight_shape"]
        return read_hex(self.file_path("weight_hex", name), math.prod(shape), 8).reshape(shape)

    def bias_int16(self, name: str) -> np.ndarray:
        """bias_int16.txt: int16 values, shape bias_shape."""
        layer = self._weighted(name)
        return read_int_txt(self.file_path("bias_int16_txt", name), layer["bias_shape"], *INT16)

    def bias_int16_hex(self, name: str) -> np.ndarray:
        """bias_int16.hex: int16 words, shape bias_shape."""
        shape = self._weighted(name)["bias_shape"]
        return read_hex(self.file_path("bias_int16_hex", name), math.prod(shape), 16)

    def weight_float(self, name: str) -> np.ndarray:
        """weight_float.txt: the float model's weight (float32, weight_shape)."""
        layer = self._weighted(name)
        return read_float_txt(self.file_path("weight_float_txt", name), layer["weight_shape"])

    def bias_float(self, name: str) -> np.ndarray:
        """bias_float.txt: the float model's bias (float32, bias_shape)."""
        layer = self._weighted(name)
        return read_float_txt(self.file_path("bias_float_txt", name), layer["bias_shape"])

    def bias_quant_float(self, name: str) -> np.ndarray:
        """bias.txt: the float bias of the quantized module (float32, bias_shape)."""
        layer = self._weighted(name)
        return read_float_txt(self.file_path("bias_txt", name), layer["bias_shape"])

    def qparams(self, name: str) -> dict[str, dict[str, list]]:
        """scale.txt and zero_point.txt of a weighted, quantize, add or cat layer:
        {"scale": {role: [floats]}, "zero_point": {role: [ints]}}."""
        layer = self.layer(name)
        roles = qparam_roles(layer)
        if not roles:
            raise PackageError(self.manifest_path, f"layer {name!r} ({layer['op']}) has no "
                               "scale.txt/zero_point.txt")
        return {
            "scale": read_qparams_txt(self.file_path("scale_txt", name), roles, "scale"),
            "zero_point": read_qparams_txt(self.file_path("zero_point_txt", name), roles,
                                           "zero_point"),
        }

    def shifts(self) -> dict[str, list[int]]:
        """scaling_factor.txt: {layer: [n, ...]} for every weighted layer, in order."""
        weighted = self.weighted_layers()
        counts = {layer["name"]: len(layer_shifts(layer)) for layer in weighted}
        return read_scaling_factor_txt(self.file_path("scaling_factor_txt"), list(counts), counts)

    def shifts_hex(self) -> dict[str, list[int]]:
        """scaling_factor.hex split per layer by the manifest's shift counts."""
        weighted = self.weighted_layers()
        counts = [len(layer_shifts(layer)) for layer in weighted]
        flat = read_scaling_factor_hex(self.file_path("scaling_factor_hex"), sum(counts))
        out, start = {}, 0
        for layer, n in zip(weighted, counts, strict=True):
            out[layer["name"]] = flat[start:start + n].tolist()
            start += n
        return out

    # -- cross-checks
    def check_consistency(self) -> None:
        """Cross-check the files against each other and the manifest.

        txt and hex of weights and biases decode to the same integers; bias_int16
        equals round_half_even(bias.txt / (x_scale * w_scale)) saturated to int16;
        scale/zero_point files equal the manifest; every scale of a weighted layer is
        a power of two and shift == log2(y_scale / (x_scale * w_scale)); the
        scaling_factor txt and hex equal the manifest shifts; the float parameters
        (params_float/: weight_float_txt, bias_float_txt) parse as finite float32 of
        the layer's shapes; int8 weights lie in the manifest's weight.range; and, for
        a built-in architecture (quant.model.BUILTIN_ARCHS), every layer's structure
        (op, kind, inputs, shapes, stride, padding, dilation, groups, relu, pool
        windows, output size, cat dim) equals that architecture's converted graph
        built from the manifest's arch and kwargs (quant.rebuild.check_architecture;
        for a user factory nothing is imported and `notes` says the check was
        skipped). PackageError names the file and line of the first disagreement.
        """
        arch = self.manifest["model"].get("arch")
        if arch in BUILTIN_ARCH_NAMES:
            from cosim.quant.rebuild import check_architecture  # imports torch

            check_architecture(self)
        else:
            self.notes.append(unchecked_architecture_note(arch))
        for layer in self.layers:
            name = layer["name"]
            if layer["op"] in WEIGHTED_OPS:
                weight = self.weight_int8(name)
                self._check_txt_hex(name, "weight_txt", "weight_hex", weight,
                                    self.weight_hex(name))
                self._check_weight_range(layer, weight)
                self.weight_float(name)
                self.bias_float(name)
                self._check_txt_hex(name, "bias_int16_txt", "bias_int16_hex",
                                    self.bias_int16(name), self.bias_int16_hex(name))
                self._check_shift_rule(layer)
                self._check_bias_rule(layer)
            if qparam_roles(layer):
                self._check_qparams(layer)
        expected = {layer["name"]: layer_shifts(layer) for layer in self.weighted_layers()}
        for lineno, (name, shifts) in enumerate(self.shifts().items(), 1):
            if shifts != expected[name]:
                raise PackageError(
                    self.file_path("scaling_factor_txt"),
                    f"layer {name!r} shifts {shifts} disagree with manifest.json shift "
                    f"{expected[name]}", lineno,
                )
        offset = 0
        for name, shifts in self.shifts_hex().items():
            for c, (got, want) in enumerate(zip(shifts, expected[name], strict=True)):
                if got != want:
                    raise PackageError(
                        self.file_path("scaling_factor_hex"),
                        f"shift {got} (layer {name!r}, channel {c}) disagrees with "
                        f"manifest.json shift {want}", offset + c + 1,
                    )
            offset += len(shifts)

    def _check_txt_hex(self, name: str, txt_role: str, hex_role: str,
                       txt: np.ndarray, hexv: np.ndarray) -> None:
        a, b = txt.ravel(), hexv.ravel()
        bad = np.flatnonzero(a != b)
        if bad.size:
            i = int(bad[0])
            hex_path = self.file_path(hex_role, name)
            raise PackageError(
                self.file_path(txt_role, name),
                f"value {int(a[i])} disagrees with {hex_path}:{i + 1}, which decodes to "
                f"{int(b[i])}", i + 2,
            )

    def _check_weight_range(self, layer: Mapping[str, Any], weight: np.ndarray) -> None:
        limits = layer["weight"].get("range")
        if limits is None or not weight.size:
            return
        bad = np.flatnonzero((weight.ravel() < limits[0]) | (weight.ravel() > limits[1]))
        if bad.size:
            i = int(bad[0])
            raise PackageError(self.file_path("weight_txt", layer["name"]),
                               f"weight {int(weight.ravel()[i])} is outside the manifest's "
                               f"weight.range {limits}", i + 2)

    def _check_shift_rule(self, layer: Mapping[str, Any]) -> None:
        name = layer["name"]
        x_scale = layer["input"]["scale"]
        y_scale = layer["output"]["scale"]
        w_scales = _as_list(layer["weight"]["scale"])
        for c, (w_scale, n) in enumerate(zip(w_scales, layer_shifts(layer), strict=True)):
            try:
                want = expected_shift(x_scale, w_scale, y_scale)
            except ValueError as e:
                raise PackageError(self.manifest_path, f"layer {name!r}: {e}") from None
            if n != want:
                chan = f" channel {c}" if len(w_scales) > 1 else ""
                raise PackageError(
                    self.manifest_path,
                    f"layer {name!r}{chan}: shift {n} != log2(y_scale / (x_scale * w_scale)) "
                    f"= log2({y_scale!r} / ({x_scale!r} * {w_scale!r})) = {want}",
                )

    def _check_bias_rule(self, layer: Mapping[str, Any]) -> None:
        name = layer["name"]
        bias = self.bias_quant_float(name).astype(np.float64)
        w_scale = np.asarray(_as_list(layer["weight"]["scale"]), dtype=np.float64)
        want = np.clip(np.rint(bias / (layer["input"]["scale"] * w_scale)), *INT16)
        got = self.bias_int16(name)
        bad = np.flatnonzero(got != want)
        if bad.size:
            i = int(bad[0])
            raise PackageError(
                self.file_path("bias_int16_txt", name),
                f"bias_int16 {int(got[i])} != round_half_even(bias / (x_scale * w_scale)) "
                f"saturated = {int(want[i])}, from {self.file_path('bias_txt', name)}:{i + 2}",
                i + 2,
            )

    def _check_qparams(self, layer: Mapping[str, Any]) -> None:
        name = layer["name"]
        files = self.qparams(name)
        manifest = manifest_qparams(layer)
        for kind, role_key in (("scale", "scale_txt"), ("zero_point", "zero_point_txt")):
            for role, want in manifest[kind].items():
                got = files[kind][role]
                if kind == "scale":
                    same = np.array_equal(np.float32(got), np.float32(want))
                else:
                    same = got == want
                if not same:
                    path = self.file_path(role_key, name)
                    raise PackageError(
                        path, f"{role} {kind} {got} disagrees with manifest.json {want}",
                        _line_starting(path, role),
                    )


def _line_starting(path: Path, role: str) -> int | None:
    prefix = role.encode("ascii") + b" "
    for lineno, line in enumerate(read_regular_file(path, "a qparams file").split(b"\n"), 1):
        if line.startswith(prefix):
            return lineno
    return None


# ---------------------------------------------------------------- loading


def load_package(path: PathLike) -> Package:
    """Load and validate the package directory `path`.

    Reads manifest.json (a regular file of bounded size, bounded JSON), checks it
    against the declared schema and the rules between its values (`check_manifest`),
    and checks that every listed file lies inside the package, is a regular file and
    matches its SHA-256. File contents are decoded lazily by the `Package` readers;
    `Package.check_consistency` cross-checks them (see `load_checked_package`).
    """
    root = Path(check_path(path, "a package directory"))
    manifest_path = root / MANIFEST_NAME
    if not root.is_dir():
        raise PackageError(root, "missing or not a directory; expected a package directory")
    manifest = schema.read_json(manifest_path, None, "the package manifest (JSON)")
    check_manifest(manifest, root, manifest_path)
    entries: list[tuple[str, dict[str, str]]] = [
        (f"package file '{role}'", entry) for role, entry in manifest["files"].items()
    ]
    for layer in manifest["layers"]:
        entries += [(f"layer {layer['name']!r} file '{role}'", entry)
                    for role, entry in layer["files"].items()]
    for where, entry in entries:
        file_path = root / entry["path"]
        actual = sha256_file(file_path, what=f"the file listed in {MANIFEST_NAME} as {where}")
        if actual != entry["sha256"]:
            raise PackageError(
                file_path,
                f"sha256 mismatch: manifest says {entry['sha256'][:12]}…, file is {actual[:12]}…",
            )
    return Package(root, manifest)


def load_checked_package(path: PathLike) -> Package:
    """`load_package` plus `Package.check_consistency`: what every command that reads a
    package runs before it writes anything (verify, golden, golden-verify, demo)."""
    package = load_package(path)
    package.check_consistency()
    return package
