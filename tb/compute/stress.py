"""The engine STRESS network: a synthetic parameter package that drives every datapath
corner of the compute engine the shipped MobileNetV2 does not reach.

    from cosim.tb.compute.stress import make_stress_package
    make_stress_package(Path("build/compute/stress/package"))

No dataset ("data" section absent): tb/compute/prepare.test_images feeds seeded normal
images (seed 0, std 2) of model.input_shape [3, 9, 9]. All scales are powers of two;
weights int8 in the full weight.range [-128, 127]; int16 biases; seeded (STRESS_SEED).

Network (execution order, default accelerator: 8 lanes, tile 8x8, int16 biases):

    input    quantize, 3x9x9, scale 2^-5, zp 100: odd map, input zp != 0
    c1       regular 3x3/2 pad 1, 3 -> 12, 9x9 -> 5x5: stride-2 right/bottom padding
             edges (odd map), OC 12 (a partial tile), n = 7, ReLU with zp_y = 7 (the
             clamp at the zero point), two biases saturated high (int16 32767)
    dw1      depthwise 3x3/1 pad 1, 12, 5x5: per-channel shifts -3..8 (n < 0, n = 0,
             n > 0; the second tile's shifts differ from the first's)
    dw2      depthwise 3x3/2 pad 1, 5x5 -> 3x3: depthwise stride-2 right/bottom
             padding, ReLU zp_y = 3
    pw_a     pointwise 12 -> 5, n = 0 (weights in [-1, 1])
    pw_b     pointwise 5 -> 4096, n = -2 (left shifts, saturating and not), one-step
             pixels (IC 5 <= 8 lanes), 4032 biases saturated high (codes 255, zp 0)
    big      regular 3x3/1 pad 1, 4096 -> 8 on 3x3: channel 0 all -128, channel 1 all
             +127 on inputs 255 (zp 0): |acc| > 2^30 at the centre pixel (still
             within int32: < 1.21e9); per-cycle partial sums beyond 16 bits; n = 16
    pw_c     pointwise 12 -> 8 (from dw2), n = 3 (pointwise ties)
    add_0    add + ReLU, big + pw_c (8x3x3): input scales 2^-5 (zp 50, 20), output
             2^-4 (ky = 1: ties), zp_y = 60 (ReLU clamp at 60), high saturation
    tail     regular 2x2/1 pad 0, 8 -> 24, 3x3 -> 2x2: per-channel shifts (-1, 0, > 0)
    avgpool  adaptive_avg_pool2d to 1x1 of 24x2x2: divisor 4 (ties: 24 channels, so
             that a wrong tie rule shows), input zp 140
    flatten, fc  linear 24 -> 10: per-channel shifts (-1, 0, > 0; tile 2 differs)
    output   dequantize

Weights: about 316K (big: 294,912), so a Verilator run stays a few seconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from cosim.quant.formats import atomic_directory
from cosim.quant.package_writer import BIAS_MAX, PackageWriter

#: the RNG seed of every weight and bias (pinned)
STRESS_SEED = 20261202
INPUT_SHAPE = (3, 9, 9)
WEIGHT_RANGE = (-128, 127)


def _q(exp: int, zp: int) -> dict[str, Any]:
    return {"scale": 2.0 ** exp, "zero_point": int(zp)}


IN_Q = _q(-5, 100)
C1_Q = _q(-5, 7)       # ReLU, zp 7
DW1_Q = _q(-4, 128)
DW2_Q = _q(-4, 3)      # ReLU, zp 3
PWA_Q = _q(-7, 128)
PWB_Q = _q(-14, 0)     # saturates at 255 in 4032 channels
BIG_Q = _q(-5, 50)
PWC_Q = _q(-5, 20)
ADD_Q = _q(-4, 60)     # ReLU, zp 60; 2x the input scales: ky = 1
TAIL_Q = _q(-3, 140)
FC_Q = _q(-2, 128)


def _full(rng: np.random.Generator, shape: tuple[int, ...], lo: int = WEIGHT_RANGE[0],
          hi: int = WEIGHT_RANGE[1]) -> np.ndarray:
    return rng.integers(lo, hi + 1, shape).astype(np.int64)


def _per_channel(ex: int, ey: int, shifts: list[int]) -> list[float]:
    """Weight scales 2^ew with n = ey - ex - ew = shifts[c]."""
    return [2.0 ** (ey - ex - n) for n in shifts]


def stress_layers() -> list[dict[str, Any]]:
    """The layers in execution order: weighted ones with int8 weights, int biases (before
    the int16 clip) and qparams; add/pool/flatten/dequantize as manifest fragments."""
    rng = np.random.default_rng(STRESS_SEED)
    L: list[dict[str, Any]] = []

    def conv(name, inputs, w, w_scale, bias_int, x_q, y_q, relu, stride=1, padding=0,
             groups=1):
        L.append({"name": name, "op": "conv2d", "inputs": [inputs], "weight": w,
                  "w_scale": w_scale, "bias_int": np.asarray(bias_int, dtype=np.int64),
                  "input": x_q, "output": y_q, "relu": relu, "stride": [stride, stride],
                  "padding": [padding, padding], "dilation": [1, 1], "groups": groups})

    # c1: regular 3x3/2 pad 1 on the odd 9x9 map, 12 output channels, n = 7, ReLU zp 7
    b = rng.integers(-6000, 6000, 12)
    b[[3, 9]] = 10 ** 6  # saturate int16 high (32767 >> 7 = 256 > 255 - 7)
    conv("c1", "input", _full(rng, (12, 3, 3, 3)), 2.0 ** -7, b, IN_Q, C1_Q, True, 2, 1)
    # dw1: depthwise 3x3/1 pad 1, per-channel shifts incl. n < 0, n = 0 (tile 2 != tile 1)
    dw1_shifts = [3, 0, -2, 5, 1, -1, 2, 4, -3, 6, 0, 8]
    conv("dw1", "c1", _full(rng, (12, 1, 3, 3)), _per_channel(-5, -4, dw1_shifts),
         rng.integers(-3000, 3000, 12), C1_Q, DW1_Q, False, 1, 1, 12)
    # dw2: depthwise 3x3/2 pad 1 on the odd 5x5 map, n = 7, ReLU zp 3
    conv("dw2", "dw1", _full(rng, (12, 1, 3, 3)), 2.0 ** -7, rng.integers(-3000, 3000, 12),
         DW1_Q, DW2_Q, True, 2, 1, 12)
    # pw_a: pointwise 12 -> 5, n = 0 (small weights: codes spread around zp 128)
    conv("pw_a", "dw2", _full(rng, (5, 12, 1, 1), -1, 1), 2.0 ** -3,
         rng.integers(-60, 60, 5), DW2_Q, PWA_Q, False)
    # pw_b: pointwise 5 -> 4096, n = -2; channels >= 64: tiny weights, bias 32767 -> 255
    w = _full(rng, (4096, 5, 1, 1), -2, 2)
    w[:64] = _full(rng, (64, 5, 1, 1), -1, 1)
    w[:8] = _full(rng, (8, 5, 1, 1))  # full range: saturating left shifts both ways
    b = np.full(4096, 10 ** 7, dtype=np.int64)
    b[:64] = rng.integers(-40, 40, 64)
    conv("pw_b", "pw_a", w, 2.0 ** -5, b, PWA_Q, PWB_Q, False)
    # big: regular 3x3/1 pad 1, IC 4096 on the 3x3 map: |acc| > 2^30 in channels 0 and 1
    w = _full(rng, (8, 4096, 3, 3))
    w[0] = WEIGHT_RANGE[0]
    w[1] = WEIGHT_RANGE[1]
    conv("big", "pw_b", w, 2.0 ** -7, rng.integers(-BIAS_MAX - 1, BIAS_MAX + 1, 8), PWB_Q,
         BIG_Q, False, 1, 1)
    # pw_c: pointwise 12 -> 8 from dw2, n = 3 (weights in [-8, 8]: codes spread, ties)
    conv("pw_c", "dw2", _full(rng, (8, 12, 1, 1), -8, 8), 2.0 ** -4,
         rng.integers(-500, 500, 8), DW2_Q, PWC_Q, False)
    L.append({"name": "add_0", "op": "add", "inputs": ["big", "pw_c"], "input": [BIG_Q, PWC_Q],
              "output": ADD_Q, "relu": True})
    # tail: regular 2x2/1 pad 0 (3x3 -> 2x2, even: pool ties), per-channel shifts
    # (24 channels: enough pool ties, half of which a wrong tie rule gets wrong)
    tail_shifts = [8, -1, 0, 9, 7, 10, 6, 8, 7, 9, 8, 6, 10, 7, 9, 8, 8, 7, 9, 10, 6, 8, 7, 9]
    conv("tail", "add_0", _full(rng, (24, 8, 2, 2)), _per_channel(-4, -3, tail_shifts),
         rng.integers(-8000, 8000, 24), ADD_Q, TAIL_Q, False)
    L.append({"name": "avgpool", "op": "adaptive_avg_pool2d", "inputs": ["tail"],
              "output_size": [1, 1], "input": TAIL_Q, "output": TAIL_Q})
    L.append({"name": "flatten", "op": "flatten", "inputs": ["avgpool"]})
    # channels 2..6: n = 1, 2 with weights in [-1, 1] (in-range outputs, rounding ties)
    fc_shifts = [-1, 0, 1, 1, 1, 2, 1, 8, 9, 3]
    w = _full(rng, (10, 24))
    w[2:7] = _full(rng, (5, 24), -1, 1)
    L.append({"name": "fc", "op": "linear", "inputs": ["flatten"], "weight": w,
              "w_scale": _per_channel(-3, -2, fc_shifts),
              "bias_int": rng.integers(-2000, 2000, 10), "input": TAIL_Q, "output": FC_Q,
              "relu": False})
    L.append({"name": "output", "op": "dequantize", "inputs": ["fc"], "input": FC_Q})
    return L


def make_stress_package(root: Path) -> Path:
    """Write the stress package into directory `root` (replaced atomically); return it.
    Deterministic: the same bytes on every call."""
    root = Path(root)
    with atomic_directory(root) as tmp:
        w = PackageWriter(tmp)
        w.quantize_input(IN_Q)
        for p in stress_layers():
            if p["op"] in ("conv2d", "linear"):
                node = {k: v for k, v in p.items()
                        if k not in ("weight", "bias_int", "w_scale")}
                w.weighted(node, p["weight"], p["bias_int"], p["w_scale"],
                           weight_range=WEIGHT_RANGE)
            elif p["op"] == "add":
                w.add(p)
            else:
                w.node(p)
        w.finish({"arch": "engine-stress-net", "input_shape": list(INPUT_SHAPE)},
                 {"weights": "int8 symmetric, po2", "activations": "uint8, po2",
                  "weight_range": list(WEIGHT_RANGE)},
                 {"batches": 0})
    return root
