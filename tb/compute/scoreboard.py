"""ActivationScoreboard: every output activation of every observed step against the
golden model (hardware arithmetic, docs/arithmetic.md), integer equality.

A step passes when every code of its real channels equals the golden code, every
padding lane holds the tensor's zero point, no byte is x/z and the engine raised no
error. A mismatch keeps the first differences (layer, channel, y, x, expected, got,
and the golden accumulator acc + bias of that output for a weighted layer). The
chained mode also compares the RTL's top-1 class with the golden top-1.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from cosim.golden.engine_program import (
    first_differences,
    identical_fraction,
    padding_lane_errors,
    unpack_activation,
)
from pyuvm import ConfigDB, uvm_subscriber


@dataclass
class StepResult:
    mode: str
    image: int
    index: int
    name: str
    op: str
    kind: str
    cycles: int
    macs: int
    utilization: float
    codes: int
    identical: float
    mismatches: int
    padding_errors: int
    unknown_words: int
    first: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.mismatches == 0 and self.padding_errors == 0 and self.unknown_words == 0


class ActivationScoreboard(uvm_subscriber):
    def build_phase(self) -> None:
        self.cfg = ConfigDB().get(self, "", "compute_cfg")
        self.results: list[StepResult] = []
        self.errors: list[str] = []
        self.top1: list[tuple[int, int, int]] = []   # (image, golden, rtl)
        self._model = None
        self.pe = self.cfg.pe_macs_per_cycle

    def write(self, obs: Any) -> None:
        t0 = time.perf_counter()
        self._check(obs)
        self.cfg.timed("check_s", time.perf_counter() - t0)

    def _check(self, obs: Any) -> None:
        cfg, program = self.cfg, self.cfg.program
        cmd, status = obs.command, obs.status
        if status.timed_out:
            at = min(status.done_count + cmd.first, len(program.steps) - 1)
            self.errors.append(f"{cmd}: the engine was still busy after its cycle budget "
                               f"(hung at descriptor {at}: {program.steps[at].name})")
        if status.err:
            self.errors.append(f"{cmd}: engine error bits {status.err:#x} at descriptor "
                               f"{status.err_desc} ({program.steps[status.err_desc].name})")
        if status.done_count != cmd.count:
            self.errors.append(f"{cmd}: {status.done_count} of {cmd.count} descriptors done")
        for index in cmd.check:
            step = program.steps[index]
            got, unknown = obs.outputs[index]
            expected = cfg.expected[f"out/{cmd.image}/{step.name}"]
            self.results.append(self._compare(cmd, index, step, expected, got, unknown,
                                              obs.cycles.get(index, -1)))
        if cmd.mode == "chained":
            logits = program.logits
            got = obs.outputs.get(program.index(logits.name), (None,))[0]  # the last step
            if got is not None:
                codes = unpack_activation(got, logits, program.lanes).reshape(-1)
                rtl = int(np.argmax(codes))
                golden = int(cfg.expected["top1"][cmd.image])
                self.top1.append((cmd.image, golden, rtl))
                if rtl != golden:
                    self.errors.append(f"image {cmd.image}: RTL top-1 {rtl}, golden {golden}")

    def _compare(self, cmd: Any, index: int, step: Any, expected: np.ndarray,
                 got: np.ndarray, unknown: np.ndarray, cycles: int) -> StepResult:
        lanes = self.cfg.program.lanes
        t = step.output
        e_codes = unpack_activation(expected, t, lanes)
        g_codes = unpack_activation(got, t, lanes)
        wrong = int(np.count_nonzero(e_codes != g_codes))
        util = step.macs / (cycles * self.pe) if cycles > 0 and step.macs else 0.0
        result = StepResult(cmd.mode, cmd.image, index, step.name, step.op, step.kind, cycles,
                            step.macs, util, int(e_codes.size),
                            identical_fraction(expected, got, t, lanes), wrong,
                            padding_lane_errors(got, t, lanes), int(np.count_nonzero(unknown)))
        if wrong:
            for c, y, x, e, g in first_differences(expected, got, t, lanes,
                                                   self.cfg.max_report_rows):
                result.first.append({"channel": c, "y": y, "x": x, "expected": e, "got": g,
                                     "accumulator": self._accumulator(cmd, step, c, y, x)})
        return result

    def _accumulator(self, cmd: Any, step: Any, c: int, y: int, x: int) -> int | None:
        """The golden acc + bias of one output of a weighted step (None otherwise)."""
        if step.op != "weighted":
            return None
        cfg, program = self.cfg, self.cfg.program
        try:
            if self._model is None:
                from cosim.golden.infer import IntegerModel
                self._model = IntegerModel.from_package(cfg.golden.package,
                                                        rounding=cfg.rounding,
                                                        float32_step=False)
            src = step.inputs[0]
            name = program.aliases.get(src.name, src.name)
            words = (cfg.expected[f"input/{cmd.image}"] if name == program.input_name
                     else cfg.expected[f"out/{cmd.image}/{name}"])
            codes = unpack_activation(words, src, program.lanes)
            if step.kind == "linear":
                codes = codes.reshape(1, -1)
            else:
                codes = codes[None]
            return int(self._model.accumulator(step.name, [codes], c, y, x))
        except Exception as e:  # the table stays useful without the column
            return f"n/a ({type(e).__name__})"  # type: ignore[return-value]

    # ---- summary
    @property
    def failed_steps(self) -> list[StepResult]:
        return [r for r in self.results if not r.ok]

    def passed(self) -> bool:
        return not self.errors and not self.failed_steps and bool(self.results)

    def difference_table(self, rows: int = 10) -> str:
        lines = [f"{'layer':<28} {'ch':>5} {'y':>4} {'x':>4} {'expected':>8} {'got':>5} "
                 f"{'accumulator':>12}"]
        for r in self.failed_steps:
            for d in r.first[:rows]:
                lines.append(f"{r.name:<28} {d['channel']:>5} {d['y']:>4} {d['x']:>4} "
                             f"{d['expected']:>8} {d['got']:>5} {str(d['accumulator']):>12}")
            if r.padding_errors or r.unknown_words:
                lines.append(f"{r.name:<28} padding lanes wrong: {r.padding_errors}, x/z "
                             f"words: {r.unknown_words}")
        return "\n".join(lines)

    def summary(self) -> dict[str, Any]:
        return {"steps_checked": len(self.results),
                "steps_failed": len(self.failed_steps),
                "codes_checked": sum(r.codes for r in self.results),
                "codes_identical": sum(r.codes - r.mismatches for r in self.results),
                "errors": self.errors[:20],
                "top1": [{"image": i, "golden": g, "rtl": r} for i, g, r in self.top1],
                "steps": [asdict(r) for r in self.results]}

    def check_phase(self) -> None:
        if not self.results and self.cfg.test_name != "ParameterLoadTest":
            self.logger.error("no step was observed")
        for e in self.errors:
            self.logger.error(e)
        if self.failed_steps:
            self.logger.error(f"{len(self.failed_steps)} step(s) differ from the golden "
                              f"model; first differences:\n{self.difference_table()}")
