"""Property tests: every golden op equals PyTorch's quantized kernel (fbgemm), code for code.

Random shapes and parameters come from hypothesis with `derandomize=True` (the same
examples on every run, no example database); small edge spaces are enumerated instead
(pool padding / ceil_mode combinations, rounding ties, saturation at 0 and 255). Every
scale is a power of two and weights stay in [-64, 64] (fbgemm's AVX2 pair saturation,
docs/arithmetic.md). A failure names the op, its parameters and how many codes differ.
The last tests check the checker: a deliberately wrong variant of an op (round half up,
the other pooling kernel, padding counted wrongly) must be caught by the same harness.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
import torch.ao.nn.intrinsic.quantized as nniq
import torch.ao.nn.quantized as nnq
import torch.nn.functional as F
from cosim.golden import infer
from cosim.quant import fx_quant
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st
from torch._prims_common import suggest_memory_format

F32 = np.float32
EXACT_F32 = 2**24


def _settings(examples: int, **extra: Any) -> settings:
    return settings(max_examples=examples, derandomize=True, database=None, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
                    **extra)


@pytest.fixture(autouse=True)
def _fbgemm():
    previous = torch.backends.quantized.engine
    fx_quant.use_engine()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning)
        yield
    torch.backends.quantized.engine = previous


# ------------------------------------------------------------------ harness


class Mismatch(AssertionError):
    """Golden and PyTorch codes differ (or only one of them refused the parameters)."""


def compare(op: str, got: np.ndarray, want: np.ndarray, params: dict[str, Any]) -> None:
    """Integer equality of golden `got` and PyTorch `want`; the message names the case."""
    if got.shape != want.shape:
        raise Mismatch(f"{op}: golden shape {got.shape}, PyTorch {want.shape}; {params}")
    if np.issubdtype(want.dtype, np.integer) and got.dtype != np.uint8:
        raise Mismatch(f"{op}: golden dtype {got.dtype}; {params}")
    differ = got.astype(np.int64) != want.astype(np.int64)
    if differ.any():
        where = tuple(int(i[0]) for i in np.nonzero(differ))
        raise Mismatch(f"{op}: {int(differ.sum())} of {differ.size} codes differ (first at "
                       f"{where}: golden {got[where]}, PyTorch {want[where]}); {params}")


def both(op: str, golden: Callable[[], np.ndarray], pytorch: Callable[[], np.ndarray],
         params: dict[str, Any]) -> None:
    """Run both sides; when PyTorch refuses the parameters the golden model must too (it
    also refuses what PyTorch turns into an empty tensor: a window larger than the input)."""
    try:
        want = pytorch()
    except RuntimeError:
        try:
            golden()
        except ValueError:
            return
        raise Mismatch(f"{op}: PyTorch refuses these parameters, golden does not; "
                       f"{params}") from None
    if want.size == 0:
        with pytest.raises(ValueError, match="too small"):
            golden()
        return
    compare(op, golden(), want, params)


def qtensor(codes: np.ndarray, scale: float, zero_point: int,
            channels_last: bool = False) -> torch.Tensor:
    q = torch._make_per_tensor_quantized_tensor(
        torch.from_numpy(np.ascontiguousarray(codes, dtype=np.uint8)), scale, zero_point)
    return q.contiguous(memory_format=torch.channels_last) if channels_last else q


def codes(q: torch.Tensor) -> np.ndarray:
    return q.int_repr().numpy()


po2_scales = st.integers(-10, 3).map(lambda e: 2.0**e)
zero_points = st.integers(0, 255)
pair = st.tuples


# ------------------------------------------------------------------ conv2d and linear

X_SCALE = 2.0**-5


def torch_conv(x, weight, bias, w_scales, y_scale, y_zp, x_zp, stride, padding, dilation,
               groups, relu, per_channel) -> np.ndarray:
    out_channels, _, kh, kw = weight.shape
    integers = torch.from_numpy(weight.astype(np.int8))
    if per_channel:
        qw = torch._make_per_channel_quantized_tensor(
            integers, torch.tensor(w_scales, dtype=torch.float64),
            torch.zeros(out_channels, dtype=torch.int64), 0)
    else:
        qw = torch._make_per_tensor_quantized_tensor(integers, float(w_scales[0]), 0)
    cls = nniq.ConvReLU2d if relu else nnq.Conv2d
    conv = cls(x.shape[1], out_channels, (kh, kw), stride=stride, padding=padding,
               dilation=dilation, groups=groups)
    snapped = torch.from_numpy((bias * X_SCALE * np.asarray(w_scales)).astype(np.float32))
    conv.set_weight_bias(qw, snapped)
    conv.scale, conv.zero_point = y_scale, y_zp
    return codes(conv(qtensor(x, X_SCALE, x_zp)))


def _shift_for(acc_scale: float, delta: int) -> int:
    """A shift that maps accumulators of typical size `acc_scale` to about 2**6 codes."""
    return int(np.clip(np.ceil(np.log2(max(acc_scale, 1.0) / 64.0)) + delta, -6, 24))


@st.composite
def conv_cases(draw, kinds=("regular", "depthwise", "grouped", "pointwise")) -> dict:
    kind = draw(st.sampled_from(kinds))
    if kind == "pointwise":
        groups, cin, cout, kernel = 1, draw(st.integers(1, 24)), draw(st.integers(1, 24)), (1, 1)
        padding, dilation = (0, 0), (1, 1)
    else:
        kernel = draw(pair(st.integers(1, 7), st.integers(1, 7)))
        padding = draw(pair(st.integers(0, 3), st.integers(0, 3)))
        dilation = draw(pair(st.integers(1, 3), st.integers(1, 3)))
        if kind == "regular":
            groups, cin, cout = 1, draw(st.integers(1, 12)), draw(st.integers(1, 12))
        elif kind == "depthwise":
            cin = groups = draw(st.integers(2, 12))
            cout = cin * draw(st.integers(1, 2))
        else:
            groups = draw(st.integers(2, 4))
            cin = groups * draw(st.integers(2, 4))
            cout = groups * draw(st.integers(1, 4))
    stride = draw(pair(st.integers(1, 3), st.integers(1, 3)))
    span = [(k - 1) * d + 1 for k, d in zip(kernel, dilation, strict=True)]
    h = draw(st.integers(max(1, span[0] - 2 * padding[0]), span[0] + 6))
    w = draw(st.integers(max(1, span[1] - 2 * padding[1]), span[1] + 6))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    w_lim = draw(st.sampled_from([1, 3, 16, 64]))
    x_zp = draw(zero_points)
    x_spread = draw(st.sampled_from([2, 16, 256]))
    x = np.clip(x_zp + rng.integers(-x_spread, x_spread, (draw(st.integers(1, 2)), cin, h, w)),
                0, 255)
    weight = rng.integers(-w_lim, w_lim + 1, (cout, cin // groups, *kernel))
    bias = rng.integers(-2000, 2001, cout) if draw(st.booleans()) else np.zeros(cout, np.int64)
    per_channel = draw(st.booleans())
    offsets = rng.integers(-2, 3, cout) if per_channel else np.zeros(cout, np.int64)
    typical = float(np.sqrt(cin // groups * kernel[0] * kernel[1]) * w_lim * x_spread / 2)
    n = draw(st.one_of(st.just(None), st.integers(-4, 20)))
    n = _shift_for(typical, draw(st.integers(-2, 2))) if n is None else n
    return {"kind": kind, "x": x, "weight": weight, "bias": bias, "x_zp": x_zp,
            "y_zp": draw(zero_points), "n": n, "offsets": offsets, "stride": stride,
            "padding": padding, "dilation": dilation, "groups": groups,
            "relu": draw(st.booleans()), "per_channel": per_channel, "seed": seed}


def conv_params(case: dict) -> dict:
    return {k: (v.shape if isinstance(v, np.ndarray) and v.ndim > 1 else v)
            for k, v in case.items()}


def check_conv(case: dict, **golden_kwargs: Any) -> None:
    # n_o = n + offset_o: w_scale_o = 2**-(7 + offset_o), y_scale = X_SCALE * 2**-7 * 2**n
    w_scales = 2.0 ** -(7.0 + case["offsets"])
    y_scale = X_SCALE * 2.0**-7 * 2.0 ** case["n"]
    shift = case["n"] + case["offsets"] if case["per_channel"] else case["n"]

    def pytorch() -> np.ndarray:
        return torch_conv(case["x"], case["weight"], case["bias"], w_scales, y_scale,
                          case["y_zp"], case["x_zp"], case["stride"], case["padding"],
                          case["dilation"], case["groups"], case["relu"], case["per_channel"])

    def golden() -> np.ndarray:
        return infer.conv2d(case["x"], case["weight"], case["bias"], x_zero_point=case["x_zp"],
                            y_zero_point=case["y_zp"], shift=shift, stride=case["stride"],
                            padding=case["padding"], dilation=case["dilation"],
                            groups=case["groups"], relu=case["relu"], **golden_kwargs)

    both("conv2d", golden, pytorch, conv_params(case))


@_settings(160)
@given(conv_cases())
def test_conv2d_equals_fbgemm(case):
    check_conv(case)


def accumulators(x: np.ndarray, weight: np.ndarray, x_zp: int, groups: int) -> np.ndarray:
    """Exact sum((x - zp) * w) of a stride-1, unpadded conv (int64), for the range checks."""
    n, c, h, w = x.shape
    o, cg, kh, kw = weight.shape
    xs = x.astype(np.int64) - x_zp
    out = np.zeros((n, o, h - kh + 1, w - kw + 1), np.int64)
    og = o // groups
    for oc in range(o):
        g = oc // og
        for i in range(kh):
            for j in range(kw):
                window = xs[:, g * cg:(g + 1) * cg, i: i + out.shape[2], j: j + out.shape[3]]
                out[:, oc] += np.einsum("nchw,c->nhw", window, weight[oc, :, i, j])
    return out


@_settings(12)
@given(st.integers(0, 2**32 - 1), st.sampled_from([(64, 7, 1), (64, 5, 1), (256, 3, 2)]),
       st.integers(18, 21), st.booleans())
def test_conv2d_accumulators_beyond_2_24(seed, shape, n, per_channel):
    """Cin * k * k large, weights at the +-64 extremes, inputs near 255: |acc| > 2**24, the
    float32 requantization step (and the float64 exact path) must match fbgemm."""
    cin, k, groups = shape
    rng = np.random.default_rng(seed)
    x = rng.integers(230, 256, (2, cin, k + 2, k + 2))
    weight = np.where(rng.random((8, cin // groups, k, k)) < 0.97, 64, -64)
    weight[1::2] *= -1  # negative accumulators too
    acc = accumulators(x, weight, 0, groups)
    assert np.abs(acc).max() > EXACT_F32  # the case this test is about
    offsets = rng.integers(-1, 2, 8) if per_channel else np.zeros(8, np.int64)
    case = {"kind": "regular" if groups == 1 else "grouped", "x": x, "weight": weight,
            "bias": rng.integers(-32768, 32768, 8), "x_zp": 0, "y_zp": int(rng.integers(0, 256)),
            "n": n, "offsets": offsets, "stride": (1, 1), "padding": (0, 0), "dilation": (1, 1),
            "groups": groups, "relu": False, "per_channel": per_channel, "seed": seed}
    check_conv(case)


def crafted_linear(targets: np.ndarray, bias: int) -> tuple[np.ndarray, np.ndarray]:
    """x [P, K] and weight [2, K] (64, ..., 64, 1 and its negation): acc + bias = targets."""
    rest = targets - bias
    coarse, fine = np.divmod(rest, 64)
    k = int(coarse.max()) // 255 + 2
    x = np.zeros((len(targets), k + 1), np.int64)
    for p, c in enumerate(coarse):
        full, part = divmod(int(c), 255)
        x[p, :full] = 255
        x[p, full] = part
    x[:, k] = fine
    weight = np.full((2, k + 1), 64, np.int64)
    weight[:, k] = 1
    weight[1] *= -1
    return x, weight


def torch_linear(x, weight, bias, w_scale, y_scale, y_zp, x_zp, relu) -> np.ndarray:
    layer = (nniq.LinearReLU if relu else nnq.Linear)(weight.shape[1], weight.shape[0])
    qw = torch._make_per_tensor_quantized_tensor(torch.from_numpy(weight.astype(np.int8)),
                                                 w_scale, 0)
    layer.set_weight_bias(qw, torch.from_numpy((bias * X_SCALE * w_scale).astype(np.float32)))
    layer.scale, layer.zero_point = y_scale, y_zp
    return codes(layer(qtensor(x, X_SCALE, x_zp)))


@st.composite
def linear_cases(draw) -> dict:
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    k, o = draw(st.integers(1, 300)), draw(st.integers(1, 40))
    w_lim = draw(st.sampled_from([1, 8, 64]))
    x_zp = draw(zero_points)
    x = rng.integers(0, 256, (draw(st.integers(1, 5)), k))
    n = draw(st.one_of(st.just(None), st.integers(-4, 20)))
    n = _shift_for(float(np.sqrt(k) * w_lim * 128), draw(st.integers(-2, 2))) if n is None else n
    return {"x": x, "weight": rng.integers(-w_lim, w_lim + 1, (o, k)),
            "bias": rng.integers(-32768, 32768, o), "x_zp": x_zp, "y_zp": draw(zero_points),
            "n": n, "relu": draw(st.booleans())}


@_settings(70)
@given(linear_cases())
def test_linear_equals_fbgemm(case):
    w_scale = 2.0**-7
    y_scale = X_SCALE * w_scale * 2.0 ** case["n"]
    both("linear",
         lambda: infer.linear(case["x"], case["weight"], case["bias"], x_zero_point=case["x_zp"],
                              y_zero_point=case["y_zp"], shift=case["n"], relu=case["relu"]),
         lambda: torch_linear(case["x"], case["weight"], case["bias"], w_scale, y_scale,
                              case["y_zp"], case["x_zp"], case["relu"]),
         {k: getattr(v, "shape", v) for k, v in case.items()})


@_settings(12)
@given(st.integers(18, 21), st.integers(-32768, 32767), st.integers(0, 2**32 - 1))
def test_linear_near_ties_beyond_2_24(n, bias, seed):
    """Accumulators just past a tie of the shift, between 2**24 and 2**27: the float32
    step rounds some of them the other way; golden must follow fbgemm exactly."""
    rng = np.random.default_rng(seed)
    j = rng.integers(EXACT_F32 >> n, (1 << 27) >> n, 40)
    targets = np.repeat((j << n) + (1 << (n - 1)), 9) + np.tile(np.arange(-4, 5), 40)
    x, weight = crafted_linear(targets, bias)
    biases = np.array([bias, -bias])
    assert np.abs(x @ weight.T + biases).max() > EXACT_F32
    both("linear",
         lambda: infer.linear(x, weight, biases, x_zero_point=0, y_zero_point=0, shift=n),
         lambda: torch_linear(x, weight, biases, 2.0**-7, X_SCALE * 2.0**-7 * 2.0**n, 0, 0, False),
         {"n": n, "bias": bias, "seed": seed, "k": x.shape[1]})


# ------------------------------------------------------------------ add, cat


@st.composite
def add_cases(draw) -> dict:
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    shape = draw(st.sampled_from([(2, 5, 3, 4), (1, 33, 2, 2), (3, 17), (1, 1, 1, 1)]))
    return {"a": rng.integers(0, 256, shape), "b": rng.integers(0, 256, shape),
            "scales": [draw(po2_scales) for _ in range(3)],
            "zps": [draw(zero_points) for _ in range(3)], "relu": draw(st.booleans())}


@_settings(80)
@given(add_cases())
def test_add_equals_quantized_add(case):
    (sa, sb, sy), (za, zb, zy) = case["scales"], case["zps"]
    op = torch.ops.quantized.add_relu if case["relu"] else torch.ops.quantized.add
    both("add",
         lambda: infer.add(case["a"], case["b"], scales=case["scales"], zero_points=case["zps"],
                           relu=case["relu"]),
         lambda: codes(op(qtensor(case["a"], sa, za), qtensor(case["b"], sb, zb), sy, zy)),
         {"shape": case["a"].shape, "scales": case["scales"], "zps": case["zps"],
          "relu": case["relu"]})


@st.composite
def cat_cases(draw) -> dict:
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    count = draw(st.integers(1, 4))
    channels = [draw(st.sampled_from([1, 2, 3, 7, 8, 9, 31, 32, 33, 40])) for _ in range(count)]
    n, h, w = draw(st.integers(1, 2)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
    same = draw(st.booleans())
    first = (draw(po2_scales), draw(zero_points))
    qparams = [first if same or draw(st.booleans()) else (draw(po2_scales), draw(zero_points))
               for _ in range(count)]
    qparams[0] = first
    explicit = draw(st.booleans()) and not same
    out = (draw(po2_scales), draw(zero_points)) if explicit else first
    return {"xs": [rng.integers(0, 256, (n, c, h, w)) for c in channels], "qparams": qparams,
            "out": out, "explicit": explicit,
            "formats": [draw(st.booleans()) for _ in range(count)]}


def cat_params(case: dict) -> dict:
    return {"shapes": [x.shape for x in case["xs"]], "qparams": case["qparams"],
            "out": case["out"], "channels_last": case["formats"]}


def check_cat(case: dict, rounding: str = "half_even") -> None:
    def pytorch() -> np.ndarray:
        qs = [qtensor(x, s, z, cl) for x, (s, z), cl in
              zip(case["xs"], case["qparams"], case["formats"], strict=True)]
        if case["explicit"]:
            return codes(torch.ops.quantized.cat(qs, 1, *case["out"]))
        return codes(torch.cat(qs, 1))

    both("cat",
         lambda: infer.cat(case["xs"], scales=[s for s, _ in case["qparams"]],
                           zero_points=[z for _, z in case["qparams"]],
                           out_scale=case["out"][0], out_zero_point=case["out"][1],
                           rounding=rounding),
         pytorch, cat_params(case))


@_settings(90)
@given(cat_cases())
def test_cat_equals_quantized_cat(case):
    check_cat(case)


# ------------------------------------------------------------------ pools


@st.composite
def pool_cases(draw, avg: bool) -> dict:
    kernel = draw(pair(st.integers(1, 5), st.integers(1, 5)))
    stride = draw(st.one_of(st.none(), pair(st.integers(1, 3), st.integers(1, 3))))
    dilation = (1, 1) if avg else draw(pair(st.integers(1, 2), st.integers(1, 2)))
    padding = tuple(draw(st.integers(0, k // 2 + (1 if draw(st.integers(0, 9)) == 0 else 0)))
                    for k in kernel)  # now and then one more than PyTorch allows
    h = draw(st.integers(1, 11))
    w = draw(st.integers(1, 11))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    channels = draw(st.sampled_from([1, 2, 3, 8, 9, 17, 33]))
    x = rng.integers(0, 256, (draw(st.integers(1, 2)), channels, h, w))
    if draw(st.booleans()):
        x = x // 2 * 2  # even codes: sums that tie under a divisor of 2 or 4
    case = {"x": x, "kernel": kernel, "stride": stride, "padding": padding,
            "ceil_mode": draw(st.booleans()), "channels_last": draw(st.booleans()),
            "zp": draw(zero_points)}
    if avg:
        case["count_include_pad"] = draw(st.booleans())
        case["divisor_override"] = draw(st.one_of(st.none(), st.integers(1, 30)))
    else:
        case["dilation"] = dilation
    return case


def pool_params(case: dict) -> dict:
    return {k: (v.shape if isinstance(v, np.ndarray) else v) for k, v in case.items()}


def pool_input(case: dict, scale: float) -> tuple[torch.Tensor, bool]:
    """The quantized input and whether PyTorch stores it channels-last (its own rule:
    an [N, C, 1, 1] tensor asked to be channels-last keeps NCHW strides)."""
    q = qtensor(case["x"], scale, case["zp"], case["channels_last"])
    return q, suggest_memory_format(q) == torch.channels_last


def check_max_pool(case: dict) -> None:
    args = (case["kernel"], case["stride"], case["padding"], case["dilation"], case["ceil_mode"])
    q, stored = pool_input(case, 0.5)
    both("max_pool2d", lambda: infer.max_pool2d(case["x"], *args, channels_last=stored),
         lambda: codes(F.max_pool2d(q, args[0], args[1] or args[0], *args[2:])),
         pool_params(case))


def check_avg_pool(case: dict, golden: Callable[..., np.ndarray] = infer.avg_pool2d,
                   flip_layout: bool = False) -> None:
    args = (case["kernel"], case["stride"], case["padding"], case["ceil_mode"],
            case["count_include_pad"], case["divisor_override"])
    q, stored = pool_input(case, 0.25)
    both("avg_pool2d",
         lambda: golden(case["x"], *args, zero_point=case["zp"],
                        channels_last=stored != flip_layout),
         lambda: codes(F.avg_pool2d(q, args[0], args[1] or args[0], *args[2:])),
         pool_params(case))


@_settings(110)
@given(pool_cases(avg=False))
def test_max_pool2d_equals_quantized_max_pool(case):
    check_max_pool(case)


@_settings(160)
@given(pool_cases(avg=True))
def test_avg_pool2d_equals_quantized_avg_pool(case):
    check_avg_pool(case)


@st.composite
def adaptive_cases(draw) -> dict:
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    h, w = draw(st.integers(1, 15)), draw(st.integers(1, 15))
    x = rng.integers(0, 256, (draw(st.integers(1, 2)), draw(st.sampled_from([1, 3, 8, 9, 40])),
                              h, w))
    if draw(st.booleans()):
        x = x // 2 * 2
    return {"x": x, "output_size": (draw(st.integers(1, h + 2)), draw(st.integers(1, w + 2))),
            "zp": draw(zero_points), "channels_last": draw(st.booleans())}


def check_adaptive(case: dict) -> None:
    q, stored = pool_input(case, 0.25)
    both("adaptive_avg_pool2d",
         lambda: infer.adaptive_avg_pool2d(case["x"], case["output_size"], case["zp"],
                                           channels_last=stored),
         lambda: codes(F.adaptive_avg_pool2d(q, case["output_size"])), pool_params(case))


@_settings(110)
@given(adaptive_cases())
def test_adaptive_avg_pool2d_equals_quantized(case):
    check_adaptive(case)


# ------------------------------------------------------------------ relu, relu6, flatten

RELU6_TORCH = {
    "nn.ReLU6": lambda q: torch.nn.ReLU6()(q),
    "F.relu6": F.relu6,
    "F.hardtanh(0, 6)": lambda q: F.hardtanh(q, 0.0, 6.0),
}


@_settings(60)
@given(st.integers(0, 2**32 - 1), st.integers(-10, 5), zero_points, st.booleans(),
       st.sampled_from(sorted(RELU6_TORCH)), st.sampled_from([(2, 3, 4, 5), (3, 40), (1, 9, 1, 1)]))
def test_relu_and_relu6_equal_pytorch(seed, exponent, zp, channels_last, variant, shape):
    x = np.random.default_rng(seed).integers(0, 256, shape)
    scale = 2.0**exponent
    cl = channels_last and len(shape) == 4
    params = {"shape": shape, "scale": scale, "zp": zp, "channels_last": cl, "variant": variant}
    both("relu6", lambda: infer.relu6(x, scale, zp),
         lambda: codes(RELU6_TORCH[variant](qtensor(x, scale, zp, cl))), params)
    both("relu", lambda: infer.relu(x, zp),
         lambda: codes(F.relu(qtensor(x, scale, zp, cl))), params)


@_settings(30)
@given(st.integers(0, 2**32 - 1), st.integers(1, 40), st.integers(1, 5), st.integers(1, 5),
       st.booleans())
def test_flatten_equals_torch_flatten(seed, c, h, w, channels_last):
    x = np.random.default_rng(seed).integers(0, 256, (2, c, h, w))
    q = qtensor(x, 0.5, 3, channels_last)
    params = {"shape": x.shape, "channels_last": channels_last}
    both("flatten", lambda: infer.flatten(x), lambda: codes(torch.flatten(q, 1)), params)
    both("flatten", lambda: infer.flatten(x), lambda: codes(q.reshape(q.size(0), -1)), params)


# ------------------------------------------------------------------ enumerated edge cases


def test_every_pool_padding_and_ceil_mode_combination():
    """kernel 1..4, stride 1..3, every legal padding, ceil_mode, count_include_pad, both
    memory formats, input sizes around the kernel: every combination, not a sample."""
    rng = np.random.default_rng(7)
    checked = 0
    combos = [(k, s, p, ceil, size) for k, s in itertools.product(range(1, 5), range(1, 4))
              for p, ceil in itertools.product(range(k // 2 + 1), (False, True))
              for size in range(max(1, k - 2 * p), k + 4)]
    for k, s, p, ceil, size in combos:
        x = rng.integers(0, 128, (1, 9, size, size + 1)) * 2  # even: ties at d = 2, 4
        for cl in (False, True):
            check_max_pool({"x": x, "kernel": (k, k), "stride": (s, s), "padding": (p, p),
                            "dilation": (1, 1), "ceil_mode": ceil, "channels_last": cl,
                            "zp": 3})
            for cip, zp in itertools.product((False, True), (0, 1, 128, 255)):
                check_avg_pool({"x": x, "kernel": (k, k), "stride": (s, s), "padding": (p, p),
                                "ceil_mode": ceil, "count_include_pad": cip,
                                "divisor_override": None, "channels_last": cl, "zp": zp})
                checked += 1
    assert checked > 1500


def test_avg_pool_rounding_ties_both_kernels():
    """Every sum 0..4*255 over a 2x2 window (acc / 4 ties on every odd multiple of 2), with
    odd and even zero points: the two PyTorch kernels differ exactly where expected."""
    total = np.arange(4 * 256 - 3)
    x = np.stack([np.minimum(total - 255 * i, 255).clip(0) for i in range(4)], axis=-1)
    x = x.reshape(1, -1, 2, 2)  # [1, sums, 2, 2]
    assert (x.sum(axis=(2, 3)) == total).all()
    for zp, cl in itertools.product((0, 1, 2, 127, 128, 255), (False, True)):
        case = {"x": x, "kernel": (2, 2), "stride": None, "padding": (0, 0), "ceil_mode": False,
                "count_include_pad": True, "divisor_override": None, "channels_last": cl,
                "zp": zp}
        check_avg_pool(case)
        if zp % 2:  # odd zp: rne(p) + zp and rne(p + zp) differ on ties
            with pytest.raises(Mismatch):
                check_avg_pool(case, flip_layout=True)


def test_avg_pool_saturates_at_0_and_255():
    """divisor_override 1..3 drives averages past both ends of the code range."""
    x = np.array([[[[0, 0], [0, 0]], [[255, 255], [255, 255]], [[0, 255], [17, 200]]]])
    for d, zp, cl in itertools.product((1, 2, 3), (0, 100, 255), (False, True)):
        case = {"x": x, "kernel": (2, 2), "stride": None, "padding": (0, 0), "ceil_mode": False,
                "count_include_pad": True, "divisor_override": d, "channels_last": cl, "zp": zp}
        check_avg_pool(case)
    got = infer.avg_pool2d(x, 2, divisor_override=1, zero_point=100)
    assert got.min() == 0 and got.max() == 255


def test_relu6_bound_for_every_scale_and_zero_point():
    x = np.arange(256).reshape(1, 1, 16, 16)
    for exponent, zp in itertools.product(range(-12, 7), range(256)):
        q = qtensor(x, 2.0**exponent, zp)
        compare("relu6", infer.relu6(x, 2.0**exponent, zp), codes(F.relu6(q)),
                {"scale": 2.0**exponent, "zp": zp})


def test_cat_requantization_ties_and_saturation():
    """Every code under halving (ties on odd differences), doubling and x16 (saturation at 0
    and 255), odd and even zero points, channel counts off the 8/32 vector widths."""
    x = np.arange(256).reshape(1, 32, 8, 1)
    for (s_in, s_out), z_in, z_out in itertools.product(
            [(0.25, 0.5), (0.5, 0.25), (2.0**-6, 2.0**-2), (2.0**-2, 2.0**-6)],
            (0, 1, 128, 255), (0, 3, 128, 255)):
        for c in (1, 7, 8, 9, 31, 32):
            part = x[:, :c]
            for cl in (False, True):
                case = {"xs": [part, part], "qparams": [(s_out, z_out), (s_in, z_in)],
                        "out": (s_out, z_out), "explicit": False, "formats": [cl, cl]}
                check_cat(case)


def test_conv2d_saturates_at_0_and_255():
    rng = np.random.default_rng(5)
    x = rng.integers(0, 256, (1, 4, 6, 6))
    weight = rng.integers(-64, 65, (6, 4, 3, 3))
    for bias, relu in itertools.product(([32767] * 3 + [-32768] * 3, [0] * 6), (False, True)):
        case = {"kind": "regular", "x": x, "weight": weight, "bias": np.array(bias), "x_zp": 0,
                "y_zp": 128, "n": 2, "offsets": np.zeros(6, np.int64), "stride": (1, 1),
                "padding": (1, 1), "dilation": (1, 1), "groups": 1, "relu": relu,
                "per_channel": False, "seed": 5}
        check_conv(case)
    got = infer.conv2d(x, weight, np.array([32767] * 3 + [-32768] * 3), x_zero_point=0,
                       y_zero_point=128, shift=2, padding=1)
    assert (got[0, :3] == 255).any() and (got[0, 3:] == 0).any()


# ------------------------------------------------------------------ the checker is checked

NO_SHRINK = settings(max_examples=300, derandomize=True, database=None, deadline=None,
                     phases=[Phase.generate],
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def caught(check: Callable[[], None]) -> bool:
    try:
        check()
    except Mismatch:
        return True
    return False


def test_harness_catches_half_up_rounding_in_cat():
    found = find(cat_cases(), lambda case: caught(lambda: check_cat(case, rounding="half_up")),
                 settings=NO_SHRINK)
    assert found["qparams"] != [found["out"]] * len(found["xs"])


def test_harness_catches_the_other_avg_pool_kernel():
    find(pool_cases(avg=True),
         lambda case: caught(lambda: check_avg_pool(case, flip_layout=True)),
         settings=NO_SHRINK)


def test_harness_catches_padding_counted_wrongly():
    def padding_counted_in(x, kernel, stride, padding, ceil_mode, count_include_pad,
                           divisor_override, **kwargs):
        return infer.avg_pool2d(x, kernel, stride, padding, ceil_mode, not count_include_pad,
                                divisor_override, **kwargs)

    found = find(pool_cases(avg=True),
                 lambda case: caught(lambda: check_avg_pool(case, golden=padding_counted_in)),
                 settings=NO_SHRINK)
    assert max(found["padding"]) > 0 or found["ceil_mode"]


def test_harness_catches_the_exact_integer_step_beyond_2_24():
    """float32_step=False (exact integers) differs from fbgemm beyond 2**24."""
    n, bias = 19, 321
    j = np.arange(EXACT_F32 >> n, (EXACT_F32 >> n) + 40)
    targets = np.repeat((j << n) + (1 << (n - 1)), 9) + np.tile(np.arange(-4, 5), 40)
    x, weight = crafted_linear(targets, bias)
    biases = np.array([bias, -bias])
    with pytest.raises(Mismatch, match="codes differ"):
        both("linear",
             lambda: infer.linear(x, weight, biases, x_zero_point=0, y_zero_point=0, shift=n,
                                  float32_step=False),
             lambda: torch_linear(x, weight, biases, 2.0**-7, X_SCALE * 2.0**-7 * 2.0**n, 0, 0,
                                  False), {"n": n})


def test_nchw_1x1_map_pooled_to_more_positions_follows_pytorchs_quirk():
    """An NCHW-stored [N, C, 1, 1] map counts as channels-last, so PyTorch runs its NHWC
    kernels but writes their NHWC-ordered output into an NCHW tensor: the golden model
    reproduces the reinterpretation (every op, both formats)."""
    x = np.arange(2 * 5).reshape(2, 5, 1, 1) * 20
    base = {"x": x, "zp": 7, "channels_last": False, "stride": (1, 1), "padding": (1, 1),
            "ceil_mode": False}
    check_max_pool({**base, "kernel": (2, 2), "dilation": (1, 1)})
    check_avg_pool({**base, "kernel": (2, 2), "count_include_pad": False,
                    "divisor_override": None})
    check_adaptive({"x": x, "zp": 7, "channels_last": False, "output_size": (2, 3)})
    got = infer.adaptive_avg_pool2d(x, (2, 3), 7, channels_last=False)
    assert not (got == x).all()  # not the plain broadcast of each channel
