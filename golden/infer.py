"""Bit-exact NumPy integer inference of a parameter package (the golden model).

Everything comes from the package's files (int8 weights, int16 biases, scales,
zero points); no PyTorch. Codes are uint8 activations (`real = scale * (q - zp)`),
weights int8 symmetric, every scale a power of two, so a weighted layer is

    acc = sum((x_q - zp_x) * w_q)          exact integer
    y_q = clamp(round((acc + bias_int16) / 2**n) + zp_y, lo, 255)

with `lo = zp_y` under a fused ReLU, else 0. `rounding="half_even"` reproduces
PyTorch's fbgemm kernels bit for bit, including their float32 requantization step
(`float32(float32(acc) + bias) * 2**-n`, then round half even; it differs from the
exact integer result only when |acc + bias| > 2**24 and n >= 17) and the int32
overflow of a left shift (n < 0) that maps huge values to the lowest code.
`float32_step=False` (always with `rounding="half_up"`) is the hardware arithmetic,
integer-only for every op (conv/linear, add, avg pools, cat), rounded by
`round_shift` / `round_divide` with either rounding; docs/arithmetic.md ("Hardware
arithmetic") defines it and docs/golden-model.md has the PyTorch-side measurements.

Arrays handed in and out use PyTorch's layouts (NCHW, [N, features]); inside,
activations are NHWC float32 arrays holding the integer codes, so that 1x1
convolutions and the linear layer are single float32 BLAS matrix products. A
float32 product is used only where a per-layer bound proves every partial sum
is an integer below 2**24 (hence exact, in any summation order); otherwise the
layer accumulates in float64 (exact below 2**53) and applies the float32 step
explicitly.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
from cosim.quant.formats import PackageError, PathLike
from cosim.quant.package import Package, load_package
from numpy.lib.stride_tricks import as_strided

try:  # installed with scikit-learn; without it BLAS keeps its own threads
    from threadpoolctl import ThreadpoolController
except ImportError:  # pragma: no cover
    ThreadpoolController = None

__all__ = [
    "ROUNDINGS",
    "IntegerModel",
    "adaptive_avg_pool2d",
    "add",
    "avg_pool2d",
    "cat",
    "conv2d",
    "dequantize",
    "flatten",
    "linear",
    "max_pool2d",
    "quantize",
    "relu",
    "relu6",
    "requantize",
    "round_divide",
    "round_shift",
]

#: Rounding modes of the requantization shift.
ROUNDINGS = ("half_even", "half_up")

F32 = np.float32
EXACT_F32 = 2 ** 24  # float32 holds every integer of magnitude below this
INT32_MIN = -(2 ** 31)
INT32_MAX = 2 ** 31 - 1
#: Largest float32 below 2**31: fbgemm's quantize clips to it before converting.
INT32_FLOAT_MAX = 2147483520.0


def _check_rounding(rounding: str) -> str:
    if rounding not in ROUNDINGS:
        raise ValueError(f"rounding must be one of {ROUNDINGS}, got {rounding!r}")
    return rounding


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(value, int | np.integer):
        return int(value), int(value)
    first, second = value
    return int(first), int(second)


def _po2(scale: float, what: str) -> int:
    mantissa, exponent = math.frexp(float(scale))
    if mantissa != 0.5:
        raise ValueError(f"{what} {scale!r} is not a power of two")
    return exponent - 1


# ------------------------------------------------------------------ integer rounding
#
# The two helpers of the hardware arithmetic (float32_step=False): every op of that
# mode rounds through one of them (docs/arithmetic.md, "Hardware arithmetic").


def round_shift(v: Any, k: Any, rounding: str) -> np.ndarray:
    """round_R(v / 2**k) of signed integers, exactly: the requantization shift.

    v: integers (int64 array or Python int; any sign). k: shift per element
    (broadcasts against v; an int or int array). k > 0 divides by 2**k and rounds
    the exact quotient: "half_up" = floor(v / 2**k + 1/2) = (v + 2**(k-1)) >> k
    (arithmetic shift, ties toward +infinity, also for negative v); "half_even" =
    nearest, ties to the even integer. k == 0 returns v; k < 0 is the exact left
    shift v << -k (the caller keeps |v| << -k below 2**63). Returns int64.
    """
    rounding = _check_rounding(rounding)
    v = np.asarray(v, dtype=np.int64)
    k = np.asarray(k, dtype=np.int64)
    right = np.maximum(k, 1)  # the right-shift amount where k > 0 (1 elsewhere, unused)
    half = np.left_shift(np.int64(1), right - 1)
    if rounding == "half_up":
        shifted = np.right_shift(v + half, right)
    else:
        floor = np.right_shift(v, right)
        rest = v - np.left_shift(floor, right)  # 0 <= rest < 2**k
        shifted = floor + ((rest > half) | ((rest == half) & ((floor & 1) == 1)))
    left = np.left_shift(v, np.maximum(-k, 0))
    return np.where(k > 0, shifted, left).astype(np.int64)


def round_divide(acc: Any, d: Any, rounding: str) -> np.ndarray:
    """round_R(acc / d) of signed integers acc by positive integers d, exactly: the
    average pools' division (acc = sum(x - zp) over a window, d its divisor).

    "half_up" = floor(acc / d + 1/2) = floor((2 acc + d) / (2 d)) (ties toward
    +infinity); "half_even" = nearest, ties to the even integer. acc and d broadcast;
    int64 in and out (|acc| well below 2**61).
    """
    rounding = _check_rounding(rounding)
    acc = np.asarray(acc, dtype=np.int64)
    d = np.asarray(d, dtype=np.int64)
    if np.any(d < 1):
        raise ValueError("round_divide: the divisor must be a positive integer")
    if rounding == "half_up":
        return np.floor_divide(2 * acc + d, 2 * d)
    floor = np.floor_divide(acc, d)
    twice_rest = 2 * (acc - floor * d)  # 0 <= rest < d
    return floor + ((twice_rest > d) | ((twice_rest == d) & ((floor & 1) == 1)))


# ------------------------------------------------------------------ requantization


def _requantize_exact(acc: np.ndarray, bias: np.ndarray, shift: np.ndarray, y_zp: int,
                      relu: bool, rounding: str, float32_step: bool) -> np.ndarray:
    """Codes (float32) from exact integer accumulators `acc` (float64, channel last)."""
    lo = float(y_zp) if relu else 0.0
    if float32_step:
        scale = np.ldexp(1.0, -shift.astype(np.int64))  # 2**-n per channel, exact
        # fbgemm: float32(acc) + float32(bias) in float32, times the float32 multiplier,
        # _mm256_cvtps_epi32 (round half even; out of int32 range -> INT32_MIN).
        total = np.add(acc.astype(F32), bias.astype(F32), dtype=F32)
        value = np.rint(total.astype(np.float64) * scale)
        value[(value >= 2.0 ** 31) | (value < -(2.0 ** 31))] = INT32_MIN
    else:
        # Hardware arithmetic: v = acc + bias exact in int64 (acc is exact below 2**53),
        # round_R(v / 2**n), or v << -n (v clipped to +-256 first: any larger |v| saturates
        # the same way after a left shift); then y = clamp(. + zp_y, lo, 255).
        total = acc.astype(np.int64) + bias.astype(np.int64)
        total = np.where(shift < 0, np.clip(total, -256, 256), total)
        value = round_shift(total, shift, rounding).astype(np.float64)
    value += y_zp
    np.clip(value, lo, 255.0, out=value)
    return value.astype(F32)


def requantize(acc: np.ndarray, bias: np.ndarray, shift: int | Sequence[int] | np.ndarray,
               y_zero_point: int, relu: bool = False, rounding: str = "half_even",
               float32_step: bool | None = None) -> np.ndarray:
    """uint8 codes from integer accumulators.

    acc: integer array (exact sums of (x_q - zp_x) * w_q), output channel on the last
    axis. bias: int16 values per channel. shift: n per tensor or per channel (n <= 0
    is a left shift). float32_step (default: True for half_even, False for half_up)
    applies fbgemm's float32 rounding of `acc + bias` before the shift.
    """
    rounding = _check_rounding(rounding)
    step = rounding == "half_even" if float32_step is None else bool(float32_step)
    if step and rounding != "half_even":
        raise ValueError("the float32 step is PyTorch's arithmetic; it needs rounding='half_even'")
    acc = np.asarray(acc)
    channels = acc.shape[-1]
    shifts = np.broadcast_to(np.asarray(shift, dtype=np.int64), (channels,))
    biases = np.broadcast_to(np.asarray(bias, dtype=np.int64), (channels,))
    codes = _requantize_exact(acc.astype(np.float64), biases, shifts, int(y_zero_point), relu,
                              rounding, step)
    return codes.astype(np.uint8)


# ------------------------------------------------------------------ execution helpers

#: Below this much work (elements x passes) an operation runs on one thread.
PARALLEL_WORK = 1 << 21
_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def _workers() -> int:
    """Threads for the large elementwise and matrix work: the usable CPUs, at most 4."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, 4))


def _run_parallel(tasks: list[Callable[[], None]]) -> None:
    """Run tasks (NumPy calls that release the GIL) on the worker threads."""
    global _executor
    if len(tasks) == 1:
        tasks[0]()
        return
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=_workers(),
                                           thread_name_prefix="golden")
    futures = [_executor.submit(task) for task in tasks[1:]]
    tasks[0]()
    for future in futures:
        future.result()


_blas: Any = None


@contextlib.contextmanager
def _one_blas_thread() -> Iterator[None]:
    """BLAS on one thread while the golden model runs: it splits the work itself over
    Python threads (which block when idle; BLAS threads spin, which collapses on a
    busy machine)."""
    global _blas
    if ThreadpoolController is None or _workers() == 1:
        yield
        return
    with _executor_lock:
        if _blas is None:
            _blas = ThreadpoolController().select(user_api="blas")
    with _blas.limit(limits=1):
        yield


def _rows_view(y: np.ndarray, columns: int) -> np.ndarray:
    """y as a 2-D [rows, columns] view (never a copy: results are written through it)."""
    view = y.view()
    view.shape = (-1, columns)
    return view


def _row_pieces(n: int, h: int, work: int) -> list[tuple[slice, slice]]:
    """Split an [N, H, ...] output into (images, rows) pieces, one per worker when large."""
    parts = min(_workers() if work >= PARALLEL_WORK else 1, n * h)
    if parts <= 1:
        return [(slice(0, n), slice(0, h))]
    if n >= parts:
        return [(slice(k * n // parts, (k + 1) * n // parts), slice(0, h)) for k in range(parts)]
    per = -(-parts // n)
    return [(slice(i, i + 1), slice(k * h // per, (k + 1) * h // per)) for i in range(n)
            for k in range(per) if (k + 1) * h // per > k * h // per]


def _windows(x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int],
             dilation: tuple[int, int], out_hw: tuple[int, int]) -> np.ndarray:
    """Read-only view [N, OH, OW, C, KH, KW] of the kernel windows of padded NHWC `x`."""
    sn, sh, sw, sc = x.strides
    return as_strided(x, (x.shape[0], *out_hw, x.shape[3], *kernel),
                      (sn, sh * stride[0], sw * stride[1], sc, sh * dilation[0],
                       sw * dilation[1]), writeable=False)


class _Pool:
    """float32 scratch and activation buffers, reused across layers and calls."""

    LIMIT = 1 << 28  # bytes kept between calls

    def __init__(self) -> None:
        self._free: dict[tuple[int, ...], list[np.ndarray]] = {}

    def take(self, shape: tuple[int, ...]) -> np.ndarray:
        free = self._free.get(tuple(shape))
        return free.pop() if free else np.empty(shape, F32)

    def give(self, *arrays: np.ndarray) -> None:
        for array in arrays:
            self._free.setdefault(array.shape, []).append(array)

    def trim(self) -> None:
        if sum(a.nbytes for free in self._free.values() for a in free) > self.LIMIT:
            self._free.clear()


def _crop(full: np.ndarray, have: tuple[int, int], want: tuple[int, int]) -> np.ndarray:
    """View of a buffer padded by `have` that keeps a border of `want` (<= have)."""
    if have == want:
        return full
    dh, dw = have[0] - want[0], have[1] - want[1]
    return full[:, dh: full.shape[1] - dh, dw: full.shape[2] - dw]


def _fill_border(full: np.ndarray, pad: tuple[int, int], value: float) -> None:
    ph, pw = pad
    if ph:
        full[:, :ph] = value
        full[:, full.shape[1] - ph:] = value
    if pw:
        full[:, :, :pw] = value
        full[:, :, full.shape[2] - pw:] = value


def _pad(x: np.ndarray, pad: tuple[int, int], value: float) -> np.ndarray:
    """A padded float32 copy of NHWC `x` (border = value)."""
    if pad == (0, 0):
        return x
    n, h, w, c = x.shape
    full = np.empty((n, h + 2 * pad[0], w + 2 * pad[1], c), F32)
    _fill_border(full, pad, value)
    _crop(full, pad, (0, 0))[...] = x
    return full


def _finish_fast(values: np.ndarray, out: np.ndarray, beta: np.ndarray, lo: float, rest: int,
                 rounding: str, codes: np.ndarray | None = None) -> None:
    """out = round(values + beta) clamped to [lo, 255], values exact float32.

    values + beta is `(acc + bias) * 2**-n + zp_y - rest`; the folded part of zp_y is
    even under half_even (adding an odd integer before rounding would flip which way
    ties go) and `rest` (0 or 1) is added afterwards.
    """
    values += beta
    np.clip(values, lo - rest, 255.0 - rest, out=out)
    if rounding == "half_even":
        np.rint(out, out=out)
    else:
        out += F32(0.5)
        np.floor(out, out=out)
    if rest:
        out += F32(rest)
    if codes is not None:  # the uint8 copy run() returns, written while the data is hot
        np.copyto(codes, out, casting="unsafe")


# ------------------------------------------------------------------ layers


class _Layer:
    """One manifest node, computing on NHWC float32 codes ([N, features] after flatten)."""

    name: str
    op: str
    inputs: list[str]
    pad: tuple[int, int] = (0, 0)  # border its first input must carry
    pad_value: float = 0.0  # what that border holds (the input zero point)
    planar: bool = False  # output memory in (N, C, H, W) order, handled as an NHWC view
    out_zp: float = 0.0  # border value of its output buffer (its output zero point)
    writes_codes: bool = False  # compute() can also fill a uint8 copy of its output

    def out_shape(self, args: list[np.ndarray]) -> tuple[int, ...]:
        return args[0].shape

    def compute(self, args: list[np.ndarray], out: np.ndarray, pool: _Pool) -> None:
        raise NotImplementedError  # pragma: no cover


class _Quantize(_Layer):
    """float32 NCHW images -> codes, as torch.quantize_per_tensor (fbgemm's QuantizeAvx2)."""

    def __init__(self, name: str, scale: float, zero_point: int) -> None:
        self.name, self.op, self.inputs = name, "quantize", []
        self.planar = True  # reads NCHW images; the first conv's im2col reads planes
        self.scale, self.zero_point = float(scale), int(zero_point)
        self.out_zp = float(zero_point)
        self.inverse = F32(1.0) / F32(self.scale)

    def out_shape(self, args: list[np.ndarray]) -> tuple[int, ...]:
        n, c, h, w = args[0].shape
        return n, h, w, c

    def compute(self, args: list[np.ndarray], out: np.ndarray, pool: _Pool) -> None:
        np.multiply(args[0].transpose(0, 2, 3, 1), self.inverse, out=out)
        # fbgemm clips at 2147483520 (largest float32 < 2**31) and then adds the zero
        # point in int32, which wraps to a negative value (code 0) when zp >= 128.
        huge = out >= F32(INT32_FLOAT_MAX) if self.zero_point >= 128 else None
        np.rint(out, out=out)
        out += F32(self.zero_point)
        np.clip(out, 0.0, 255.0, out=out)
        if huge is not None and huge.any():
            out[huge] = 0.0


@dataclass
class _Weights:
    """A weighted layer's integers: weight (OIHW or [O, K]), bias, shift n per channel."""

    weight: np.ndarray
    bias: np.ndarray
    shift: np.ndarray
    x_zp: int
    y_zp: int
    relu: bool


class _Weighted(_Layer):
    """conv2d / linear: accumulate, then requantize (fast float32 or exact path)."""

    def __init__(self, name: str, op: str, inputs: list[str], params: _Weights, rounding: str,
                 float32_step: bool) -> None:
        self.name, self.op, self.inputs = name, op, inputs
        self.rounding, self.float32_step = rounding, float32_step
        self.writes_codes = True
        self.set_params(params)

    def _matrix(self, weight: np.ndarray) -> np.ndarray:
        raise NotImplementedError  # pragma: no cover

    def _accumulate(self, x: np.ndarray, w: np.ndarray, y: np.ndarray, rows: slice,
                    scratch: np.ndarray | None) -> None:
        """y = raw sums of codes times `w` for output rows `rows` of input `x`."""
        raise NotImplementedError  # pragma: no cover

    def _work(self) -> int:
        """Rough cost per output element, in elementwise passes (for the thread split)."""
        return 3 + int(np.prod(self.w.shape[:-1])) // 8

    def set_params(self, params: _Weights) -> None:
        """(Re)derive every constant from the integers, e.g. after a weight change."""
        self.params = params
        weight, bias, shift = params.weight, params.bias, params.shift
        out_channels = weight.shape[0]
        self.lo = float(params.y_zp) if params.relu else 0.0
        self.out_zp = float(params.y_zp)
        self.pad_value = float(params.x_zp)
        flat = weight.reshape(out_channels, -1)
        colsum = flat.sum(axis=1)
        l1 = np.abs(flat).sum(axis=1)
        # Fast path: one float32 product gives (sum(x * w) + bias - zp_x * colsum) * 2**-n
        # + zp_y, with x the raw codes (0..255; padding holds zp_x). Every partial sum is
        # a multiple of the granularity g (2**-n, or 1 when n < 0) and at most `top` in
        # magnitude (+ 0.5 for half_up's rounding add), so all are exact when top / g <
        # 2**24; then |acc| and |acc + bias| are below 2**24 too, so fbgemm's float32
        # step changes nothing.
        scale = np.ldexp(1.0, -shift)
        top = ((255 * l1 + np.abs(bias) + params.x_zp * np.abs(colsum)) * scale + params.y_zp
               + 0.5)
        self.fast = bool(np.all(top / np.minimum(scale, 1.0) < EXACT_F32))
        if self.fast:
            self.rest = params.y_zp % 2 if self.rounding == "half_even" else 0
            self.w = self._matrix(weight * scale.reshape((-1,) + (1,) * (weight.ndim - 1))
                                  ).astype(F32)
            self.beta = ((bias - params.x_zp * colsum) * scale + (params.y_zp - self.rest)
                         ).astype(F32)
        else:
            self.w = self._matrix(weight.astype(np.float64))
            self.correction = (-params.x_zp * colsum).astype(np.float64)

    def _needs_scratch(self) -> bool:
        return False

    def compute(self, args: list[np.ndarray], out: np.ndarray, pool: _Pool,
                codes: np.ndarray | None = None) -> None:
        x = args[0]
        if not self.fast:
            p = self.params
            acc = np.empty(out.shape, np.float64)
            self._accumulate(x.astype(np.float64), self.w, acc, slice(0, acc.shape[1]), None)
            acc += self.correction
            out[...] = _requantize_exact(acc, p.bias, p.shift, p.y_zp, p.relu, self.rounding,
                                         self.float32_step)
            if codes is not None:
                np.copyto(codes, out, casting="unsafe")
            return
        y = pool.take(out.shape)
        scratch = pool.take(out.shape) if self._needs_scratch() else None
        if out.ndim == 2:
            pieces = [(slice(0, out.shape[0]), slice(0, 0))]
        else:
            pieces = _row_pieces(out.shape[0], out.shape[1], self._work() * out.size)

        def piece(ns: slice, hs: slice) -> None:
            rows = (ns, hs) if out.ndim == 4 else (ns,)
            part = y[rows]
            self._accumulate(x[ns], self.w, part, hs,
                             None if scratch is None else scratch[ns, hs])
            _finish_fast(part, out[rows], self.beta, self.lo, self.rest, self.rounding,
                         None if codes is None else codes[rows])

        _run_parallel([partial(piece, ns, hs) for ns, hs in pieces])
        pool.give(y)
        if scratch is not None:
            pool.give(scratch)


class _Linear(_Weighted):
    def _matrix(self, weight: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(weight.T)  # [K, O]

    def out_shape(self, args: list[np.ndarray]) -> tuple[int, ...]:
        x = args[0]
        if x.ndim != 2 or x.shape[1] != self.w.shape[0]:
            raise ValueError(f"{self.name}: expected [N, {self.w.shape[0]}] input, got "
                             f"{x.shape}")
        return x.shape[0], self.w.shape[1]

    def _accumulate(self, x: np.ndarray, w: np.ndarray, y: np.ndarray, rows: slice,
                    scratch: np.ndarray | None) -> None:
        np.matmul(np.ascontiguousarray(x), w, out=y)


class _Conv(_Weighted):
    """conv2d on NHWC codes; the input arrives padded by `pad` with zp_x."""

    def __init__(self, name: str, inputs: list[str], params: _Weights, stride: Sequence[int],
                 padding: Sequence[int], dilation: Sequence[int], groups: int, rounding: str,
                 float32_step: bool) -> None:
        out_channels, in_per_group, kh, kw = params.weight.shape
        self.stride, self.pad, self.dilation = _pair(stride), _pair(padding), _pair(dilation)
        self.groups = int(groups)
        self.kernel = (kh, kw)
        self.in_channels = in_per_group * self.groups
        if self.groups < 1 or out_channels % self.groups:
            raise ValueError(f"{name}: {out_channels} output channels not divisible by "
                             f"groups={groups}")
        if self.groups == 1 and (kh, kw) == (1, 1) and self.pad == (0, 0):
            self.kind = "pointwise"
        elif self.groups > 1 and in_per_group == 1:
            self.kind = "depthwise"
        else:
            self.kind = "regular"
        self._tiled: dict[int, np.ndarray] = {}
        super().__init__(name, "conv2d", inputs, params, rounding, float32_step)

    def set_params(self, params: _Weights) -> None:
        self._tiled = {}
        super().set_params(params)

    def _matrix(self, weight: np.ndarray) -> np.ndarray:
        out_channels = weight.shape[0]
        if self.kind == "pointwise":
            return np.ascontiguousarray(weight.reshape(out_channels, -1).T)  # [C, O]
        if self.kind == "depthwise":
            return np.ascontiguousarray(weight[:, 0].transpose(1, 2, 0))  # [KH, KW, O]
        per_group = out_channels // self.groups
        return np.ascontiguousarray(  # [G, Cg*KH*KW, Og]
            weight.reshape(self.groups, per_group, -1).transpose(0, 2, 1))

    def out_shape(self, args: list[np.ndarray]) -> tuple[int, ...]:
        x = args[0]
        if x.ndim != 4 or x.shape[3] != self.in_channels:
            got = x.shape[3] if x.ndim == 4 else f"a {x.ndim}-D array"
            raise ValueError(f"{self.name}: expected {self.in_channels} input channels, "
                             f"got {got}")
        (kh, kw), (sh, sw), (dh, dw) = self.kernel, self.stride, self.dilation
        oh = (x.shape[1] - dh * (kh - 1) - 1) // sh + 1
        ow = (x.shape[2] - dw * (kw - 1) - 1) // sw + 1
        if oh < 1 or ow < 1:
            raise ValueError(f"{self.name}: input {x.shape[1:3]} (padded) is smaller than "
                             f"the kernel")
        return x.shape[0], oh, ow, self.params.weight.shape[0]

    def _input(self, x: np.ndarray) -> np.ndarray:
        mult = self.params.weight.shape[0] // self.in_channels
        return np.repeat(x, mult, axis=3) if self.kind == "depthwise" and mult > 1 else x

    def _taps(self, x: np.ndarray, rows: slice) -> list[tuple[np.ndarray, int, int]]:
        """Input views of each kernel tap for output rows `rows` (padded NHWC x)."""
        (kh, kw), (sh, sw), (dh, dw) = self.kernel, self.stride, self.dilation
        ow = (x.shape[2] - dw * (kw - 1) - 1) // sw + 1
        h0, h1 = rows.start, rows.stop
        return [(x[:, i * dh + sh * h0: i * dh + sh * (h1 - 1) + 1: sh,
                   j * dw: j * dw + sw * (ow - 1) + 1: sw], i, j)
                for i in range(kh) for j in range(kw)]

    def _needs_scratch(self) -> bool:
        return self.kind == "depthwise" and self._tiled_taps(self.params.weight.shape[0])

    def _tiled_taps(self, channels: int) -> bool:
        # Stride 1 with few channels: per-tap multiply/add with the taps tiled along the
        # row (long contiguous inner loops); otherwise einsum over the window view (a
        # fused multiply-accumulate with the channels innermost).
        return self.stride == (1, 1) and channels <= 192

    def _work(self) -> int:
        if self.kind == "depthwise":
            return 2 * self.kernel[0] * self.kernel[1] + 3
        return super()._work()

    def _accumulate(self, x: np.ndarray, w: np.ndarray, y: np.ndarray, rows: slice,
                    scratch: np.ndarray | None) -> None:
        n, oh, ow, o = y.shape
        (kh, kw), (sh, sw) = self.kernel, self.stride
        dh = self.dilation[0]
        if self.kind == "pointwise":
            x = x[:, rows.start * sh: (rows.stop - 1) * sh + 1: sh, ::sw]
            x2 = x.reshape(-1, x.shape[3]) if x.flags.c_contiguous else \
                np.ascontiguousarray(x).reshape(-1, x.shape[3])
            np.matmul(x2, w, out=_rows_view(y, o))
            return
        if self.kind == "depthwise":
            x = self._input(x)
            if w.dtype == F32 and self._tiled_taps(o):
                tiled = self._tiled.get(ow)
                if tiled is None:
                    tiled = np.ascontiguousarray(np.broadcast_to(w[:, :, None, :],
                                                                 (kh, kw, ow, o)))
                    self._tiled[ow] = tiled
                for k, (tap, i, j) in enumerate(self._taps(x, rows)):
                    if k == 0:
                        np.multiply(tap, tiled[i, j], out=y)
                    else:
                        np.multiply(tap, tiled[i, j], out=scratch)
                        y += scratch
            elif w.dtype == F32:
                full = (x.shape[1] - dh * (kh - 1) - 1) // sh + 1
                windows = _windows(x, self.kernel, self.stride, self.dilation, (full, ow))
                np.einsum("nhwckl,klc->nhwc", windows[:, rows], w, out=y)
            else:  # float64, exact path
                for k, (tap, i, j) in enumerate(self._taps(x, rows)):
                    if k == 0:
                        np.multiply(tap, w[i, j], out=y)
                    else:
                        y += tap * w[i, j]
            return
        # regular / grouped: im2col in (c, kh, kw) order, one matrix product per group
        full = (x.shape[1] - dh * (kh - 1) - 1) // sh + 1
        windows = _windows(x, self.kernel, self.stride, self.dilation, (full, ow))[:, rows]
        cg = x.shape[3] // self.groups
        og = o // self.groups
        columns = np.empty((cg, kh, kw, n, oh, ow), w.dtype)
        y2 = _rows_view(y, o)
        for g in range(self.groups):
            np.copyto(columns, windows[:, :, :, g * cg:(g + 1) * cg].transpose(3, 4, 5, 0, 1, 2))
            if self.groups == 1:
                np.matmul(columns.reshape(cg * kh * kw, -1).T, w[g], out=y2)
            else:
                y2[:, g * og:(g + 1) * og] = columns.reshape(cg * kh * kw, -1).T @ w[g]


class _Add(_Layer):
    """Residual add. PyTorch mode (float32_step): as PyTorch's quantized add,
    dequantize, add, requantize in float32 (rounding="half_even").

    Hardware mode (hardware=True, i.e. float32_step=False; both roundings): integers
    only, po2 scales 2**ea, 2**eb, 2**ey; m = min(ea, eb, ey), ka = ea - m, kb = eb - m,
    ky = ey - m; S = ((a - za) << ka) + ((b - zb) << kb);
    y = clamp(round_R(S / 2**ky) + zy, relu ? zy : 0, 255). An add whose output scale
    is twice its input scales ties on every odd sum.
    """

    def __init__(self, name: str, inputs: list[str], scales: Sequence[float],
                 zero_points: Sequence[int], relu: bool, rounding: str = "half_even",
                 hardware: bool = False) -> None:
        self.name, self.op, self.inputs = name, "add", inputs
        self.rounding = _check_rounding(rounding)
        self.hardware = bool(hardware)
        self.scales = [F32(s) for s in scales]
        self.zero_points = [int(z) for z in zero_points]
        self.inverse = F32(1.0) / self.scales[2]
        self.relu = relu
        za, zb, zy = self.zero_points
        self.out_zp = float(zy)
        self.lo = float(zy) if relu else 0.0
        po2 = all(math.frexp(float(s))[0] == 0.5 for s in self.scales)
        self.shifts: tuple[int, int, int] | None = None
        if po2:
            exponents = [math.frexp(float(s))[1] - 1 for s in self.scales]
            m = min(exponents)
            ka, kb, ky = (e - m for e in exponents)
            self.shifts = (ka, kb, ky)
        elif self.hardware:
            raise ValueError(f"add {name!r}: hardware arithmetic needs power-of-two scales, "
                             f"got {[float(s) for s in scales]}")
        # Fast path (po2 scales, every value exact in float32): the same real number
        # a * ra + b * rb + kappa with ra = sa / sy, rb = sb / sy, rounded once.
        ratios = [float(s) / float(self.scales[2]) for s in self.scales[:2]]
        kappa = -(za * ratios[0] + zb * ratios[1])
        self.rest = zy % 2 if self.rounding == "half_even" else 0
        top = 255 * (ratios[0] + ratios[1]) + abs(kappa) + zy + 0.5
        self.fast = po2 and top / min(ratios[0], ratios[1], 1.0) < EXACT_F32
        self.ratios = [F32(r) for r in ratios]
        self.beta = F32(kappa + zy - self.rest)

    def out_shape(self, args: list[np.ndarray]) -> tuple[int, ...]:
        a, b = args
        if a.shape != b.shape:
            raise ValueError(f"{self.name}: operand shapes differ: {a.shape} vs {b.shape}")
        return a.shape

    def compute(self, args: list[np.ndarray], out: np.ndarray, pool: _Pool) -> None:
        a, b = args
        if self.hardware:
            assert self.shifts is not None
            (ka, kb, ky), (za, zb, zy) = self.shifts, self.zero_points
            total = (round_shift(a.astype(np.int64) - za, -ka, self.rounding)
                     + round_shift(b.astype(np.int64) - zb, -kb, self.rounding))
            np.clip(round_shift(total, ky, self.rounding) + zy, self.lo, 255.0, out=out)
            return
        if self.fast:
            np.multiply(a, self.ratios[0], out=out)
            other = pool.take(out.shape)
            np.multiply(b, self.ratios[1], out=other)
            out += other
            pool.give(other)
            _finish_fast(out, out, self.beta, self.lo, self.rest, self.rounding)
            return
        (sa, sb, _), (za, zb, zy) = self.scales, self.zero_points
        total = np.subtract(a, F32(za), dtype=F32)
        total *= sa
        other = np.subtract(b, F32(zb), dtype=F32)
        other *= sb
        total += other
        if self.relu:
            np.maximum(total, F32(0.0), out=total)
        total *= self.inverse
        huge = total >= F32(INT32_FLOAT_MAX) if zy >= 128 else None
        np.minimum(total, F32(INT32_FLOAT_MAX), out=total)
        if self.rounding == "half_even":
            np.rint(total, out=total)
        else:
            np.floor(total + F32(0.5), out=total)
        total += F32(zy)
        np.clip(total, 0.0, 255.0, out=total)
        if huge is not None:
            total[huge] = 0.0
        out[...] = total


def _pool_out(size: int, kernel: int, stride: int, pad: int, dilation: int, ceil_mode: bool,
              what: str) -> int:
    """Output length of a pooling window along one axis (PyTorch's pooling_output_shape)."""
    if kernel < 1 or stride < 1 or dilation < 1 or pad < 0:
        raise ValueError(f"{what}: kernel, stride and dilation must be >= 1 and padding >= 0")
    if pad > kernel // 2:  # PyTorch's pool2d_shape_check (the kernel without dilation)
        raise ValueError(f"{what}: padding {pad} is more than half the kernel {kernel}")
    span = size + 2 * pad - dilation * (kernel - 1) - 1
    out = (span + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1  # the last window must start inside the input or its left padding
    if out < 1:
        raise ValueError(f"{what}: input size {size} is too small for kernel {kernel} "
                         f"(padding {pad}, dilation {dilation})")
    return out


def _pool_args(kernel: int | Sequence[int], stride: int | Sequence[int] | None,
               padding: int | Sequence[int], dilation: int | Sequence[int] = 1
               ) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int], tuple[int, int]]:
    """(kernel, stride, padding, dilation) pairs; a missing stride is the kernel (PyTorch)."""
    k = _pair(kernel)
    s = k if stride is None or (isinstance(stride, Sequence) and len(stride) == 0) \
        else _pair(stride)
    return k, s, _pair(padding), _pair(dilation)


def _padded_taps(x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int],
                 pad: tuple[int, int], dilation: tuple[int, int], out_hw: tuple[int, int],
                 fill: float) -> Iterator[np.ndarray]:
    """Views [N, OH, OW, C] of NHWC `x` for every kernel tap, positions outside x = fill."""
    n, h, w, c = x.shape
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel, stride, dilation, out_hw
    need_h = (oh - 1) * sh + (kh - 1) * dh + 1  # rows the windows span (ceil_mode: past h)
    need_w = (ow - 1) * sw + (kw - 1) * dw + 1
    bottom, right = max(0, need_h - pad[0] - h), max(0, need_w - pad[1] - w)
    if pad != (0, 0) or bottom or right:
        full = np.full((n, pad[0] + h + bottom, pad[1] + w + right, c), fill, x.dtype)
        full[:, pad[0]: pad[0] + h, pad[1]: pad[1] + w] = x
        x = full
    for i in range(kh):
        for j in range(kw):
            yield x[:, i * dh: i * dh + sh * (oh - 1) + 1: sh,
                    j * dw: j * dw + sw * (ow - 1) + 1: sw]


def _nhwc(x: np.ndarray, what: str) -> np.ndarray:
    if x.ndim != 4:
        raise ValueError(f"{what}: expected a 4-D [N, C, H, W] input, got shape {x.shape}")
    return x


def _torch_channels_last(shape: tuple[int, ...], stored: bool) -> bool:
    """Whether PyTorch sees an [N, H, W, C] tensor stored as NHWC (`stored`) or NCHW as
    channels-last contiguous: NCHW with one channel or a 1x1 map is both."""
    return stored or shape[3] == 1 or shape[1] * shape[2] == 1


def _unscramble_quirk(x_shape: tuple[int, ...], out: np.ndarray, stored: bool) -> None:
    """PyTorch's quirk for an NCHW-stored [N, C, 1, 1] input (C > 1) pooled to more than
    one position: it counts as channels-last, so the NHWC kernel runs, but the output is
    allocated NCHW and receives the NHWC-ordered bytes. Reproduce that reinterpretation."""
    n, oh, ow, c = out.shape
    if stored or x_shape[1] * x_shape[2] != 1 or c == 1 or oh * ow == 1:
        return
    out[...] = out.copy().reshape(n, c, oh, ow).transpose(0, 2, 3, 1)


class _MaxPool(_Layer):
    """max_pool2d keeping scale and zero point: the largest code of each window.

    Padding never wins (it is -inf); a window that covers padding only (possible with
    dilation) gives code 0, the lowest uint8 value, as PyTorch's kernels do.
    """

    def __init__(self, name: str, inputs: list[str], kernel_size: int | Sequence[int],
                 stride: int | Sequence[int] | None, padding: int | Sequence[int],
                 dilation: int | Sequence[int], ceil_mode: bool, zero_point: int,
                 channels_last: bool = True) -> None:
        self.name, self.op, self.inputs = name, "max_pool2d", inputs
        self.kernel, self.stride, self.padding, self.dilation = _pool_args(
            kernel_size, stride, padding, dilation)
        self.ceil_mode = bool(ceil_mode)
        self.out_zp = float(zero_point)
        self.channels_last = bool(channels_last)
        self.out_hw((1 << 20, 1 << 20))  # reject bad parameters now

    def out_hw(self, hw: tuple[int, int]) -> tuple[int, int]:
        return tuple(_pool_out(hw[a], self.kernel[a], self.stride[a], self.padding[a],  # type: ignore[return-value]
                               self.dilation[a], self.ceil_mode, self.name) for a in (0, 1))

    def out_shape(self, args: list[np.ndarray]) -> tuple[int, ...]:
        n, h, w, c = _nhwc(args[0], self.name).shape
        return (n, *self.out_hw((h, w)), c)

    def compute(self, args: list[np.ndarray], out: np.ndarray, pool: _Pool) -> None:
        taps = _padded_taps(args[0], self.kernel, self.stride, self.padding, self.dilation,
                            out.shape[1:3], -1.0)
        np.copyto(out, next(taps))
        for tap in taps:
            np.maximum(out, tap, out=out)
        np.maximum(out, 0.0, out=out)  # all-padding windows
        _unscramble_quirk(args[0].shape, out, self.channels_last)


class _AvgPool2d(_Layer):
    """avg_pool2d keeping scale and zero point (PyTorch's two kernels, see avg_pool2d)."""

    def __init__(self, name: str, inputs: list[str], kernel_size: int | Sequence[int],
                 stride: int | Sequence[int] | None, padding: int | Sequence[int],
                 ceil_mode: bool, count_include_pad: bool, divisor_override: int | None,
                 zero_point: int, channels_last: bool = True,
                 rounding: str = "half_even", hardware: bool = False) -> None:
        self.name, self.op, self.inputs = name, "avg_pool2d", inputs
        self.hardware = bool(hardware)
        self.kernel, self.stride, self.padding, _ = _pool_args(kernel_size, stride, padding)
        self.ceil_mode, self.count_include_pad = bool(ceil_mode), bool(count_include_pad)
        if divisor_override is not None and int(divisor_override) < 1:
            raise ValueError(f"{name}: divisor_override must be a positive integer, got "
                             f"{divisor_override!r}")
        self.divisor_override = None if divisor_override is None else int(divisor_override)
        self.zero_point = int(zero_point)
        self.out_zp = float(zero_point)
        self.channels_last = bool(channels_last)
        self.rounding = _check_rounding(rounding)
        self._factors: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        self.out_hw((1 << 20, 1 << 20))

    def out_hw(self, hw: tuple[int, int]) -> tuple[int, int]:
        return tuple(_pool_out(hw[a], self.kernel[a], self.stride[a], self.padding[a], 1,  # type: ignore[return-value]
                               self.ceil_mode, self.name) for a in (0, 1))

    def out_shape(self, args: list[np.ndarray]) -> tuple[int, ...]:
        n, h, w, c = _nhwc(args[0], self.name).shape
        return (n, *self.out_hw((h, w)), c)

    def factors(self, hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """(size, divisor) per output position [OH, OW, 1]: codes inside the input, and
        what the sum is divided by (PyTorch's pool_size / size / divisor_override)."""
        cached = self._factors.get(hw)
        if cached is not None:
            return cached
        inside, spans = [], []
        for a, length in zip((0, 1), self.out_hw(hw), strict=True):
            start = np.arange(length) * self.stride[a] - self.padding[a]
            end = np.minimum(start + self.kernel[a], hw[a] + self.padding[a])
            spans.append(end - start)  # window clipped to the padded input
            inside.append(np.minimum(end, hw[a]) - np.maximum(start, 0))
        size = np.multiply.outer(*inside)
        if self.divisor_override is not None:
            divisor = np.full(size.shape, self.divisor_override)
        elif self.count_include_pad:
            divisor = np.multiply.outer(*spans)
        else:
            divisor = size
        self._factors[hw] = result = (size[..., None].astype(np.int64),
                                      divisor[..., None].astype(np.int64))
        return result

    def compute(self, args: list[np.ndarray], out: np.ndarray, pool: _Pool) -> None:
        x = args[0]
        kh, kw = self.kernel
        dtype = F32 if 255 * kh * kw < EXACT_F32 else np.float64  # exact sums
        taps = _padded_taps(x.astype(dtype, copy=False), self.kernel, self.stride,
                            self.padding, (1, 1), out.shape[1:3], 0.0)
        total = next(taps).copy()
        for tap in taps:
            total += tap
        size, divisor = self.factors(x.shape[1:3])
        acc = total - (self.zero_point * size).astype(dtype)  # sum(x - zp), exact
        out[...] = _average(acc, divisor, self.zero_point, self.rounding,
                            _torch_channels_last(x.shape, self.channels_last), self.hardware)
        if not self.hardware:
            _unscramble_quirk(x.shape, out, self.channels_last)


def _average(acc: np.ndarray, divisor: np.ndarray, zero_point: int, rounding: str,
             channels_last: bool, hardware: bool) -> np.ndarray:
    """Codes of an average pool from acc = sum(x - zp) and the divisor (broadcastable).

    Hardware mode (both roundings): the exact integer zp + round_R(acc / d)
    (round_divide). PyTorch mode (half_even): m = fl32(1 / divisor), p = fl32(acc * m);
    the channels-last kernel rounds p and adds zp, the NCHW kernel rounds fl32(p + zp).
    """
    if hardware:
        value = round_divide(acc.astype(np.int64), divisor, rounding) + zero_point
    else:
        m = (1.0 / divisor).astype(F32)
        p = np.multiply(acc.astype(F32), m, dtype=F32)
        if channels_last:
            value = np.rint(p) + F32(zero_point)
        else:
            value = np.rint(np.add(p, F32(zero_point), dtype=F32))
    return np.clip(value, 0.0, 255.0)


class _AdaptiveAvgPool(_Layer):
    """adaptive_avg_pool2d keeping scale and zero point (see adaptive_avg_pool2d)."""

    def __init__(self, name: str, inputs: list[str], output_size: Sequence[int],
                 zero_point: int, channels_last: bool = True,
                 rounding: str = "half_even", hardware: bool = False) -> None:
        self.name, self.op, self.inputs = name, "adaptive_avg_pool2d", inputs
        self.hardware = bool(hardware)
        self.output_size = _pair(output_size)
        if min(self.output_size) < 1:
            raise ValueError(f"{name}: output_size must be >= 1, got {output_size!r}")
        self.zero_point = int(zero_point)
        self.out_zp = float(zero_point)
        self.channels_last = bool(channels_last)
        self.rounding = _check_rounding(rounding)

    def out_shape(self, args: list[np.ndarray]) -> tuple[int, ...]:
        n, _, _, c = _nhwc(args[0], self.name).shape
        return (n, *self.output_size, c)

    def compute(self, args: list[np.ndarray], out: np.ndarray, pool: _Pool) -> None:
        x = args[0]
        _, h, w, _ = x.shape
        oh, ow = self.output_size
        nhwc = _torch_channels_last(x.shape, self.channels_last)
        zp = self.zero_point
        for i in range(oh):
            h0, h1 = (i * h) // oh, -(-((i + 1) * h) // oh)
            for j in range(ow):
                w0, w1 = (j * w) // ow, -(-((j + 1) * w) // ow)
                size = (h1 - h0) * (w1 - w0)
                total = x[:, h0:h1, w0:w1].sum(axis=(1, 2), dtype=np.float64)  # exact
                if self.hardware:  # zp + round_R(sum(x - zp) / size), exact integers
                    acc = total.astype(np.int64) - zp * size
                    value = np.clip(round_divide(acc, size, self.rounding) + zp, 0, 255)
                elif nhwc:  # rne(fl32(fl32(sum - zp*size) * fl32(1/size))) + zp
                    value = (total - zp * size).astype(F32) * (F32(1.0) / F32(size))
                    value = np.clip(np.rint(value) + zp, 0.0, 255.0)
                else:  # NCHW kernel: rne(fl32(sum * fl32(fl32(1/kh) / kw))), zp untouched
                    r = (F32(1.0) / F32(h1 - h0)) / F32(w1 - w0)
                    value = np.clip(np.rint(total.astype(F32) * r), 0.0, 255.0)
                out[:, i, j] = value
        if not self.hardware:
            _unscramble_quirk(x.shape, out, self.channels_last)


def _clamp_bound(value: float, scale: float, zero_point: int) -> int:
    """The code PyTorch's quantize_val gives a real bound: clamp(zp + rne(fl32(value *
    fl32(1 / fl32(scale)))), 0, 255) (fbgemm::Quantize, non-legacy)."""
    inverse = F32(1.0) / F32(scale)
    return int(np.clip(zero_point + np.rint(F32(value) * inverse), 0, 255))


class _Clamp(_Layer):
    """relu / relu6 on codes, keeping scale and zero point: clamp(x, lo, hi)."""

    def __init__(self, name: str, op: str, inputs: list[str], lo: int, hi: int,
                 zero_point: int) -> None:
        self.name, self.op, self.inputs = name, op, inputs
        self.lo, self.hi = float(lo), float(hi)
        self.out_zp = float(zero_point)

    def compute(self, args: list[np.ndarray], out: np.ndarray, pool: _Pool) -> None:
        np.clip(args[0], self.lo, self.hi, out=out)


class _Cat(_Layer):
    """Concatenation; an input whose qparams differ from the output's is requantized."""

    def __init__(self, name: str, inputs: list[str], dim: int, scales: Sequence[float],
                 zero_points: Sequence[int], out_scale: float, out_zero_point: int,
                 rounding: str = "half_even", hardware: bool = False) -> None:
        self.name, self.op, self.inputs = name, "cat", inputs
        self.hardware = bool(hardware)
        if len(scales) != len(inputs) or len(zero_points) != len(inputs) or not inputs:
            raise ValueError(f"{name}: need one scale and zero point per input")
        self.dim = int(dim)
        self.scales = [float(s) for s in scales]
        self.zero_points = [int(z) for z in zero_points]
        self.out_scale, self.zero_point = float(out_scale), int(out_zero_point)
        self.out_zp = float(out_zero_point)
        self.inverse = F32(1.0) / F32(self.out_scale)
        self.rounding = _check_rounding(rounding)
        # hardware mode: input i is y = clamp(round_R((x - z_i) / 2**k_i) + z_out), k_i =
        # e_out - e_i (k_i < 0: a left shift), through round_shift
        self.shifts: list[int] = []
        if self.hardware:
            try:
                out_e = _po2(self.out_scale, "output scale")
                self.shifts = [out_e - _po2(s, f"input {i} scale")
                               for i, s in enumerate(self.scales)]
            except ValueError as error:
                raise ValueError(f"cat {name!r}: hardware arithmetic needs power-of-two "
                                 f"scales ({error})") from None

    def axis(self, ndim: int) -> int:
        """Internal axis of PyTorch dim `dim` (NCHW dim 1 is the last NHWC axis)."""
        dim = self.dim + ndim if self.dim < 0 else self.dim
        if not 0 <= dim < ndim:
            raise ValueError(f"{self.name}: dim {self.dim} out of range for {ndim}-D inputs")
        return (0, 3, 1, 2)[dim] if ndim == 4 else dim

    def out_shape(self, args: list[np.ndarray]) -> tuple[int, ...]:
        first = args[0]
        axis = self.axis(first.ndim)
        for x in args[1:]:
            if x.ndim != first.ndim or any(
                    a != b for k, (a, b) in enumerate(zip(x.shape, first.shape, strict=True))
                    if k != axis):
                raise ValueError(f"{self.name}: input shapes {first.shape} and {x.shape} "
                                 f"do not concatenate along dim {self.dim}")
        shape = list(first.shape)
        shape[axis] = sum(x.shape[axis] for x in args)
        return tuple(shape)

    def compute(self, args: list[np.ndarray], out: np.ndarray, pool: _Pool) -> None:
        axis = self.axis(out.ndim)
        start = 0
        for i, (x, scale, zp) in enumerate(zip(args, self.scales, self.zero_points,
                                               strict=True)):
            index = [slice(None)] * out.ndim
            index[axis] = slice(start, start + x.shape[axis])
            start += x.shape[axis]
            part = out[tuple(index)]
            if (scale, zp) == (self.out_scale, self.zero_point):
                np.copyto(part, x)  # PyTorch copies the bytes
                continue
            if self.hardware:
                value = round_shift(x.astype(np.int64) - zp, self.shifts[i], self.rounding)
                np.clip(value + self.zero_point, 0, 255, out=part)
                continue
            real = np.multiply(F32(scale), np.subtract(x, F32(zp), dtype=F32), dtype=F32)
            value = np.multiply(real, self.inverse, dtype=F32)
            if self.rounding == "half_even":
                np.rint(value, out=value)
            else:
                np.floor(value + F32(0.5), out=value)
            value += F32(self.zero_point)
            np.clip(value, 0.0, 255.0, out=part)


class _Flatten(_Layer):
    def __init__(self, name: str, inputs: list[str], zero_point: int, start_dim: int = 1) -> None:
        self.name, self.op, self.inputs = name, "flatten", inputs
        if int(start_dim) != 1:
            raise ValueError(f"{name}: flatten start_dim must be 1 (keep the batch), got "
                             f"{start_dim!r}")
        self.out_zp = float(zero_point)

    def out_shape(self, args: list[np.ndarray]) -> tuple[int, ...]:
        x = args[0]
        return x.shape[0], int(np.prod(x.shape[1:]))

    def compute(self, args: list[np.ndarray], out: np.ndarray, pool: _Pool) -> None:
        x = args[0]
        if x.ndim == 4:  # flatten in PyTorch's (C, H, W) order
            x = x.transpose(0, 3, 1, 2)
        out[...] = x.reshape(out.shape)


class _Dequantize(_Layer):
    def __init__(self, name: str, inputs: list[str], scale: float, zero_point: int) -> None:
        self.name, self.op, self.inputs = name, "dequantize", inputs
        self.scale, self.zero_point = F32(scale), int(zero_point)

    def compute(self, args: list[np.ndarray], out: np.ndarray, pool: _Pool) -> None:
        np.subtract(args[0], F32(self.zero_point), out=out, dtype=F32)
        out *= self.scale


# ------------------------------------------------------------------ layouts


def _to_internal(x: np.ndarray) -> np.ndarray:
    """PyTorch layout (uint8 / int codes) -> internal float32 codes (NHWC)."""
    x = np.asarray(x)
    if x.ndim == 4:
        return np.ascontiguousarray(x.transpose(0, 2, 3, 1), dtype=F32)
    return np.ascontiguousarray(x, dtype=F32)


def _to_torch_layout(codes: np.ndarray) -> np.ndarray:
    """Internal float32 NHWC codes -> uint8 in PyTorch's layout (NCHW is a view)."""
    out = codes.astype(np.uint8)
    return out.transpose(0, 3, 1, 2) if out.ndim == 4 else out


def _check_images(images: np.ndarray) -> np.ndarray:
    x = np.asarray(images, dtype=F32)
    if x.ndim != 4:
        raise ValueError(f"images must be float32 [N, C, H, W], got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("images must be finite")
    return x


def _apply(layer: _Layer, args: list[np.ndarray], pool: _Pool | None = None) -> np.ndarray:
    """One layer on internal inputs (first one unpadded); a new output array."""
    pool = pool or _Pool()
    if layer.pad != (0, 0):
        args = [_pad(args[0], layer.pad, layer.pad_value), *args[1:]]
    out = np.empty(layer.out_shape(args), F32)
    with _one_blas_thread():
        layer.compute(args, out, pool)
    return out


# ------------------------------------------------------------------ the model


class IntegerModel:
    """The whole network as integer operations, built from a package's files only.

    One inference runs at a time per instance (calls are serialized by a lock).
    """

    def __init__(self, layers: list[_Layer], rounding: str, float32_step: bool) -> None:
        self.layers = layers
        self.rounding = rounding
        self.float32_step = float32_step
        self._by_name = {layer.name: layer for layer in layers}
        self._pool = _Pool()
        self._lock = threading.Lock()
        # Border each output buffer carries so that padded convolutions read it in place.
        self._out_pad: dict[str, tuple[int, int]] = {layer.name: (0, 0) for layer in layers}
        for layer in layers:
            if layer.pad != (0, 0):
                have = self._out_pad[layer.inputs[0]]
                self._out_pad[layer.inputs[0]] = (max(have[0], layer.pad[0]),
                                                  max(have[1], layer.pad[1]))
        self._uses: dict[str, int] = {}
        for layer in layers:
            for source in layer.inputs:
                self._uses[source] = self._uses.get(source, 0) + 1

    @classmethod
    def from_package(cls, package: Package | PathLike, rounding: str = "half_even",
                     float32_step: bool | None = None) -> IntegerModel:
        """Golden model of `package` (a loaded Package or its directory).

        rounding: 'half_even' (PyTorch) or 'half_up' (add 2**(n-1), shift right).
        float32_step: PyTorch's float32 arithmetic (default: with half_even); False is
        the integer-only hardware arithmetic for every op (docs/arithmetic.md).
        """
        rounding = _check_rounding(rounding)
        step = _float32_step(rounding, float32_step)
        if not isinstance(package, Package):
            package = load_package(package)
        layers: list[_Layer] = []
        outputs: dict[str, tuple[float, int]] = {}  # name -> (scale, zero point) of its codes
        formats: dict[str, bool] = {}  # name -> PyTorch stores its output channels-last
        for entry in package.layers:
            layers.append(_build_layer(package, entry, outputs, rounding, step, formats))
        return cls(layers, rounding, step)

    # -- structure
    @property
    def names(self) -> list[str]:
        """Layer names in execution order (the manifest's)."""
        return [layer.name for layer in self.layers]

    @property
    def output_name(self) -> str:
        """The last layer (the dequantize node: its output is the float32 logits)."""
        return self.layers[-1].name

    def op(self, name: str) -> str:
        """The manifest op of layer `name`."""
        return self._layer(name).op

    def inputs(self, name: str) -> list[str]:
        """The producers of layer `name` (manifest names)."""
        return list(self._layer(name).inputs)

    def _layer(self, name: str) -> _Layer:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"no layer {name!r}") from None

    def weight(self, name: str) -> np.ndarray:
        """A copy of a weighted layer's int8 weight (int64, OIHW or [out, in])."""
        return self._weighted(name).params.weight.copy()

    def set_weight(self, name: str, weight: np.ndarray) -> None:
        """Replace a weighted layer's integer weight in this model (not in the package)."""
        layer = self._weighted(name)
        weight = np.asarray(weight, dtype=np.int64)
        if weight.shape != layer.params.weight.shape:
            raise ValueError(f"{name}: weight shape {weight.shape}, expected "
                             f"{layer.params.weight.shape}")
        p = layer.params
        with self._lock:
            layer.set_params(_Weights(weight.copy(), p.bias, p.shift, p.x_zp, p.y_zp, p.relu))

    def _weighted(self, name: str) -> _Weighted:
        layer = self._layer(name)
        if not isinstance(layer, _Weighted):
            raise KeyError(f"layer {name!r} is {layer.op}, not conv2d or linear")
        return layer

    def add_shifts(self, name: str) -> tuple[int, int, int]:
        """(ka, kb, ky) of add layer `name`, the shifts of its hardware arithmetic:
        with po2 scales 2**ea, 2**eb (inputs) and 2**ey (output), m = min(ea, eb, ey),
        ka = ea - m, kb = eb - m, ky = ey - m (all >= 0, at least one 0). ValueError
        for an add whose scales are not powers of two; KeyError if not an add."""
        layer = self._layer(name)
        if not isinstance(layer, _Add):
            raise KeyError(f"layer {name!r} is {layer.op}, not add")
        if layer.shifts is None:
            raise ValueError(f"add {name!r}: scales {[float(s) for s in layer.scales]} are "
                             f"not powers of two")
        return layer.shifts

    def accumulator(self, name: str, inputs: np.ndarray | Sequence[np.ndarray], channel: int,
                    y: int = 0, x: int = 0) -> int:
        """The exact `acc + bias` (before the shift) of conv2d / linear layer `name` at
        output channel `channel`, row `y`, column `x` of image 0.

        inputs: the layer's input codes in PyTorch's layout (uint8 NCHW, or [N, features]
        for linear; a one-element list of it is accepted too). acc = sum over the
        channel's window of (x_q - zp_x) * w_q, padding contributing 0 (it holds zp_x),
        with the layer's stride, dilation and groups (depthwise included); a linear
        layer takes y = x = 0. A Python int (no float anywhere).
        """
        layer = self._weighted(name)
        codes = inputs if isinstance(inputs, np.ndarray) else inputs[0]
        codes = np.asarray(codes).astype(np.int64)
        p = layer.params
        out_channels = p.weight.shape[0]
        if not 0 <= channel < out_channels:
            raise ValueError(f"{name}: channel {channel} out of range 0..{out_channels - 1}")
        weight = p.weight[channel].astype(np.int64)
        if isinstance(layer, _Linear):
            if codes.ndim != 2 or codes.shape[1] != weight.shape[0] or (y, x) != (0, 0):
                raise ValueError(f"{name}: expected [N, {weight.shape[0]}] input codes and "
                                 f"y = x = 0, got shape {codes.shape}, y={y}, x={x}")
            acc = int(((codes[0] - p.x_zp) * weight).sum())
            return acc + int(p.bias[channel])
        assert isinstance(layer, _Conv)
        if codes.ndim != 4 or codes.shape[1] != layer.in_channels:
            raise ValueError(f"{name}: expected [N, {layer.in_channels}, H, W] input codes, "
                             f"got shape {codes.shape}")
        in_per_group, kh, kw = weight.shape
        group = channel // (out_channels // layer.groups)
        plane = codes[0, group * in_per_group:(group + 1) * in_per_group] - p.x_zp
        (sh, sw), (ph, pw), (dh, dw) = layer.stride, layer.pad, layer.dilation
        h, w = plane.shape[1:]
        oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
        ow = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
        if not (0 <= y < oh and 0 <= x < ow):
            raise ValueError(f"{name}: output position ({y}, {x}) outside the {oh}x{ow} map")
        acc = 0
        for i in range(kh):
            row = y * sh - ph + i * dh
            for j in range(kw):
                col = x * sw - pw + j * dw
                if 0 <= row < h and 0 <= col < w:  # padding holds zp_x: contributes 0
                    acc += int((plane[:, row, col] * weight[:, i, j]).sum())
        return acc + int(p.bias[channel])

    # -- inference
    def run(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """Every layer's output for float32 NCHW normalized `images`.

        Keys are manifest layer names in execution order; values are uint8 codes in
        PyTorch's layout (NCHW, or [N, features] after flatten), except the final
        dequantize node, whose value is the float32 logits `scale * (q - zp)`.
        """
        return self._forward(images, keep=True)

    def logits(self, images: np.ndarray) -> np.ndarray:
        """float32 [N, classes]: the dequantized output, without keeping intermediates."""
        return self._forward(images, keep=False)[self.output_name]

    def _forward(self, images: np.ndarray, keep: bool) -> dict[str, np.ndarray]:
        images = _check_images(images)
        with self._lock, _one_blas_thread():
            pool = self._pool
            live: dict[str, tuple[np.ndarray, tuple[int, int], np.ndarray]] = {}
            uses = dict(self._uses)
            result: dict[str, np.ndarray] = {}
            last = self.layers[-1]
            for layer in self.layers:
                if isinstance(layer, _Quantize):
                    args = [images]
                else:
                    args = [_crop(live[source][0], live[source][1],
                                  layer.pad if index == 0 else (0, 0))
                            for index, source in enumerate(layer.inputs)]
                shape = layer.out_shape(args)
                pad = self._out_pad[layer.name]
                if len(shape) == 4:
                    n, h, w, c = shape
                    shape = (n, h + 2 * pad[0], w + 2 * pad[1], c)
                if layer.planar:
                    buffer = pool.take((shape[0], shape[3], shape[1], shape[2]))
                    full = buffer.transpose(0, 2, 3, 1)
                else:
                    buffer = full = pool.take(shape)
                if pad != (0, 0):
                    _fill_border(full, pad, layer.out_zp)
                out = _crop(full, pad, (0, 0))
                if keep and layer.writes_codes:
                    codes = np.empty(out.shape, np.uint8)
                    layer.compute(args, out, pool, codes)  # type: ignore[call-arg]
                    result[layer.name] = codes.transpose(0, 3, 1, 2) if codes.ndim == 4 \
                        else codes
                else:
                    layer.compute(args, out, pool)
                live[layer.name] = (full, pad, buffer)
                if isinstance(layer, _Dequantize):
                    if keep or layer is last:
                        result[layer.name] = out.copy()
                elif keep and layer.name not in result:
                    result[layer.name] = _to_torch_layout(out)
                for source in layer.inputs:
                    uses[source] -= 1
                    if uses[source] == 0:
                        pool.give(live.pop(source)[2])
            for _, _, buffer in live.values():
                pool.give(buffer)
            pool.trim()
        return result

    def run_layer(self, name: str, inputs: Sequence[np.ndarray]) -> np.ndarray:
        """One layer on given inputs in PyTorch's layout (uint8 codes; float32 NCHW
        images for the quantize node); returns its output as run() does."""
        layer = self._layer(name)
        if isinstance(layer, _Quantize):
            args = [_check_images(inputs[0])]
        else:
            if len(inputs) != len(layer.inputs):
                raise ValueError(f"{name} takes {len(layer.inputs)} inputs, got {len(inputs)}")
            args = [_to_internal(x) for x in inputs]
        with self._lock:
            out = _apply(layer, args, self._pool)
        return out if isinstance(layer, _Dequantize) else _to_torch_layout(out)


# ------------------------------------------------------------------ building from a package


def _scalar(values: Sequence[Any], what: str, where: str) -> Any:
    if len(values) != 1:
        raise PackageError(where, f"{what}: expected one value, got {len(values)}")
    return values[0]


def _build_layer(package: Package, entry: Mapping[str, Any],
                 outputs: dict[str, tuple[float, int]], rounding: str, step: bool,
                 formats: dict[str, bool] | None = None) -> _Layer:
    """The layer of manifest node `entry`; records its output qparams in `outputs` and
    in `formats` whether PyTorch stores its output channels-last (the input quantize
    gives NCHW, convolutions give channels-last, other ops keep their input's)."""
    formats = {} if formats is None else formats
    name, op, inputs = entry["name"], entry["op"], list(entry["inputs"])
    where = str(package.manifest_path)
    try:
        layer = _make_layer(package, entry, name, op, inputs, where, outputs, rounding, step,
                            formats)
    except (ValueError, TypeError, KeyError) as error:
        if isinstance(error, PackageError):
            raise
        detail = f"field {error}" if isinstance(error, KeyError) else str(error)
        raise PackageError(where, f"layer {name!r} ({op}): {detail}") from None
    if op == "quantize":
        formats[name] = False
    elif op == "conv2d":
        formats[name] = True
    elif op == "cat":
        formats[name] = all(formats.get(source, True) for source in inputs)
    elif inputs:
        formats[name] = formats.get(inputs[0], True)
    return layer


def _make_layer(package: Package, entry: Mapping[str, Any], name: str, op: str,
                inputs: list[str], where: str, outputs: dict[str, tuple[float, int]],
                rounding: str, step: bool, formats: dict[str, bool]) -> _Layer:

    def expect_input(index: int, scale: float, zero_point: int) -> None:
        source = inputs[index]
        got = outputs[source]
        if (float(np.float32(got[0])), got[1]) != (float(np.float32(scale)), int(zero_point)):
            raise PackageError(where, f"layer {name!r}: input {index} qparams "
                               f"({scale}, {zero_point}) differ from the output of {source!r} "
                               f"({got[0]}, {got[1]})")

    def stored_channels_last() -> bool:
        return formats.get(inputs[0], True)

    if op == "quantize":
        q = package.qparams(name)
        scale = _scalar(q["scale"]["output"], "scale", where)
        zero_point = _scalar(q["zero_point"]["output"], "zero point", where)
        outputs[name] = (scale, zero_point)
        return _Quantize(name, scale, zero_point)
    if op in ("conv2d", "linear"):
        q = package.qparams(name)
        x_scale = _scalar(q["scale"]["input"], "input scale", where)
        x_zp = _scalar(q["zero_point"]["input"], "input zero point", where)
        y_scale = _scalar(q["scale"]["output"], "output scale", where)
        y_zp = _scalar(q["zero_point"]["output"], "output zero point", where)
        expect_input(0, x_scale, x_zp)
        weight = package.weight_int8(name)
        w_scales = np.broadcast_to(np.asarray(q["scale"]["weight"], np.float64), weight.shape[:1])
        try:
            shift = np.array([_po2(y_scale, "output scale") - _po2(x_scale, "input scale")
                              - _po2(s, "weight scale") for s in w_scales], np.int64)
        except ValueError as error:
            raise PackageError(where, f"layer {name!r}: {error}") from None
        params = _Weights(weight, package.bias_int16(name), shift, int(x_zp), int(y_zp),
                          bool(entry["relu"]))
        outputs[name] = (y_scale, y_zp)
        if op == "linear":
            return _Linear(name, "linear", inputs, params, rounding, step)
        return _Conv(name, inputs, params, entry["stride"], entry["padding"], entry["dilation"],
                     int(entry["groups"]), rounding, step)
    if op == "add":
        q = package.qparams(name)
        scales = [_scalar(q["scale"][role], role, where) for role in ("input0", "input1", "output")]
        zps = [_scalar(q["zero_point"][role], role, where)
               for role in ("input0", "input1", "output")]
        expect_input(0, scales[0], zps[0])
        expect_input(1, scales[1], zps[1])
        outputs[name] = (scales[2], zps[2])
        return _Add(name, inputs, scales, zps, bool(entry["relu"]), rounding, not step)
    if op == "cat":
        q = package.qparams(name)
        roles = [f"input{i}" for i in range(len(inputs))]
        scales = [_scalar(q["scale"][role], role, where) for role in roles]
        zps = [_scalar(q["zero_point"][role], role, where) for role in roles]
        for index in range(len(inputs)):
            expect_input(index, scales[index], zps[index])
        out_scale = _scalar(q["scale"]["output"], "output scale", where)
        out_zp = _scalar(q["zero_point"]["output"], "output zero point", where)
        outputs[name] = (out_scale, out_zp)
        return _Cat(name, inputs, int(entry.get("dim", 1)), scales, zps, out_scale, out_zp,
                    rounding, not step)
    if op in _KEEPS_QPARAMS and len(inputs) != 1:
        raise PackageError(where, f"layer {name!r}: {op} takes one input, got {len(inputs)}")
    if op == "max_pool2d":
        outputs[name] = outputs[inputs[0]]
        return _MaxPool(name, inputs, entry["kernel_size"], entry.get("stride"),
                        entry.get("padding", 0), entry.get("dilation", 1),
                        bool(entry.get("ceil_mode", False)), outputs[name][1],
                        stored_channels_last())
    if op == "avg_pool2d":
        outputs[name] = outputs[inputs[0]]
        return _AvgPool2d(name, inputs, entry["kernel_size"], entry.get("stride"),
                          entry.get("padding", 0), bool(entry.get("ceil_mode", False)),
                          bool(entry.get("count_include_pad", True)),
                          entry.get("divisor_override"), outputs[name][1],
                          stored_channels_last(), rounding, not step)
    if op == "adaptive_avg_pool2d":
        scale, zero_point = outputs[inputs[0]]
        outputs[name] = (scale, zero_point)
        return _AdaptiveAvgPool(name, inputs, entry["output_size"], zero_point,
                                stored_channels_last(), rounding, not step)
    if op == "relu":
        outputs[name] = outputs[inputs[0]]
        zero_point = int(outputs[name][1])
        return _Clamp(name, "relu", inputs, zero_point, 255, zero_point)
    if op == "relu6":
        outputs[name] = outputs[inputs[0]]
        scale, zero_point = outputs[name]
        return _Clamp(name, "relu6", inputs, _clamp_bound(0.0, scale, zero_point),
                      _clamp_bound(6.0, scale, zero_point), zero_point)
    if op == "flatten":
        outputs[name] = outputs[inputs[0]]
        return _Flatten(name, inputs, outputs[name][1], int(entry.get("start_dim", 1)))
    if op == "dequantize":
        scale, zero_point = outputs[inputs[0]]
        return _Dequantize(name, inputs, scale, zero_point)
    raise PackageError(where, f"layer {name!r}: op {op!r} is not supported by the golden model")


#: Ops whose output keeps the input's scale and zero point (one input, no files).
_KEEPS_QPARAMS = ("max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "relu", "relu6", "flatten")


# ------------------------------------------------------------------ single operations


def _float32_step(rounding: str, float32_step: bool | None) -> bool:
    step = rounding == "half_even" if float32_step is None else bool(float32_step)
    if step and rounding != "half_even":
        raise ValueError("the float32 step is PyTorch's arithmetic; it needs rounding='half_even'")
    return step


def _weights(weight: np.ndarray, bias: np.ndarray, shift: int | Sequence[int] | np.ndarray,
             x_zero_point: int, y_zero_point: int, relu: bool) -> _Weights:
    weight = np.asarray(weight, dtype=np.int64)
    out_channels = weight.shape[0]
    shifts = np.broadcast_to(np.asarray(shift, dtype=np.int64), (out_channels,)).copy()
    biases = np.broadcast_to(np.asarray(bias, dtype=np.int64), (out_channels,)).copy()
    return _Weights(weight, biases, shifts, int(x_zero_point), int(y_zero_point), bool(relu))


def quantize(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """uint8 NCHW codes of float32 NCHW `x`: clamp(round_half_even(x * fl32(1/scale)) + zp)."""
    return _to_torch_layout(_apply(_Quantize("input", scale, zero_point), [_check_images(x)]))


def conv2d(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, *, x_zero_point: int,
           y_zero_point: int, shift: int | Sequence[int] | np.ndarray,
           stride: int | Sequence[int] = 1, padding: int | Sequence[int] = 0,
           dilation: int | Sequence[int] = 1, groups: int = 1, relu: bool = False,
           rounding: str = "half_even", float32_step: bool | None = None) -> np.ndarray:
    """Integer conv2d: uint8 NCHW `x`, int8 OIHW `weight`, int16 `bias` -> uint8 NCHW.

    Padding inserts zp_x (real zero); shift n per tensor or per output channel
    (n <= 0 is a left shift); `relu` clamps at y_zero_point.
    """
    rounding = _check_rounding(rounding)
    layer = _Conv("conv2d", ["x"], _weights(weight, bias, shift, x_zero_point, y_zero_point,
                                             relu),
                  stride, padding, dilation, groups, rounding,
                  _float32_step(rounding, float32_step))
    return _to_torch_layout(_apply(layer, [_to_internal(x)]))


def linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, *, x_zero_point: int,
           y_zero_point: int, shift: int | Sequence[int] | np.ndarray, relu: bool = False,
           rounding: str = "half_even", float32_step: bool | None = None) -> np.ndarray:
    """Integer linear layer: uint8 [N, in], int8 [out, in], int16 bias -> uint8 [N, out]."""
    rounding = _check_rounding(rounding)
    layer = _Linear("linear", "linear", ["x"],
                    _weights(weight, bias, shift, x_zero_point, y_zero_point, relu), rounding,
                    _float32_step(rounding, float32_step))
    return _to_torch_layout(_apply(layer, [_to_internal(x)]))


def add(a: np.ndarray, b: np.ndarray, *, scales: Sequence[float], zero_points: Sequence[int],
        relu: bool = False, rounding: str = "half_even",
        float32_step: bool | None = None) -> np.ndarray:
    """Quantized residual add of uint8 codes `a`, `b` (same shape, NCHW or 2-D).

    scales / zero_points: (input0, input1, output). float32_step (default: True for
    half_even, False for half_up): as PyTorch computes it in float32,
    clamp(round_half_even((s0 (a - z0) + s1 (b - z1)) * fl32(1/s_out)) + z_out).
    float32_step=False: the hardware arithmetic, integers only (po2 scales, see _Add):
    clamp(round_R((((a - z0) << ka) + ((b - z1) << kb)) / 2**ky) + z_out).
    """
    rounding = _check_rounding(rounding)
    layer = _Add("add", ["a", "b"], scales, zero_points, relu, rounding,
                 not _float32_step(rounding, float32_step))
    return _to_torch_layout(_apply(layer, [_to_internal(a), _to_internal(b)]))


def max_pool2d(x: np.ndarray, kernel_size: int | Sequence[int],
               stride: int | Sequence[int] | None = None, padding: int | Sequence[int] = 0,
               dilation: int | Sequence[int] = 1, ceil_mode: bool = False, *,
               channels_last: bool = True) -> np.ndarray:
    """uint8 NCHW max pool keeping the input's scale and zero point (PyTorch's
    quantized max_pool2d): the largest code of each window, padding excluded; a window
    that covers padding only (possible with dilation) gives code 0. Output size as
    PyTorch (ceil_mode: the last window must start inside the input or left padding).
    `channels_last=False` (an NCHW-stored input) only matters for PyTorch's quirk with a
    1x1 input map pooled to more positions (see docs/golden-model.md)."""
    layer = _MaxPool("max_pool2d", ["x"], kernel_size, stride, padding, dilation, ceil_mode, 0,
                     channels_last)
    return _to_torch_layout(_apply(layer, [_to_internal(_nchw(x))]))


def avg_pool2d(x: np.ndarray, kernel_size: int | Sequence[int],
               stride: int | Sequence[int] | None = None, padding: int | Sequence[int] = 0,
               ceil_mode: bool = False, count_include_pad: bool = True,
               divisor_override: int | None = None, *, zero_point: int = 0,
               channels_last: bool = True, rounding: str = "half_even",
               float32_step: bool | None = None) -> np.ndarray:
    """uint8 NCHW average pool keeping the input's scale and zero point.

    Per window: acc = sum(x - zp) over the codes inside the input, d = divisor_override,
    or the window clipped to the padded input (count_include_pad), or the count inside;
    m = fl32(1/d), p = fl32(acc * m). PyTorch's channels-last kernel (every tensor after
    a convolution) gives clamp(rne(p) + zp); its NCHW kernel (`channels_last=False`: a
    tensor straight from the input quantize; used anyway for one channel or a 1x1 map)
    gives clamp(rne(fl32(p + zp))), which differs on ties when zp is odd.
    That is float32_step=True (the default with half_even). float32_step=False (the
    default with half_up), the hardware arithmetic: clamp(zp + round_R(acc / d)), exact
    integers (round_divide), the same for both memory formats.
    """
    rounding = _check_rounding(rounding)
    layer = _AvgPool2d("avg_pool2d", ["x"], kernel_size, stride, padding, ceil_mode,
                       count_include_pad, divisor_override, zero_point, channels_last, rounding,
                       not _float32_step(rounding, float32_step))
    return _to_torch_layout(_apply(layer, [_to_internal(_nchw(x))]))


def adaptive_avg_pool2d(x: np.ndarray, output_size: int | Sequence[int] = 1,
                        zero_point: int = 0, *, channels_last: bool = True,
                        rounding: str = "half_even",
                        float32_step: bool | None = None) -> np.ndarray:
    """uint8 NCHW adaptive average pool keeping the input's scale and zero point.

    Bin i of an axis of length L into O bins spans [floor(i L / O), ceil((i+1) L / O)).
    Channels-last kernel (the default; every tensor after a convolution):
    clamp(rne(fl32(fl32(sum(x) - zp * size) * fl32(1 / size))) + zp). NCHW kernel
    (`channels_last=False`, e.g. straight from the input quantize):
    rne(fl32(sum(x) * fl32(fl32(1 / kh) / kw))), the zero point not subtracted.
    That is float32_step=True (the default with half_even). float32_step=False (the
    default with half_up), the hardware arithmetic: clamp(zp + round_R(acc / size)),
    acc = sum(x - zp), exact integers (round_divide), for both memory formats.
    """
    rounding = _check_rounding(rounding)
    layer = _AdaptiveAvgPool("avgpool", ["x"], _pair(output_size), zero_point, channels_last,
                             rounding, not _float32_step(rounding, float32_step))
    return _to_torch_layout(_apply(layer, [_to_internal(_nchw(x))]))


def relu(x: np.ndarray, zero_point: int) -> np.ndarray:
    """Quantized ReLU keeping scale and zero point: max(x, zp) (NCHW or 2-D codes)."""
    zp = int(zero_point)
    return _to_torch_layout(_apply(_Clamp("relu", "relu", ["x"], zp, 255, zp),
                                   [_to_internal(x)]))


def relu6(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Quantized ReLU6 / hardtanh(0, 6) keeping scale and zero point: clamp(x, zp, hi)
    with hi = clamp(zp + rne(fl32(6 * fl32(1 / scale))), 0, 255) (PyTorch quantizes the
    bounds 0 and 6 with quantize_val, rounding before adding zp)."""
    zp = int(zero_point)
    layer = _Clamp("relu6", "relu6", ["x"], _clamp_bound(0.0, scale, zp),
                   _clamp_bound(6.0, scale, zp), zp)
    return _to_torch_layout(_apply(layer, [_to_internal(x)]))


def cat(inputs: Sequence[np.ndarray], *, scales: Sequence[float],
        zero_points: Sequence[int], out_scale: float | None = None,
        out_zero_point: int | None = None, dim: int = 1,
        rounding: str = "half_even", float32_step: bool | None = None) -> np.ndarray:
    """Quantized concatenation of uint8 codes (NCHW or 2-D) along PyTorch dim `dim`.

    Output qparams default to input 0's (torch.cat on quantized tensors). An input with
    the output's qparams is copied; another is requantized as PyTorch does:
    clamp(rne(fl32(fl32(s_i * (x - z_i)) * fl32(1 / s_out))) + z_out, 0, 255) (exact for
    po2 scales: rne((x - z_i) * 2**(e_i - e_out)) + z_out) with float32_step (the default
    with half_even). float32_step=False (the default with half_up), the hardware
    arithmetic: clamp(round_shift(x - z_i, e_out - e_i, rounding) + z_out), po2 only.
    """
    rounding = _check_rounding(rounding)
    scale = float(scales[0]) if out_scale is None else float(out_scale)
    zp = int(zero_points[0]) if out_zero_point is None else int(out_zero_point)
    names = [f"x{i}" for i in range(len(inputs))]
    layer = _Cat("cat", names, dim, scales, zero_points, scale, zp, rounding,
                 not _float32_step(rounding, float32_step))
    return _to_torch_layout(_apply(layer, [_to_internal(x) for x in inputs]))


def flatten(x: np.ndarray) -> np.ndarray:
    """[N, C, H, W] codes -> [N, C*H*W] in PyTorch's (C, H, W) order (start_dim 1)."""
    return _to_torch_layout(_apply(_Flatten("flatten", ["x"], 0), [_to_internal(_nchw(x))]))


def _nchw(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"expected uint8 [N, C, H, W] codes, got shape {x.shape}")
    return x


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """float32 `scale * (q - zero_point)`."""
    return _apply(_Dequantize("output", ["q"], scale, zero_point), [np.asarray(q)])
