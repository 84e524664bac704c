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

from quant.formats import (
    INT8,
    PackageError,
    PathLike,
    atomic_write_bytes,
    read_float_txt,
    read_hex,
    read_int_txt,
    read_qparams_txt,
    read_scaling_factor_hex,
    read_scaling_factor_txt,
    sha256_file,
)

__all__ = [
    "DEFAULT_FILE_NAMES",
    "FORMAT",
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "OPS",
    "Package",
    "conv_kind",
    "expected_shift",
    "file_entry",
    "layer_shifts",
    "load_package",
    "manifest_qparams",
    "po2_exponent",
    "qparam_roles",
    "write_manifest",
]

FORMAT = "cnn-cosim-parameter-package"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"

#: Every op a layer may have, and the keys each needs besides name/op/inputs/files.
OP_KEYS: dict[str, tuple[str, ...]] = {
    "quantize": ("output",),
    "conv2d": (
        "kind", "weight_shape", "bias_shape", "stride", "padding", "dilation", "groups",
        "relu", "input", "weight", "output", "shift", "bias_saturated",
    ),
    "linear": (
        "kind", "weight_shape", "bias_shape", "relu", "input", "weight", "output", "shift",
        "bias_saturated",
    ),
    "add": ("input", "output", "relu"),
    "adaptive_avg_pool2d": ("output_size", "input", "output"),
    "flatten": (),
    "dequantize": ("input",),
}
OPS = tuple(OP_KEYS)
WEIGHTED_OPS = ("conv2d", "linear")
CONV_KINDS = ("regular", "depthwise", "pointwise")
QSCHEMES = ("per_tensor_symmetric", "per_channel_symmetric")
TOP_KEYS = ("format", "format_version", "model", "quantization", "calibration", "files", "layers")

WEIGHTED_FILE_ROLES = (
    "weight_float_txt", "bias_float_txt", "weight_txt", "weight_hex", "bias_txt",
    "bias_int16_txt", "bias_int16_hex", "scale_txt", "zero_point_txt",
)
QPARAM_FILE_ROLES = ("scale_txt", "zero_point_txt")
#: File roles each op must list; other roles are allowed and only hash-checked.
OP_FILE_ROLES: dict[str, tuple[str, ...]] = {
    "quantize": QPARAM_FILE_ROLES,
    "conv2d": WEIGHTED_FILE_ROLES,
    "linear": WEIGHTED_FILE_ROLES,
    "add": QPARAM_FILE_ROLES,
}
PACKAGE_FILE_ROLES = ("scaling_factor_txt", "scaling_factor_hex")

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
    """'depthwise' (groups > 1, one input channel per group), 'pointwise' (1x1,
    groups == 1) or 'regular' for a conv2d OIHW weight shape."""
    if groups > 1 and weight_shape[1] == 1:
        return "depthwise"
    if groups == 1 and tuple(weight_shape[2:]) == (1, 1):
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
    if op == "add":
        return {"input0": 1, "input1": 1, "output": 1}
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
    elif op == "add":
        entries = {"input0": layer["input"][0], "input1": layer["input"][1],
                   "output": layer["output"]}
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


class _Checker:
    """Validates a parsed manifest; every error is a PackageError on manifest.json."""

    def __init__(self, root: Path, manifest_path: Path) -> None:
        self.root = root
        self.path = manifest_path

    def fail(self, message: str) -> PackageError:
        return PackageError(self.path, message)

    # -- value checks; `where` is e.g. "layer 'x' 'stride'"
    def int_(self, v: Any, where: str, lo: int | None = None, hi: int | None = None) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.fail(f"{where} is {json.dumps(v)}, expected an integer")
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            bounds = f"[{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}]"
            raise self.fail(f"{where} is {v}, expected an integer in {bounds}")
        return v

    def int_list(self, v: Any, where: str, length: int | None, lo: int | None = None) -> list:
        if not isinstance(v, list) or (length is not None and len(v) != length) or not v:
            size = f"{length} " if length is not None else ""
            raise self.fail(f"{where} is {json.dumps(v)}, expected a list of {size}integers")
        return [self.int_(x, where, lo) for x in v]

    def scale(self, v: Any, where: str) -> float:
        if isinstance(v, bool) or not isinstance(v, int | float) or not (
            v > 0 and math.isfinite(v)
        ):
            raise self.fail(f"{where} is {json.dumps(v)}, expected a positive finite number")
        return float(v)

    def qparams(self, v: Any, where: str) -> None:
        if not isinstance(v, dict):
            raise self.fail(f"{where} is {json.dumps(v)}, expected {{'scale', 'zero_point'}}")
        for key in ("scale", "zero_point"):
            if key not in v:
                raise self.fail(f"{where} lacks '{key}'")
        self.scale(v["scale"], f"{where} 'scale'")
        self.int_(v["zero_point"], f"{where} 'zero_point'")

    def file_entry(self, entry: Any, where: str) -> None:
        if not isinstance(entry, dict) or "path" not in entry or "sha256" not in entry:
            raise self.fail(f"{where} is {json.dumps(entry)}, expected {{'path', 'sha256'}}")
        rel, digest = entry["path"], entry["sha256"]
        if not isinstance(digest, str) or len(digest) != 64 or digest.strip(
            "0123456789abcdef"
        ):
            raise self.fail(f"{where} sha256 {json.dumps(digest)} is not 64 lowercase hex digits")
        if not isinstance(rel, str) or not rel:
            raise self.fail(f"{where} path {json.dumps(rel)} is not a relative path")
        pure = PurePosixPath(rel)
        if pure.is_absolute() or "\\" in rel or ".." in pure.parts or ":" in pure.parts[0]:
            raise self.fail(
                f"{where} path {rel!r} escapes the package; expected a relative POSIX path "
                "without '..'"
            )
        full = self.root / rel
        if not full.resolve().is_relative_to(self.root.resolve()):
            raise self.fail(f"{where} path {rel!r} escapes the package (through a link)")

    def files(self, files: Any, where: str, required: Sequence[str]) -> None:
        if not isinstance(files, dict):
            raise self.fail(f"{where} 'files' is {json.dumps(files)}, expected an object")
        for role in required:
            if role not in files:
                raise self.fail(f"{where} lacks file '{role}'")
        for role, entry in files.items():
            self.file_entry(entry, f"{where} file '{role}'")

    # -- the whole manifest
    def manifest(self, m: Any) -> None:
        if not isinstance(m, dict):
            raise self.fail("top level is not a JSON object")
        for key in TOP_KEYS:
            if key not in m:
                raise self.fail(f"lacks '{key}'")
        if m["format"] != FORMAT:
            raise self.fail(f"format is {json.dumps(m['format'])}, expected {FORMAT!r}")
        if m["format_version"] != FORMAT_VERSION:
            raise self.fail(
                f"format_version {json.dumps(m['format_version'])} is not supported; "
                f"expected {FORMAT_VERSION}"
            )
        for key in ("model", "quantization", "calibration"):
            if not isinstance(m[key], dict):
                raise self.fail(f"'{key}' is {json.dumps(m[key])}, expected an object")
        self.files(m["files"], "package", PACKAGE_FILE_ROLES)
        layers = m["layers"]
        if not isinstance(layers, list) or not layers:
            raise self.fail("'layers' is not a non-empty list")
        seen: set[str] = set()
        for i, layer in enumerate(layers):
            self.layer(layer, i, seen)

    def layer(self, layer: Any, index: int, seen: set[str]) -> None:
        if not isinstance(layer, dict):
            raise self.fail(f"layers[{index}] is not an object")
        name = layer.get("name")
        if not isinstance(name, str) or not name or name.split() != [name]:
            raise self.fail(f"layers[{index}] 'name' is {json.dumps(name)}, "
                            "expected a non-empty name without spaces")
        where = f"layer {name!r}"
        if name in seen:
            raise self.fail(f"{where} appears twice; layer names must be unique")
        op = layer.get("op")
        if op not in OP_KEYS:
            raise self.fail(f"{where} op {json.dumps(op)} is unknown; expected one of "
                            f"{', '.join(OPS)}")
        for key in ("inputs", "files", *OP_KEYS[op]):
            if key not in layer:
                raise self.fail(f"{where} lacks '{key}'")
        inputs = layer["inputs"]
        if not isinstance(inputs, list) or not all(isinstance(x, str) for x in inputs):
            raise self.fail(f"{where} 'inputs' is {json.dumps(inputs)}, expected a list of names")
        for x in inputs:
            if x not in seen:
                raise self.fail(f"{where} input {x!r} is an unknown layer; inputs must name "
                                "earlier layers")
        want_inputs = {"quantize": 0, "add": 2}.get(op)
        if want_inputs is not None and len(inputs) != want_inputs:
            raise self.fail(f"{where} has {len(inputs)} inputs, expected {want_inputs}")
        if want_inputs is None and not inputs:
            raise self.fail(f"{where} has no inputs")
        if op in WEIGHTED_OPS:
            self.weighted(layer, where)
        elif op == "add":
            qs = layer["input"]
            if not isinstance(qs, list) or len(qs) != 2:
                raise self.fail(f"{where} 'input' must be a list of 2 qparams objects")
            for k, q in enumerate(qs):
                self.qparams(q, f"{where} 'input'[{k}]")
        elif op == "adaptive_avg_pool2d":
            self.int_list(layer["output_size"], f"{where} 'output_size'", 2, lo=1)
        for key in ("input", "output"):
            if key in layer and op != "add":
                self.qparams(layer[key], f"{where} '{key}'")
        if op == "add":
            self.qparams(layer["output"], f"{where} 'output'")
        if "relu" in layer and not isinstance(layer["relu"], bool):
            raise self.fail(f"{where} 'relu' is {json.dumps(layer['relu'])}, expected a boolean")
        self.files(layer["files"], where, OP_FILE_ROLES.get(op, ()))
        seen.add(name)

    def weighted(self, layer: dict, where: str) -> None:
        conv = layer["op"] == "conv2d"
        shape = self.int_list(layer["weight_shape"], f"{where} 'weight_shape'", 4 if conv else 2,
                              lo=1)
        out_ch = shape[0]
        if self.int_list(layer["bias_shape"], f"{where} 'bias_shape'", 1, lo=1) != [out_ch]:
            raise self.fail(f"{where} 'bias_shape' is {layer['bias_shape']}, expected [{out_ch}]")
        if conv:
            self.int_list(layer["stride"], f"{where} 'stride'", 2, lo=1)
            self.int_list(layer["padding"], f"{where} 'padding'", 2, lo=0)
            self.int_list(layer["dilation"], f"{where} 'dilation'", 2, lo=1)
            groups = self.int_(layer["groups"], f"{where} 'groups'", lo=1)
            if out_ch % groups:
                raise self.fail(f"{where} 'groups' {groups} does not divide {out_ch} outputs")
            kind = conv_kind(shape, groups)
        else:
            kind = "linear"
        if layer["kind"] != kind:
            raise self.fail(f"{where} 'kind' is {json.dumps(layer['kind'])}, expected {kind!r}")
        w = layer["weight"]
        if not isinstance(w, dict) or any(k not in w for k in ("scale", "zero_point", "qscheme")):
            raise self.fail(f"{where} 'weight' needs 'scale', 'zero_point' and 'qscheme'")
        if w["qscheme"] not in QSCHEMES:
            raise self.fail(f"{where} weight qscheme {json.dumps(w['qscheme'])} is unknown; "
                            f"expected one of {', '.join(QSCHEMES)}")
        per_channel = w["qscheme"] == "per_channel_symmetric"
        for key in ("scale", "zero_point", "shift"):
            v = layer[key] if key == "shift" else w[key]
            label = f"{where} '{key}'" if key == "shift" else f"{where} weight '{key}'"
            if per_channel != isinstance(v, list) or (per_channel and len(v) != out_ch):
                want = f"a list of {out_ch} values" if per_channel else "a single value"
                raise self.fail(f"{label} must be {want} ({w['qscheme']})")
            for x in _as_list(v):
                if key == "scale":
                    self.scale(x, label)
                elif key == "zero_point":
                    self.int_(x, label, 0, 0)
                else:
                    self.int_(x, label, *INT8)
        self.int_(layer["bias_saturated"], f"{where} 'bias_saturated'", 0, out_ch)


# ---------------------------------------------------------------- the package


class Package:
    """A loaded, validated package. Readers decode files against the manifest."""

    def __init__(self, root: Path, manifest: dict[str, Any]) -> None:
        self.root = root
        self.manifest = manifest
        self.layers: list[dict[str, Any]] = manifest["layers"]
        self._by_name = {layer["name"]: layer for layer in self.layers}
        self.manifest_path = root / MANIFEST_NAME

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
        """scale.txt and zero_point.txt of a weighted, quantize or add layer:
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
        scaling_factor txt and hex equal the manifest shifts. PackageError names the
        file and line of the first disagreement.
        """
        for layer in self.layers:
            name = layer["name"]
            if layer["op"] in WEIGHTED_OPS:
                self._check_txt_hex(name, "weight_txt", "weight_hex",
                                    self.weight_int8(name), self.weight_hex(name))
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
    for lineno, line in enumerate(path.read_bytes().split(b"\n"), 1):
        if line.startswith(prefix):
            return lineno
    return None


# ---------------------------------------------------------------- loading


def load_package(path: PathLike) -> Package:
    """Load and validate the package directory `path`.

    Checks the manifest schema (format, version, keys and types per op, unique
    names, inputs naming earlier layers) and that every listed file lies inside
    the package, exists and matches its SHA-256. File contents are decoded
    lazily by the `Package` readers.
    """
    root = Path(path)
    manifest_path = root / MANIFEST_NAME
    if not root.is_dir():
        raise PackageError(root, "missing or not a directory; expected a package directory")
    try:
        text = manifest_path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise PackageError(manifest_path, "missing; expected the package manifest") from None
    except UnicodeDecodeError as e:
        raise PackageError(manifest_path, f"is not UTF-8 ({e.reason})") from None
    try:
        manifest = json.loads(text)
    except json.JSONDecodeError as e:
        raise PackageError(manifest_path, f"invalid JSON: {e.msg} (column {e.colno})",
                           e.lineno) from None
    _Checker(root, manifest_path).manifest(manifest)
    entries: list[tuple[str, dict[str, str]]] = [
        (f"package file '{role}'", entry) for role, entry in manifest["files"].items()
    ]
    for layer in manifest["layers"]:
        entries += [(f"layer {layer['name']!r} file '{role}'", entry)
                    for role, entry in layer["files"].items()]
    for where, entry in entries:
        file_path = root / entry["path"]
        if not file_path.is_file():
            raise PackageError(file_path, f"missing; listed in {MANIFEST_NAME} as {where}")
        actual = sha256_file(file_path)
        if actual != entry["sha256"]:
            raise PackageError(
                file_path,
                f"sha256 mismatch: manifest says {entry['sha256'][:12]}…, file is {actual[:12]}…",
            )
    return Package(root, manifest)
