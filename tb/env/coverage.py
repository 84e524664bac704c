"""Functional coverage: dict-based bins (no pyvsc), a text + JSON report listing holes.

Groups
- kinds: layer kind (golden.layout.LAYER_KINDS: regular, depthwise, pointwise, linear,
  grouped; kinds the network lacks are unreachable) x segment kind (weights,
  biases, record) x back-pressure pattern (none, random, bursty), per stored segment.
- tile_crossings: a stored segment whose words cross an input-channel tile
  (ic_tile), output-channel tile (oc_tile) or depthwise channel tile (c_tile)
  boundary, per layer kind; and the same with a stall or idle gap on the first
  word of a tile ("<boundary>_under_pressure").
- region_bounds: first and last address of every region (weights, biases, records)
  written.
- segment_bounds: first and last word of every segment written.
- malformations: each malformation tag driven; error_flags bits observed;
  reset in the middle of a segment.

Bins that this layout cannot produce (e.g. ic_tile crossings of a regular conv with
3 input channels) are reported as unreachable, not as holes.

`python -m cosim.tb.env coverage [build/test-results/coverage-*.json]` merges reports.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from cosim.golden.layout import LAYER_KINDS
from cosim.tb.env.config import BACKPRESSURE_PATTERNS, FLAG_NAMES, EnvConfig
from cosim.tb.env.items import MALFORMATIONS, ResetItem, SegmentItem, header_spec
from cosim.tb.env.stream_monitor import SegmentObservation
from pyuvm import ConfigDB, uvm_component, uvm_subscriber

SEG_KINDS = ("weights", "biases", "record")
TENSORS = ("weight", "bias", "record")


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


class CoverageModel:
    """Bins (name -> hits) per group, plus unreachable bins; no simulator needed."""

    def __init__(self, layout: Any) -> None:
        self.layout = layout
        self.groups: dict[str, dict[str, int]] = {
            "kinds": {f"{lk}/{sk}/{bp}": 0 for lk in LAYER_KINDS for sk in SEG_KINDS
                      for bp in BACKPRESSURE_PATTERNS},
            "tile_crossings": {},
            "region_bounds": {f"{r.name}/{end}": 0 for r in layout.regions
                              for end in ("first", "last")},
            "segment_bounds": {f"{s.layer}.{s.tensor}/{end}": 0 for s in layout.segments
                               for end in ("first", "last")},
            "malformations": {**{f"malformed/{m}": 0 for m in MALFORMATIONS},
                              **{f"flag/{f}": 0 for f in FLAG_NAMES},
                              "reset/mid_segment": 0},
        }
        for lk in LAYER_KINDS:
            for b in (("c_tile",) if lk == "depthwise" else ("ic_tile", "oc_tile")):
                for p in ("", "_under_pressure"):
                    self.groups["tile_crossings"][f"{lk}/weights/{b}{p}"] = 0
            for p in ("", "_under_pressure"):
                self.groups["tile_crossings"][f"{lk}/biases/oc_tile{p}"] = 0
        self._block_cache: dict[tuple[int, int], list[tuple[str, np.ndarray]]] = {}
        self.unreachable: set[str] = self._unreachable()
        self._region_ends = {(r.base, f"{r.name}/first") for r in layout.regions} | \
            {(r.end - 1, f"{r.name}/last") for r in layout.regions}
        bounds = [(s.base, f"{s.layer}.{s.tensor}/first") for s in layout.segments] + \
            [(s.end - 1, f"{s.layer}.{s.tensor}/last") for s in layout.segments]
        self._bound_addr = np.array([a for a, _ in bounds], dtype=np.int64)
        self._bound_name = [n for _, n in bounds]

    # ---------------------------------------------------------------- geometry

    def _blocks(self, layer: int, kind: int) -> list[tuple[str, np.ndarray]]:
        """(boundary name, data-word indices > 0 at which a new tile starts) of the
        segment, from the layout's loop order, tiles, element and word widths (the word
        holding the tile's first element; a tile may start inside a word)."""
        key = (layer, kind)
        if key in self._block_cache:
            return self._block_cache[key]
        shape, cfg = self.layout.layers[layer], self.layout.config
        oc, ic, kh, kw = shape.dims
        word_bits = int(cfg.word_bits)
        tile_oc, tile_ic = int(cfg.tile_oc), int(cfg.tile_ic)
        out: list[tuple[str, np.ndarray]] = []
        if kind == 1:  # biases: round_up(OC, tile_oc) elements
            bits = int(getattr(cfg, "bias_bits", 16))
            out = [("oc_tile", self._starts(tile_oc, _ceil_div(oc, tile_oc), bits, word_bits))]
        elif kind == 0 and shape.kind == "depthwise":
            tile_dw = int(getattr(cfg, "tile_dw", None) or tile_ic)
            order = list(getattr(cfg, "depthwise_loop_order", ("c_tile", "kh", "kw", "c")))
            ext = {"c_tile": _ceil_div(oc, tile_dw), "kh": kh, "kw": kw, "c": tile_dw}
            out = [("c_tile", self._loop_starts(order, ext, "c_tile", word_bits))]
        elif kind == 0:
            order = list(getattr(cfg, "weight_loop_order",
                                 ("oc_tile", "ic_tile", "kh", "kw", "oc", "ic")))
            ext = {"oc_tile": _ceil_div(oc, tile_oc), "ic_tile": _ceil_div(ic, tile_ic),
                   "kh": kh, "kw": kw, "oc": tile_oc, "ic": tile_ic}
            out = [(b, self._loop_starts(order, ext, b, word_bits))
                   for b in ("ic_tile", "oc_tile")]
        self._block_cache[key] = out
        return out

    @staticmethod
    def _starts(step: int, tiles: int, element_bits: int, word_bits: int) -> np.ndarray:
        """Word indices of the first element of tiles 1 .. tiles-1 (`step` elements each)."""
        k = np.arange(1, max(tiles, 1), dtype=np.int64)
        return np.unique(k * step * element_bits // word_bits)

    def _loop_starts(self, order: list[str], ext: dict[str, int], var: str,
                     word_bits: int) -> np.ndarray:
        """Where loop variable `var` changes (int8 elements in `order`, outer first)."""
        inner = order[order.index(var) + 1:]
        step = int(np.prod([ext[v] for v in inner])) if inner else 1
        outer = int(np.prod([ext[v] for v in order[:order.index(var)]])) or 1
        if ext[var] < 2:
            return np.zeros(0, dtype=np.int64)
        return self._starts(step, ext[var] * outer, 8, word_bits)

    def _unreachable(self) -> set[str]:
        reach: set[str] = set()
        for i, shape in enumerate(self.layout.layers):
            for kind in (0, 1):
                words = self.layout.segment(i, TENSORS[kind]).words
                for b, starts in self._blocks(i, kind):
                    if starts.size and int(starts[0]) < words:
                        seg = SEG_KINDS[kind]
                        reach |= {f"{shape.kind}/{seg}/{b}", f"{shape.kind}/{seg}/{b}"
                                  "_under_pressure"}
        kinds_present = {s.kind for s in self.layout.layers}
        out = {n for n in self.groups["tile_crossings"] if n not in reach}
        out |= {n for n in self.groups["kinds"] if n.split("/")[0] not in kinds_present}
        out.add("flag/address_range")  # seg_base tables keep addresses in range
        if header_spec().words == 1:  # a one-word header cannot be cut short
            out.add("malformed/header_word_tlast")
        return out

    # ---------------------------------------------------------------- sampling

    def hit(self, group: str, name: str, n: int = 1) -> None:
        g = self.groups[group]
        if name in g:
            g[name] += n

    def sample_segment(self, obs: SegmentObservation) -> None:
        rec = obs.record
        for bit, name in enumerate(FLAG_NAMES):
            if obs.error_flags >> bit & 1:
                self.hit("malformations", f"flag/{name}")
        if rec is None or obs.point != "end" or isinstance(rec.item, ResetItem) or rec.reset:
            return
        item: SegmentItem = rec.item
        if item.malformation == "truncated":
            self.hit("malformations", "reset/mid_segment")
            return
        if item.malformation:
            self.hit("malformations", f"malformed/{item.malformation}")
            return
        lk = self.layout.layers[item.layer].kind
        self.hit("kinds", f"{lk}/{SEG_KINDS[item.kind]}/{rec.backpressure}")
        pressured = rec.pressured_words
        for b, starts in self._blocks(item.layer, item.kind):
            starts = starts[starts < item.count]
            if starts.size:
                name = f"{lk}/{SEG_KINDS[item.kind]}/{b}"
                self.hit("tile_crossings", name)
                if pressured.size and np.isin(pressured, starts).any():
                    self.hit("tile_crossings", name + "_under_pressure")

    def sample_writes(self, addresses: np.ndarray) -> None:
        for a, name in self._region_ends:
            if np.any(addresses == a):
                self.hit("region_bounds", name)
        hits = np.flatnonzero(np.isin(self._bound_addr, addresses))
        for i in hits.tolist():
            self.hit("segment_bounds", self._bound_name[i])

    # ---------------------------------------------------------------- report

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"groups": {}, "holes": [], "unreachable": sorted(self.unreachable)}
        total = covered = 0
        for gname, bins in self.groups.items():
            live = {k: v for k, v in bins.items() if k not in self.unreachable}
            hit = sum(1 for v in live.values() if v)
            holes = sorted(k for k, v in live.items() if not v)
            out["groups"][gname] = {"bins": len(live), "hit": hit,
                                    "percent": round(100.0 * hit / max(1, len(live)), 1),
                                    "holes": holes, "hits": bins}
            out["holes"] += [f"{gname}:{h}" for h in holes]
            total += len(live)
            covered += hit
        out["bins"], out["hit"] = total, covered
        out["percent"] = round(100.0 * covered / max(1, total), 1)
        return out

    @staticmethod
    def text(summary: dict[str, Any], title: str = "coverage", max_holes: int = 40) -> str:
        lines = [f"{title}: {summary['hit']}/{summary['bins']} bins "
                 f"({summary['percent']}%)"]
        for gname, g in summary["groups"].items():
            lines.append(f"  {gname:<15} {g['hit']:4d}/{g['bins']:<4d} {g['percent']:5.1f}%")
            holes = g["holes"]
            if holes:
                shown = ", ".join(holes[:max_holes])
                more = f" ... (+{len(holes) - max_holes})" if len(holes) > max_holes else ""
                lines.append(f"      holes: {shown}{more}")
        if summary["unreachable"]:
            lines.append(f"  unreachable in this layout ({len(summary['unreachable'])}): "
                         + ", ".join(summary["unreachable"][:12])
                         + (" ..." if len(summary["unreachable"]) > 12 else ""))
        return "\n".join(lines)


class CoverageCollector(uvm_component):
    """Samples segment observations and write batches into a CoverageModel."""

    def build_phase(self) -> None:
        self.cfg: EnvConfig = ConfigDB().get(self, "", "cfg")
        self.model = CoverageModel(self.cfg.golden.layout)
        self.segment_export = uvm_subscriber.uvm_AnalysisImp(
            "segment_export", self, self.model.sample_segment)
        self.write_export = uvm_subscriber.uvm_AnalysisImp(
            "write_export", self, lambda b: self.model.sample_writes(b.addresses))

    def report_phase(self) -> None:
        summary = self.model.summary()
        cfg = self.cfg
        stem = f"coverage-{cfg.test_name}-{cfg.sim}"
        cfg.results_dir.mkdir(parents=True, exist_ok=True)
        text = CoverageModel.text(summary, f"{cfg.test_name} ({cfg.sim}) coverage")
        (cfg.results_dir / f"{stem}.json").write_text(json.dumps(summary, indent=1) + "\n")
        (cfg.results_dir / f"{stem}.txt").write_text(text + "\n")
        self.summary = summary
        self.logger.info("\n" + text if cfg.verbose else text.splitlines()[0])


def merge(paths: list[Path]) -> dict[str, Any]:
    """Merge coverage JSON reports (hits add up; a bin is unreachable only if it is
    unreachable in every report)."""
    merged: dict[str, dict[str, int]] = {}
    unreachable: set[str] | None = None
    for p in paths:
        data = json.loads(Path(p).read_text())
        for gname, g in data["groups"].items():
            dst = merged.setdefault(gname, {})
            for k, v in g["hits"].items():
                dst[k] = dst.get(k, 0) + v
        u = set(data.get("unreachable", []))
        unreachable = u if unreachable is None else unreachable & u
    model = CoverageModel.__new__(CoverageModel)
    model.groups, model.unreachable = merged, unreachable or set()
    return model.summary()
