"""The golden model's hardware arithmetic (float32_step=False), checked exhaustively.

Every op of that mode is integer-only (docs/arithmetic.md, "Hardware arithmetic"): the
two rounding helpers against exact Fraction rounding over every tie case, the residual
add against an independent Python-int implementation for every code pair, the average
pools against Fraction, and IntegerModel.accumulator() against the layers' outputs.
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from cosim.golden import infer
from cosim.golden.infer import IntegerModel, round_divide, round_shift
from cosim.quant.package import load_package
from tiny_package import make_tiny_package

ROUNDINGS = ("half_even", "half_up")
PACKAGE_32 = Path(__file__).resolve().parents[1] / "build" / "package"


def exact_round(value: Fraction, rounding: str) -> int:
    """round_R of an exact rational: half_up = floor(v + 1/2), half_even = ties to even."""
    if rounding == "half_up":
        return math.floor(value + Fraction(1, 2))
    return round(value)  # Fraction.__round__: nearest, ties to even


# ------------------------------------------------------------------ round_shift


@pytest.mark.parametrize("rounding", ROUNDINGS)
@pytest.mark.parametrize("k", range(1, 9))
def test_round_shift_every_residue_and_tie(k, rounding):
    # every residue mod 2**k (the tie 2**(k-1) among them) of 8 periods around 0
    v = np.arange(-4 * 2 ** k - 3, 4 * 2 ** k + 4, dtype=np.int64)
    want = [exact_round(Fraction(int(i), 2 ** k), rounding) for i in v]
    got = round_shift(v, k, rounding)
    assert got.dtype == np.int64
    assert got.tolist() == want
    ties = v[(v % 2 ** k) == 2 ** (k - 1)]
    assert len(ties) >= 8  # the ties really are in the range, on both signs
    assert (ties < 0).any() and (ties > 0).any()


@pytest.mark.parametrize("rounding", ROUNDINGS)
def test_round_shift_ties_far_from_zero_and_the_known_values(rounding):
    for k in range(1, 9):
        for base in (2 ** 30, -(2 ** 30), 2 ** 40 + 2 ** 20, -(2 ** 40) - 7 * 2 ** 12):
            v = np.array([base + m * 2 ** k + 2 ** (k - 1) for m in range(-3, 4)], np.int64)
            want = [exact_round(Fraction(int(i), 2 ** k), rounding) for i in v]
            assert round_shift(v, k, rounding).tolist() == want
    ties = [-5, -3, -1, 1, 3, 5]  # v / 2 = -2.5, -1.5, -0.5, 0.5, 1.5, 2.5
    expected = {"half_even": [-2, -2, 0, 0, 2, 2], "half_up": [-2, -1, 0, 1, 2, 3]}
    assert round_shift(ties, 1, rounding).tolist() == expected[rounding]


@pytest.mark.parametrize("rounding", ROUNDINGS)
def test_round_shift_zero_and_left_shifts_and_per_channel_k(rounding):
    v = np.arange(-300, 301, dtype=np.int64)
    assert round_shift(v, 0, rounding).tolist() == v.tolist()
    for k in range(1, 9):
        assert round_shift(v, -k, rounding).tolist() == [int(i) << k for i in v]
    # k broadcast along the last axis (per output channel), mixed signs of k
    ks = np.array([-2, 0, 1, 3, 8])
    grid = np.arange(-520, 521, dtype=np.int64)[:, None] * np.ones(len(ks), np.int64)
    got = round_shift(grid, ks, rounding)
    for c, k in enumerate(ks.tolist()):
        want = [exact_round(Fraction(int(i)) / Fraction(2) ** k, rounding) for i in grid[:, c]]
        assert got[:, c].tolist() == want


# ------------------------------------------------------------------ round_divide


@pytest.mark.parametrize("rounding", ROUNDINGS)
def test_round_divide_every_divisor_up_to_64(rounding):
    acc = np.arange(-3 * 64 - 5, 3 * 64 + 6, dtype=np.int64)
    for d in range(1, 65):
        want = [exact_round(Fraction(int(a), d), rounding) for a in acc]
        assert round_divide(acc, d, rounding).tolist() == want, d
    # array divisors broadcast; large accumulators (a 7x7 window of 255 * 2**20)
    d = np.arange(1, 65, dtype=np.int64)
    for a in (255 * 49, -255 * 49, 2 ** 40 + 3, -(2 ** 40) - 33):
        want = [exact_round(Fraction(a, int(i)), rounding) for i in d]
        assert round_divide(a, d, rounding).tolist() == want


def test_round_divide_rejects_non_positive_divisors():
    with pytest.raises(ValueError, match="divisor"):
        round_divide(np.array([1, 2]), np.array([1, 0]), "half_up")


# ------------------------------------------------------------------ residual add

ADD_ZPS = [(0, 0, 0), (3, 128, 77), (255, 1, 254)]
#: (ea, eb, ey) exponents: ka, kb, ky = e - min(e); 0s, left shifts, ties (ky >= 1)
ADD_EXPONENTS = [(-4, -4, -3), (-4, -4, -4), (-5, -3, -4), (-3, -5, -6), (-6, -4, -2),
                 (-2, -2, -8)]
CODES = np.arange(256)
A, B = (g.reshape(1, -1) for g in np.meshgrid(CODES, CODES, indexing="ij"))  # every pair


def python_add(a: int, b: int, za: int, zb: int, zy: int, ka: int, kb: int, ky: int,
               relu: bool, rounding: str) -> int:
    """The contract's add in plain Python ints (no numpy, no helper of infer)."""
    s = ((a - za) << ka) + ((b - zb) << kb)
    q, r = divmod(s, 1 << ky)  # floor quotient, 0 <= r < 2**ky
    if ky > 0:
        twice = 2 * r
        if rounding == "half_up":
            q += twice >= (1 << ky)
        else:
            q += twice > (1 << ky) or (twice == (1 << ky) and q % 2 == 1)
    return min(max(q + zy, zy if relu else 0), 255)


@pytest.mark.parametrize("rounding", ROUNDINGS)
@pytest.mark.parametrize("exponents", ADD_EXPONENTS)
def test_add_integer_mode_equals_python_ints_for_every_code_pair(exponents, rounding):
    ka, kb, ky = (e - min(exponents) for e in exponents)
    scales = [2.0 ** e for e in exponents]
    for za, zb, zy in ADD_ZPS:
        for relu in (False, True):
            got = infer.add(A, B, scales=scales, zero_points=(za, zb, zy), relu=relu,
                            rounding=rounding, float32_step=False)
            want = [python_add(int(a), int(b), za, zb, zy, ka, kb, ky, relu, rounding)
                    for a, b in zip(A[0], B[0], strict=True)]
            assert got[0].tolist() == want, (za, zb, zy, relu)


@pytest.mark.parametrize("exponents", ADD_EXPONENTS)
def test_add_integer_half_even_equals_pytorch_mode_when_exact(exponents):
    scales = [2.0 ** e for e in exponents]
    for zps in ADD_ZPS:
        for relu in (False, True):
            kwargs = {"scales": scales, "zero_points": zps, "relu": relu}
            hardware = infer.add(A, B, float32_step=False, **kwargs)
            pytorch = infer.add(A, B, **kwargs)  # float32, PyTorch's arithmetic
            assert np.array_equal(hardware, pytorch), (zps, relu)


def test_add_integer_mode_refuses_non_po2_scales_naming_the_layer():
    with pytest.raises(ValueError, match="add 'add'.*power-of-two") as error:
        infer.add(A, B, scales=(0.3, 0.25, 0.5), zero_points=(0, 0, 0), rounding="half_up")
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="power-of-two"):
        infer.add(A, B, scales=(0.25, 0.25, 0.3), zero_points=(0, 0, 0), float32_step=False)
    # PyTorch mode still takes any scale
    infer.add(A, B, scales=(0.3, 0.25, 0.5), zero_points=(0, 0, 0))


# ------------------------------------------------------------------ pools and cat


def fraction_adaptive(x: np.ndarray, out_hw: tuple[int, int], zp: int,
                      rounding: str) -> np.ndarray:
    """adaptive_avg_pool2d of NCHW codes, exact: zp + round_R(sum(x - zp) / size)."""
    n, c, h, w = x.shape
    oh, ow = out_hw
    out = np.empty((n, c, oh, ow), np.int64)
    for i in range(oh):
        h0, h1 = i * h // oh, -(-(i + 1) * h // oh)
        for j in range(ow):
            w0, w1 = j * w // ow, -(-(j + 1) * w // ow)
            size = (h1 - h0) * (w1 - w0)
            for b in range(n):
                for ch in range(c):
                    acc = int(x[b, ch, h0:h1, w0:w1].astype(np.int64).sum()) - zp * size
                    out[b, ch, i, j] = min(max(zp + exact_round(Fraction(acc, size),
                                                                rounding), 0), 255)
    return out


def tie_heavy_codes(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Random codes, half of the channels from {0, 1, 254, 255} (many exact ties)."""
    x = rng.integers(0, 256, shape)
    x[:, ::2] = rng.choice([0, 1, 254, 255], x[:, ::2].shape)
    return x.astype(np.uint8)


@pytest.mark.parametrize("rounding", ROUNDINGS)
@pytest.mark.parametrize(("in_hw", "out_hw"), [((7, 7), (1, 1)), ((1, 1), (1, 1)),
                                               ((14, 14), (7, 7)), ((7, 7), (7, 7)),
                                               ((10, 9), (7, 7)), ((8, 8), (1, 1))])
def test_adaptive_pool_integer_mode_equals_fractions(in_hw, out_hw, rounding):
    rng = np.random.default_rng(7)
    x = tie_heavy_codes(rng, (2, 12, *in_hw))
    for zp in (0, 1, 77, 255):
        want = fraction_adaptive(x, out_hw, zp, rounding)
        for channels_last in (True, False):  # the hardware has one formula for both
            got = infer.adaptive_avg_pool2d(x, out_hw, zp, channels_last=channels_last,
                                            rounding=rounding, float32_step=False)
            assert got.tolist() == want.tolist(), (zp, channels_last)


def test_adaptive_pool_every_acc_of_a_2x2_bin():
    # a 2x2 bin (d = 4) over all codes 0..255 in one position: every residue, every tie
    x = np.zeros((1, 256, 2, 2), np.uint8)
    x[0, :, 0, 0] = np.arange(256)
    x[0, :, 0, 1] = np.arange(256)[::-1] // 3
    for rounding in ROUNDINGS:
        for zp in (0, 5, 128):
            got = infer.adaptive_avg_pool2d(x, 1, zp, rounding=rounding, float32_step=False)
            assert got.tolist() == fraction_adaptive(x, (1, 1), zp, rounding).tolist()


@pytest.mark.parametrize("rounding", ROUNDINGS)
@pytest.mark.parametrize(("kernel", "stride", "padding", "include_pad", "override"),
                         [(2, 2, 0, True, None), (3, 1, 1, True, None), (3, 2, 1, False, None),
                          (2, 1, 1, True, 3), (3, 3, 0, True, None)])
def test_avg_pool2d_integer_mode_equals_fractions(kernel, stride, padding, include_pad,
                                                   override, rounding):
    rng = np.random.default_rng(11)
    x = tie_heavy_codes(rng, (2, 6, 7, 8))
    for zp in (0, 3, 200):
        got = infer.avg_pool2d(x, kernel, stride, padding, count_include_pad=include_pad,
                               divisor_override=override, zero_point=zp, rounding=rounding,
                               float32_step=False)
        n, c, h, w = x.shape
        oh, ow = got.shape[2:]
        for i in range(oh):
            for j in range(ow):
                r0, c0 = i * stride - padding, j * stride - padding
                r1, c1 = min(r0 + kernel, h + padding), min(c0 + kernel, w + padding)
                inside = x[:, :, max(r0, 0):min(r1, h), max(c0, 0):min(c1, w)].astype(int)
                size = inside.shape[2] * inside.shape[3]
                d = override or ((r1 - r0) * (c1 - c0) if include_pad else size)
                acc = inside.sum(axis=(2, 3)) - zp * size
                want = [[min(max(zp + exact_round(Fraction(int(a), d), rounding), 0), 255)
                         for a in row] for row in acc]
                assert got[:, :, i, j].tolist() == want, (zp, i, j)


@pytest.mark.parametrize("rounding", ROUNDINGS)
def test_cat_integer_mode_is_a_rounded_shift(rounding):
    x = np.arange(256, dtype=np.uint8).reshape(1, 1, 16, 16)
    for e_in in range(-8, -1):
        for z_in, z_out in ((0, 0), (1, 128), (255, 3)):
            got = infer.cat([x, x], scales=[2.0 ** -5, 2.0 ** e_in], zero_points=[z_out, z_in],
                            out_scale=2.0 ** -5, out_zero_point=z_out, rounding=rounding,
                            float32_step=False)
            assert np.array_equal(got[:, :1], x)  # same qparams: copied
            want = [min(max(exact_round(Fraction(int(v) - z_in) * Fraction(2) ** (e_in + 5),
                                        rounding) + z_out, 0), 255) for v in x.ravel()]
            assert got[:, 1:].ravel().tolist() == want
    with pytest.raises(ValueError, match="cat 'cat'.*power-of-two"):
        infer.cat([x, x], scales=[0.3, 0.25], zero_points=[0, 0], float32_step=False)


# ------------------------------------------------------------------ the model's API


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return load_package(make_tiny_package(tmp_path_factory.mktemp("hw") / "package"))


def layer_shift(package, name: str, channel: int) -> int:
    entry = next(layer for layer in package.layers if layer["name"] == name)
    shift = entry["shift"]
    return int(shift[channel] if isinstance(shift, list) else shift)


def check_accumulators(package, name: str, positions: int | None = None) -> int:
    """accumulator() through requantize equals the layer's output at every checked
    position, in both hardware roundings and PyTorch mode; returns positions checked."""
    entry = next(layer for layer in package.layers if layer["name"] == name)
    rng = np.random.default_rng(3)
    source_shape = _input_shape(IntegerModel.from_package(package), package, name)
    checked = 0
    for rounding, step in (("half_even", False), ("half_up", False), ("half_even", True)):
        model = IntegerModel.from_package(package, rounding, float32_step=step)
        # inputs: random codes of the layer's input shape (every 7th one the zero point)
        codes = rng.integers(0, 256, source_shape).astype(np.uint8)
        codes.flat[::7] = entry["input"]["zero_point"]
        out = model.run_layer(name, [codes])
        cells = list(np.ndindex(*out.shape[1:]))
        if positions is not None and len(cells) > positions:
            cells = [cells[i] for i in rng.choice(len(cells), positions, replace=False)]
        for cell in cells:
            channel, y, x = (cell + (0, 0))[:3] if out.ndim == 2 else cell
            acc = model.accumulator(name, codes, channel, y, x)
            assert isinstance(acc, int)
            code = infer.requantize(np.array([[acc]]), [0], layer_shift(package, name, channel),
                                    entry["output"]["zero_point"], entry["relu"], rounding, step)
            assert int(code[0, 0]) == int(out[(0, *cell)]), (rounding, step, cell, acc)
            checked += 1
    return checked


def _input_shape(model: IntegerModel, package, name: str) -> tuple[int, ...]:
    """The input shape of layer `name` on one image of the package's input size."""
    size = int(package.manifest.get("data", {}).get("image_size", 0)) or 8
    images = np.random.default_rng(0).normal(0.0, 1.0, (1, 3, size, size)).astype(np.float32)
    return model.run(images)[model.inputs(name)[0]].shape


@pytest.mark.parametrize("name", ["features.0.0", "features.1.conv.0.0", "classifier.1"])
def test_accumulator_requantizes_to_the_tiny_package_outputs(tiny, name):
    # a stride-2 padded conv, a per-channel depthwise with a left shift, the linear layer
    assert check_accumulators(tiny, name) > 0


@pytest.mark.skipif(not (PACKAGE_32 / "manifest.json").is_file(),
                    reason="build/package (the shipped 32x32 package) not built")
@pytest.mark.parametrize(("name", "positions"), [("features.0.0", None),
                                                 ("features.1.conv.0.0", 2000),
                                                 ("features.2.conv.1.0", 2000),
                                                 ("classifier.1", None)])
def test_accumulator_on_the_32x32_package(name, positions):
    assert check_accumulators(load_package(PACKAGE_32), name, positions) > 0


def test_accumulator_of_a_dilated_grouped_conv_equals_a_direct_sum():
    rng = np.random.default_rng(5)
    x = rng.integers(0, 256, (1, 6, 9, 10)).astype(np.uint8)
    weight = rng.integers(-64, 65, (4, 3, 3, 2))
    bias = rng.integers(-300, 300, 4)
    layer = infer._Conv("g", ["x"], infer._weights(weight, bias, 0, 17, 0, False), (2, 1),
                        (1, 2), (2, 3), 2, "half_up", False)
    model = IntegerModel([infer._Quantize("x", 1.0, 0), layer], "half_up", False)
    padded = np.pad(x[0].astype(int) - 17, ((0, 0), (1, 1), (2, 2)))  # zp_x -> 0 after -zp
    out = model.run_layer("g", [x])
    for o, y, xx in np.ndindex(*out.shape[1:]):
        g = o // 2
        window = padded[3 * g:3 * g + 3, 2 * y: 2 * y + 5: 2, xx: xx + 4: 3]
        want = int((window * weight[o]).sum()) + int(bias[o])
        assert model.accumulator("g", x, o, y, xx) == want


def test_add_shifts_and_errors(tiny):
    model = IntegerModel.from_package(tiny, "half_up")
    # tiny add: inputs 2**-4, 2**-4, output 2**-3
    assert model.add_shifts("add_0") == (0, 0, 1)
    with pytest.raises(KeyError, match="not add"):
        model.add_shifts("features.0.0")
    with pytest.raises(KeyError, match="not conv2d or linear"):
        model.accumulator("add_0", np.zeros((1, 4, 4, 4), np.uint8), 0)
    with pytest.raises(ValueError, match="channel"):
        model.accumulator("classifier.1", np.zeros((1, 4), np.uint8), 9)


@pytest.mark.skipif(not (PACKAGE_32 / "manifest.json").is_file(),
                    reason="build/package (the shipped 32x32 package) not built")
def test_add_shifts_of_the_32x32_package_match_its_scales():
    package = load_package(PACKAGE_32)
    model = IntegerModel.from_package(package, "half_up")
    for entry in package.layers:
        if entry["op"] != "add":
            continue
        q = package.qparams(entry["name"])
        e = [math.frexp(float(q["scale"][role][0]))[1] - 1
             for role in ("input0", "input1", "output")]
        assert model.add_shifts(entry["name"]) == tuple(v - min(e) for v in e)


@pytest.mark.parametrize("rounding", ROUNDINGS)
def test_conv_requantize_saturates_left_shifts_and_rounds_right_shifts(rounding):
    v = np.array([[2 ** 30, -(2 ** 30), 2 ** 23 + 1, 3, -3, 0]])
    left = infer.requantize(v, [0], -8, 5, rounding=rounding, float32_step=False)
    assert left[0].tolist() == [255, 0, 255, 255, 0, 5]  # saturated, never INT32_MIN's code
    relu = infer.requantize(v, [0], -8, 5, relu=True, rounding=rounding, float32_step=False)
    assert relu[0].tolist() == [255, 5, 255, 255, 5, 5]
    acc = np.arange(-2 ** 12, 2 ** 12 + 1).reshape(-1, 1)
    for n in (1, 4, 9):
        want = [min(max(exact_round(Fraction(int(a), 2 ** n), rounding) + 100, 0), 255)
                for a in acc[:, 0]]
        got = infer.requantize(acc, [0], n, 100, rounding=rounding, float32_step=False)
        assert got[:, 0].tolist() == want
