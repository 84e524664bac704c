"""ComputeCoverage: which datapath situations the checked steps exercised.

Every checked step of a layer-by-layer or chained run contributes to these bins,
computed from the golden input codes and the layer's integers (not from the RTL):

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
padding of a 1x1 kernel); every declared bin with no hit is a hole, listed in the
hole report (coverage-<test>-<sim>.txt / .json).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
from cosim.golden.engine_program import unpack_activation
from cosim.golden.image import record_fields
from pyuvm import ConfigDB, uvm_subscriber

KINDS = ("regular", "depthwise", "pointwise", "linear", "add", "pool")
EDGES = ("top", "bottom", "left", "right")
SHIFT_SIGNS = ("negative", "zero", "positive")


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


def _round_shift_parts(v: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(tie, value before clamping) of v / 2^n with n per channel (int64 arrays)."""
    n = np.broadcast_to(n, v.shape)
    pos = n > 0
    k = np.where(pos, n, 0)
    low = v & ((np.int64(1) << k) - 1)
    half = np.where(pos, np.int64(1) << np.maximum(k - 1, 0), -1)
    tie = pos & (low == half)
    q = np.where(pos, (v + np.where(pos, half, 0)) >> k, v << np.where(n < 0, -n, 0))
    return tie, q


class ComputeCoverage(uvm_subscriber):
    def build_phase(self) -> None:
        self.cfg = ConfigDB().get(self, "", "compute_cfg")
        self.hits: Counter[str] = Counter()
        self.seen: set[tuple[int, int]] = set()

    def write(self, obs: Any) -> None:
        program = self.cfg.program
        for index in obs.command.check:
            key = (obs.command.image, index)
            if key in self.seen:
                continue
            self.seen.add(key)
            step = program.steps[index]
            try:
                self._sample(step, obs.command.image)
            except Exception as e:  # coverage never hides a result; say what was skipped
                self.hits[f"error {type(e).__name__}: {e}"[:120]] += 0

    def _codes(self, tensor: Any, image: int) -> np.ndarray:
        cfg, program = self.cfg, self.cfg.program
        name = program.aliases.get(tensor.name, tensor.name)
        words = (cfg.expected[f"input/{image}"] if name == program.input_name
                 else cfg.expected[f"out/{image}/{name}"])
        return unpack_activation(words, tensor, program.lanes).astype(np.int64)

    def _sample(self, step: Any, image: int) -> None:
        kind = step.kind if step.op == "weighted" else step.op
        if step.op == "add":
            self._sample_add(step, image)
            return
        if step.op == "pool":
            self.hits["kind=pool stride=1"] += 1
            x = self._codes(step.inputs[0], image)
            zp = step.inputs[0].zero_point
            d = x.shape[1] * x.shape[2]
            acc = (x - zp).sum(axis=(1, 2))
            if np.any((2 * np.abs(acc)) % (2 * d) == d):
                self.hits["tie kind=pool"] += 1
            return
        package = self.cfg.golden.package
        rec = record_fields(package, step.name)
        stride = rec.stride[0] if kind in ("regular", "depthwise") else 1
        self.hits[f"kind={kind} stride={stride}"] += 1
        x = self._codes(step.inputs[0], image) - rec.input_zero_point
        w = package.weight_int8(step.name).astype(np.int64)
        bias = package.bias_int16(step.name).astype(np.int64)
        shift = np.asarray(rec.shift, dtype=np.int64)
        shifts = np.broadcast_to(shift, (w.shape[0],))
        for sign, hit in (("negative", shifts < 0), ("zero", shifts == 0),
                          ("positive", shifts > 0)):
            if hit.any():
                self.hits[f"shift kind={kind} n={sign}"] += 1
        acc = self._accumulate(x, w, rec, kind) + bias[:, None, None]
        tie, q = _round_shift_parts(acc, shifts[:, None, None])
        if tie.any():
            self.hits[f"tie kind={kind}"] += 1
        y = q + rec.output_zero_point
        lo = rec.output_zero_point if rec.relu else 0
        if (y < lo).any():
            self.hits[f"saturate kind={kind} end=low"] += 1
        if (y > 255).any():
            self.hits[f"saturate kind={kind} end=high"] += 1
        if kind in ("regular", "depthwise"):
            self._sample_edges(kind, stride, rec, x.shape[1:], step.output)

    def _accumulate(self, x: np.ndarray, w: np.ndarray, rec: Any, kind: str) -> np.ndarray:
        """acc[o, y, x] = sum (x - zp) * w, exact (int64)."""
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

    def _sample_edges(self, kind: str, stride: int, rec: Any, hw: tuple[int, int],
                      out: Any) -> None:
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = rec.kernel, rec.stride, rec.padding, \
            rec.dilation
        h, w = hw
        reach_y = (out.h - 1) * sh - ph + dh * (kh - 1)
        reach_x = (out.w - 1) * sw - pw + dw * (kw - 1)
        for edge, hit in (("top", ph > 0), ("bottom", reach_y >= h), ("left", pw > 0),
                          ("right", reach_x >= w)):
            if hit:
                self.hits[f"pad_edge kind={kind} stride={stride} edge={edge}"] += 1

    def _sample_add(self, step: Any, image: int) -> None:
        self.hits["kind=add stride=1"] += 1
        a = self._codes(step.inputs[0], image)
        b = self._codes(step.inputs[1], image)
        zps, shifts = step.field("zps"), step.field("shifts")
        za, zb, zy, relu = zps & 255, (zps >> 8) & 255, (zps >> 16) & 255, (zps >> 24) & 1
        ka, kb, ky = shifts & 255, (shifts >> 8) & 255, (shifts >> 16) & 255
        s = ((a - za) << ka) + ((b - zb) << kb)
        tie, q = _round_shift_parts(s, np.int64(ky))
        if tie.any():
            self.hits["tie kind=add"] += 1
        y = q + zy
        if (y < (zy if relu else 0)).any():
            self.hits["saturate kind=add end=low"] += 1
        if (y > 255).any():
            self.hits["saturate kind=add end=high"] += 1

    # ---- report
    def report(self) -> dict[str, Any]:
        bins = declared_bins()
        holes = [b for b in bins if self.hits.get(b, 0) == 0]
        hit = len(bins) - len(holes)
        return {"bins": len(bins), "hit": hit,
                "percent": round(100.0 * hit / len(bins), 1) if bins else 100.0,
                "holes": holes, "hits": {b: self.hits.get(b, 0) for b in bins},
                "skipped": [k for k in self.hits if k.startswith("error")]}

    def hole_report(self) -> str:
        r = self.report()
        lines = [f"compute coverage: {r['hit']}/{r['bins']} bins ({r['percent']}%)", "holes:"]
        lines += [f"  {h}" for h in r["holes"]] or ["  (none)"]
        return "\n".join(lines)
