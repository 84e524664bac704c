"""Rebuild the quantized PyTorch model from the package files alone (no .pt file).

The model structure comes from the architecture named in the manifest; every
number comes from the package's text files: int8 weights (weight.txt), int16
biases (bias_int16.txt, turned into the snapped float bias
bias_int16 * x_scale * w_scale), and the scales and zero points (scale.txt,
zero_point.txt). If the result equals the reference model on real images, the
files carry everything the hardware needs.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch.fx import GraphModule

from quant import fx_quant
from quant.formats import PackageError
from quant.graph import describe
from quant.model import ARCH, mobilenet_v2_relu
from quant.package import Package
from quant.ptq import fold_batchnorm


def quantized_skeleton(num_classes: int, width_mult: float, input_shape: list[int],
                       per_channel: bool, weight_range: tuple[int, int]) -> GraphModule:
    """A converted MobileNetV2-ReLU with the package's structure and placeholder numbers."""
    float_model = fold_batchnorm(mobilenet_v2_relu(num_classes, width_mult))
    qconfig = fx_quant.po2_qconfig("minmax", weight_range, per_channel)
    example = torch.zeros(1, *input_shape)
    prepared = fx_quant.prepare(float_model, qconfig, example)
    with torch.no_grad():
        prepared(example)
    return fx_quant.convert(prepared)


def skeleton_for(package: Package) -> GraphModule:
    """The skeleton of the manifest's model (arch, classes, width, input shape, qscheme)."""
    model_info = package.manifest["model"]
    if model_info.get("arch") != ARCH:
        raise PackageError(package.manifest_path,
                           f"model arch {model_info.get('arch')!r} is not supported; "
                           f"expected {ARCH!r}")
    weighted = package.weighted_layers()
    per_channel = any(layer["weight"]["qscheme"] == "per_channel_symmetric"
                      for layer in weighted)
    return quantized_skeleton(int(model_info["num_classes"]), float(model_info["width_mult"]),
                              list(model_info["input_shape"]), per_channel,
                              tuple(weighted[0]["weight"]["range"]))


def _set_attr(graph_module: GraphModule, attr: str, value: float | int) -> None:
    tensor = getattr(graph_module, attr)
    tensor.fill_(value)


def _quantized_weight(weight_int8: np.ndarray, scales: list[float]) -> torch.Tensor:
    integers = torch.from_numpy(weight_int8.astype(np.int8))
    if len(scales) == 1:
        return torch._make_per_tensor_quantized_tensor(integers, scales[0], 0)
    return torch._make_per_channel_quantized_tensor(
        integers, torch.tensor(scales, dtype=torch.float64),
        torch.zeros(len(scales), dtype=torch.int64), 0)


@torch.no_grad()
def rebuild_model(package: Package) -> GraphModule:
    """The reference quantized model, reconstructed from the package's txt files."""
    model = skeleton_for(package)
    nodes = describe(model)
    graph_names = [node["name"] for node in nodes]
    manifest_names = [layer["name"] for layer in package.layers]
    for name in manifest_names:
        if name not in graph_names:
            raise PackageError(package.manifest_path,
                               f"unknown layer {name!r}: the {ARCH} model has no such node")
    for name in graph_names:
        if name not in manifest_names:
            raise PackageError(package.manifest_path, f"layer {name!r} is missing")
    if graph_names != manifest_names:
        raise PackageError(package.manifest_path,
                           "layers are not in the model's execution order")
    for node in nodes:
        name = node["name"]
        if node["op"] in ("quantize", "add"):
            files = package.qparams(name)
            _set_attr(model, node["attrs"]["scale"], files["scale"]["output"][0])
            _set_attr(model, node["attrs"]["zero_point"], files["zero_point"]["output"][0])
        elif node["op"] in ("conv2d", "linear"):
            files = package.qparams(name)
            x_scale = files["scale"]["input"][0]
            w_scales = files["scale"]["weight"]
            weight = _quantized_weight(package.weight_int8(name), w_scales)
            bias_int16 = torch.from_numpy(package.bias_int16(name)).double()
            bias = (bias_int16 * x_scale * torch.tensor(w_scales, dtype=torch.float64)).float()
            module = node["module"]
            module.set_weight_bias(weight, bias)
            module.scale = float(files["scale"]["output"][0])
            module.zero_point = int(files["zero_point"]["output"][0])
    return model.eval()


#: The structural keys of a layer that must equal the reference architecture's.
STRUCTURE_KEYS = ("op", "kind", "inputs", "weight_shape", "bias_shape", "stride", "padding",
                  "dilation", "groups", "relu", "output_size", "start_dim")


@functools.cache
def reference_structure(num_classes: int, width_mult: float) -> tuple[dict, ...]:
    """The layers of quant.model's MobileNetV2-ReLU as a package describes them (name and
    STRUCTURE_KEYS), from the converted skeleton (quant.graph.describe). Structure does
    not depend on the input size, so a fixed 32x32 input is used."""
    nodes = describe(quantized_skeleton(num_classes, width_mult, [3, 32, 32], False,
                                        (-128, 127)))
    out = []
    for node in nodes:
        entry = {"name": node["name"], "op": node["op"], "inputs": list(node["inputs"])}
        module = node.get("module")
        if node["op"] in ("conv2d", "linear"):
            weight = module.weight()
            entry |= {"kind": node["kind"], "weight_shape": list(weight.shape),
                      "bias_shape": [int(weight.shape[0])], "relu": node["relu"]}
            if node["op"] == "conv2d":
                entry |= {"stride": list(module.stride), "padding": list(module.padding),
                          "dilation": list(module.dilation), "groups": int(module.groups)}
        elif node["op"] == "add":
            entry["relu"] = node["relu"]
        elif node["op"] == "adaptive_avg_pool2d":
            entry["output_size"] = list(node["output_size"])
        elif node["op"] == "flatten":
            entry["start_dim"] = node["start_dim"]
        out.append(entry)
    return tuple(out)


def _float_weight_shapes(num_classes: int, width_mult: float) -> list[tuple[str, list[int]]]:
    """(name, weight shape) of every conv/linear of the float model, built on the meta
    device (no memory, no init): a cheap first look before the FX skeleton is built."""
    with torch.device("meta"):
        model = mobilenet_v2_relu(num_classes, width_mult)
    return [(name, list(m.weight.shape)) for name, m in model.named_modules()
            if isinstance(m, torch.nn.Conv2d | torch.nn.Linear)]


def check_architecture(package: Package) -> None:
    """PackageError unless every layer of the package has the structure of the reference
    model the manifest names (arch, num_classes, width_mult): same layers in the same
    order, and per layer the same STRUCTURE_KEYS values."""
    model_info = package.manifest["model"]
    where = package.manifest_path
    if model_info.get("arch") != ARCH:
        raise PackageError(where, f"model arch {model_info.get('arch')!r} has no reference "
                           f"architecture; expected {ARCH!r}")
    num_classes, width_mult = int(model_info["num_classes"]), float(model_info["width_mult"])
    weighted = package.weighted_layers()
    shapes = _float_weight_shapes(num_classes, width_mult)
    for layer, (name, shape) in zip(weighted, shapes, strict=False):
        if layer["weight_shape"] != shape:
            raise PackageError(where, f"layer {layer['name']!r}: weight_shape "
                               f"{layer['weight_shape']}; the {ARCH} reference (num_classes "
                               f"{num_classes}, width_mult {width_mult}) has {shape} for "
                               f"{name!r}")
    if len(weighted) != len(shapes):
        raise PackageError(where, f"{len(weighted)} weighted layers; the {ARCH} reference "
                           f"(num_classes {num_classes}, width_mult {width_mult}) has "
                           f"{len(shapes)}")
    reference = reference_structure(num_classes, width_mult)
    layers = package.layers
    for index, (got, want) in enumerate(zip(layers, reference, strict=False)):
        if got["name"] != want["name"]:
            raise PackageError(where, f"layers[{index}] is {got['name']!r}; the {ARCH} "
                               f"reference has {want['name']!r} there")
        for key in STRUCTURE_KEYS:
            if key in want and got.get(key) != want[key]:
                raise PackageError(where, f"layers[{index}] ({got['name']!r}): {key} "
                                   f"{got.get(key)!r}; the {ARCH} reference has {want[key]!r}")
    if len(layers) != len(reference):
        raise PackageError(where, f"{len(layers)} layers; the {ARCH} reference has "
                           f"{len(reference)}")
