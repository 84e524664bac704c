"""Per-layer quantization error: SQNR of the int8 network against the float network.

The float network is the package's own graph (manifest ``layers``) evaluated in float
with the package's float weights (``params_float/<layer>/weight.txt`` and ``bias.txt``:
BatchNorm folded, cross-layer equalization applied); see FloatNetwork. The int8
network is the golden integer model (``golden.infer.IntegerModel``, bit-exact with
PyTorch's fbgemm model). Both run on the first ``images`` images of the package's test
split; each weighted layer's uint8 codes are dequantized with the layer's output scale
and zero point and compared with the float output at that layer (after its ReLU, if
the layer has one). Each network is fed its own previous layers, so the error is end to
end: it includes everything inherited from earlier layers.

    SQNR_dB = 10 * log10(sum(f ** 2) / sum((q - f) ** 2))

(``inf`` when the two are identical, ``-inf`` when only the float signal is all zero,
``nan`` when both are.)
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cosim.quant.formats import PathLike
from cosim.quant.package import Package, load_package

__all__ = ["FloatNetwork", "float_model", "layer_sqnr", "sqnr_db"]


def sqnr_db(signal_power: float, noise_power: float) -> float:
    """10 log10(signal / noise), with inf for zero noise and -inf for zero signal."""
    if noise_power <= 0.0:
        return math.inf if signal_power > 0.0 else math.nan
    if signal_power <= 0.0:
        return -math.inf
    return 10.0 * math.log10(signal_power / noise_power)


def _pair(value: Any) -> tuple[int, int]:
    return (int(value), int(value)) if isinstance(value, int) else tuple(int(v) for v in value)


class FloatNetwork:
    """The float network whose weights the package exported, run from the manifest alone.

    Every node of the manifest's ``layers`` is evaluated with torch.nn.functional on
    float32 tensors: conv2d / linear with ``params_float`` weights and biases (then the
    fused ReLU if the layer has one), add (+ReLU), cat, max / average / adaptive average
    pool, relu, relu6 and flatten; ``quantize`` and ``dequantize`` pass the float tensor
    through. No model code is imported, so it works for every architecture.
    """

    def __init__(self, package: Package) -> None:
        self.layers = package.layers
        self.params = {layer["name"]: (torch.from_numpy(package.weight_float(layer["name"])),
                                       torch.from_numpy(package.bias_float(layer["name"]))
                                       .reshape(-1))
                       for layer in package.weighted_layers()}

    @torch.no_grad()
    def run(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every node's float output (NCHW or [N, features]) for float32 NCHW `images`."""
        import torch.nn.functional as F

        values: dict[str, torch.Tensor] = {}
        for layer in self.layers:
            op, name = layer["op"], layer["name"]
            args = [values[source] for source in layer["inputs"]] or [images]
            x = args[0]
            if op in ("quantize", "dequantize"):
                y = x
            elif op == "conv2d":
                weight, bias = self.params[name]
                y = F.conv2d(x, weight, bias, _pair(layer["stride"]), _pair(layer["padding"]),
                             _pair(layer["dilation"]), int(layer["groups"]))
            elif op == "linear":
                weight, bias = self.params[name]
                y = F.linear(x, weight, bias)
            elif op == "add":
                y = args[0] + args[1]
            elif op == "cat":
                y = torch.cat(args, int(layer.get("dim", 1)))
            elif op == "max_pool2d":
                y = F.max_pool2d(x, _pair(layer["kernel_size"]), _pair(layer["stride"]),
                                 _pair(layer["padding"]), _pair(layer.get("dilation", 1)),
                                 bool(layer.get("ceil_mode", False)))
            elif op == "avg_pool2d":
                y = F.avg_pool2d(x, _pair(layer["kernel_size"]), _pair(layer["stride"]),
                                 _pair(layer["padding"]), bool(layer.get("ceil_mode", False)),
                                 bool(layer.get("count_include_pad", True)),
                                 layer.get("divisor_override"))
            elif op == "adaptive_avg_pool2d":
                y = F.adaptive_avg_pool2d(x, _pair(layer["output_size"]))
            elif op == "relu":
                y = torch.relu(x)
            elif op == "relu6":
                y = F.relu6(x)
            elif op == "flatten":
                y = torch.flatten(x, int(layer.get("start_dim", 1)))
            else:
                raise RuntimeError(f"layer {name!r}: op {op!r} has no float definition")
            if layer.get("relu") and op in ("conv2d", "linear", "add"):
                y = torch.relu(y)
            values[name] = y
        return values


def float_model(package: Package | PathLike) -> FloatNetwork:
    """The float network of a package (see FloatNetwork)."""
    if not isinstance(package, Package):
        package = load_package(package)
    return FloatNetwork(package)


def _test_images(package: Package, count: int) -> torch.Tensor:
    from cosim.quant.data import build_dataset
    from cosim.quant.verify import data_config

    dataset = build_dataset(data_config(package), "test")
    count = min(count, len(dataset))
    if count < 1:
        raise ValueError("the test split has no images")
    return torch.stack([dataset[i][0] for i in range(count)])


@torch.no_grad()
def layer_sqnr(package_dir: Package | PathLike, images: int = 32,
               batch_size: int = 16) -> list[dict[str, Any]]:
    """SQNR (dB) of every weighted layer's int8 output against the float output.

    Returns one dict per weighted layer in execution order: ``name``, ``op``,
    ``sqnr_db`` (float; inf if identical), ``images`` (how many were used) and
    ``elements`` (values compared).
    """
    from cosim.golden.infer import IntegerModel

    package = package_dir if isinstance(package_dir, Package) else load_package(package_dir)
    if images < 1:
        raise ValueError(f"images must be >= 1, got {images}")
    weighted = package.weighted_layers()
    model = float_model(package)
    golden = IntegerModel.from_package(package)
    batch = _test_images(package, images)

    signal = dict.fromkeys((layer["name"] for layer in weighted), 0.0)
    noise = dict.fromkeys(signal, 0.0)
    elements = dict.fromkeys(signal, 0)
    for start in range(0, len(batch), batch_size):
        x = batch[start:start + batch_size]
        floats = model.run(x)
        codes = golden.run(x.numpy())
        for layer in weighted:
            name = layer["name"]
            f = floats[name].numpy().astype(np.float64)
            out = layer["output"]
            q = (codes[name].astype(np.float64) - float(out["zero_point"])) * float(
                out["scale"])
            if q.shape != f.shape:
                raise RuntimeError(f"{name}: int8 shape {q.shape}, float {f.shape}")
            signal[name] += float(np.sum(f * f))
            noise[name] += float(np.sum((q - f) ** 2))
            elements[name] += f.size
    return [{"name": layer["name"], "op": layer["op"],
             "sqnr_db": sqnr_db(signal[layer["name"]], noise[layer["name"]]),
             "images": len(batch), "elements": elements[layer["name"]]}
            for layer in weighted]


def main() -> None:  # pragma: no cover - a quick look from the shell
    import sys

    path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("build/package")
    for row in layer_sqnr(path):
        print(f"{row['name']:28s} {row['sqnr_db']:7.2f} dB")


if __name__ == "__main__":  # pragma: no cover
    main()
