"""The float model as an FX graph: trace, normalize, check the ops, fold BatchNorm, find
cross-layer-equalization chains. Nothing here knows a network by its attribute names.

Every rewrite keeps the model's module hierarchy (it replaces modules at their
qualified names, and re-traces only the module whose forward has to change), so the
layer names and the scopes that FX quantization derives its attribute names from
(``features.3`` -> ``features_3_scale_0``) stay those of the user's model:

- BatchNorm2d after a conv2d: the conv is replaced by the fused conv (same name), the
  BatchNorm by `Passthrough`, a module that returns its input and leaves no graph node;
- nn.Dropout / nn.Identity: `Passthrough`; ``F.dropout(x, training=False)``: removed;
- nn.Flatten, ``x.flatten(1)``, ``x.view(x.size(0), -1)``, ``x.reshape(x.size(0), -1)``
  (also ``x.shape[0]``, ``torch.reshape``): ``torch.flatten(x, 1)``, the one form the
  quantized graph reader knows (FX keeps it on the quantized tensor either way).

A node outside the supported set is a `FloatGraphError`: one line naming the node and
its op.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F
from cosim.quant.errors import UserError
from torch.nn.utils.fusion import fuse_conv_bn_eval

SUPPORTED = ("conv2d (regular, depthwise, grouped), linear, BatchNorm2d after a conv2d, "
             "relu, relu6 / hardtanh(0, 6), add, cat (dim 1), max_pool2d, avg_pool2d, "
             "adaptive_avg_pool2d, flatten (start_dim 1)")

WEIGHTED_OPS = ("conv2d", "linear")


class FloatGraphError(UserError):
    """The float model cannot be traced, or has a graph node outside the supported ops."""


class Passthrough(nn.Module):
    """Returns its input. Not a torch.nn leaf, so tracing goes through it and records no
    node: what a folded BatchNorm, a Dropout or an Identity becomes."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class Flatten(nn.Module):
    """``torch.flatten(x, start_dim)`` as a traceable (non-leaf) module: what nn.Flatten
    becomes, so the graph holds the function FX quantization keeps quantized."""

    def __init__(self, start_dim: int = 1) -> None:
        super().__init__()
        self.start_dim = start_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(x, self.start_dim)


# --------------------------------------------------------------------------- tracing


def trace(model: nn.Module) -> fx.GraphModule:
    """torch.fx.symbolic_trace of `model`; a model FX cannot trace is a one-line
    FloatGraphError naming the model class and the reason."""
    try:
        return fx.symbolic_trace(model)
    except Exception as error:  # noqa: BLE001 - any tracing failure is the model's
        lines = str(error).strip().splitlines() or [type(error).__name__]
        raise FloatGraphError(
            f"model {type(model).__name__} cannot be traced by torch.fx "
            f"({type(error).__name__}: {lines[0][:300]}); the forward must not branch on "
            "tensor values") from None


class _ShallowTracer(fx.Tracer):
    """Traces one module's own forward: every submodule it calls stays a call_module."""

    def __init__(self, root: nn.Module) -> None:
        super().__init__()
        self._root = root

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return m is not self._root


def _owner(node: fx.Node) -> str:
    """Qualified name of the module whose forward made `node` ('' for the root)."""
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return ""
    return list(stack.values())[-1][0]


def _set_module(root: nn.Module, path: str, module: nn.Module) -> nn.Module:
    """Put `module` at qualified name `path` under `root`; returns the (new) root."""
    if not path:
        return module
    parent_path, _, field = path.rpartition(".")
    setattr(root.get_submodule(parent_path) if parent_path else root, field, module)
    return root


# --------------------------------------------------------------------------- op classes


def _arg(node: fx.Node, index: int, name: str, default=None):
    if len(node.args) > index:
        return node.args[index]
    return node.kwargs.get(name, default)


def _is_hardtanh_0_6(low, high) -> bool:
    return float(low) == 0.0 and float(high) == 6.0


_RELU_FUNCTIONS = (F.relu, torch.relu, torch.relu_)
_ADD_FUNCTIONS = (operator.add, operator.iadd, torch.add)
_CAT_FUNCTIONS = (torch.cat, torch.concat, torch.concatenate)
_MAX_POOL_FUNCTIONS = (F.max_pool2d, torch.max_pool2d)
_AVG_POOL_FUNCTIONS = (F.avg_pool2d,)


def op_of(node: fx.Node, modules: dict[str, nn.Module]) -> str | None:
    """The supported op `node` is (conv2d, linear, batchnorm, relu, relu6, add, cat,
    max_pool2d, avg_pool2d, adaptive_avg_pool2d, flatten, placeholder, output), or None."""
    if node.op in ("placeholder", "output"):
        return node.op
    if node.op == "call_module":
        module = modules[node.target]
        if isinstance(module, nn.Conv2d):
            return "conv2d" if module.padding_mode == "zeros" else None
        if isinstance(module, nn.Linear):
            return "linear"
        if isinstance(module, nn.BatchNorm2d):
            return "batchnorm"
        if isinstance(module, nn.ReLU):
            return "relu"
        if isinstance(module, nn.ReLU6):
            return "relu6"
        if isinstance(module, nn.Hardtanh):
            return "relu6" if _is_hardtanh_0_6(module.min_val, module.max_val) else None
        if isinstance(module, nn.MaxPool2d):
            return None if module.return_indices else "max_pool2d"
        if isinstance(module, nn.AvgPool2d):
            return "avg_pool2d"
        if isinstance(module, nn.AdaptiveAvgPool2d):
            return "adaptive_avg_pool2d"
        return None
    if node.op == "call_function":
        target = node.target
        if target in _RELU_FUNCTIONS:
            return "relu"
        if target is F.relu6:
            return "relu6"
        if target is F.hardtanh:
            low, high = _arg(node, 1, "min_val", -1.0), _arg(node, 2, "max_val", 1.0)
            return "relu6" if _is_hardtanh_0_6(low, high) else None
        if target in _ADD_FUNCTIONS:
            tensors = all(isinstance(a, fx.Node) for a in node.args[:2])
            return "add" if tensors and len(node.args) == 2 and not node.kwargs else None
        if target in _CAT_FUNCTIONS:
            inputs = _arg(node, 0, "tensors", ())
            ok = (_arg(node, 1, "dim", 0) == 1 and isinstance(inputs, (list, tuple))
                  and all(isinstance(a, fx.Node) for a in inputs))
            return "cat" if ok else None
        if target in _MAX_POOL_FUNCTIONS:
            return None if _arg(node, 6, "return_indices", False) else "max_pool2d"
        if target in _AVG_POOL_FUNCTIONS:
            return "avg_pool2d"
        if target is F.adaptive_avg_pool2d:
            return "adaptive_avg_pool2d"
        if target is torch.flatten:
            start, end = _arg(node, 1, "start_dim", 0), _arg(node, 2, "end_dim", -1)
            return "flatten" if (start, end) == (1, -1) else None
        return None
    if node.op == "call_method":
        if node.target in ("relu", "relu_"):
            return "relu"
        if node.target in ("add", "add_"):
            ok = len(node.args) == 2 and isinstance(node.args[1], fx.Node) and not node.kwargs
            return "add" if ok else None
        return None
    return None  # get_attr: a parameter used outside a module


def _describe_op(node: fx.Node, modules: dict[str, nn.Module]) -> str:
    if node.op == "call_module":
        return f"call_module {type(modules[node.target]).__name__}"
    if node.op in ("call_function", "call_method"):
        name = getattr(node.target, "__name__", str(node.target))
        detail = ""
        if node.target in _CAT_FUNCTIONS:
            detail = f", dim={_arg(node, 1, 'dim', 0)}"
        elif node.target is torch.flatten:
            detail = f", start_dim={_arg(node, 1, 'start_dim', 0)}"
        return f"{node.op} {name}{detail}"
    return f"{node.op} {node.target}"


def check_supported(gm: fx.GraphModule) -> None:
    """Every node of a normalized graph is a supported op, or a one-line FloatGraphError
    naming the first node that is not (its name and op)."""
    modules = dict(gm.named_modules())
    for node in gm.graph.nodes:
        if op_of(node, modules) is None:
            raise FloatGraphError(f"graph node {node.name!r} ({_describe_op(node, modules)}) "
                                  f"is not a supported op; supported: {SUPPORTED}")


# --------------------------------------------------------------------------- normalize

_FLATTEN_METHODS = ("view", "reshape")


def _is_batch_size(value, source: fx.Node) -> bool:
    """`value` is x.size(0), x.size()[0] or x.shape[0] of `source`."""
    if not isinstance(value, fx.Node):
        return False
    if value.op == "call_method" and value.target == "size":
        return value.args[0] is source and _arg(value, 1, "dim") == 0
    if value.op == "call_function" and value.target is operator.getitem and value.args[1] == 0:
        inner = value.args[0]
        if not isinstance(inner, fx.Node):
            return False
        if inner.op == "call_function" and inner.target is getattr:
            return inner.args[0] is source and inner.args[1] == "shape"
        if inner.op == "call_method" and inner.target == "size":
            return inner.args[0] is source and len(inner.args) == 1
    return False


def _flatten_source(node: fx.Node) -> fx.Node | None:
    """The tensor `node` flattens from dim 1 to the end, for the forms normalize rewrites."""
    if node.op == "call_method" and node.target == "flatten":
        start, end = _arg(node, 1, "start_dim", 0), _arg(node, 2, "end_dim", -1)
        return node.args[0] if (start, end) == (1, -1) else None
    is_method = node.op == "call_method" and node.target in _FLATTEN_METHODS
    is_function = node.op == "call_function" and node.target is torch.reshape
    if not (is_method or is_function):
        return None
    source, shape = node.args[0], list(node.args[1:])
    if is_function or (len(shape) == 1 and isinstance(shape[0], (tuple, list))):
        shape = list(shape[0]) if shape and isinstance(shape[0], (tuple, list)) else []
    if len(shape) == 2 and shape[1] == -1 and _is_batch_size(shape[0], source):
        return source
    return None


def _removable_dropout(node: fx.Node) -> bool:
    return (node.op == "call_function" and node.target is F.dropout
            and not _arg(node, 2, "training", True))


def _needs_rewrite(node: fx.Node) -> bool:
    return _flatten_source(node) is not None or _removable_dropout(node)


def _rewrite_forward(module: nn.Module) -> fx.GraphModule:
    """`module` with its own forward re-traced (submodules kept) and rewritten."""
    graph = _ShallowTracer(module).trace(module)
    rewritten = fx.GraphModule(module, graph, class_name=type(module).__name__)
    graph = rewritten.graph
    for node in list(graph.nodes):
        source = _flatten_source(node)
        if source is not None:
            with graph.inserting_after(node):
                replacement = graph.call_function(torch.flatten, (source, 1))
            node.replace_all_uses_with(replacement)
            graph.erase_node(node)
        elif _removable_dropout(node):
            node.replace_all_uses_with(node.args[0])
            graph.erase_node(node)
    graph.eliminate_dead_code()
    rewritten.recompile()
    rewritten.train(module.training)
    return rewritten


def normalize(model: nn.Module) -> nn.Module:
    """Rewrite `model` in place (its root may be replaced: use the result) so that its
    graph holds only the ops check_supported knows: Dropout / Identity removed (eval),
    every flatten form becomes torch.flatten(x, 1). Module names are kept."""
    for name, module in list(model.named_modules()):
        if isinstance(module, (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d,
                               nn.AlphaDropout, nn.FeatureAlphaDropout, nn.Identity)):
            model = _set_module(model, name, Passthrough())
        elif isinstance(module, nn.Flatten) and module.end_dim == -1 and module.start_dim == 1:
            model = _set_module(model, name, Flatten(module.start_dim))
    owners = sorted({_owner(node) for node in trace(model).graph.nodes if _needs_rewrite(node)},
                    key=lambda path: -path.count(".") - (1 if path else 0))
    for path in owners:  # deepest first; each re-trace keeps the submodules it calls
        model = _set_module(model, path, _rewrite_forward(model.get_submodule(path)))
    return model


# --------------------------------------------------------------------------- BN folding


def _module_uses(gm: fx.GraphModule) -> dict[str, int]:
    uses: dict[str, int] = {}
    for node in gm.graph.nodes:
        if node.op == "call_module":
            uses[node.target] = uses.get(node.target, 0) + 1
    return uses


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Eval copy of `model`, normalized, every node checked, and every conv2d ->
    BatchNorm2d edge of its graph fused (fuse_conv_bn_eval): the conv keeps its module
    name, the BatchNorm becomes a Passthrough (no graph node). A BatchNorm that does not
    directly follow a conv2d with that one user is a one-line FloatGraphError."""
    import copy

    model = normalize(copy.deepcopy(model).eval())
    gm = trace(model)
    check_supported(gm)
    modules = dict(gm.named_modules())
    uses = _module_uses(gm)
    for node in gm.graph.nodes:
        if op_of(node, modules) != "batchnorm":
            continue
        conv = node.args[0]
        reason = None
        if not (isinstance(conv, fx.Node) and op_of(conv, modules) == "conv2d"):
            reason = "it does not follow a conv2d"
        elif len(conv.users) != 1:
            reason = f"conv {conv.target!r} before it has {len(conv.users)} users"
        elif uses[conv.target] != 1 or uses[node.target] != 1:
            reason = "its conv or the BatchNorm module is called more than once"
        if reason:
            raise FloatGraphError(f"graph node {node.name!r} (call_module BatchNorm2d) cannot "
                                  f"be folded: {reason}; only conv2d -> BatchNorm2d is "
                                  "supported")
        fused = fuse_conv_bn_eval(modules[conv.target], modules[node.target])
        model = _set_module(model, conv.target, fused)
        model = _set_module(model, node.target, Passthrough())
    return model


# --------------------------------------------------------------------------- graph queries


def weighted_layers(model: nn.Module) -> list[str]:
    """Module names of the conv2d and linear nodes, in graph (execution) order."""
    gm = trace(model)
    modules = dict(gm.named_modules())
    names: list[str] = []
    for node in gm.graph.nodes:
        if op_of(node, modules) in WEIGHTED_OPS and node.target not in names:
            names.append(node.target)
    return names


@dataclass(frozen=True)
class Chain:
    """producer (conv2d/linear) -> ReLU -> [avg pools, flatten] -> consumer (conv2d/linear)."""

    producer: str
    consumer: str
    via: tuple[str, ...]  # graph node names from the ReLU to the consumer (exclusive)


#: Ops a chain may pass between its ReLU and the consumer: channel-wise and linear, so
#: relu(x / s) * s = relu(x) carries through them channel by channel.
_CHANNELWISE = ("adaptive_avg_pool2d", "avg_pool2d", "flatten")

_ACROSS = {"max_pool2d": "across a max pool", "cat": "across a concatenation",
           "add": "across an add", "relu6": "across a ReLU6 (not positively homogeneous)"}


def _label(node: fx.Node) -> str:
    """A node as a user reads it: the module name of a call_module, else the node name."""
    return str(node.target) if node.op == "call_module" else node.name


def _users_text(node: fx.Node) -> str:
    return ", ".join(repr(_label(user)) for user in node.users)


def _chain_from(node: fx.Node, modules: dict[str, nn.Module],
                uses: dict[str, int]) -> tuple[Chain | None, str | None]:
    """The chain that starts at weighted node `node`, or (None, reason)."""
    if uses[node.target] != 1:
        return None, "its module is called more than once"
    if len(node.users) != 1:
        return None, f"its output has {len(node.users)} users ({_users_text(node)})"
    relu = next(iter(node.users))
    relu_op = op_of(relu, modules)
    if relu_op == "relu6":
        return None, f"followed by ReLU6 {_label(relu)!r}, which is not positively homogeneous"
    if relu_op != "relu":
        return None, f"followed by {relu_op or relu.op} {_label(relu)!r}, not a ReLU"
    via: list[str] = [relu.name]
    ops: list[str] = []
    current = relu
    while True:
        if len(current.users) != 1:
            return None, (f"{_label(current)!r} has {len(current.users)} users "
                          f"({_users_text(current)})")
        current = next(iter(current.users))
        op = op_of(current, modules)
        if op in _CHANNELWISE:
            via.append(current.name)
            ops.append(op)
            continue
        if op in WEIGHTED_OPS:
            break
        if op in _ACROSS:
            return None, f"not equalized {_ACROSS[op]} {_label(current)!r}"
        return None, f"the ReLU path ends at {op or current.op} {_label(current)!r}"
    if uses[current.target] != 1:
        return None, f"consumer {current.target!r} is called more than once"
    producer, consumer = modules[node.target], modules[current.target]
    channels = producer.out_channels if isinstance(producer, nn.Conv2d) else producer.out_features
    flattened = "flatten" in ops
    if isinstance(consumer, nn.Conv2d):
        if flattened or isinstance(producer, nn.Linear) or consumer.in_channels != channels:
            return None, f"consumer {current.target!r} does not take the producer's channels"
    elif isinstance(producer, nn.Conv2d) and not flattened:
        return None, f"linear {current.target!r} acts on the last dimension, not on channels"
    elif consumer.in_features % channels or (not flattened and consumer.in_features != channels):
        return None, (f"linear {current.target!r} has {consumer.in_features} inputs, not a "
                      f"multiple of {channels} channels")
    return Chain(node.target, current.target, tuple(via)), None


def equalization_chains(model: nn.Module) -> tuple[list[Chain], list[str]]:
    """Cross-layer equalization chains of a folded model, in graph order, and one note
    per conv2d/linear that starts none, saying why (e.g. across a max pool)."""
    gm = trace(model)
    modules = dict(gm.named_modules())
    uses = _module_uses(gm)
    chains: list[Chain] = []
    notes: list[str] = []
    for node in gm.graph.nodes:
        if op_of(node, modules) not in WEIGHTED_OPS:
            continue
        chain, reason = _chain_from(node, modules, uses)
        if chain is not None:
            chains.append(chain)
        else:
            notes.append(f"CLE: {node.target}: skipped, {reason}")
    return chains, notes


def consumer_channel_index(consumer: nn.Module, channels: int) -> torch.Tensor:
    """For each weight column of `consumer` ([out, in_per_group] for a conv, [out, in]
    for a linear), the producer channel it multiplies (int64).

    A grouped or depthwise conv's column j of output o reads input channel
    (o // out_per_group) * in_per_group + j; a linear after a flatten of C channels
    with k positions each reads channel f // k.
    """
    weight = consumer.weight
    out, columns = weight.shape[0], weight.shape[1]
    if isinstance(consumer, nn.Conv2d):
        groups = consumer.groups
        group = torch.arange(out) // (out // groups)
        return group[:, None] * columns + torch.arange(columns)[None, :]
    per_channel = columns // channels
    return (torch.arange(columns) // per_channel)[None, :].expand(out, columns)

