"""Power-of-two (po2) scale selection and the observers that use it.

Every scale the flow produces is an exact power of two, 2**e with integer e,
so a rescale in hardware is an arithmetic shift. Conventions:

* weights: signed, symmetric, zero point 0, integer range [qmin, qmax]
  (default [-64, 64], see WEIGHT_RANGE_GUARDED);
* activations: unsigned 8-bit affine, integer range [0, 255], zero point in
  [0, 255] chosen so that the float range maps onto the integer range.

Scale choice methods (`method`):

* ``minmax``: the smallest po2 scale whose range covers the observed min/max
  (no clipping);
* ``percentile``: as minmax, on the 0.01/99.99 percentiles of a sample;
* ``mse``: among the minmax exponent and the four below it (each halving the
  step and clipping more), the one with the least squared quantization error
  on a sample of the observed values.
"""

from __future__ import annotations

import math

import torch
from cosim.quant.choices import METHODS
from torch.ao.quantization.observer import MinMaxObserver, PerChannelMinMaxObserver

# fbgemm on CPUs without VNNI multiplies uint8 x int8 pairs with vpmaddubsw,
# which saturates the sum of two adjacent products at int16. With activations
# in [0, 255] and |w| <= 64 the worst pair is 255*64*2 = 32640 < 32767, so the
# PyTorch reference never saturates and equals an exact integer datapath.
WEIGHT_RANGE_GUARDED = (-64, 64)
WEIGHT_RANGE_FULL = (-128, 127)
ACTIVATION_RANGE = (0, 255)

MSE_EXTRA_EXPONENTS = 4
PERCENTILE = 99.99


def po2_exponent_at_least(value: float) -> int:
    """Smallest integer e with 2**e >= value (value > 0)."""
    if not value > 0 or not math.isfinite(value):
        raise ValueError(f"po2 exponent needs a positive finite value, got {value}")
    mantissa, exponent = math.frexp(value)  # value = mantissa * 2**exponent, 0.5 <= m < 1
    return exponent - 1 if mantissa == 0.5 else exponent


def is_po2(scale: float) -> bool:
    """True when `scale` is exactly 2**e for an integer e."""
    return scale > 0 and math.frexp(scale)[0] == 0.5


def log2_exact(scale: float) -> int:
    """Integer e with 2**e == scale; ValueError if scale is not an exact power of two."""
    if not is_po2(scale):
        raise ValueError(f"{scale!r} is not a power of two")
    return math.frexp(scale)[1] - 1


def _affine_zero_point(min_val: float, scale: float, qmin: int, qmax: int) -> int:
    """Zero point that maps min_val to qmin (clamped into [qmin, qmax]); 0 for min >= 0."""
    if min_val >= 0:
        return qmin
    return int(min(max(round(qmin - min_val / scale), qmin), qmax))


def _fake_quant_mse(values: torch.Tensor, scale: float, zero_point: int, qmin: int,
                    qmax: int) -> float:
    q = torch.clamp(torch.round(values / scale) + zero_point, qmin, qmax)
    return float(torch.mean(((q - zero_point) * scale - values) ** 2))


def minmax_po2(min_val: float, max_val: float, qmin: int, qmax: int,
               symmetric: bool) -> tuple[float, int]:
    """Smallest po2 scale (and its zero point) whose integer range covers [min_val, max_val]."""
    min_val, max_val = min(min_val, 0.0), max(max_val, 0.0)
    if symmetric:
        amax = max(-min_val, max_val)
        # qmin may be -qmax-1; the symmetric range is limited by the smaller side.
        limit = min(-qmin, qmax)
        exponent = po2_exponent_at_least(amax / limit) if amax > 0 else -24
        return 2.0 ** exponent, 0
    span = max_val - min_val
    exponent = po2_exponent_at_least(span / (qmax - qmin)) if span > 0 else -24
    while True:
        scale = 2.0 ** exponent
        # Round the zero point up so min_val stays inside the range; that can cost
        # the top end one step, in which case the next power of two covers both.
        zero_point = qmin if min_val >= 0 else math.ceil(qmin - min_val / scale)
        if zero_point <= qmax and (qmax - zero_point) * scale >= max_val:
            return scale, int(zero_point)
        exponent += 1


def choose_po2_qparams(values: torch.Tensor, qmin: int, qmax: int, symmetric: bool,
                       method: str) -> tuple[float, int]:
    """Po2 scale and zero point for `values` (any shape) with the given method."""
    if method not in METHODS:
        raise ValueError(f"unknown calibration method {method!r}; expected one of {METHODS}")
    values = values.detach().float().flatten()
    if values.numel() == 0:
        return 1.0, 0 if symmetric else qmin
    if method == "percentile":
        low = float(torch.quantile(values, 1 - PERCENTILE / 100)) if values.numel() > 1 else 0.0
        high = float(torch.quantile(values, PERCENTILE / 100)) if values.numel() > 1 else 0.0
        return minmax_po2(low, high, qmin, qmax, symmetric)
    scale, zero_point = minmax_po2(float(values.min()), float(values.max()), qmin, qmax,
                                   symmetric)
    if method == "minmax":
        return scale, zero_point
    best = (_fake_quant_mse(values, scale, zero_point, qmin, qmax), scale, zero_point)
    min_val, max_val = float(values.min()), float(values.max())
    for step in range(1, MSE_EXTRA_EXPONENTS + 1):
        candidate = scale / 2 ** step
        if symmetric:
            zero_points = [0]
        else:
            # Clip at the bottom, at the top, or evenly at both ends.
            low_anchor = _affine_zero_point(min_val, candidate, qmin, qmax)
            high_anchor = int(min(max(round(qmax - max_val / candidate), qmin), qmax))
            zero_points = sorted({low_anchor, high_anchor, (low_anchor + high_anchor) // 2})
        for zp in zero_points:
            error = _fake_quant_mse(values, candidate, zp, qmin, qmax)
            if error < best[0]:
                best = (error, candidate, zp)
    return best[1], best[2]


class Po2Observer(MinMaxObserver):
    """Per-tensor observer with power-of-two scales.

    Records min/max like MinMaxObserver and, for the percentile and mse
    methods, a bounded random sample of the observed values (a fixed number
    per call, seeded, so calibration is reproducible).
    """

    def __init__(self, dtype: torch.dtype = torch.quint8,
                 qscheme: torch.qscheme = torch.per_tensor_affine,
                 quant_min: int | None = None, quant_max: int | None = None,
                 method: str = "mse", samples_per_call: int = 65536,
                 max_samples: int = 1 << 20, **kwargs) -> None:
        super().__init__(dtype=dtype, qscheme=qscheme, quant_min=quant_min,
                         quant_max=quant_max, **kwargs)
        if method not in METHODS:
            raise ValueError(f"unknown calibration method {method!r}; expected one of {METHODS}")
        self.method = method
        self.samples_per_call = samples_per_call
        self.max_samples = max_samples
        self._samples: list[torch.Tensor] = []
        self._sample_count = 0
        self._generator = torch.Generator().manual_seed(0)

    def forward(self, x_orig: torch.Tensor) -> torch.Tensor:
        x_orig = super().forward(x_orig)
        if self.method != "minmax" and self._sample_count < self.max_samples:
            flat = x_orig.detach().float().flatten()
            if flat.numel() > self.samples_per_call:
                index = torch.randint(flat.numel(), (self.samples_per_call,),
                                      generator=self._generator)
                flat = flat[index]
            self._samples.append(flat.clone())
            self._sample_count += flat.numel()
        return x_orig

    @torch.jit.export
    def calculate_qparams(self) -> tuple[torch.Tensor, torch.Tensor]:
        symmetric = self.qscheme in (torch.per_tensor_symmetric, torch.per_channel_symmetric)
        if self.method == "minmax" or not self._samples:
            scale, zero_point = minmax_po2(float(self.min_val), float(self.max_val),
                                           self.quant_min, self.quant_max, symmetric)
        else:
            samples = torch.cat(self._samples)
            # Keep the true extremes in the sample so minmax candidates stay exact.
            samples = torch.cat([samples, torch.stack([self.min_val, self.max_val]).float()])
            scale, zero_point = choose_po2_qparams(samples, self.quant_min, self.quant_max,
                                                   symmetric, self.method)
        return (torch.tensor([scale], dtype=torch.float32),
                torch.tensor([zero_point], dtype=torch.int32))

    def reset_samples(self) -> None:
        """Forget the sample (min/max are kept)."""
        self._samples = []
        self._sample_count = 0


class Po2PerChannelObserver(PerChannelMinMaxObserver):
    """Per-output-channel symmetric weight observer with power-of-two scales.

    Keeps the last observed weight tensor so the mse/percentile methods can
    evaluate each channel on all of its values.
    """

    def __init__(self, dtype: torch.dtype = torch.qint8,
                 qscheme: torch.qscheme = torch.per_channel_symmetric,
                 quant_min: int | None = None, quant_max: int | None = None,
                 method: str = "mse", ch_axis: int = 0, **kwargs) -> None:
        super().__init__(ch_axis=ch_axis, dtype=dtype, qscheme=qscheme, quant_min=quant_min,
                         quant_max=quant_max, **kwargs)
        if method not in METHODS:
            raise ValueError(f"unknown calibration method {method!r}; expected one of {METHODS}")
        self.method = method
        self._last: torch.Tensor | None = None

    def forward(self, x_orig: torch.Tensor) -> torch.Tensor:
        self._last = x_orig.detach().float()
        return super().forward(x_orig)

    @torch.jit.export
    def calculate_qparams(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._last is None:
            return super().calculate_qparams()
        rows = self._last.transpose(0, self.ch_axis).reshape(self._last.shape[self.ch_axis], -1)
        scales = [choose_po2_qparams(row, self.quant_min, self.quant_max, True, self.method)[0]
                  for row in rows]
        return (torch.tensor(scales, dtype=torch.float32),
                torch.zeros(len(scales), dtype=torch.int32))
