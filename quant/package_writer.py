"""Write a parameter package from integer layers: synthetic networks for tests and the
compute engine's stress network (tb/compute/stress.py, tests/tiny_package.py,
tests/synthetic_nets.py).

The files and manifest entries are those `cosim package` writes (docs/file-formats.md):
per weighted layer the int8 weights (text and $readmemh hex), the int16 biases, the
float weights and biases they stand for, and the qparam files; scaling_factor.txt/.hex
and manifest.json at the end. Every scale must be a power of two.

    with atomic_directory(root) as tmp:
        w = PackageWriter(tmp)
        w.quantize_input(q)
        w.weighted({"name": ..., "op": "conv2d", "inputs": [...], "input": x,
                    "output": y, "relu": True, "stride": [1, 1], ...}, weight, bias_int,
                   w_scale)
        ...
        w.finish({"arch": "my-net"})
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .formats import (
    write_float_txt,
    write_hex,
    write_int_txt,
    write_qparams_txt,
    write_scaling_factor_hex,
    write_scaling_factor_txt,
)
from .package import (
    DEFAULT_FILE_NAMES,
    FORMAT,
    FORMAT_VERSION,
    MANIFEST_NAME,
    conv_kind,
    expected_shift,
    file_entry,
    write_manifest,
)

#: the parameter files of a weighted layer (besides its qparam files)
PARAMETER_FILE_ROLES = ("weight_float_txt", "bias_float_txt", "weight_txt", "weight_hex",
                        "bias_txt", "bias_int16_txt", "bias_int16_hex")
BIAS_MIN, BIAS_MAX = -32768, 32767
CONV_ATTRIBUTES = ("stride", "padding", "dilation", "groups")


class PackageWriter:
    """Builds the package in directory `tmp` (an atomic_directory's temporary folder)
    layer by layer, in execution order; `finish` writes the manifest."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = Path(tmp)
        self.layers: list[dict[str, Any]] = []
        self.shifts: list[tuple[str, list[int]]] = []

    def qparam_files(self, name: str, qparams: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """layers/<name>/scale.txt and zero_point.txt of roles -> {"scale", "zero_point"}."""
        d = f"layers/{name}"
        write_qparams_txt(self.tmp / d / "scale.txt",
                          {r: np.atleast_1d(q["scale"]).tolist() for r, q in qparams.items()})
        write_qparams_txt(self.tmp / d / "zero_point.txt",
                          {r: np.atleast_1d(q["zero_point"]).tolist()
                           for r, q in qparams.items()})
        return {"scale_txt": file_entry(self.tmp, f"{d}/scale.txt"),
                "zero_point_txt": file_entry(self.tmp, f"{d}/zero_point.txt")}

    def quantize_input(self, q: dict[str, Any], name: str = "input") -> None:
        """The network input's quantize node with qparams `q`."""
        self.layers.append({"name": name, "op": "quantize", "inputs": [], "output": q,
                            "files": self.qparam_files(name, {"output": q})})

    def weighted(self, node: dict[str, Any], weight: np.ndarray, bias_int: np.ndarray,
                 w_scale: float | Sequence[float], *,
                 bias_float: np.ndarray | None = None,
                 weight_range: tuple[int, int] | None = None) -> dict[str, Any]:
        """A conv2d or linear layer. node: name, op, inputs, input and output qparams,
        relu, and for a conv2d stride, padding, dilation, groups (other keys are kept).
        weight: int8 codes (OIHW or OI); bias_int: the exact integer biases in units of
        input scale x weight scale, clipped here to int16 (the count is the layer's
        bias_saturated); w_scale: one po2 scale (per tensor) or one per output channel;
        bias_float: the float biases they stand for (default bias_int x that unit).
        Returns the manifest entry (also appended)."""
        name = node["name"]
        weight = np.asarray(weight, dtype=np.int64)
        out_ch = weight.shape[0]
        per_channel = not np.isscalar(w_scale)
        scales = np.broadcast_to(np.asarray(w_scale, dtype=np.float64), (out_ch,))
        x, y = node["input"], node["output"]
        shifts = [expected_shift(x["scale"], float(s), y["scale"])
                  for s in np.atleast_1d(np.asarray(w_scale, dtype=np.float64)).tolist()]
        exact = np.asarray(bias_int, dtype=np.int64)
        bias_int16 = np.clip(exact, BIAS_MIN, BIAS_MAX)
        unit = x["scale"] * scales
        if bias_float is None:
            bias_float = exact * unit
        snapped = (bias_int16 * unit).astype(np.float32)
        d = self.tmp / "layers" / name
        w_float = weight * scales.reshape(-1, *[1] * (weight.ndim - 1))
        write_float_txt(d / DEFAULT_FILE_NAMES["weight_float_txt"], w_float)
        write_float_txt(d / DEFAULT_FILE_NAMES["bias_float_txt"], bias_float)
        write_int_txt(d / DEFAULT_FILE_NAMES["weight_txt"], weight)
        write_hex(d / DEFAULT_FILE_NAMES["weight_hex"], weight, 8)
        write_float_txt(d / DEFAULT_FILE_NAMES["bias_txt"], snapped)
        write_int_txt(d / DEFAULT_FILE_NAMES["bias_int16_txt"], bias_int16)
        write_hex(d / DEFAULT_FILE_NAMES["bias_int16_hex"], bias_int16, 16)
        files = {role: file_entry(self.tmp, f"layers/{name}/{DEFAULT_FILE_NAMES[role]}")
                 for role in PARAMETER_FILE_ROLES}
        weight_q: dict[str, Any] = {
            "scale": list(w_scale) if per_channel else w_scale,
            "zero_point": [0] * out_ch if per_channel else 0,
            "qscheme": "per_channel_symmetric" if per_channel else "per_tensor_symmetric",
        }
        if weight_range is not None:
            weight_q["range"] = list(weight_range)
        files |= self.qparam_files(name, {"input": x, "weight": weight_q, "output": y})
        layer = dict(node) | {
            "weight_shape": list(weight.shape), "bias_shape": [out_ch], "weight": weight_q,
            "shift": shifts if per_channel else shifts[0],
            "bias_saturated": int((bias_int16 != exact).sum()), "files": files,
        }
        if node["op"] == "conv2d":
            layer["kind"] = conv_kind(weight.shape, node["groups"])
        else:
            layer["kind"] = "linear"
        self.layers.append(layer)
        self.shifts.append((name, shifts))
        return layer

    def add(self, node: dict[str, Any]) -> dict[str, Any]:
        """A residual add: node with name, op "add" (or "cat"), inputs, input (a list of
        qparams) and output; its qparam files are written here."""
        roles = {f"input{k}": q for k, q in enumerate(node["input"])} | {
            "output": node["output"]}
        layer = dict(node) | {"files": self.qparam_files(node["name"], roles)}
        self.layers.append(layer)
        return layer

    def node(self, node: dict[str, Any]) -> dict[str, Any]:
        """A node without files of its own (pool, flatten, relu, dequantize)."""
        layer = dict(node)
        layer.setdefault("files", {})
        self.layers.append(layer)
        return layer

    def finish(self, model: dict[str, Any], quantization: dict[str, Any] | None = None,
               calibration: dict[str, Any] | None = None) -> None:
        """scaling_factor.txt/.hex (every weighted layer's shifts, in order) and the
        manifest."""
        write_scaling_factor_txt(self.tmp / "scaling_factor.txt", self.shifts)
        write_scaling_factor_hex(self.tmp / "scaling_factor.hex",
                                 [n for _, ns in self.shifts for n in ns])
        write_manifest(self.tmp / MANIFEST_NAME, {
            "format": FORMAT, "format_version": FORMAT_VERSION, "model": model,
            "quantization": quantization or {}, "calibration": calibration or {},
            "files": {"scaling_factor_txt": file_entry(self.tmp, "scaling_factor.txt"),
                      "scaling_factor_hex": file_entry(self.tmp, "scaling_factor.hex")},
            "layers": self.layers})
