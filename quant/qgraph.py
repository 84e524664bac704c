"""Build a converted (quantized) torch.fx GraphModule from a node list alone.

The node list is a package manifest's `layers`, or quant.graph.describe's nodes, or
their `quant.graph.structure` (plain JSON). No model code is imported: the graph is
made node by node, with the same quantized modules and functions convert_fx puts in
a converted model:

- quantize: ``torch.quantize_per_tensor(x, <scale attr>, <zero point attr>, quint8)``
- conv2d: ``nnq.Conv2d`` / ``nniq.ConvReLU2d`` (linear: ``nnq.Linear`` /
  ``nniq.LinearReLU``) at the layer's name (a qualified module name)
- add: ``torch.ops.quantized.add`` / ``add_relu`` with scale / zero point attributes
- cat: ``torch.cat(inputs, 1)`` (PyTorch's quantized cat gives the first input's
  qparams, requantizing the others)
- max_pool2d, avg_pool2d, adaptive_avg_pool2d, relu, relu6: the torch.nn.functional
  call (the module forms call the same kernels), on the quantized tensor
- flatten: ``torch.flatten(x, 1)``; dequantize: ``x.dequantize()``

Every FX node carries its layer name in ``node.meta[quant.graph.LAYER_META]``, so
``describe(build(layers))`` gives the layers' structure and names back, and there is
exactly one FX node (besides attributes) per layer.

Numbers start as placeholders (weights 0, scales 1, zero points 0); load them with
``load_state_dict`` (a state written by `transfer` + ``state_dict()``), `transfer`
(from an in-memory converted model) or `set_qparams` / ``set_weight_bias``
(quant.rebuild, from a package's txt files). Attribute names of the quantize and add
qparams come from the layer names (`attr_names`); for MobileNetV2 they are the names
convert_fx gives (``features_0_0_input_scale_0``, ``features_3_scale_0``), so state
dicts of either model have the same keys.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import torch
import torch.ao.nn.intrinsic.quantized as nniq
import torch.ao.nn.quantized as nnq
import torch.nn as nn
import torch.nn.functional as F
from cosim.quant import fx_quant
from cosim.quant.graph import LAYER_META, describe, structure
from torch.fx import Graph, GraphModule, Node

__all__ = ["QGraphError", "attr_names", "build", "set_qparams", "transfer"]


class QGraphError(ValueError):
    """The node list cannot be built (unknown op, input or field): a message without a
    file name, callers add theirs."""


def _ident(name: str) -> str:
    text = re.sub(r"[^0-9A-Za-z_]", "_", name)
    return f"_{text}" if not text or text[0].isdigit() else text


def attr_names(layers: Sequence[dict]) -> dict[str, tuple[str, str]]:
    """Layer name -> (scale attribute, zero point attribute) of every quantize and add:
    ``<first consumer>_input_scale_<k>`` for the input quantize, ``<module>_scale_<k>``
    for an add named ``<module>.add`` (``<name>_scale_<k>`` otherwise), with the
    smallest k that keeps them unique."""
    used = {str(layer["name"]).split(".")[0] for layer in layers}
    out: dict[str, tuple[str, str]] = {}
    for layer in layers:
        name, op = layer["name"], layer["op"]
        if op == "quantize":
            consumer = next((other["name"] for other in layers
                             if name in other.get("inputs", ())), None)
            base = f"{_ident(consumer)}_input" if consumer else _ident(name)
        elif op == "add":
            base = _ident(name[:-4] if name.endswith(".add") else name)
        else:
            continue
        k = 0
        while f"{base}_scale_{k}" in used or f"{base}_zero_point_{k}" in used:
            k += 1
        out[name] = (f"{base}_scale_{k}", f"{base}_zero_point_{k}")
        used.update(out[name])
    return out


def _placeholder_weight(shape: list[int], per_channel: bool) -> torch.Tensor:
    integers = torch.zeros(shape, dtype=torch.int8)
    if per_channel:
        return torch._make_per_channel_quantized_tensor(
            integers, torch.ones(shape[0], dtype=torch.float64),
            torch.zeros(shape[0], dtype=torch.int64), 0)
    return torch._make_per_tensor_quantized_tensor(integers, 1.0, 0)


def _weighted_module(spec: dict) -> nn.Module:
    shape = [int(d) for d in spec["weight_shape"]]
    per_channel = spec.get("weight_qscheme") == "per_channel_symmetric"
    if spec["op"] == "conv2d":
        groups = int(spec["groups"])
        cls = nniq.ConvReLU2d if spec["relu"] else nnq.Conv2d
        module = cls(shape[1] * groups, shape[0], tuple(shape[2:]),
                     stride=tuple(spec["stride"]), padding=tuple(spec["padding"]),
                     dilation=tuple(spec["dilation"]), groups=groups, bias=True)
    elif spec["relu"]:
        module = nniq.LinearReLU(shape[1], shape[0], bias=True, dtype=torch.qint8)
    else:
        module = nnq.Linear(shape[1], shape[0], bias_=True, dtype=torch.qint8)
    module.set_weight_bias(_placeholder_weight(shape, per_channel),
                           torch.zeros(shape[0], dtype=torch.float32))
    module.scale, module.zero_point = 1.0, 0
    return module


def _tuple(value: Any) -> tuple[int, ...]:
    return tuple(int(v) for v in value)


def build(layers: Sequence[dict]) -> GraphModule:
    """The converted GraphModule of `layers` (manifest layers, describe nodes or their
    structure), with placeholder numbers. QGraphError for an unknown op or input."""
    with fx_quant.quiet():  # quantized module construction warns about deprecations
        return _build(layers)


def _build(layers: Sequence[dict]) -> GraphModule:
    specs = [structure(layer) for layer in layers]
    attrs = attr_names(specs)
    graph = Graph()
    root: dict[str, Any] = {}
    values: dict[str, Node] = {}
    x = graph.placeholder("x")
    result: Node | None = None

    def attr_pair(name: str, scale: float = 1.0, zero_point: int = 0) -> tuple[Node, Node]:
        scale_attr, zp_attr = attrs[name]
        root[scale_attr] = torch.tensor(scale, dtype=torch.float32)
        root[zp_attr] = torch.tensor(zero_point, dtype=torch.int64)
        return graph.get_attr(scale_attr), graph.get_attr(zp_attr)

    for spec in specs:
        name, op = spec["name"], spec["op"]
        try:
            ins = [values[source] for source in spec["inputs"]]
        except KeyError as error:
            raise QGraphError(f"layer {name!r}: input {error.args[0]!r} is not an earlier "
                              "layer") from None
        if name in values:
            raise QGraphError(f"layer {name!r} appears twice")
        if op == "quantize":
            scale, zero_point = attr_pair(name)
            node = graph.call_function(torch.quantize_per_tensor,
                                       (x, scale, zero_point, torch.quint8))
        elif op in ("conv2d", "linear"):
            root[name] = _weighted_module(spec)
            node = graph.call_module(name, (ins[0],))
        elif op == "add":
            scale, zero_point = attr_pair(name)
            target = torch.ops.quantized.add_relu if spec["relu"] else torch.ops.quantized.add
            node = graph.call_function(target, (ins[0], ins[1], scale, zero_point))
        elif op == "cat":
            node = graph.call_function(torch.cat, (list(ins), int(spec["dim"])))
        elif op == "max_pool2d":
            node = graph.call_function(F.max_pool2d, (ins[0],), {
                "kernel_size": _tuple(spec["kernel_size"]), "stride": _tuple(spec["stride"]),
                "padding": _tuple(spec["padding"]), "dilation": _tuple(spec["dilation"]),
                "ceil_mode": bool(spec["ceil_mode"]), "return_indices": False})
        elif op == "avg_pool2d":
            divisor = spec["divisor_override"]
            node = graph.call_function(F.avg_pool2d, (
                ins[0], _tuple(spec["kernel_size"]), _tuple(spec["stride"]),
                _tuple(spec["padding"]), bool(spec["ceil_mode"]),
                bool(spec["count_include_pad"]), None if divisor is None else int(divisor)))
        elif op == "adaptive_avg_pool2d":
            node = graph.call_function(F.adaptive_avg_pool2d,
                                       (ins[0], _tuple(spec["output_size"])))
        elif op == "relu":
            node = graph.call_function(F.relu, (ins[0],))
        elif op == "relu6":
            node = graph.call_function(F.relu6, (ins[0],))
        elif op == "flatten":
            node = graph.call_function(torch.flatten, (ins[0], int(spec.get("start_dim", 1))))
        elif op == "dequantize":
            node = graph.call_method("dequantize", (ins[0],))
            result = node
        else:
            raise QGraphError(f"layer {name!r}: op {op!r} cannot be built")
        node.meta[LAYER_META] = name
        values[name] = node
    if result is None:
        raise QGraphError("no dequantize layer; expected the last layer to dequantize")
    graph.output(result)
    model = GraphModule(root, graph, class_name="QuantizedGraph")
    return model.eval()


def set_qparams(model: GraphModule, layers: Sequence[dict], name: str, scale: float,
                zero_point: int) -> None:
    """Set the output scale and zero point of the quantize or add layer `name`."""
    scale_attr, zp_attr = attr_names(layers)[name]
    getattr(model, scale_attr).fill_(scale)
    getattr(model, zp_attr).fill_(zero_point)


@torch.no_grad()
def transfer(model: GraphModule, layers: Sequence[dict], source: GraphModule) -> GraphModule:
    """Copy every number of `source` (a converted model whose describe() nodes are
    `layers`, e.g. convert_fx's) into `model` = build(layers); returns `model`."""
    nodes = {node["name"]: node for node in describe(source)}
    for layer in layers:
        name, op = layer["name"], layer["op"]
        node = nodes.get(name)
        if node is None or node["op"] != op:
            raise QGraphError(f"layer {name!r} ({op}) is not a node of the source model")
        if op in ("quantize", "add"):
            set_qparams(model, layers, name, node["output"]["scale"],
                        node["output"]["zero_point"])
        elif op in ("conv2d", "linear"):
            source_module, target = node["module"], model.get_submodule(name)
            target.set_weight_bias(source_module.weight(), source_module.bias())
            target.scale = float(source_module.scale)
            target.zero_point = int(source_module.zero_point)
    return model
