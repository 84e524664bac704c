"""Per-layer quantization error: SQNR of the int8 network against the float network.

The float network is rebuilt from the package's own float weights
(``params_float/<layer>/weight.txt`` and ``bias.txt``: BatchNorm folded, cross-layer
equalization applied) loaded into ``fold_batchnorm(mobilenet_v2_relu(...))``. The int8
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
import torch.nn as nn

from quant.formats import PathLike
from quant.package import Package, load_package

__all__ = ["float_model", "layer_sqnr", "sqnr_db"]


def sqnr_db(signal_power: float, noise_power: float) -> float:
    """10 log10(signal / noise), with inf for zero noise and -inf for zero signal."""
    if noise_power <= 0.0:
        return math.inf if signal_power > 0.0 else math.nan
    if signal_power <= 0.0:
        return -math.inf
    return 10.0 * math.log10(signal_power / noise_power)


def _classes_and_width(package: Package) -> tuple[int, float]:
    model = package.manifest.get("model", {})
    weighted = package.weighted_layers()
    classes = model.get("num_classes") or weighted[-1]["weight_shape"][0]
    return int(classes), float(model.get("width_mult", 1.0))


def float_model(package: Package | PathLike) -> nn.Module:
    """The float network whose weights the package exported (BN folded, CLE applied).

    Raises RuntimeError when a weighted layer of the manifest has no module of that
    name and shape in ``fold_batchnorm(mobilenet_v2_relu(...))``, or when that model
    has a weighted module the manifest does not list.
    """
    from quant.model import mobilenet_v2_relu
    from quant.ptq import fold_batchnorm

    if not isinstance(package, Package):
        package = load_package(package)
    classes, width = _classes_and_width(package)
    model = fold_batchnorm(mobilenet_v2_relu(classes, width)).eval()
    modules = dict(model.named_modules())
    weighted = {name for name, m in modules.items() if isinstance(m, (nn.Conv2d, nn.Linear))}
    listed = [layer["name"] for layer in package.weighted_layers()]
    if set(listed) != weighted:
        missing = sorted(set(listed) - weighted)[:3]
        extra = sorted(weighted - set(listed))[:3]
        raise RuntimeError(f"package layers do not match the float model: not in the model "
                           f"{missing}, not in the package {extra}")
    with torch.no_grad():
        for name in listed:
            module = modules[name]
            weight = torch.from_numpy(package.weight_float(name))
            if tuple(weight.shape) != tuple(module.weight.shape):
                raise RuntimeError(f"{name}: package weight shape {tuple(weight.shape)}, "
                                   f"model {tuple(module.weight.shape)}")
            module.weight.copy_(weight)
            bias = torch.from_numpy(package.bias_float(name)).reshape(-1)
            if module.bias is None:
                module.bias = nn.Parameter(torch.zeros_like(bias))
            module.bias.copy_(bias)
    return model


def _test_images(package: Package, count: int) -> torch.Tensor:
    from quant.data import build_dataset
    from quant.verify import data_config

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
    from golden.infer import IntegerModel

    package = package_dir if isinstance(package_dir, Package) else load_package(package_dir)
    if images < 1:
        raise ValueError(f"images must be >= 1, got {images}")
    weighted = package.weighted_layers()
    model = float_model(package)
    golden = IntegerModel.from_package(package)
    batch = _test_images(package, images)

    modules = dict(model.named_modules())
    captured: dict[str, torch.Tensor] = {}
    hooks = []
    for layer in weighted:
        def hook(_m: nn.Module, _i: Any, out: torch.Tensor, name: str = layer["name"]) -> None:
            captured[name] = out
        hooks.append(modules[layer["name"]].register_forward_hook(hook))

    signal = dict.fromkeys((layer["name"] for layer in weighted), 0.0)
    noise = dict.fromkeys(signal, 0.0)
    elements = dict.fromkeys(signal, 0)
    try:
        for start in range(0, len(batch), batch_size):
            x = batch[start:start + batch_size]
            captured.clear()
            model(x)
            codes = golden.run(x.numpy())
            for layer in weighted:
                name = layer["name"]
                f = captured[name]
                if layer.get("relu"):
                    f = torch.relu(f)
                f = f.numpy().astype(np.float64)
                out = layer["output"]
                q = (codes[name].astype(np.float64) - float(out["zero_point"])) * float(
                    out["scale"])
                if q.shape != f.shape:
                    raise RuntimeError(f"{name}: int8 shape {q.shape}, float {f.shape}")
                signal[name] += float(np.sum(f * f))
                noise[name] += float(np.sum((q - f) ** 2))
                elements[name] += f.size
    finally:
        for h in hooks:
            h.remove()
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
