"""The compute coverage space and which bins one step's stimulus hits (pure NumPy).

The bins of a step are a property of its stimulus: the golden input codes and the
layer's integers, not the RTL's outputs. tb/compute/prepare.py computes them for
every (image, step) before the simulator starts (coverage.json in the work folder);
the ComputeCoverage subscriber (tb/compute/coverage.py) counts a step's bins once
the run has fed it exactly that stimulus.

    kind x stride        regular/depthwise/pointwise/linear/add/pool x stride 1/2
    padding edge         per (kind, stride): an output read padding at the top, bottom,
                         left, right edge
    rounding tie         per kind: an output whose shifted value is exactly x.5
                         (weighted: low n bits of acc + bias = 100..0; add: ky > 0
                         and the low ky bits of S = 100..0; pool: 2 * remainder = d)
    saturation           per kind: an output clamped at the low end (below 0, or below
                         zp_y with ReLU) / at the high end (above 255)
    negative shift       weighted layers with n < 0 / n = 0 / n > 0

The declared space leaves out what cannot exist (a linear layer with stride 2,
padding of a 1x1 kernel); every declared bin with no hit is a hole.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from cosim.golden.image import record_fields

KINDS = ("regular", "depthwise", "pointwise", "linear", "add", "pool")
EDGES = ("top", "bottom", "left", "right")
SHIFT_SIGNS = ("negative", "zero", "positive")

#: codes_of(tensor) -> int64 [C, H, W] codes of an input tensor of the step
CodesOf = Callable[[Any], np.ndarray]


def declared_bins() -> list[str]:
    bins = []
    for kind in KINDS:
        strides = (1, 2) if kind in ("regular", "depthwise") else (1,)
        for s in strides:
            bins.append(f"kind={kind} stride={s}")
            if kind in ("regular", "depthwise"):
                bins += [f"pad_edge kind={kind} stride={s} edge={e}" for e in EDGES]
        bins.append(f"tie kind={kind}")
        if kind != "pool":
            bins += [f"saturate kind={kind} end=low", f"saturate kind={kind} end=high"]
        if kind in ("regular", "depthwise", "pointwise", "linear"):
            bins += [f"shift kind={kind} n={sign}" for sign in SHIFT_SIGNS]
    return bins


def round_shift_parts(v: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(tie, value before clamping) of v / 2^n with n per channel (int64 arrays)."""
    n = np.broadcast_to(n, v.shape)
    pos = n > 0
    k = np.where(pos, n, 0)
    low = v & ((np.int64(1) << k) - 1)
    half = np.where(pos, np.int64(1) << np.maximum(k - 1, 0), -1)
    tie = pos & (low == half)
    q = np.where(pos, (v + np.where(pos, half, 0)) >> k, v << np.where(n < 0, -n, 0))
    return tie, q


def step_bins(step: Any, package: Any, codes_of: CodesOf) -> list[str]:
    """The declared bins step `step` (golden.engine_program.Step) hits on the input
    codes `codes_of` gives; `package` has the layer's integers."""
    if step.op == "add":
        return _add_bins(step, codes_of)
    if step.op == "pool":
        bins = ["kind=pool stride=1"]
        x = codes_of(step.inputs[0])
        zp = step.inputs[0].zero_point
        d = x.shape[1] * x.shape[2]
        acc = (x - zp).sum(axis=(1, 2))
        if np.any((2 * np.abs(acc)) % (2 * d) == d):
            bins.append("tie kind=pool")
        return bins
    kind = step.kind
    rec = record_fields(package, step.name)
    stride = rec.stride[0] if kind in ("regular", "depthwise") else 1
    bins = [f"kind={kind} stride={stride}"]
    x = codes_of(step.inputs[0]) - rec.input_zero_point
    w = package.weight_int8(step.name).astype(np.int64)
    bias = package.bias_int16(step.name).astype(np.int64)
    shifts = np.broadcast_to(np.asarray(rec.shift, dtype=np.int64), (w.shape[0],))
    for sign, hit in (("negative", shifts < 0), ("zero", shifts == 0),
                      ("positive", shifts > 0)):
        if hit.any():
            bins.append(f"shift kind={kind} n={sign}")
    acc = accumulate(x, w, rec, kind) + bias[:, None, None]
    tie, q = round_shift_parts(acc, shifts[:, None, None])
    if tie.any():
        bins.append(f"tie kind={kind}")
    y = q + rec.output_zero_point
    lo = rec.output_zero_point if rec.relu else 0
    if (y < lo).any():
        bins.append(f"saturate kind={kind} end=low")
    if (y > 255).any():
        bins.append(f"saturate kind={kind} end=high")
    if kind in ("regular", "depthwise"):
        bins += _edge_bins(kind, stride, rec, x.shape[1:], step.output)
    return bins


def accumulate(x: np.ndarray, w: np.ndarray, rec: Any, kind: str) -> np.ndarray:
    """acc[o, y, x] = sum (x - zp) * w over the window, exact (int64); x already has the
    input zero point subtracted (padding reads 0)."""
    if kind == "linear":
        return (w @ x.reshape(-1))[:, None, None]
    kh, kw = rec.kernel
    (sh, sw), (ph, pw), (dh, dw) = rec.stride, rec.padding, rec.dilation
    c, h, wd = x.shape
    xp = np.zeros((c, h + 2 * ph, wd + 2 * pw), dtype=np.int64)
    xp[:, ph:ph + h, pw:pw + wd] = x
    oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (wd + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((w.shape[0], oh, ow), dtype=np.int64)
    for i in range(kh):
        for j in range(kw):
            y0, x0 = i * dh, j * dw
            tap = xp[:, y0:y0 + sh * (oh - 1) + 1:sh, x0:x0 + sw * (ow - 1) + 1:sw]
            if kind == "depthwise":
                out += w[:, 0, i, j][:, None, None] * tap
            else:
                out += np.einsum("oc,chw->ohw", w[:, :, i, j], tap)
    return out


def _edge_bins(kind: str, stride: int, rec: Any, hw: tuple[int, int], out: Any) -> list[str]:
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = rec.kernel, rec.stride, rec.padding, \
        rec.dilation
    h, w = hw
    reach_y = (out.h - 1) * sh - ph + dh * (kh - 1)
    reach_x = (out.w - 1) * sw - pw + dw * (kw - 1)
    return [f"pad_edge kind={kind} stride={stride} edge={edge}"
            for edge, hit in (("top", ph > 0), ("bottom", reach_y >= h), ("left", pw > 0),
                              ("right", reach_x >= w)) if hit]


def _add_bins(step: Any, codes_of: CodesOf) -> list[str]:
    bins = ["kind=add stride=1"]
    a = codes_of(step.inputs[0])
    b = codes_of(step.inputs[1])
    zps, shifts = step.field("zps"), step.field("shifts")
    za, zb, zy, relu = zps & 255, (zps >> 8) & 255, (zps >> 16) & 255, (zps >> 24) & 1
    ka, kb, ky = shifts & 255, (shifts >> 8) & 255, (shifts >> 16) & 255
    s = ((a - za) << ka) + ((b - zb) << kb)
    tie, q = round_shift_parts(s, np.int64(ky))
    if tie.any():
        bins.append("tie kind=add")
    y = q + zy
    if (y < (zy if relu else 0)).any():
        bins.append("saturate kind=add end=low")
    if (y > 255).any():
        bins.append("saturate kind=add end=high")
    return bins
