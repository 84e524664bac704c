"""A tiny synthetic parameter package for tests (import as `from tiny_package import ...`).

Network (execution order): input (quantize) -> features.0.0 (regular conv 4x3x3x3,
per-tensor) -> features.1.conv.0.0 (depthwise conv 4x1x3x3, per-channel, one
negative shift) -> add_0 (features.0.0 + features.1.conv.0.0) -> avgpool ->
flatten -> classifier.1 (linear 3x4) -> output (dequantize). All scales are po2.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from cosim.quant.formats import atomic_directory, sha256_file
from cosim.quant.package import MANIFEST_NAME, write_manifest
from cosim.quant.package_writer import PackageWriter

INPUT_Q = {"scale": 2.0**-5, "zero_point": 64}
CONV0_OUT = {"scale": 2.0**-4, "zero_point": 0}
DW_OUT = {"scale": 2.0**-4, "zero_point": 0}
ADD_OUT = {"scale": 2.0**-3, "zero_point": 0}
FC_OUT = {"scale": 2.0**-2, "zero_point": 100}


def tiny_weighted_layers() -> dict[str, dict[str, Any]]:
    """The weighted layers' parameters: int8 weights, float biases, qparams."""
    rng = np.random.default_rng(1234)
    conv0_b = rng.normal(0.0, 0.5, 4)
    conv0_b[2] = 2000.0  # saturates int16 at x_scale * w_scale = 2^-12
    return {
        "features.0.0": {
            "op": "conv2d", "weight": rng.integers(-128, 128, (4, 3, 3, 3)),
            "w_scale": 2.0**-7, "bias": conv0_b, "input": INPUT_Q, "output": CONV0_OUT,
            "stride": [2, 2], "padding": [1, 1], "dilation": [1, 1], "groups": 1,
            "relu": True, "inputs": ["input"],
        },
        "features.1.conv.0.0": {
            "op": "conv2d", "weight": rng.integers(-128, 128, (4, 1, 3, 3)),
            # per channel; 2^3 gives n = -4 - (-4) - 3 = -3 (a left shift)
            "w_scale": [2.0**-6, 2.0**-7, 2.0**-8, 2.0**3], "bias": rng.normal(0.0, 0.5, 4),
            "input": CONV0_OUT, "output": DW_OUT, "stride": [1, 1], "padding": [1, 1],
            "dilation": [1, 1], "groups": 4, "relu": True, "inputs": ["features.0.0"],
        },
        "classifier.1": {
            "op": "linear", "weight": rng.integers(-128, 128, (3, 4)),
            "w_scale": 2.0**-6, "bias": rng.normal(0.0, 0.5, 3), "input": ADD_OUT,
            "output": FC_OUT, "relu": False, "inputs": ["flatten"],
        },
    }


def _exact_bias(bias: np.ndarray, x_scale: float, w_scale: Any) -> np.ndarray:
    """The float biases in integer units of x_scale * w_scale, rounded (the package
    writer clips them to int16 and counts the saturated ones)."""
    unit = x_scale * np.asarray(w_scale, dtype=np.float64)
    return np.rint(bias.astype(np.float64) / unit).astype(np.int64)


def make_tiny_package(root: Path) -> Path:
    """Write the tiny package into directory `root` (replaced atomically); return it."""
    root = Path(root)
    weighted = tiny_weighted_layers()
    with atomic_directory(root) as tmp:
        w = PackageWriter(tmp)
        w.quantize_input(INPUT_Q)

        def add_weighted(name: str) -> None:
            p = weighted[name]
            bias_int = _exact_bias(p["bias"], p["input"]["scale"], p["w_scale"])
            node = {"name": name} | {k: v for k, v in p.items()
                                     if k not in ("weight", "w_scale", "bias")}
            w.weighted(node, p["weight"], bias_int, p["w_scale"], bias_float=p["bias"])

        add_weighted("features.0.0")
        add_weighted("features.1.conv.0.0")
        w.add({"name": "add_0", "op": "add", "inputs": ["features.0.0", "features.1.conv.0.0"],
               "input": [CONV0_OUT, DW_OUT], "output": ADD_OUT, "relu": False})
        w.node({"name": "avgpool", "op": "adaptive_avg_pool2d", "inputs": ["add_0"],
                "output_size": [1, 1], "input": ADD_OUT, "output": ADD_OUT})
        w.node({"name": "flatten", "op": "flatten", "inputs": ["avgpool"]})
        add_weighted("classifier.1")
        w.node({"name": "output", "op": "dequantize", "inputs": ["classifier.1"],
                "input": FC_OUT})
        w.finish({"arch": "tiny-test-net"},
                 {"weights": "int8 symmetric, po2", "activations": "uint8, po2"},
                 {"batches": 0})
    return root


def read_manifest(root: Path) -> dict[str, Any]:
    return json.loads((Path(root) / MANIFEST_NAME).read_text())


def rewrite_file(root: Path, rel: str, data: bytes) -> Path:
    """Replace a package file's bytes and update its sha256 in the manifest."""
    root = Path(root)
    (root / rel).write_bytes(data)
    manifest = read_manifest(root)
    entries = list(manifest["files"].values())
    for layer in manifest["layers"]:
        entries += list(layer["files"].values())
    for e in entries:
        if e["path"] == rel:
            e["sha256"] = sha256_file(root / rel)
    write_manifest(root / MANIFEST_NAME, manifest)
    return root / rel


def every_op_net(num_classes: int = 10) -> Any:
    """A float CNN (32x32 RGB input) with every op of the issue-9 set, importable by no
    architecture name: 7x7/2 stem conv + BN + ReLU, MaxPool2d 3/2/1, standalone F.relu,
    depthwise conv + BN + ReLU6 (module), grouped conv (groups 4) + ReLU, pointwise conv,
    residual add, torch.cat along channels, F.max_pool2d ceil_mode, hardtanh(0, 6),
    dilated conv, AvgPool2d 2/2 ceil_mode, F.avg_pool2d 3/1/1 without the padding in
    the count, AdaptiveAvgPool2d (2, 2) (not global), x.view(x.size(0), -1), Linear.
    torch is imported when this is called (this module itself stays torch-free)."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class EveryOp(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 16, 7, 2, 3, bias=False),
                                      nn.BatchNorm2d(16), nn.ReLU())
            self.pool = nn.MaxPool2d(3, 2, 1)
            self.dw = nn.Sequential(nn.Conv2d(16, 16, 3, 1, 1, groups=16, bias=False),
                                    nn.BatchNorm2d(16))
            self.dw_act = nn.ReLU6()
            self.grouped = nn.Conv2d(16, 16, 3, 1, 1, groups=4)
            self.pw = nn.Conv2d(16, 16, 1)
            self.dilated = nn.Conv2d(32, 16, 3, padding=2, dilation=2)
            self.avg = nn.AvgPool2d(2, 2, ceil_mode=True)
            self.head_pool = nn.AdaptiveAvgPool2d((2, 2))
            self.fc = nn.Linear(64, num_classes)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = F.relu(self.pool(self.stem(x)))
            y = self.dw_act(self.dw(x))
            z = F.relu(self.grouped(x))
            x = x + self.pw(y)
            x = torch.cat([x, z], 1)
            x = F.hardtanh(F.max_pool2d(x, 2, 1, ceil_mode=True), 0.0, 6.0)
            x = self.avg(self.dilated(x))
            x = F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)
            x = self.head_pool(x)
            return self.fc(x.view(x.size(0), -1))

    torch.manual_seed(0)
    return EveryOp().eval()
