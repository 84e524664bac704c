"""The Python side of the compute engine: the layer program, activation memory files.

/work/notes/compute-contract.md is the contract this module implements; in short:

- `check_engine_config(config)`: the layouts the engine computes on (word_bits ==
  8*tile_ic, tile_dw == tile_ic, tile_ic % tile_oc == 0, default loop orders, little
  lanes, word_aligned records, word addresses); EngineError naming the key otherwise.
- `build_program(package, layout)`: walks the manifest in execution order and maps
  every op to an engine step (conv2d/linear -> "weighted", add -> "add",
  adaptive_avg_pool2d to 1x1 -> "pool") or to nothing (quantize = the input tensor,
  flatten of a 1x1 map = an alias, dequantize = the end). Each step has its 16-field
  descriptor. Activation memory is bump-allocated in execution order from word 0.
- Activation words: ACT_LANES = tile_ic uint8 lanes per word; a tensor of C x H x W at
  base B holds word(t, y, x) = B + (t*H + y)*W + x, lane l = channel t*lanes + l, lanes
  of channels >= C hold the tensor's zero point. In NumPy a word is a row of a uint8
  array [n_words, lanes] (column l = lane l = bits [8l+7:8l]).
- Files: the descriptor file (one 32-bit field per line), the activation load file
  ("@addr" + one word per line, lane 0 rightmost), dumps read back ($writememh of
  Icarus or Verilator), the parameter stream player file ({tlast, word} per line).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from cosim.golden.image import build_stream, check_layout_matches, stream_words, words_to_hex
from cosim.golden.layout import DEPTHWISE_LOOPS, WEIGHT_LOOPS, Layout, LayoutConfig
from cosim.quant.formats import atomic_write_bytes
from cosim.quant.package import po2_exponent

__all__ = [
    "DESCRIPTOR_FIELDS",
    "ENGINE_KINDS",
    "OP_CODES",
    "SUPPORTED_OPS",
    "EngineError",
    "Program",
    "Step",
    "Tensor",
    "build_program",
    "check_engine_config",
    "descriptor_words",
    "expected_outputs",
    "first_differences",
    "identical_fraction",
    "input_words",
    "pack_activation",
    "padding_lane_errors",
    "read_act_dump",
    "read_act_dump_masked",
    "unpack_activation",
    "words_to_hex_lines",
    "write_act_load",
    "write_descriptors",
    "write_param_stream",
]

#: Descriptor field names, index = field number (16 x 32 bits per step).
DESCRIPTOR_FIELDS = ("op", "rec_addr", "w_base", "b_base", "in_base", "in2_base", "out_base",
                     "in_h", "in_w", "out_h", "out_w", "channels", "zps", "shifts", "divisor",
                     "reserved")
#: Step op -> descriptor field 0 bits [1:0].
OP_CODES = {"weighted": 0, "add": 1, "pool": 2}
#: Descriptor field 0 bit 8: the weighted layer has per-channel shifts.
PER_CHANNEL_BIT = 1 << 8
#: Layer kinds (record kind names) the engine computes.
ENGINE_KINDS = ("regular", "depthwise", "pointwise", "linear")
#: Manifest ops build_program accepts (quantize/dequantize/flatten make no step).
SUPPORTED_OPS = ("quantize", "conv2d", "linear", "add", "adaptive_avg_pool2d", "flatten",
                 "dequantize")
#: Largest add shift (ka, kb, ky) the descriptor and the datapath hold.
MAX_ADD_SHIFT = 31
#: Largest kernel, stride, padding, dilation the record's kernel word holds (8 bits).
RECORD_BYTE_MAX = 255


class EngineError(ValueError):
    """Something the compute engine cannot do (a layout key, an op, a geometry) or a bad
    engine file; the text is one line naming the layer or key."""

    def __init__(self, message: str) -> None:
        super().__init__(str(message).replace("\r", " ").replace("\n", " "))


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


# ---------------------------------------------------------------- engine limits


def check_engine_config(config: LayoutConfig) -> None:
    """EngineError (naming the LayoutConfig field and the accelerator-file key) unless the
    compute engine works on layouts of `config`."""

    def fail(key: str, file_key: str, what: str) -> None:
        raise EngineError(f"accelerator {key} ({file_key}) {what}; the compute engine "
                          "does not support it")

    if config.word_bits != 8 * config.tile_ic:
        fail("word_bits", "word.bits", f"is {config.word_bits}, expected 8 * tile_ic "
             f"= {8 * config.tile_ic} (one word = one input-channel tile)")
    if config.tile_dw != config.tile_ic:
        fail("tile_dw", "tile.dw", f"is {config.tile_dw}, expected tile_ic = {config.tile_ic}")
    if config.tile_ic % config.tile_oc:
        fail("tile_oc", "tile.oc", f"is {config.tile_oc}, expected a divisor of tile_ic "
             f"= {config.tile_ic}")
    if tuple(config.weight_loop_order) != WEIGHT_LOOPS:
        fail("weight_loop_order", "weights.loop_order",
             f"is {', '.join(config.weight_loop_order)}, expected {', '.join(WEIGHT_LOOPS)}")
    if tuple(config.depthwise_loop_order) != DEPTHWISE_LOOPS:
        fail("depthwise_loop_order", "weights.depthwise_loop_order",
             f"is {', '.join(config.depthwise_loop_order)}, expected "
             f"{', '.join(DEPTHWISE_LOOPS)}")
    if config.lane_order != "little":
        fail("lane_order", "word.lane_order", f"is {config.lane_order!r}, expected 'little'")
    if config.record_format != "word_aligned":
        fail("record_format", "record.format",
             f"is {config.record_format!r}, expected 'word_aligned'")
    if config.address_unit != "word":
        fail("address_unit", "memory.address_unit",
             f"is {config.address_unit!r}, expected 'word'")


# ---------------------------------------------------------------- the program


@dataclass(frozen=True)
class Tensor:
    """An activation tensor in engine memory: C x H x W uint8 codes from word `base`
    (a linear layer's input/output is (features, 1, 1)); pads with `zero_point`."""

    name: str
    channels: int
    h: int
    w: int
    base: int
    zero_point: int
    lanes: int = 8

    @property
    def tiles(self) -> int:
        """Channel tiles: ceil(C / lanes)."""
        return _ceil_div(self.channels, self.lanes)

    @property
    def words(self) -> int:
        """Words it occupies: ceil(C / lanes) * H * W."""
        return self.tiles * self.h * self.w

    @property
    def end(self) -> int:
        """First word after it (exclusive)."""
        return self.base + self.words

    @property
    def last(self) -> int:
        """Its last word address (inclusive, the `hi` of a $writememh range)."""
        return self.end - 1

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.channels, self.h, self.w)


@dataclass(frozen=True)
class Step:
    """One engine layer: name (the manifest layer), op ("weighted" | "add" | "pool"),
    kind (record kind of a weighted layer, else ""), inputs, output, fields (the 16
    descriptor fields), macs (useful multiply-accumulates; 0 for add and pool)."""

    name: str
    op: str
    kind: str
    inputs: tuple[Tensor, ...]
    output: Tensor
    fields: tuple[int, ...]
    macs: int

    def field(self, name: str) -> int:
        """A descriptor field by name (DESCRIPTOR_FIELDS)."""
        return self.fields[DESCRIPTOR_FIELDS.index(name)]


@dataclass
class Program:
    """The engine program of a network: steps in execution order, every tensor by
    manifest name (the network input, each step's output, flatten aliases), the act
    memory size, the lane count, the input tensor's name and the logits tensor's name
    (the last engine layer, whose codes the testbench dequantizes)."""

    steps: list[Step]
    tensors: dict[str, Tensor]
    act_words: int
    lanes: int
    input_name: str
    logits_name: str
    #: Manifest names that are aliases of another tensor (flatten of a 1x1 map).
    aliases: dict[str, str] = field(default_factory=dict)

    @property
    def input(self) -> Tensor:
        return self.tensors[self.input_name]

    @property
    def logits(self) -> Tensor:
        return self.tensors[self.logits_name]

    def step(self, name: str) -> Step:
        for s in self.steps:
            if s.name == name:
                return s
        raise EngineError(f"no engine step {name!r}")

    def index(self, name: str) -> int:
        """Position of step `name` (its descriptor is at desc word 16 * index)."""
        return self.steps.index(self.step(name))

    def first_of_each_kind(self) -> list[int]:
        """Indices, in execution order, of the first step of each kind: each weighted
        kind (regular, depthwise, pointwise, linear), the add, the pool."""
        seen: dict[tuple[str, str], int] = {}
        for i, s in enumerate(self.steps):
            seen.setdefault((s.op, s.kind), i)
        return sorted(seen.values())

    def counts(self) -> dict[str, int]:
        """Steps per op: {"weighted": n, "add": n, "pool": n}."""
        out = dict.fromkeys(OP_CODES, 0)
        for s in self.steps:
            out[s.op] += 1
        return out

    @property
    def total_macs(self) -> int:
        return sum(s.macs for s in self.steps)

    def descriptors(self) -> np.ndarray:
        """uint32 [n_steps, 16]: every descriptor."""
        return descriptor_words(self.steps).reshape(-1, 16)

    def write_descriptors(self, path: Path | str) -> None:
        write_descriptors(path, self.steps)

    def to_json(self) -> dict[str, Any]:
        """The program as plain JSON data (`from_json` gives it back, equal)."""
        def tensor(t: Tensor) -> dict[str, Any]:
            return asdict(t)

        return {"steps": [{"name": s.name, "op": s.op, "kind": s.kind,
                           "inputs": [tensor(t) for t in s.inputs],
                           "output": tensor(s.output), "fields": list(s.fields),
                           "macs": s.macs} for s in self.steps],
                "tensors": {k: tensor(t) for k, t in self.tensors.items()},
                "act_words": self.act_words, "lanes": self.lanes,
                "input_name": self.input_name, "logits_name": self.logits_name,
                "aliases": dict(self.aliases)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Program:
        """The program `to_json` wrote (our own work-folder file, never user input)."""
        steps = [Step(s["name"], s["op"], s["kind"], tuple(Tensor(**t) for t in s["inputs"]),
                      Tensor(**s["output"]), tuple(int(f) for f in s["fields"]), int(s["macs"]))
                 for s in data["steps"]]
        return cls(steps, {k: Tensor(**t) for k, t in data["tensors"].items()},
                   int(data["act_words"]), int(data["lanes"]), str(data["input_name"]),
                   str(data["logits_name"]), dict(data.get("aliases", {})))

    def summary(self) -> str:
        """One line: steps per op, act words, MACs."""
        c = self.counts()
        return (f"{len(self.steps)} steps ({c['weighted']} weighted, {c['add']} add, "
                f"{c['pool']} pool), {self.act_words} act words of {self.lanes} lanes, "
                f"{self.total_macs} MACs")


def _unsupported(name: str, op: str) -> EngineError:
    return EngineError(f"layer {name!r}: op {op!r} is not supported by the compute engine "
                       f"(supported: {', '.join(SUPPORTED_OPS)})")


def _pair(value: Any, name: str, what: str) -> tuple[int, int]:
    if isinstance(value, int | np.integer):
        return int(value), int(value)
    try:
        a, b = (int(v) for v in value)
    except (TypeError, ValueError):
        raise EngineError(f"layer {name!r}: {what} {value!r} is not an integer pair") from None
    return a, b


def _exponent(scale: Any, name: str, what: str) -> int:
    e = po2_exponent(float(scale))
    if e is None:
        raise EngineError(f"layer {name!r}: {what} scale {scale!r} is not a power of two")
    return int(e)


def _zero_point(q: Mapping[str, Any], name: str, what: str) -> int:
    zp = q["zero_point"]
    if isinstance(zp, list):
        if len(zp) != 1:
            raise EngineError(f"layer {name!r}: {what} zero_point must be one value")
        zp = zp[0]
    zp = int(zp)
    if not 0 <= zp <= 255:
        raise EngineError(f"layer {name!r}: {what} zero_point {zp} is not in [0, 255]")
    return zp


def _fields(**values: int) -> tuple[int, ...]:
    out = [0] * 16
    for key, v in values.items():
        v = int(v)
        if not 0 <= v < 1 << 32:
            raise EngineError(f"descriptor field {key} = {v} does not fit in 32 bits")
        out[DESCRIPTOR_FIELDS.index(key)] = v
    return tuple(out)


def build_program(package: Any, layout: Layout,
                  input_shape: Sequence[int] | None = None) -> Program:
    """The engine program of a loaded package under `layout` (which must be the
    package's layout on an engine config).

    input_shape: (C, H, W) of the network input; default the manifest's
    model.input_shape (synthetic packages may not have one). EngineError on an op or a
    geometry the engine does not compute, one line naming the layer."""
    cfg = layout.config
    check_engine_config(cfg)
    check_layout_matches(package, layout)
    lanes = cfg.lanes
    tensors: dict[str, Tensor] = {}
    aliases: dict[str, str] = {}
    steps: list[Step] = []
    cursor = 0
    input_name: str | None = None
    logits_name: str | None = None

    def allocate(name: str, channels: int, h: int, w: int, zp: int) -> Tensor:
        nonlocal cursor
        t = Tensor(name, int(channels), int(h), int(w), cursor, int(zp), lanes)
        cursor += t.words
        tensors[name] = t
        return t

    def source(name: str, entry: Mapping[str, Any], index: int) -> Tensor:
        inputs = list(entry["inputs"])
        if index >= len(inputs) or inputs[index] not in tensors:
            got = inputs[index] if index < len(inputs) else None
            raise EngineError(f"layer {name!r}: input {index} {got!r} is not an engine "
                              "tensor (an earlier layer)")
        return tensors[inputs[index]]

    for entry in package.layers:
        name, op = entry["name"], entry["op"]
        if logits_name is not None:
            raise EngineError(f"layer {name!r}: op {op!r} after the dequantize node")
        if op == "quantize":
            if input_name is not None:
                raise EngineError(f"layer {name!r}: a second quantize node (the engine has "
                                  "one network input)")
            shape = input_shape if input_shape is not None else \
                package.manifest.get("model", {}).get("input_shape")
            if shape is None or len(shape) != 3:
                raise EngineError(f"layer {name!r}: the network input shape is unknown "
                                  "(model.input_shape; pass input_shape=(C, H, W))")
            allocate(name, *(int(d) for d in shape), _zero_point(entry["output"], name,
                                                                 "output"))
            input_name = name
        elif op in ("conv2d", "linear"):
            steps.append(_weighted_step(package, layout, entry, source(name, entry, 0),
                                        allocate))
        elif op == "add":
            a, b = source(name, entry, 0), source(name, entry, 1)
            if a.shape != b.shape:
                raise EngineError(f"layer {name!r}: add of {a.shape} and {b.shape}; expected "
                                  "equal shapes")
            qa, qb = entry["input"]
            qy = entry["output"]
            ea, eb, ey = (_exponent(q["scale"], name, role) for q, role in
                          ((qa, "input0"), (qb, "input1"), (qy, "output")))
            m = min(ea, eb, ey)
            ka, kb, ky = ea - m, eb - m, ey - m
            for k, what in ((ka, "ka"), (kb, "kb"), (ky, "ky")):
                if k > MAX_ADD_SHIFT:
                    raise EngineError(f"layer {name!r}: add shift {what} = {k} (from the po2 "
                                      f"scales 2^{ea}, 2^{eb}, 2^{ey}) exceeds "
                                      f"{MAX_ADD_SHIFT}")
            za, zb = _zero_point(qa, name, "input0"), _zero_point(qb, name, "input1")
            zy = _zero_point(qy, name, "output")
            relu = bool(entry.get("relu", False))
            out = allocate(name, a.channels, a.h, a.w, zy)
            steps.append(Step(name, "add", "", (a, b), out, _fields(
                op=OP_CODES["add"], in_base=a.base, in2_base=b.base, out_base=out.base,
                in_h=a.h, in_w=a.w, out_h=out.h, out_w=out.w, channels=a.channels,
                zps=za | zb << 8 | zy << 16 | int(relu) << 24,
                shifts=ka | kb << 8 | ky << 16), 0))
        elif op == "adaptive_avg_pool2d":
            x = source(name, entry, 0)
            size = entry.get("output_size")
            if _pair(size, name, "output_size") != (1, 1):
                raise EngineError(f"layer {name!r}: adaptive_avg_pool2d to {size} is not "
                                  "supported by the compute engine (only to 1x1)")
            out = allocate(name, x.channels, 1, 1, x.zero_point)
            steps.append(Step(name, "pool", "", (x,), out, _fields(
                op=OP_CODES["pool"], in_base=x.base, out_base=out.base, in_h=x.h, in_w=x.w,
                out_h=1, out_w=1, channels=x.channels, zps=x.zero_point,
                divisor=x.h * x.w), 0))
        elif op == "flatten":
            x = source(name, entry, 0)
            if int(entry.get("start_dim", 1)) != 1 or (x.h, x.w) != (1, 1):
                raise EngineError(f"layer {name!r}: flatten of a {x.channels}x{x.h}x{x.w} map "
                                  "is not supported by the compute engine (only of a 1x1 "
                                  "map, start_dim 1)")
            tensors[name] = x
            aliases[name] = x.name
        elif op == "dequantize":
            logits_name = source(name, entry, 0).name
        else:
            raise _unsupported(name, op)
    if input_name is None:
        raise EngineError("the package has no quantize node (the network input)")
    if not steps:
        raise EngineError("the package has no engine layer")
    if logits_name is None:
        logits_name = steps[-1].output.name
    return Program(steps, tensors, cursor, lanes, input_name, logits_name, aliases)


def _weighted_step(package: Any, layout: Layout, entry: Mapping[str, Any], x: Tensor,
                   allocate: Any) -> Step:
    name, op = entry["name"], entry["op"]
    kind = entry.get("kind", "linear" if op == "linear" else None)
    if kind not in ENGINE_KINDS:
        raise EngineError(f"layer {name!r}: {op} kind {kind!r} is not supported by the "
                          f"compute engine (supported kinds: {', '.join(ENGINE_KINDS)})")
    shape = [int(d) for d in entry["weight_shape"]]
    x_zp = _zero_point(entry["input"], name, "input")
    if x_zp != x.zero_point:
        raise EngineError(f"layer {name!r}: input zero_point {x_zp} differs from "
                          f"{x.name!r}'s {x.zero_point}")
    y_zp = _zero_point(entry["output"], name, "output")
    if op == "linear":
        oc, ic = shape
        if (x.channels, x.h, x.w) != (ic, 1, 1):
            raise EngineError(f"layer {name!r}: linear takes {ic} features, its input "
                              f"{x.name!r} is {x.channels}x{x.h}x{x.w}")
        oh = ow = 1
        macs = oc * ic
    else:
        oc, icg, kh, kw = shape
        groups = int(entry["groups"])
        if icg * groups != x.channels:
            raise EngineError(f"layer {name!r}: takes {icg * groups} input channels, its input "
                              f"{x.name!r} has {x.channels}")
        if kind == "depthwise" and not (icg == 1 and groups == oc == x.channels):
            raise EngineError(f"layer {name!r}: depthwise conv with {x.channels} input and "
                              f"{oc} output channels (groups {groups}) is not supported by the "
                              "compute engine (only groups == in == out channels)")
        if kind != "depthwise" and groups != 1:
            raise EngineError(f"layer {name!r}: {kind} conv with groups {groups} is not "
                              "supported by the compute engine")
        stride = _pair(entry["stride"], name, "stride")
        padding = _pair(entry["padding"], name, "padding")
        dilation = _pair(entry["dilation"], name, "dilation")
        for what, (a, b), lo in (("kernel", (kh, kw), 1), ("stride", stride, 1),
                                 ("padding", padding, 0), ("dilation", dilation, 1)):
            if not (lo <= a <= RECORD_BYTE_MAX and lo <= b <= RECORD_BYTE_MAX):
                raise EngineError(f"layer {name!r}: {what} {[a, b]} does not fit the record's "
                                  f"8-bit fields [{lo}, {RECORD_BYTE_MAX}] (not supported by "
                                  "the compute engine)")
        oh = (x.h + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
        ow = (x.w + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
        if oh < 1 or ow < 1:
            raise EngineError(f"layer {name!r}: output map {oh}x{ow} of a {x.h}x{x.w} input "
                              "is empty")
        macs = oc * oh * ow * icg * kh * kw
    per_channel = isinstance(entry.get("shift"), list)
    out = allocate(name, oc, oh, ow, y_zp)
    op0 = OP_CODES["weighted"] | (PER_CHANNEL_BIT if per_channel else 0)
    fields = _fields(op=op0, rec_addr=layout.segment(name, "record").base,
                     w_base=layout.segment(name, "weight").base,
                     b_base=layout.segment(name, "bias").base, in_base=x.base,
                     out_base=out.base, in_h=x.h, in_w=x.w, out_h=oh, out_w=ow, channels=oc)
    return Step(name, "weighted", kind, (x,), out, fields, macs)


# ---------------------------------------------------------------- activation words


def _check_words(words: np.ndarray, tensor: Tensor, lanes: int) -> np.ndarray:
    w = np.asarray(words)
    if w.shape != (tensor.words, lanes):
        raise EngineError(f"tensor {tensor.name!r}: words have shape {list(w.shape)}, "
                          f"expected [{tensor.words}, {lanes}]")
    return w.astype(np.uint8, copy=False)


def pack_activation(codes: np.ndarray, tensor: Tensor, lanes: int) -> np.ndarray:
    """uint8 codes [C, H, W] (or [features] for a 1x1 tensor) -> words uint8
    [ceil(C/lanes)*H*W, lanes]: word (t*H + y)*W + x, lane l = channel t*lanes + l;
    lanes of channels >= C hold the tensor's zero point."""
    c = np.asarray(codes)
    if c.ndim == 1:
        c = c.reshape(-1, 1, 1)
    if c.shape != tensor.shape:
        raise EngineError(f"tensor {tensor.name!r}: codes have shape {list(np.shape(codes))}, "
                          f"expected {list(tensor.shape)}")
    if c.size and (not np.issubdtype(c.dtype, np.integer) or int(c.min()) < 0
                   or int(c.max()) > 255):
        raise EngineError(f"tensor {tensor.name!r}: codes must be integers in [0, 255]")
    tiles = _ceil_div(tensor.channels, lanes)
    full = np.full((tiles * lanes, tensor.h, tensor.w), tensor.zero_point, dtype=np.uint8)
    full[:tensor.channels] = c
    return np.ascontiguousarray(
        full.reshape(tiles, lanes, tensor.h, tensor.w).transpose(0, 2, 3, 1)
    ).reshape(-1, lanes)


def _lanes_view(words: np.ndarray, tensor: Tensor, lanes: int) -> np.ndarray:
    """[tiles*lanes, H, W]: every lane, padding lanes included."""
    w = np.asarray(words)
    tiles = _ceil_div(tensor.channels, lanes)
    return w.reshape(tiles, tensor.h, tensor.w, lanes).transpose(0, 3, 1, 2).reshape(
        tiles * lanes, tensor.h, tensor.w)


def unpack_activation(words: np.ndarray, tensor: Tensor, lanes: int) -> np.ndarray:
    """Words [n, lanes] -> uint8 codes [C, H, W] (the padding lanes dropped)."""
    w = _check_words(words, tensor, lanes)
    return np.ascontiguousarray(_lanes_view(w, tensor, lanes)[:tensor.channels])


def padding_lane_errors(words: np.ndarray, tensor: Tensor, lanes: int) -> int:
    """How many padding lanes (channels >= C) do not hold the tensor's zero point."""
    w = _check_words(words, tensor, lanes)
    pad = _lanes_view(w, tensor, lanes)[tensor.channels:]
    return int(np.count_nonzero(pad != tensor.zero_point))


def first_differences(expected_words: np.ndarray, got_words: np.ndarray, tensor: Tensor,
                      lanes: int, limit: int = 10) -> list[tuple[int, int, int, int, int]]:
    """The first `limit` differing codes of the real channels, in (channel, y, x) order:
    (channel, y, x, expected, got)."""
    e = unpack_activation(expected_words, tensor, lanes)
    g = unpack_activation(got_words, tensor, lanes)
    idx = np.argwhere(e != g)[:max(0, int(limit))]
    return [(int(c), int(y), int(x), int(e[c, y, x]), int(g[c, y, x])) for c, y, x in idx]


def identical_fraction(expected_words: np.ndarray, got_words: np.ndarray, tensor: Tensor,
                       lanes: int) -> float:
    """Fraction of the real channels' codes that are equal (padding lanes not counted)."""
    e = unpack_activation(expected_words, tensor, lanes)
    g = unpack_activation(got_words, tensor, lanes)
    return float(np.count_nonzero(e == g)) / e.size if e.size else 1.0


def _batch_codes(value: np.ndarray, tensor: Tensor, batch_index: int) -> np.ndarray:
    a = np.asarray(value)
    if a.ndim not in (2, 4):
        raise EngineError(f"tensor {tensor.name!r}: golden output has shape {list(a.shape)}; "
                          "expected NCHW or [N, features]")
    if not 0 <= batch_index < a.shape[0]:
        raise EngineError(f"tensor {tensor.name!r}: batch_index {batch_index} is not in "
                          f"[0, {a.shape[0]})")
    x = a[batch_index]
    return x.reshape(tensor.shape) if x.size == math.prod(tensor.shape) else x


def expected_outputs(program: Program, golden_run: Mapping[str, np.ndarray],
                     batch_index: int = 0) -> dict[str, np.ndarray]:
    """Step name -> expected output words uint8 [n, lanes], from the golden model's
    `IntegerModel.run(images)` (uint8 codes, NCHW or [N, features]) of image
    `batch_index`."""
    out = {}
    for s in program.steps:
        if s.name not in golden_run:
            raise EngineError(f"layer {s.name!r}: not in the golden run")
        out[s.name] = pack_activation(_batch_codes(golden_run[s.name], s.output, batch_index),
                                      s.output, program.lanes)
    return out


def input_words(program: Program, golden_run: Mapping[str, np.ndarray],
                batch_index: int = 0) -> np.ndarray:
    """The network input's words (the quantize node's codes of image `batch_index`)."""
    t = program.input
    return pack_activation(_batch_codes(golden_run[t.name], t, batch_index), t, program.lanes)


# ---------------------------------------------------------------- files

_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def words_to_hex_lines(words: np.ndarray) -> list[str]:
    """Words uint8 [n, lanes] -> one hex string each (lanes*2 digits, lane 0 rightmost)."""
    w = np.asarray(words, dtype=np.uint8)
    if w.ndim != 2:
        raise EngineError(f"words must be [n, lanes], got shape {list(w.shape)}")
    b = w[:, ::-1]
    out = np.empty((b.shape[0], 2 * b.shape[1]), dtype=np.uint8)
    out[:, 0::2] = _HEX[b >> 4]
    out[:, 1::2] = _HEX[b & 0xF]
    return [row.tobytes().decode("ascii") for row in out]


def write_act_load(path: Path | str, items: Iterable[tuple[Tensor, np.ndarray]]) -> int:
    """The $readmemh activation load file: per (tensor, words), "@<hex base>" then one word
    per line. Returns the number of words written."""
    chunks, n = [], 0
    for tensor, words in items:
        w = np.asarray(words)
        if w.ndim != 2 or w.shape[0] != tensor.words:
            raise EngineError(f"tensor {tensor.name!r}: words have shape {list(w.shape)}, "
                              f"expected [{tensor.words}, lanes]")
        chunks.append(f"@{tensor.base:x}\n")
        chunks.extend(line + "\n" for line in words_to_hex_lines(w))
        n += w.shape[0]
    atomic_write_bytes(path, "".join(chunks).encode("ascii"))
    return n


_COMMENT = re.compile(r"/\*.*?\*/|//[^\n]*", re.S)


_NIBBLE = np.full(256, 255, dtype=np.uint8)  # hex digit value; 16 = x/z; 255 = not a digit
for _i, _c in enumerate(b"0123456789abcdef"):
    _NIBBLE[_c] = _i
for _i, _c in enumerate(b"ABCDEF"):
    _NIBBLE[_c] = 10 + _i
for _c in b"xXzZ":
    _NIBBLE[_c] = 16


def read_act_dump_masked(path: Path | str, lo: int, hi: int, lanes: int, *,
                         strict: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(words uint8 [hi-lo+1, lanes], unknown bool [hi-lo+1, lanes]) of a $writememh dump
    of addresses lo..hi, vectorized. Icarus writes the words only (the first is address
    lo); Verilator may add "// ..." comments and "@<hex addr>" lines (absolute
    addresses). An x/z digit makes its byte unknown (word value 0 there). strict:
    EngineError on a word outside lo..hi, a missing word, a bad token or a word wider
    than lanes*2 digits; otherwise (the testbench reading what an RTL under test left)
    such words are unknown (missing, bad) or ignored (outside the range)."""
    path = Path(path)
    n = hi - lo + 1
    if n < 1:
        raise EngineError(f"{path}: empty address range {lo}..{hi}")
    digits = 2 * lanes
    text = path.read_bytes()
    if b"//" in text or b"/*" in text:
        text = _COMMENT.sub(" ", text.decode("ascii", errors="replace")).encode("ascii", "replace")
    if b"@" not in text and b"_" not in text and len(text) == n * (digits + 1):
        lines = np.frombuffer(text, dtype=np.uint8).reshape(n, digits + 1)
        if (lines[:, digits] == ord("\n")).all():  # one full word per line: the common case
            nib = _NIBBLE[lines[:, :digits]]
            if nib.max() < 16:  # hex digits only (a 2-state simulator)
                value = (nib[:, 0::2] << 4) | nib[:, 1::2]
                return np.ascontiguousarray(value[:, ::-1]), np.zeros((n, lanes), dtype=bool)
            if (nib != 255).all():
                return _decode_hex(lines[:, :digits])
    words = np.zeros((n, lanes), dtype=np.uint8)
    unknown = np.ones((n, lanes), dtype=bool)
    seen = np.zeros(n, dtype=bool)
    tokens = text.split()
    marks = [k for k, t in enumerate(tokens) if t[:1] == b"@"]
    for start, stop in zip([-1, *marks], [*marks, len(tokens)], strict=True):
        run = [t.replace(b"_", b"") for t in tokens[start + 1:stop]]
        if start >= 0:
            try:
                base = int(tokens[start][1:], 16)
            except ValueError:
                raise EngineError(f"{path}: bad address token "
                                  f"{tokens[start].decode(errors='replace')!r}") from None
        else:
            base = lo
        if not run:
            continue
        ok = np.array([0 < len(t) <= digits for t in run])
        padded = np.frombuffer(b"".join(t.rjust(digits, b"0")[-digits:] for t in run),
                               dtype=np.uint8).reshape(-1, digits)
        ok &= (_NIBBLE[padded] != 255).all(axis=1)
        rows = np.arange(base - lo, base - lo + len(run))
        inside = (rows >= 0) & (rows < n)
        if strict and not ok.all():
            k = int(np.flatnonzero(~ok)[0])
            raise EngineError(f"{path}: bad word {run[k].decode(errors='replace')!r} at "
                              f"address {base + k:#x} (expected up to {digits} hex digits)")
        if strict and not inside.all():
            k = int(np.flatnonzero(~inside)[0])
            raise EngineError(f"{path}: word at address {base + k:#x} is outside the range "
                              f"{lo:#x}..{hi:#x}")
        value, bad = _decode_hex(np.where(ok[:, None], padded, ord("x")))
        keep = inside
        words[rows[keep]] = value[keep]
        unknown[rows[keep]] = bad[keep]
        seen[rows[keep]] = True
    if strict and not seen.all():
        missing = np.flatnonzero(~seen)
        raise EngineError(f"{path}: {missing.size} of {n} words of {lo:#x}..{hi:#x} are "
                          f"missing (first at {lo + int(missing[0]):#x})")
    return words, unknown


def _decode_hex(chars: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(bytes uint8 [n, d / 2] lane 0 first, unknown bool [n, d / 2]) of hex digits
    uint8 [n, d] (most significant first; x/z digits make their byte unknown, 0)."""
    nib = _NIBBLE[chars]
    bad = nib >= 16
    nib = np.where(bad, 0, nib)
    value = (nib[:, 0::2] << 4) | nib[:, 1::2]        # bytes, most significant first
    unknown = bad[:, 0::2] | bad[:, 1::2]
    return (np.ascontiguousarray(value[:, ::-1]).astype(np.uint8),
            np.ascontiguousarray(unknown[:, ::-1]))     # lane 0 = last byte


def read_act_dump(path: Path | str, lo: int, hi: int, lanes: int) -> np.ndarray:
    """Words uint8 [hi-lo+1, lanes] of a $writememh dump of lo..hi
    (read_act_dump_masked); EngineError when a byte is unknown (x/z)."""
    words, unknown = read_act_dump_masked(path, lo, hi, lanes)
    if unknown.any():
        rows = np.flatnonzero(unknown.any(axis=1))
        raise EngineError(f"{path}: {rows.size} words hold x/z bytes (first at address "
                          f"{lo + int(rows[0]):#x}); the engine left them unwritten")
    return words


def descriptor_words(steps: Sequence[Step]) -> np.ndarray:
    """uint32 [16 * len(steps)]: the descriptors, field order of DESCRIPTOR_FIELDS."""
    flat = [v for s in steps for v in s.fields]
    if any(len(s.fields) != 16 for s in steps):
        raise EngineError("a descriptor must have 16 fields")
    if any(not 0 <= v < 1 << 32 for v in flat):
        raise EngineError("a descriptor field does not fit in 32 bits")
    return np.array(flat, dtype=np.uint32)


def write_descriptors(path: Path | str, steps: Sequence[Step]) -> None:
    """The descriptor $readmemh file: one 32-bit field per line (8 hex digits), 16 lines
    per step; descriptor i starts at line 16*i (desc word 16*i)."""
    lines = "".join(f"{int(v):08x}\n" for v in descriptor_words(steps))
    atomic_write_bytes(path, lines.encode("ascii"))


def write_param_stream(path: Path | str, package: Any, layout: Layout) -> int:
    """The HDL stream player's file: one line per stream word (golden.image.build_stream
    and stream_words, headers included), the hex of the (word_bits+1)-bit value
    {tlast, word}: word_bits/4 + 1 digits. Returns the number of words."""
    cfg = layout.config
    if cfg.word_bits % 4:
        raise EngineError(f"word_bits {cfg.word_bits} is not a multiple of 4")
    words, tlast = stream_words(build_stream(package, layout), cfg)
    hexes = words_to_hex(words, cfg)  # [n, digits + 1]: digits and '\n'
    out = np.empty((hexes.shape[0], hexes.shape[1] + 1), dtype=np.uint8)
    out[:, 0] = np.where(tlast, ord("1"), ord("0"))
    out[:, 1:] = hexes
    atomic_write_bytes(path, out.tobytes())
    return int(tlast.size)
