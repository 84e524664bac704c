"""Synthetic parameter packages of any graph of the issue-9 ops (no torch, no training).

`write_network(root, spec, seed)` writes a valid package whose manifest follows the
node format of /work/notes/common.md: `spec` lists the nodes after the input
quantize (name, op, inputs and the op's fields; weighted nodes give weight_shape and
optionally per_channel); the builder adds the input quantize and the output
dequantize, po2 qparams (parameterless ops keep their input's), int8 weights in
[-64, 64], full-range int16 biases, every file and its sha256.

Specs:
- `multi_op_spec()`: a small net with every conv kind and op between weighted layers:
  7x7 stride-2 stem, max pool, 5x5 dilated conv, depthwise, relu, grouped, cat,
  pointwise, add, avg pool, global pool, flatten, linear; per-channel and per-tensor.
- `resnet18_spec(num_classes)`: torchvision's resnet18 (BatchNorm folded into the
  convs, ReLU fused) with its exact weight shapes and layer names.

Used by tests/test_image.py and tb/test_networks.py (which puts tests/ on sys.path).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from cosim.quant.formats import atomic_directory
from cosim.quant.package_writer import PackageWriter

WEIGHTED = ("conv2d", "linear")
#: Ops whose output has the qparams of their input (no files).
SAME_QPARAMS = ("max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "relu", "relu6",
                "flatten")


def conv_kind(weight_shape: list[int], groups: int) -> str:
    """The manifest's conv kind: depthwise (groups == in == out channels), grouped (other
    groups > 1), pointwise (1x1, groups 1), regular."""
    oc, icg = weight_shape[0], weight_shape[1]
    if groups > 1 and icg == 1 and oc == groups:
        return "depthwise"
    if groups > 1:
        return "grouped"
    return "pointwise" if tuple(weight_shape[2:]) == (1, 1) else "regular"


def conv(name: str, inputs: str, oc: int, ic: int, k: int | tuple[int, int], stride: int = 1,
         padding: int | None = None, dilation: int = 1, groups: int = 1, relu: bool = True,
         per_channel: bool = False) -> dict[str, Any]:
    """A conv2d node of the spec (square stride/dilation; padding default 'same')."""
    kh, kw = (k, k) if isinstance(k, int) else k
    if padding is None:
        padding = dilation * (kh // 2)
    return {"name": name, "op": "conv2d", "inputs": [inputs],
            "weight_shape": [oc, ic // groups, kh, kw], "stride": [stride, stride],
            "padding": [padding, padding], "dilation": [dilation, dilation],
            "groups": groups, "relu": relu, "per_channel": per_channel}


def linear(name: str, inputs: str, oc: int, ic: int, relu: bool = False,
           per_channel: bool = False) -> dict[str, Any]:
    return {"name": name, "op": "linear", "inputs": [inputs], "weight_shape": [oc, ic],
            "relu": relu, "per_channel": per_channel}


def multi_op_spec(num_classes: int = 10) -> list[dict[str, Any]]:
    """Every conv kind and every parameterless op, with partial tiles (channel counts
    that are not multiples of 8) and per-channel layers."""
    return [
        conv("stem", "input", 12, 3, 7, stride=2, padding=3),                # 7x7 stride 2
        {"name": "pool", "op": "max_pool2d", "inputs": ["stem"], "kernel_size": [3, 3],
         "stride": [2, 2], "padding": [1, 1], "dilation": [1, 1], "ceil_mode": False},
        conv("dil", "pool", 16, 12, 5, dilation=2, relu=False, per_channel=True),  # 5x5 d2
        {"name": "act", "op": "relu", "inputs": ["dil"]},
        conv("dw", "act", 16, 16, 3, groups=16),                             # depthwise
        conv("grp", "act", 24, 16, 3, groups=4, per_channel=True),           # grouped
        {"name": "cat", "op": "cat", "inputs": ["dw", "grp"], "dim": 1},     # 40 channels
        conv("pw", "cat", 20, 40, 1, relu=False),                            # pointwise
        conv("pw_skip", "act", 20, 16, 1, relu=False),
        {"name": "add", "op": "add", "inputs": ["pw", "pw_skip"], "relu": True},
        {"name": "avg", "op": "avg_pool2d", "inputs": ["add"], "kernel_size": [2, 2],
         "stride": [2, 2], "padding": [0, 0], "ceil_mode": False, "count_include_pad": True,
         "divisor_override": None},
        {"name": "act6", "op": "relu6", "inputs": ["avg"]},
        {"name": "gap", "op": "adaptive_avg_pool2d", "inputs": ["act6"], "output_size": [1, 1]},
        {"name": "flatten", "op": "flatten", "inputs": ["gap"], "start_dim": 1},
        linear("fc", "flatten", num_classes, 20, per_channel=True),
    ]


def resnet18_spec(num_classes: int = 10) -> list[dict[str, Any]]:
    """torchvision.models.resnet18 after BatchNorm folding and ReLU fusion: the names and
    weight shapes of its 21 weighted layers (11.2M weights), pools, adds, flatten."""
    nodes = [conv("conv1", "input", 64, 3, 7, stride=2, padding=3),
             {"name": "maxpool", "op": "max_pool2d", "inputs": ["conv1"],
              "kernel_size": [3, 3], "stride": [2, 2], "padding": [1, 1], "dilation": [1, 1],
              "ceil_mode": False}]
    x, channels = "maxpool", 64
    for stage, width in enumerate((64, 128, 256, 512), 1):
        for block in range(2):
            p = f"layer{stage}.{block}"
            stride = 2 if stage > 1 and block == 0 else 1
            nodes.append(conv(f"{p}.conv1", x, width, channels, 3, stride=stride))
            nodes.append(conv(f"{p}.conv2", f"{p}.conv1", width, width, 3, relu=False))
            skip = x
            if stride != 1 or channels != width:
                nodes.append(conv(f"{p}.downsample.0", x, width, channels, 1, stride=stride,
                                  padding=0, relu=False))
                skip = f"{p}.downsample.0"
            nodes.append({"name": f"{p}.add", "op": "add", "inputs": [f"{p}.conv2", skip],
                          "relu": True})
            x, channels = f"{p}.add", width
    nodes += [{"name": "avgpool", "op": "adaptive_avg_pool2d", "inputs": [x],
               "output_size": [1, 1]},
              {"name": "flatten", "op": "flatten", "inputs": ["avgpool"], "start_dim": 1},
              linear("fc", "flatten", num_classes, 512)]
    return nodes


def write_network(root: Path, spec: list[dict[str, Any]], seed: int = 0,
                  arch: str = "synthetic") -> Path:
    """Write the package of `spec` into directory `root` (replaced atomically)."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    with atomic_directory(root) as tmp:
        w = PackageWriter(tmp)

        def activation() -> dict[str, Any]:
            return {"scale": 2.0 ** -int(rng.integers(2, 8)),
                    "zero_point": int(rng.integers(0, 256))}

        x = activation()
        out: dict[str, dict[str, Any]] = {"input": x}
        w.quantize_input(x)
        for node in spec:
            node = dict(node)
            name, op = node["name"], node["op"]
            ins = [dict(out[i]) for i in node["inputs"]]
            if op in WEIGHTED:
                per_channel = bool(node.pop("per_channel", False))
                shape = node["weight_shape"]
                oc = shape[0]
                node |= {"input": ins[0], "output": activation()}
                w_exp = -rng.integers(5, 10, oc if per_channel else 1)
                w_scale = [2.0 ** int(e) for e in w_exp]
                weight = rng.integers(-64, 65, shape, dtype=np.int64)
                bias = rng.integers(-32768, 32768, oc, dtype=np.int64)
                layer = w.weighted(node, weight, bias, w_scale if per_channel else w_scale[0])
            elif op in ("add", "cat"):
                y = activation() if op == "add" else dict(ins[0])
                layer = w.add(node | {"input": ins, "output": y})
            elif op in SAME_QPARAMS:
                layer = w.node(node | {"input": ins[0], "output": ins[0]})
            else:
                raise ValueError(f"node {name!r}: op {op!r} is not one the builder knows")
            out[name] = layer["output"]
        last = w.layers[-1]["name"]
        w.node({"name": "output", "op": "dequantize", "inputs": [last],
                "input": dict(out[last])})
        w.finish({"arch": arch})
    return root
