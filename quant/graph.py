"""Read a converted (quantized) FX GraphModule as a list of integer-inference nodes.

This is the one place that knows how convert_fx lays out a quantized
MobileNetV2: which graph nodes are weighted layers, residual adds, the input
quantize, average pool and flatten, and where each one's scale and zero point
live. The exporter, the bias snapping and the rebuild all use it.

Node dicts (execution order) carry:
``name``, ``op`` (quantize | conv2d | linear | add | adaptive_avg_pool2d |
flatten | dequantize), ``inputs`` (names of producer nodes), ``output``
({"scale", "zero_point"}), and per op: ``module`` (weighted layers), ``input``
(qparams of the consumed tensor(s)), ``attrs`` (names of the GraphModule
attributes that hold scale / zero point of quantize and add).
"""

from __future__ import annotations

import operator

import torch
import torch.ao.nn.intrinsic.quantized as nniq
import torch.ao.nn.quantized as nnq
import torch.nn as nn
from torch.fx import GraphModule, Node

from quant.errors import UserError

CONV_TYPES = (nnq.Conv2d, nniq.ConvReLU2d)
LINEAR_TYPES = (nnq.Linear, nniq.LinearReLU)
IDENTITY_TYPES = (nn.Dropout, nn.Identity)
ADD_TARGETS = (torch.ops.quantized.add, torch.ops.quantized.add_relu)


class GraphError(UserError):
    """The quantized graph contains something integer inference does not support."""


def _qparams(scale: float, zero_point: int) -> dict:
    return {"scale": float(scale), "zero_point": int(zero_point)}


def _attr_value(graph_module: GraphModule, node: Node) -> float | int:
    if not (isinstance(node, Node) and node.op == "get_attr"):
        raise GraphError(f"expected a get_attr node for a quantization parameter, got {node}")
    return getattr(graph_module, node.target).item()


def conv_kind(module: nn.Module) -> str:
    """'depthwise' (groups == in == out channels), 'pointwise' (1x1, groups 1) or 'regular'."""
    if module.groups > 1 and module.groups == module.in_channels == module.out_channels:
        return "depthwise"
    if module.groups == 1 and tuple(module.kernel_size) == (1, 1):
        return "pointwise"
    if module.groups != 1:
        raise GraphError(f"grouped convolution with groups={module.groups} is not supported")
    return "regular"


def _add_name(scale_attr: str, fallback: str) -> str:
    """'features_3_scale_0' -> 'features.3.add'."""
    suffix = "_scale_0"
    if scale_attr.endswith(suffix):
        return scale_attr[: -len(suffix)].replace("_", ".") + ".add"
    return fallback


def describe(graph_module: GraphModule) -> list[dict]:
    """Integer-inference nodes of a converted model, in execution order."""
    modules = dict(graph_module.named_modules())
    nodes: list[dict] = []
    by_fx_name: dict[str, dict] = {}

    def producer(arg: Node) -> dict:
        if arg.name not in by_fx_name:
            raise GraphError(f"node {arg.name} has no quantized producer")
        return by_fx_name[arg.name]

    for node in graph_module.graph.nodes:
        entry: dict | None = None
        if node.op in ("placeholder", "get_attr", "output"):
            continue
        if node.op == "call_function" and node.target is torch.quantize_per_tensor:
            entry = {"name": "input", "op": "quantize", "inputs": [],
                     "output": _qparams(_attr_value(graph_module, node.args[1]),
                                        _attr_value(graph_module, node.args[2])),
                     "attrs": {"scale": node.args[1].target,
                               "zero_point": node.args[2].target}}
        elif node.op == "call_module" and isinstance(modules[node.target], IDENTITY_TYPES):
            by_fx_name[node.name] = producer(node.args[0])  # dropout in eval: pass through
            continue
        elif node.op == "call_module":
            module = modules[node.target]
            source = producer(node.args[0])
            if isinstance(module, CONV_TYPES):
                op, kind = "conv2d", conv_kind(module)
            elif isinstance(module, LINEAR_TYPES):
                op, kind = "linear", "linear"
            else:
                raise GraphError(f"unsupported module {node.target} ({type(module).__name__})")
            entry = {"name": node.target, "op": op, "kind": kind, "inputs": [source["name"]],
                     "module": module, "input": dict(source["output"]),
                     "relu": isinstance(module, (nniq.ConvReLU2d, nniq.LinearReLU)),
                     "output": _qparams(module.scale, module.zero_point)}
        elif node.op == "call_function" and node.target in ADD_TARGETS:
            left, right = producer(node.args[0]), producer(node.args[1])
            entry = {"name": _add_name(node.args[2].target, node.name), "op": "add",
                     "inputs": [left["name"], right["name"]],
                     "input": [dict(left["output"]), dict(right["output"])],
                     "relu": node.target is torch.ops.quantized.add_relu,
                     "output": _qparams(_attr_value(graph_module, node.args[2]),
                                        _attr_value(graph_module, node.args[3])),
                     "attrs": {"scale": node.args[2].target,
                               "zero_point": node.args[3].target}}
        elif node.op == "call_function" and node.target is torch.nn.functional.adaptive_avg_pool2d:
            source = producer(node.args[0])
            output_size = node.args[1] if len(node.args) > 1 else node.kwargs["output_size"]
            output_size = [output_size] * 2 if isinstance(output_size, int) else output_size
            entry = {"name": "avgpool", "op": "adaptive_avg_pool2d", "inputs": [source["name"]],
                     "output_size": list(output_size), "input": dict(source["output"]),
                     "output": dict(source["output"])}
        elif node.op == "call_function" and node.target is torch.flatten:
            source = producer(node.args[0])
            start_dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", 0)
            entry = {"name": "flatten", "op": "flatten", "inputs": [source["name"]],
                     "start_dim": int(start_dim), "input": dict(source["output"]),
                     "output": dict(source["output"])}
        elif node.op == "call_method" and node.target == "dequantize":
            source = producer(node.args[0])
            entry = {"name": "output", "op": "dequantize", "inputs": [source["name"]],
                     "input": dict(source["output"])}
        elif node.op == "call_function" and node.target is operator.getitem:
            raise GraphError(f"unsupported getitem node {node.name}")
        else:
            raise GraphError(f"unsupported graph node {node.name} ({node.op} {node.target})")
        by_fx_name[node.name] = entry
        nodes.append(entry)
    names = [entry["name"] for entry in nodes]
    if len(set(names)) != len(names):
        raise GraphError("two graph nodes map to the same layer name")
    return nodes


def weighted(nodes: list[dict]) -> list[dict]:
    """The conv2d and linear nodes, in execution order."""
    return [node for node in nodes if node["op"] in ("conv2d", "linear")]
