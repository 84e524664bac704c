"""golden.infer against PyTorch's quantized operators (fbgemm), edge case by edge case.

Weights stay in [-64, 64] (the fbgemm saturation guard), every scale is a power of
two; each test builds the PyTorch op from the same integers and compares codes.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.ao.nn.intrinsic.quantized as nniq
import torch.ao.nn.quantized as nnq
from cosim.golden import infer
from cosim.golden.infer import _Conv, _Linear, _Weights
from hypothesis import given, settings
from hypothesis import strategies as st

X_SCALE, W_SCALE = 2.0**-5, 2.0**-7


@pytest.fixture(autouse=True)
def _fbgemm():
    previous = torch.backends.quantized.engine
    torch.backends.quantized.engine = "fbgemm"
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning)
        yield
    torch.backends.quantized.engine = previous


def qtensor(codes: np.ndarray, scale: float, zero_point: int) -> torch.Tensor:
    return torch._make_per_tensor_quantized_tensor(
        torch.from_numpy(np.ascontiguousarray(codes, dtype=np.uint8)), scale, zero_point)


def qweight(weight: np.ndarray, scales: float | list[float]) -> torch.Tensor:
    integers = torch.from_numpy(np.asarray(weight, dtype=np.int8))
    if isinstance(scales, float):
        return torch._make_per_tensor_quantized_tensor(integers, scales, 0)
    return torch._make_per_channel_quantized_tensor(
        integers, torch.tensor(scales, dtype=torch.float64),
        torch.zeros(len(scales), dtype=torch.int64), 0)


def snapped_bias(bias: np.ndarray, x_scale: float, w_scales: np.ndarray) -> torch.Tensor:
    """The float bias PyTorch must carry to equal bias_int16 (exact: int16 * po2)."""
    return torch.from_numpy((bias * x_scale * w_scales).astype(np.float32))


def torch_conv(x, weight, bias, *, x_zp, y_zp, shift, stride=1, padding=0, dilation=1,
               groups=1, relu=False, x_scale=X_SCALE, w_scale=W_SCALE) -> np.ndarray:
    """uint8 output of nnq.Conv2d (or ConvReLU2d) with y_scale = x_scale * w_scale * 2**n."""
    out_channels, _, kh, kw = weight.shape
    per_channel = np.ndim(shift) > 0
    shifts = np.broadcast_to(np.asarray(shift), (out_channels,))
    w_scales = np.full(out_channels, w_scale) if not per_channel else \
        w_scale * 2.0 ** (shifts[0] - shifts)
    y_scale = x_scale * w_scale * 2.0 ** int(shifts[0])
    cls = nniq.ConvReLU2d if relu else nnq.Conv2d
    conv = cls(x.shape[1], out_channels, (kh, kw), stride=stride, padding=padding,
               dilation=dilation, groups=groups)
    conv.set_weight_bias(qweight(weight, list(w_scales) if per_channel else w_scale),
                         snapped_bias(bias, x_scale, w_scales))
    conv.scale, conv.zero_point = y_scale, y_zp
    return conv(qtensor(x, x_scale, x_zp)).int_repr().numpy()


def torch_linear(x, weight, bias, *, x_zp, y_zp, shift, relu=False) -> np.ndarray:
    cls = nniq.LinearReLU if relu else nnq.Linear
    layer = cls(weight.shape[1], weight.shape[0])
    layer.set_weight_bias(qweight(weight, W_SCALE),
                          snapped_bias(bias, X_SCALE, np.full(weight.shape[0], W_SCALE)))
    layer.scale, layer.zero_point = X_SCALE * W_SCALE * 2.0**shift, y_zp
    return layer(qtensor(x, X_SCALE, x_zp)).int_repr().numpy()


def golden_conv(x, weight, bias, **kwargs) -> np.ndarray:
    for key in ("x_scale", "w_scale"):
        kwargs.pop(key, None)
    return infer.conv2d(x, weight, bias, x_zero_point=kwargs.pop("x_zp"),
                        y_zero_point=kwargs.pop("y_zp"), **kwargs)


def random_case(rng, n, c, h, w, o, k, groups=1, x_hi=256, w_lim=64):
    x = rng.integers(0, x_hi, (n, c, h, w))
    weight = rng.integers(-w_lim, w_lim + 1, (o, c // groups, k, k))
    bias = rng.integers(-3000, 3000, o)
    return x, weight, bias


def assert_conv_matches(x, weight, bias, **kwargs):
    expected = torch_conv(x, weight, bias, **kwargs)
    got = golden_conv(x, weight, bias, **kwargs)
    assert got.dtype == np.uint8 and got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)
    return got


# --- input quantize -------------------------------------------------------------------------


@pytest.mark.parametrize("scale,zero_point", [(2.0**-7, 128), (2.0**-5, 0), (2.0**-6, 255),
                                              (0.1, 3), (0.37, 200)])
def test_quantize_matches_quantize_per_tensor(scale, zero_point):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((2, 3, 17, 19)) * 3).astype(np.float32)
    x.flat[: x.size // 3] = ((rng.integers(-300, 300, x.size // 3) + 0.5) * scale)  # ties
    x.flat[:6] = [1e30, -1e30, 3e9, -3e9, 0.0, -0.0]  # int32 clip and wrap-around
    expected = torch.quantize_per_tensor(torch.from_numpy(x), scale, zero_point,
                                         torch.quint8).int_repr().numpy()
    np.testing.assert_array_equal(infer.quantize(x, scale, zero_point), expected)


def test_quantize_rejects_non_finite_images():
    x = np.zeros((1, 3, 4, 4), np.float32)
    x[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        infer.quantize(x, 2.0**-7, 128)


# --- requantization: shifts, bias, rounding -------------------------------------------------


@pytest.mark.parametrize("shift", [0, -1, -3, 1, 9])
def test_conv_shift_zero_negative_and_positive(shift):
    rng = np.random.default_rng(shift + 10)
    x, weight, bias = random_case(rng, 2, 5, 6, 7, 6, 3, x_hi=8, w_lim=3)
    bias = rng.integers(-40, 40, 6)
    got = assert_conv_matches(x, weight, bias, x_zp=3, y_zp=120, shift=shift, padding=1)
    assert 0.05 < np.mean((got > 0) & (got < 255))  # not all clamped


def test_left_shift_overflow_gives_the_lowest_code_like_fbgemm():
    # acc * 2**8 >= 2**31: fbgemm's float -> int32 conversion returns INT32_MIN.
    x = np.full((1, 600, 1, 4), 255)
    x[0, :, 0, 1], x[0, :, 0, 2] = 10, 1
    weight = np.full((8, 600, 1, 1), 64)
    weight[1::2] *= -1
    bias = np.zeros(8, np.int64)
    for relu in (False, True):
        got = assert_conv_matches(x, weight, bias, x_zp=0, y_zp=100, shift=-8, relu=relu)
        assert got[0, 0, 0, 0] == (100 if relu else 0) and got[0, 0, 0, 1] == 255
    exact = golden_conv(x, weight, bias, x_zp=0, y_zp=100, shift=-8, float32_step=False)
    assert exact[0, 0, 0, 0] == 255  # an integer datapath saturates instead


def test_saturated_int16_bias():
    # float biases beyond the int16 range at x_scale * w_scale = 2**-12 saturate at export
    # (like the exporter: saturate(round_half_even(bias / (x_scale * w_scale))))
    rng = np.random.default_rng(3)
    x, weight, _ = random_case(rng, 1, 4, 5, 5, 8, 1, x_hi=30, w_lim=20)
    floats = np.array([9.0, -9.0, 8.0, -8.0001, 7.8125, -7.8125, 2.5 / 4096, -2.5 / 4096])
    bias = np.clip(np.rint(floats / (X_SCALE * W_SCALE)), -32768, 32767).astype(np.int64)
    assert bias.tolist() == [32767, -32768, 32767, -32768, 32000, -32000, 2, -2]
    for shift in (8, 10):
        assert_conv_matches(x, weight, bias, x_zp=0, y_zp=128, shift=shift)


def test_requantize_ties_half_even_versus_half_up():
    # (acc + bias) / 2**4 = k + 0.5 exactly
    acc = np.array([[8, 24, 40, -8, -24, 7, 9, 0]])
    bias = np.zeros(8, np.int64)
    even = infer.requantize(acc, bias, 4, 100).astype(int) - 100
    up = infer.requantize(acc, bias, 4, 100, rounding="half_up").astype(int) - 100
    assert even.tolist() == [[0, 2, 2, 0, -2, 0, 1, 0]]
    assert up.tolist() == [[1, 2, 3, 0, -1, 0, 1, 0]]


@settings(max_examples=200, deadline=None)
@given(acc=st.integers(-(2**24), 2**24), bias=st.integers(-32768, 32767),
       shift=st.integers(-6, 20), zp=st.integers(0, 255), relu=st.booleans())
def test_requantize_equals_integer_arithmetic(acc, bias, shift, zp, relu):
    total = acc + bias
    lo = zp if relu else 0
    if shift > 0:
        up = (total + (1 << (shift - 1))) >> shift
        quotient, remainder = divmod(total, 1 << shift)
        half = 1 << (shift - 1)
        even = quotient + (remainder > half or (remainder == half and quotient % 2 == 1))
    else:
        up = even = total << -shift
    for rounding, value in (("half_even", even), ("half_up", up)):
        got = infer.requantize(np.array([acc]), np.array([bias]), shift, zp, relu=relu,
                               rounding=rounding, float32_step=False)
        assert int(got[0]) == min(max(value + zp, lo), 255)


def test_half_up_conv_differs_only_on_ties():
    rng = np.random.default_rng(5)
    x, weight, bias = random_case(rng, 2, 8, 9, 9, 16, 3)
    kwargs = {"x_zp": 7, "y_zp": 90, "shift": 9, "padding": 1}
    even = golden_conv(x, weight, bias, **kwargs).astype(int)
    up = golden_conv(x, weight, bias, rounding="half_up", **kwargs).astype(int)
    np.testing.assert_array_equal(even, torch_conv(x, weight, bias, **kwargs))
    xp = np.pad(x - 7, ((0, 0), (0, 0), (1, 1), (1, 1)))
    acc = np.einsum("nchwkl,ockl->nohw",
                    np.lib.stride_tricks.sliding_window_view(xp, (3, 3), axis=(2, 3)), weight)
    total = acc + bias[None, :, None, None]
    np.testing.assert_array_equal(up, np.clip(((total + 256) >> 9) + 90, 0, 255))
    ties = total % 512 == 256
    differ = even != up
    assert differ.any() and not (differ & ~ties).any()
    assert np.all(up[differ] - even[differ] == 1)  # half-up rounds ties toward +inf


# --- accumulators beyond 2**24: the float32 step ----------------------------------------------


def crafted_accumulators(targets: list[int], bias: int) -> tuple[np.ndarray, np.ndarray]:
    """x [1, C, 1, P] and w [2, C, 1, 1] with acc + bias == targets (channel 0) / -targets."""
    remainders = [t - bias for t in targets]
    blocks = [max(r // 16320 - 1, 0) for r in remainders]
    full = max(blocks)
    x = np.zeros((1, full + 3, 1, len(targets)), np.int64)
    for p, (r, k) in enumerate(zip(remainders, blocks, strict=True)):
        x[0, :k, 0, p] = 255
        rest = r - k * 16320
        coarse, fine = divmod(rest, 64)
        x[0, full, 0, p] = min(coarse, 255)
        x[0, full + 1, 0, p] = coarse - min(coarse, 255)
        x[0, full + 2, 0, p] = fine
    weight = np.zeros((2, full + 3, 1, 1), np.int64)
    weight[0, : full + 2] = 64
    weight[0, full + 2] = 1
    weight[1] = -weight[0]
    return x, weight


@pytest.mark.parametrize("shift,bias", [(18, 0), (20, 1234), (22, -777)])
def test_accumulators_beyond_2_24_need_the_float32_step(shift, bias):
    ties = [int((j + 0.5) * 2**shift) + d for j in range(2**24 // 2**shift, 2**24 // 2**shift + 60)
            for d in range(-4, 5)]
    x, weight = crafted_accumulators(ties, bias)
    biases = np.array([bias, -bias])
    kwargs = {"x_zp": 0, "y_zp": 0, "shift": shift}
    expected = assert_conv_matches(x, weight, biases, **kwargs)
    assert np.mean((expected > 0) & (expected < 255)) > 0.3
    exact = golden_conv(x, weight, biases, float32_step=False, **kwargs)
    assert np.count_nonzero(exact != expected) > 10  # the exact integer result differs
    layer = _Conv("c", ["x"], _Weights(weight, biases, np.full(2, shift), 0, 0, False), 1, 0, 1,
                  1, "half_even", True)
    assert not layer.fast  # the float64 path with the explicit float32 step


def test_float32_step_never_matters_below_shift_17():
    # |acc + bias| / 2**16 <= 255 needs |acc + bias| < 2**24: exact in float32.
    values = np.arange(2**24 - 4000, 2**24 + 4000)[:, None]
    for shift in (14, 16):
        fp32 = infer.requantize(values, [0], shift, 0)
        exact = infer.requantize(values, [0], shift, 0, float32_step=False)
        np.testing.assert_array_equal(fp32, exact)


# --- shapes, zero points, kinds ----------------------------------------------------------------


@pytest.mark.parametrize("out_channels", [1, 3, 7, 13, 33])
@pytest.mark.parametrize("in_channels,kernel", [(1, 1), (5, 1), (17, 1), (3, 3), (6, 3)])
def test_partial_channel_counts(out_channels, in_channels, kernel):
    rng = np.random.default_rng(out_channels * 100 + in_channels)
    x, weight, bias = random_case(rng, 2, in_channels, 7, 6, out_channels, kernel)
    assert_conv_matches(x, weight, bias, x_zp=11, y_zp=60, shift=8, padding=kernel // 2)


@pytest.mark.parametrize("x_zp,y_zp,relu", [(0, 0, True), (37, 1, False), (255, 99, True),
                                            (128, 255, False), (200, 77, True)])
def test_zero_points(x_zp, y_zp, relu):
    rng = np.random.default_rng(x_zp + y_zp)
    x, weight, bias = random_case(rng, 2, 8, 8, 8, 12, 3)
    assert_conv_matches(x, weight, bias, x_zp=x_zp, y_zp=y_zp, shift=9, relu=relu, padding=1,
                        stride=2)


@pytest.mark.parametrize("channels", [8, 13, 96, 200])
@pytest.mark.parametrize("stride", [1, 2])
def test_depthwise_padding_and_stride(channels, stride):
    rng = np.random.default_rng(channels + stride)
    x, weight, bias = random_case(rng, 2, channels, 11, 10, channels, 3, groups=channels)
    assert_conv_matches(x, weight, bias, x_zp=19, y_zp=5, shift=6, stride=stride, padding=1,
                        groups=channels, relu=True)


def test_regular_conv_with_dilation_and_per_channel_shifts():
    rng = np.random.default_rng(8)
    x, weight, bias = random_case(rng, 2, 4, 12, 12, 6, 3)
    shifts = np.array([9, 8, 10, 9, 7, 11])
    assert_conv_matches(x, weight, bias, x_zp=9, y_zp=40, shift=shifts, dilation=2, padding=2)


def test_large_input_uses_the_float64_path_and_matches():
    # (255 + zp) * sum|w| > 2**24: the layer accumulates in float64
    rng = np.random.default_rng(9)
    x = rng.integers(200, 256, (1, 1100, 3, 3))
    weight = rng.integers(60, 65, (4, 1100, 1, 1))
    bias = rng.integers(-32768, 32767, 4)
    assert not _Conv("c", ["x"], _Weights(weight, bias, np.full(4, 17), 17, 3, False), 1, 0, 1,
                     1, "half_even", True).fast
    assert_conv_matches(x, weight, bias, x_zp=17, y_zp=3, shift=17)


@pytest.mark.parametrize("in_features,x_zp,y_zp,relu", [(1280, 0, 73, False), (37, 128, 0, True),
                                                        (2048, 5, 100, False)])
def test_linear(in_features, x_zp, y_zp, relu):
    rng = np.random.default_rng(in_features)
    x = rng.integers(0, 256, (5, in_features))
    weight = rng.integers(-64, 65, (10, in_features))
    bias = rng.integers(-32768, 32767, 10)
    shift = 12 if in_features < 2000 else 18
    expected = torch_linear(x, weight, bias, x_zp=x_zp, y_zp=y_zp, shift=shift, relu=relu)
    got = infer.linear(x, weight, bias, x_zero_point=x_zp, y_zero_point=y_zp, shift=shift,
                       relu=relu)
    np.testing.assert_array_equal(got, expected)


def test_linear_beyond_2_24_like_the_classifier_could():
    ties = [int((j + 0.5) * 2**19) + d for j in range(32, 80) for d in (-3, -1, 1, 3)]
    x, weight = crafted_accumulators(ties, 0)
    x2 = x[0, :, 0, :].T  # [P, K]
    w2 = weight[:1, :, 0, 0]
    expected = torch_linear(x2, w2, np.zeros(1, np.int64), x_zp=0, y_zp=0, shift=19)
    got = infer.linear(x2, w2, [0], x_zero_point=0, y_zero_point=0, shift=19)
    np.testing.assert_array_equal(got, expected)
    layer = _Linear("l", "linear", ["x"], _Weights(w2, np.zeros(1, np.int64), np.array([19]), 0,
                                                   0, False), "half_even", True)
    assert not layer.fast


# --- residual add, average pool ---------------------------------------------------------------


@pytest.mark.parametrize("scales,zero_points,relu", [
    ((2.0**-4, 2.0**-4, 2.0**-4), (99, 109, 137), False),
    ((2.0**-3, 2.0**-6, 2.0**-4), (0, 200, 10), False),
    ((2.0**-7, 2.0**-2, 2.0**-5), (128, 3, 255), True),
    ((2.0**-10, 2.0**8, 2.0**-1), (1, 2, 3), False),
    ((0.1, 0.3, 0.25), (10, 20, 30), False),  # not po2: the float32 emulation path
])
def test_add_with_different_input_scales(scales, zero_points, relu):
    rng = np.random.default_rng(sum(zero_points))
    a = rng.integers(0, 256, (2, 24, 5, 7))
    b = rng.integers(0, 256, (2, 24, 5, 7))
    a.flat[:256] = np.arange(256)
    b.flat[:256] = np.arange(256)[::-1]
    op = torch.ops.quantized.add_relu if relu else torch.ops.quantized.add
    expected = op(qtensor(a, scales[0], zero_points[0]), qtensor(b, scales[1], zero_points[1]),
                  scales[2], zero_points[2]).int_repr().numpy()
    got = infer.add(a, b, scales=scales, zero_points=zero_points, relu=relu)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("size", [7, 1, 14, 6])
@pytest.mark.parametrize("zero_point", [0, 77])
def test_adaptive_avg_pool_on_channels_last_input(size, zero_point):
    rng = np.random.default_rng(size)
    x = rng.integers(0, 256, (16, 1280, size, size))
    x[:4] = rng.integers(0, 256, (4, 1280, 1, 1))  # constant maps: exact means
    x[4:6] = rng.integers(0, 128, (2, 1280, size, size)) * 2
    t = qtensor(x, 0.0625, zero_point).contiguous(memory_format=torch.channels_last)
    expected = torch.nn.functional.adaptive_avg_pool2d(t, 1).int_repr().numpy()
    np.testing.assert_array_equal(infer.adaptive_avg_pool2d(x, 1, zero_point), expected)


def test_adaptive_avg_pool_uneven_bins():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (4, 37, 7, 7))
    t = qtensor(x, 0.0625, 5).contiguous(memory_format=torch.channels_last)
    expected = torch.nn.functional.adaptive_avg_pool2d(t, (2, 3)).int_repr().numpy()
    np.testing.assert_array_equal(infer.adaptive_avg_pool2d(x, (2, 3), 5), expected)


def test_dequantize():
    q = np.array([[0, 73, 255]], np.uint8)
    np.testing.assert_array_equal(infer.dequantize(q, 0.5, 73), [[-36.5, 0.0, 91.0]])


def test_bad_arguments():
    x = np.zeros((1, 2, 3, 3), np.uint8)
    w = np.zeros((2, 2, 1, 1), np.int64)
    with pytest.raises(ValueError, match="rounding"):
        infer.conv2d(x, w, [0, 0], x_zero_point=0, y_zero_point=0, shift=1, rounding="up")
    with pytest.raises(ValueError, match="float32 step"):
        infer.requantize(np.zeros((1, 1)), [0], 1, 0, rounding="half_up", float32_step=True)
    with pytest.raises(ValueError, match="channels"):
        infer.conv2d(np.zeros((1, 3, 3, 3), np.uint8), w, [0, 0], x_zero_point=0,
                     y_zero_point=0, shift=1)


def test_grouped_conv_and_depthwise_channel_multiplier():
    rng = np.random.default_rng(12)
    x, weight, bias = random_case(rng, 2, 4, 9, 9, 6, 3, groups=2)
    assert_conv_matches(x, weight, bias, x_zp=30, y_zp=50, shift=8, padding=1, groups=2)
    x, weight, bias = random_case(rng, 2, 4, 9, 9, 8, 3, groups=4)
    assert_conv_matches(x, weight, bias, x_zp=30, y_zp=50, shift=7, padding=1, groups=4,
                        stride=2)


def test_depthwise_float64_path_with_a_large_left_shift():
    rng = np.random.default_rng(13)
    x = rng.integers(0, 256, (1, 16, 6, 6))
    x[0, :, 1:5, 1:5] = 40  # windows of zero-point codes: some outputs stay in range
    weight = rng.integers(-64, 65, (16, 1, 3, 3))
    bias = rng.integers(-32768, 32767, 16)
    bias[:8] = 0
    params = _Weights(weight, bias, np.full(16, -7), 40, 128, False)
    assert not _Conv("d", ["x"], params, 1, 1, 1, 16, "half_even", True).fast
    got = assert_conv_matches(x, weight, bias, x_zp=40, y_zp=128, shift=-7, padding=1,
                              groups=16)
    assert np.any((got > 0) & (got < 255))


@pytest.mark.parametrize("batch", [1, 3])
def test_work_split_across_threads_gives_the_same_codes(batch, monkeypatch):
    monkeypatch.setattr(infer, "PARALLEL_WORK", 0)  # split every layer
    rng = np.random.default_rng(batch)
    for groups, kernel in ((1, 1), (24, 3)):
        x, weight, bias = random_case(rng, batch, 24, 13, 11, 24, kernel, groups=groups)
        assert_conv_matches(x, weight, bias, x_zp=3, y_zp=9, shift=7, padding=kernel // 2,
                            groups=groups)


def test_add_half_up_rounds_ties_up():
    a = np.array([[1, 2, 3, 4, 0, 5]])
    b = np.zeros_like(a)
    kwargs = {"scales": (0.5, 0.5, 1.0), "zero_points": (0, 0, 10)}  # a / 2: ties on odd a
    assert infer.add(a, b, **kwargs).tolist() == [[10, 11, 12, 12, 10, 12]]
    assert infer.add(a, b, rounding="half_up", **kwargs).tolist() == [[11, 11, 12, 12, 10, 13]]
