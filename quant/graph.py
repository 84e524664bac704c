"""Read a converted (quantized) FX GraphModule as a list of integer-inference nodes.

This is the one place that knows how convert_fx lays out a quantized CNN: which
graph nodes are weighted layers, residual adds, concatenations, pools, standalone
activations, the input quantize, flatten and the output dequantize, and where each
one's scale and zero point live. The exporter, the bias snapping, the rebuild
(quant.qgraph) and golden-verify all use it.

Node dicts (execution order) carry the manifest fields of their op
(docs/file-formats.md): ``name``, ``op`` (one of OPS), ``inputs`` (names of producer
nodes), ``output`` ({"scale", "zero_point"}), ``input`` (qparams of the consumed
tensor, a list for add and cat) and the op's structure (conv2d/linear: ``kind``,
``relu``, ``weight_shape``, ``bias_shape``, ``weight_qscheme``; conv2d: ``stride``,
``padding``, ``dilation``, ``groups``; pools: ``kernel_size`` ...). Keys in
INTERNAL_KEYS are not manifest fields: ``module`` (weighted layers), ``attrs``
(GraphModule attribute names of a quantize's or an add's scale / zero point),
``weight_qscheme``, ``fx_nodes`` (the FX node names the layer came from).

Names: ``input`` (the quantize), ``output`` (the dequantize), the module's qualified
name for a module call (``features.0.0``, ``pool``), ``<module>.add`` for the add of a
module's forward (``features.3.add``), ``avgpool`` and ``flatten`` for the functional
global pool and torch.flatten, otherwise the FX node's name (``cat``, ``max_pool2d``);
a name already taken gets ``_1``, ``_2``... A graph built by quant.qgraph carries its
layer names in ``node.meta[LAYER_META]``.
"""

from __future__ import annotations

import operator
import re
from typing import Any

import torch
import torch.ao.nn.intrinsic.quantized as nniq
import torch.ao.nn.quantized as nnq
import torch.nn as nn
import torch.nn.functional as F
from cosim.quant.errors import UserError
from torch.fx import GraphModule, Node

CONV_TYPES = (nnq.Conv2d, nniq.ConvReLU2d)
LINEAR_TYPES = (nnq.Linear, nniq.LinearReLU)
IDENTITY_TYPES = (nn.Dropout, nn.Identity)
ADD_TARGETS = (torch.ops.quantized.add, torch.ops.quantized.add_relu)

#: Every op a node list may hold (the manifest's ops), in a readable order.
OPS = ("quantize", "conv2d", "linear", "add", "cat", "max_pool2d", "avg_pool2d",
       "adaptive_avg_pool2d", "relu", "relu6", "flatten", "dequantize")
SUPPORTED = ("conv2d (regular, depthwise, grouped), linear, add, cat, max_pool2d, "
             "avg_pool2d, adaptive_avg_pool2d, relu, relu6 / hardtanh(0, 6), flatten")
#: Keys of a node dict that are not manifest fields.
INTERNAL_KEYS = ("module", "attrs", "weight_qscheme", "fx_nodes")
#: node.meta key holding the layer name in graphs built by quant.qgraph.
LAYER_META = "cosim_layer"
#: Ops whose output has the qparams of their (first) input.
SAME_QPARAMS_OPS = ("max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "relu", "relu6",
                    "flatten", "cat")

_MAX_POOL = (F.max_pool2d, torch.max_pool2d)
_AVG_POOL = (F.avg_pool2d, torch._C._nn.avg_pool2d)
_ADAPTIVE = (F.adaptive_avg_pool2d, torch._C._nn.adaptive_avg_pool2d)
_RELU = (F.relu, torch.relu, torch.relu_, F.relu_)
_RELU6 = (F.relu6,)
_HARDTANH = (F.hardtanh, F.hardtanh_)
_CAT = (torch.cat, torch.concat, torch.concatenate)
_RESHAPE_METHODS = ("view", "reshape")


class GraphError(UserError):
    """The quantized graph contains something integer inference does not support."""


def _qparams(scale: float, zero_point: int) -> dict:
    return {"scale": float(scale), "zero_point": int(zero_point)}


def _attr_value(graph_module: GraphModule, node: Node) -> float | int:
    if not (isinstance(node, Node) and node.op == "get_attr"):
        raise GraphError(f"expected a get_attr node for a quantization parameter, got {node}")
    return _get_attr(graph_module, node.target).item()


def _get_attr(graph_module: GraphModule, target: str) -> Any:
    value: Any = graph_module
    for part in target.split("."):
        value = getattr(value, part)
    return value


def conv_kind(module: nn.Module) -> str:
    """'depthwise' (groups == in == out channels), 'grouped' (other groups > 1),
    'pointwise' (1x1, groups 1) or 'regular'."""
    if module.groups > 1 and module.groups == module.in_channels == module.out_channels:
        return "depthwise"
    if module.groups > 1:
        return "grouped"
    if tuple(module.kernel_size) == (1, 1):
        return "pointwise"
    return "regular"


def _target_text(node: Node, modules: dict[str, nn.Module]) -> str:
    """'call_module Sigmoid', 'call_function sigmoid', 'call_method flatten'."""
    if node.op == "call_module":
        module = modules.get(node.target)
        return f"call_module {type(module).__name__ if module is not None else node.target}"
    if node.op == "call_function":
        target = node.target
        name = getattr(target, "__name__", None) or str(target)
        return f"call_function {name}"
    return f"{node.op} {node.target}"


def _pair(value: Any) -> list[int]:
    if isinstance(value, int | float):
        return [int(value)] * 2
    items = [int(v) for v in value]
    return items * 2 if len(items) == 1 else items


class _Reader:
    """One pass over a converted graph (see describe)."""

    def __init__(self, graph_module: GraphModule) -> None:
        self.gm = graph_module
        self.modules = dict(graph_module.named_modules())
        self.nodes: list[dict] = []
        self.by_fx: dict[str, dict] = {}
        self.taken: set[str] = set()
        self.reserved = {node.target for node in graph_module.graph.nodes
                         if node.op == "call_module"
                         and isinstance(self.modules.get(node.target),
                                        CONV_TYPES + LINEAR_TYPES)}
        self.sizes: dict[str, Node] = {}  # x.size(0) nodes: fx name -> x

    # -- messages
    def error(self, node: Node, what: str) -> GraphError:
        return GraphError(f"graph node {node.name!r} ({_target_text(node, self.modules)}) "
                          f"{what}")

    def unsupported(self, node: Node) -> GraphError:
        return self.error(node, f"is not a supported op; supported: {SUPPORTED}")

    # -- helpers
    def producer(self, node: Node, arg: Any) -> dict:
        if isinstance(arg, Node) and arg.name in self.by_fx:
            return self.by_fx[arg.name]
        if isinstance(arg, Node) and arg.op == "placeholder":
            raise self.error(node, "reads the float input directly; expected a quantized "
                             "tensor (the input quantize first)")
        raise self.error(node, f"reads {arg!r}, which is not a quantized tensor of a "
                         "supported op")

    def arg(self, node: Node, index: int, name: str, default: Any = None) -> Any:
        if len(node.args) > index:
            return node.args[index]
        return node.kwargs.get(name, default)

    def name(self, node: Node, preferred: str) -> str:
        """A unique layer name: node.meta's, else `preferred`, else suffixed."""
        meta = node.meta.get(LAYER_META)
        if isinstance(meta, str):
            if meta in self.taken:
                raise self.error(node, f"has the layer name {meta!r} of an earlier node")
            return meta
        candidate, k = preferred, 0
        while candidate in self.taken or candidate in self.reserved:
            k += 1
            candidate = f"{preferred}_{k}"
        return candidate

    def add_name(self, node: Node) -> str:
        """'<module>.add' for the add in the forward of a module: its scale attribute is
        '<module>_scale_0' (MobileNetV2: 'features_3_scale_0' -> 'features.3.add') or,
        with a fused ReLU child, '<module>_<relu>_scale_0' (ResNet: 'layer1_0_relu_scale_0'
        -> 'layer1.0.add'); the longest module name that fits wins. Else the FX node's
        name."""
        scale_attr = node.args[2].target if isinstance(node.args[2], Node) else ""
        match = re.fullmatch(r"(.+)_scale_0", str(scale_attr))
        if not match:
            return node.name
        prefix = match.group(1)
        fits = [name for name in self.modules if name and (
            prefix == name.replace(".", "_") or prefix.startswith(name.replace(".", "_") + "_"))]
        return max(fits, key=len) + ".add" if fits else node.name

    def emit(self, node: Node, entry: dict, extra_fx: tuple[str, ...] = ()) -> None:
        if entry["name"] in self.taken:
            raise self.error(node, f"maps to the layer name {entry['name']!r} of an earlier "
                             "node; a module must be called once")
        entry["fx_nodes"] = [*extra_fx, node.name]
        self.taken.add(entry["name"])
        self.by_fx[node.name] = entry
        self.nodes.append(entry)

    def same_qparams(self, node: Node, source: dict, name: str, op: str, **fields: Any
                     ) -> None:
        self.emit(node, {"name": name, "op": op, "inputs": [source["name"]], **fields,
                         "input": dict(source["output"]), "output": dict(source["output"])})

    # -- the pass
    def run(self) -> list[dict]:
        outputs = [node for node in self.gm.graph.nodes if node.op == "output"]
        for node in self.gm.graph.nodes:
            if node.op in ("placeholder", "get_attr", "output"):
                continue
            self.visit(node)
        if not self.nodes or self.nodes[0]["op"] != "quantize":
            raise GraphError("the graph has no input quantize; expected a converted model "
                             "whose first op quantizes its input")
        if self.nodes[-1]["op"] != "dequantize":
            raise GraphError("the graph does not end with a dequantize of a supported op; "
                             "expected one quantized output")
        result = outputs[0].args[0] if outputs else None
        if not (isinstance(result, Node) and result.name in self.by_fx
                and self.by_fx[result.name] is self.nodes[-1]):
            raise GraphError(f"the model returns {type(result).__name__} "
                             f"{str(result)[:80]!r}; expected one tensor (the dequantize "
                             "of its last layer)")
        return self.nodes

    def visit(self, node: Node) -> None:  # noqa: C901 - one branch per op
        target, modules = node.target, self.modules
        if node.op == "call_function" and target is torch.quantize_per_tensor:
            return self.quantize(node)
        if node.op == "call_module":
            module = modules.get(target)
            if isinstance(module, IDENTITY_TYPES):
                self.by_fx[node.name] = self.producer(node, node.args[0])
                return None
            return self.module_call(node, module)
        if node.op == "call_function" and target in ADD_TARGETS:
            left, right = self.producer(node, node.args[0]), self.producer(node, node.args[1])
            return self.emit(node, {
                "name": self.name(node, self.add_name(node)), "op": "add",
                "inputs": [left["name"], right["name"]],
                "input": [dict(left["output"]), dict(right["output"])],
                "relu": target is torch.ops.quantized.add_relu,
                "output": _qparams(_attr_value(self.gm, node.args[2]),
                                   _attr_value(self.gm, node.args[3])),
                "attrs": {"scale": node.args[2].target, "zero_point": node.args[3].target}})
        if node.op == "call_function" and target in _CAT:
            return self.cat(node)
        if node.op == "call_function" and target in _MAX_POOL:
            return self.max_pool(node, self.name(node, node.name), *self.max_pool_args(node))
        if node.op == "call_function" and target in _AVG_POOL:
            return self.avg_pool(node, self.name(node, node.name), *self.avg_pool_args(node))
        if node.op == "call_function" and target in _ADAPTIVE:
            return self.adaptive(node, self.name(node, "avgpool"),
                                 self.arg(node, 1, "output_size"))
        if (node.op == "call_function" and target in _RELU) or \
                (node.op == "call_method" and target in ("relu", "relu_")):
            return self.activation(node, self.name(node, node.name), "relu",
                                   bool(self.arg(node, 1, "inplace", target in (
                                       torch.relu_, F.relu_, "relu_"))))
        if node.op == "call_function" and target in _RELU6:
            return self.activation(node, self.name(node, node.name), "relu6",
                                   bool(self.arg(node, 1, "inplace", False)))
        if node.op == "call_function" and target in _HARDTANH:
            bounds = (self.arg(node, 1, "min_val", -1.0), self.arg(node, 2, "max_val", 1.0))
            return self.hardtanh(node, self.name(node, node.name), bounds,
                                 bool(self.arg(node, 3, "inplace", target is F.hardtanh_)))
        if node.op == "call_function" and target is torch.flatten:
            return self.flatten(node, self.name(node, "flatten"),
                                self.arg(node, 1, "start_dim", 0),
                                self.arg(node, 2, "end_dim", -1))
        if node.op == "call_method" and target == "flatten":
            return self.flatten(node, self.name(node, "flatten"),
                                self.arg(node, 1, "start_dim", 0),
                                self.arg(node, 2, "end_dim", -1))
        if node.op == "call_method" and target == "size":
            return self.size(node)
        if node.op == "call_method" and target in _RESHAPE_METHODS or \
                (node.op == "call_function" and target is torch.reshape):
            return self.reshape(node)
        if (node.op == "call_method" and target == "dequantize") or \
                (node.op == "call_function" and target is torch.dequantize):
            return self.dequantize(node)
        if node.op == "call_function" and target is operator.getitem:
            raise self.error(node, "takes an item of a tuple; expected single tensors "
                             f"between supported ops ({SUPPORTED})")
        raise self.unsupported(node)

    def quantize(self, node: Node) -> None:
        if any(entry["op"] == "quantize" for entry in self.nodes):
            raise self.error(node, "quantizes a second tensor; expected one input quantize "
                             "(is an op between a dequantize and this quantize left in "
                             "float?)")
        if not (isinstance(node.args[0], Node) and node.args[0].op == "placeholder"):
            raise self.error(node.args[0] if isinstance(node.args[0], Node) else node,
                             "runs in float before the input quantize; it is not a "
                             f"supported op; supported: {SUPPORTED}")
        scale, zero_point = node.args[1], node.args[2]
        self.emit(node, {"name": self.name(node, "input"), "op": "quantize", "inputs": [],
                         "output": _qparams(_attr_value(self.gm, scale),
                                            _attr_value(self.gm, zero_point)),
                         "attrs": {"scale": scale.target, "zero_point": zero_point.target}})

    def module_call(self, node: Node, module: nn.Module | None) -> None:
        if isinstance(module, CONV_TYPES + LINEAR_TYPES):
            return self.weighted(node, module)
        name = self.name(node, str(node.target))
        if isinstance(module, nn.MaxPool2d):
            if module.return_indices:
                raise self.error(node, "returns indices; expected return_indices=False")
            return self.max_pool(node, name, module.kernel_size, module.stride,
                                 module.padding, module.dilation, module.ceil_mode)
        if isinstance(module, nn.AvgPool2d):
            return self.avg_pool(node, name, module.kernel_size, module.stride,
                                 module.padding, module.ceil_mode, module.count_include_pad,
                                 module.divisor_override)
        if isinstance(module, nn.AdaptiveAvgPool2d):
            return self.adaptive(node, name, module.output_size)
        if isinstance(module, nn.ReLU):
            return self.activation(node, name, "relu", module.inplace)
        if isinstance(module, nn.ReLU6 | nnq.ReLU6):
            return self.activation(node, name, "relu6", module.inplace)
        if isinstance(module, nn.Hardtanh):
            return self.hardtanh(node, name, (module.min_val, module.max_val), module.inplace)
        if isinstance(module, nn.Flatten):
            return self.flatten(node, name, module.start_dim, module.end_dim)
        raise self.unsupported(node)

    def weighted(self, node: Node, module: nn.Module) -> None:
        source = self.producer(node, node.args[0])
        weight = module.weight()
        per_channel = weight.qscheme() in (torch.per_channel_affine,
                                           torch.per_channel_symmetric)
        entry = {"name": str(node.target), "inputs": [source["name"]], "module": module,
                 "input": dict(source["output"]),
                 "relu": isinstance(module, nniq.ConvReLU2d | nniq.LinearReLU),
                 "output": _qparams(module.scale, module.zero_point),
                 "weight_shape": list(weight.shape), "bias_shape": [int(weight.shape[0])],
                 "weight_qscheme": ("per_channel_symmetric" if per_channel
                                    else "per_tensor_symmetric")}
        if isinstance(module, CONV_TYPES):
            if module.padding_mode != "zeros":
                raise self.error(node, f"pads with {module.padding_mode!r}; expected zeros")
            entry |= {"op": "conv2d", "kind": conv_kind(module),
                      "stride": list(module.stride), "padding": list(module.padding),
                      "dilation": list(module.dilation), "groups": int(module.groups)}
        else:
            entry |= {"op": "linear", "kind": "linear"}
        self.emit(node, entry)

    def max_pool_args(self, node: Node) -> tuple:
        if self.arg(node, 6, "return_indices", False):
            raise self.error(node, "returns indices; expected return_indices=False")
        kernel = self.arg(node, 1, "kernel_size")
        stride = self.arg(node, 2, "stride", None)
        return (kernel, stride, self.arg(node, 3, "padding", 0),
                self.arg(node, 4, "dilation", 1), self.arg(node, 5, "ceil_mode", False))

    def max_pool(self, node: Node, name: str, kernel: Any, stride: Any, padding: Any,
                 dilation: Any, ceil_mode: bool) -> None:
        source = self.producer(node, node.args[0])
        stride = kernel if stride is None or stride == [] else stride
        self.same_qparams(node, source, name, "max_pool2d", kernel_size=_pair(kernel),
                          stride=_pair(stride), padding=_pair(padding),
                          dilation=_pair(dilation), ceil_mode=bool(ceil_mode))

    def avg_pool_args(self, node: Node) -> tuple:
        return (self.arg(node, 1, "kernel_size"), self.arg(node, 2, "stride", None),
                self.arg(node, 3, "padding", 0), self.arg(node, 4, "ceil_mode", False),
                self.arg(node, 5, "count_include_pad", True),
                self.arg(node, 6, "divisor_override", None))

    def avg_pool(self, node: Node, name: str, kernel: Any, stride: Any, padding: Any,
                 ceil_mode: bool, count_include_pad: bool, divisor_override: Any) -> None:
        source = self.producer(node, node.args[0])
        stride = kernel if stride is None or stride == [] else stride
        self.same_qparams(node, source, name, "avg_pool2d", kernel_size=_pair(kernel),
                          stride=_pair(stride), padding=_pair(padding),
                          ceil_mode=bool(ceil_mode),
                          count_include_pad=bool(count_include_pad),
                          divisor_override=(None if divisor_override is None
                                            else int(divisor_override)))

    def adaptive(self, node: Node, name: str, output_size: Any) -> None:
        source = self.producer(node, node.args[0])
        sizes = [output_size] * 2 if isinstance(output_size, int | None) else \
            list(output_size)
        if None in sizes:
            raise self.error(node, f"has output_size {output_size!r}; expected [oh, ow] "
                             "integers (None keeps the input size, which the graph does "
                             "not record)")
        self.same_qparams(node, source, name, "adaptive_avg_pool2d",
                          output_size=[int(size) for size in sizes])

    def activation(self, node: Node, name: str, op: str, inplace: bool) -> None:
        source_node = node.args[0]
        source = self.producer(node, source_node)
        if inplace and len(source_node.users) > 1:
            raise self.error(node, "works in place on a tensor that other nodes also read; "
                             "expected inplace=False")
        self.same_qparams(node, source, name, op)

    def hardtanh(self, node: Node, name: str, bounds: tuple, inplace: bool) -> None:
        if tuple(float(b) for b in bounds) != (0.0, 6.0):
            raise self.error(node, f"clamps to [{bounds[0]}, {bounds[1]}]; only "
                             "hardtanh(0, 6) (relu6) is supported")
        self.activation(node, name, "relu6", inplace)

    def flatten(self, node: Node, name: str, start_dim: Any, end_dim: Any,
                extra_fx: tuple[str, ...] = ()) -> None:
        source = self.producer(node, node.args[0])
        if start_dim != 1 or end_dim not in (-1, 3):
            raise self.error(node, f"flattens dims {start_dim}..{end_dim}; expected "
                             "start_dim 1 to the last dim (N, C*H*W)")
        entry = {"name": name, "op": "flatten", "inputs": [source["name"]], "start_dim": 1,
                 "input": dict(source["output"]), "output": dict(source["output"])}
        self.emit(node, entry, extra_fx)

    def cat(self, node: Node) -> None:
        tensors = self.arg(node, 0, "tensors")
        dim = self.arg(node, 1, "dim", 0)
        if not isinstance(tensors, list | tuple) or len(tensors) < 2:
            raise self.error(node, "concatenates fewer than 2 tensors; expected a list of "
                             "at least 2")
        if dim not in (1, -3):
            raise self.error(node, f"concatenates along dim {dim}; expected dim 1 (channels)")
        sources = [self.producer(node, tensor) for tensor in tensors]
        self.emit(node, {"name": self.name(node, node.name), "op": "cat", "dim": 1,
                         "inputs": [source["name"] for source in sources],
                         "input": [dict(source["output"]) for source in sources],
                         "output": dict(sources[0]["output"])})

    def size(self, node: Node) -> None:
        """x.size(0): only as part of x.view(x.size(0), -1) / x.reshape(x.size(0), -1)."""
        self.producer(node, node.args[0])
        if self.arg(node, 1, "dim") != 0 or not node.users or not all(
                self._flatten_shape(user) is not None for user in node.users):
            raise self.error(node, "is supported only as x.view(x.size(0), -1) or "
                             "x.reshape(x.size(0), -1)")
        self.sizes[node.name] = node.args[0]

    def _flatten_shape(self, node: Node) -> Node | None:
        """The x of x.view(x.size(0), -1) (or reshape) if `node` is one, else None."""
        if not ((node.op == "call_method" and node.target in _RESHAPE_METHODS)
                or (node.op == "call_function" and node.target is torch.reshape)):
            return None
        shape = list(node.args[1:])
        if len(shape) == 1 and isinstance(shape[0], list | tuple):
            shape = list(shape[0])
        if not shape and "shape" in node.kwargs:
            shape = list(node.kwargs["shape"])
        x = node.args[0]
        if len(shape) == 2 and shape[1] == -1 and isinstance(shape[0], Node) \
                and shape[0].op == "call_method" and shape[0].target == "size" \
                and shape[0].args[0] is x and (shape[0].args[1:] or
                                               [shape[0].kwargs.get("dim")])[0] == 0:
            return x
        return None

    def reshape(self, node: Node) -> None:
        x = self._flatten_shape(node)
        if x is None:
            raise self.error(node, "reshapes to a shape other than (x.size(0), -1); "
                             "expected a flatten to (N, C*H*W)")
        size_nodes = tuple(arg.name for arg in node.args[1:] if isinstance(arg, Node))
        self.flatten(node, self.name(node, "flatten"), 1, -1, size_nodes)

    def dequantize(self, node: Node) -> None:
        source = self.producer(node, node.args[0])
        for user in node.users:
            if user.op != "output":
                raise self.error(user, "runs in float after a dequantize (PyTorch left it "
                                 "unquantized): it is not a supported op; supported: "
                                 f"{SUPPORTED}")
        if any(entry["op"] == "dequantize" for entry in self.nodes):
            raise self.error(node, "dequantizes a second tensor; expected one output")
        self.emit(node, {"name": self.name(node, "output"), "op": "dequantize",
                         "inputs": [source["name"]], "input": dict(source["output"])})


def describe(graph_module: GraphModule) -> list[dict]:
    """Integer-inference nodes of a converted model, in execution order (see the module
    docstring). GraphError (one line naming the graph node and its op) for anything
    outside the supported ops."""
    return _Reader(graph_module).run()


def layer_of_fx_node(nodes: list[dict]) -> dict[str, str]:
    """FX node name -> layer name for the nodes describe returned (a flatten written as
    x.view(x.size(0), -1) covers two FX nodes; identity modules none)."""
    return {fx: node["name"] for node in nodes for fx in node.get("fx_nodes", ())}


#: Keys of a node (or manifest layer) that give its structure: equal structure means
#: the same computation for the same numbers.
STRUCTURE_KEYS = ("op", "kind", "inputs", "weight_shape", "bias_shape", "stride", "padding",
                  "dilation", "groups", "relu", "output_size", "start_dim", "kernel_size",
                  "ceil_mode", "count_include_pad", "divisor_override", "dim")


def weight_qscheme(entry: dict) -> str | None:
    """The weight qscheme of a describe node or manifest layer (None if unweighted)."""
    if entry["op"] not in ("conv2d", "linear"):
        return None
    if "weight_qscheme" in entry:
        return entry["weight_qscheme"]
    return entry["weight"]["qscheme"]


def structure(entry: dict) -> dict:
    """The name and STRUCTURE_KEYS of a describe node or manifest layer, plus the weight
    qscheme of a weighted layer (plain JSON data: what quant.qgraph builds from)."""
    out = {"name": entry["name"]}
    out |= {key: entry[key] for key in STRUCTURE_KEYS if key in entry}
    out["inputs"] = list(out["inputs"])
    qscheme = weight_qscheme(entry)
    if qscheme is not None:
        out["weight_qscheme"] = qscheme
    return out


def weighted(nodes: list[dict]) -> list[dict]:
    """The conv2d and linear nodes, in execution order."""
    return [node for node in nodes if node["op"] in ("conv2d", "linear")]
