"""ComputeCoverage: which datapath situations the checked steps exercised.

The space and the per-step sampling are in tb/compute/coverage_bins.py; the bins of
every (image, step) on its golden stimulus are computed before the simulator starts
(tb/compute/prepare.py, coverage.json), so a run only counts them. A step counts
when the run fed it exactly that stimulus: always in the layer-by-layer mode (the
golden inputs are loaded), and in the chained mode when every input the engine
produced in that run equals the golden codes. A chained step whose input differs is
not sampled and is listed in the report's "not_sampled" (its layer failed anyway).
Every declared bin with no hit is a hole, listed in the hole report
(coverage-<test>-<sim>.txt / .json).
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import numpy as np
from cosim.tb.compute.coverage_bins import declared_bins
from pyuvm import ConfigDB, uvm_subscriber


class ComputeCoverage(uvm_subscriber):
    def build_phase(self) -> None:
        self.cfg = ConfigDB().get(self, "", "compute_cfg")
        self.hits: Counter[str] = Counter()
        self.seen: set[tuple[int, int]] = set()
        self.not_sampled: list[str] = []

    def write(self, obs: Any) -> None:
        t0 = time.perf_counter()
        self._sample(obs)
        self.cfg.timed("coverage_s", time.perf_counter() - t0)

    def _sample(self, obs: Any) -> None:
        cfg, program = self.cfg, self.cfg.program
        cmd = obs.command
        for index in cmd.check:
            key = (cmd.image, index)
            if key in self.seen:
                continue
            step = program.steps[index]
            if cmd.mode == "chained" and not self._inputs_golden(obs, step):
                self.not_sampled.append(f"{cmd}: {step.name} (input differs from golden)")
                continue
            self.seen.add(key)
            for b in cfg.step_bins(cmd.image, index):
                self.hits[b] += 1

    def _inputs_golden(self, obs: Any, step: Any) -> bool:
        """Every input of `step` that a step of this run produced equals the golden
        words (the network input was loaded from the golden codes)."""
        cfg, program = self.cfg, self.cfg.program
        for t in step.inputs:
            name = program.aliases.get(t.name, t.name)
            if name == program.input_name:
                continue
            got = obs.outputs.get(program.index(name))
            if got is None:
                return False
            words, unknown = got
            want = cfg.expected[f"out/{obs.command.image}/{name}"]
            if unknown.any() or not np.array_equal(words, want):
                return False
        return True

    # ---- report
    def report(self) -> dict[str, Any]:
        bins = declared_bins()
        holes = [b for b in bins if self.hits.get(b, 0) == 0]
        hit = len(bins) - len(holes)
        return {"bins": len(bins), "hit": hit,
                "percent": round(100.0 * hit / len(bins), 1) if bins else 100.0,
                "holes": holes, "hits": {b: self.hits.get(b, 0) for b in bins},
                "not_sampled": self.not_sampled}

    def hole_report(self) -> str:
        r = self.report()
        lines = [f"compute coverage: {r['hit']}/{r['bins']} bins ({r['percent']}%)", "holes:"]
        lines += [f"  {h}" for h in r["holes"]] or ["  (none)"]
        if r["not_sampled"]:
            lines += ["not sampled (input differs from golden):"]
            lines += [f"  {s}" for s in r["not_sampled"]]
        return "\n".join(lines)
