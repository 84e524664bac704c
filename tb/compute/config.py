"""ComputeConfig: what a compute test runs on, read from the environment the
pytest entry (tb/test_compute.py) sets.

    COCOSIM_PACKAGE / COCOSIM_GOLDEN / COCOSIM_ACCEL  the network and layout (as tb/env)
    COMPUTE_WORK      the work folder tb/compute/prepare.py filled (read only): the
                      program, expected codes, coverage bins and parameter image; the
                      package is read only to explain a mismatch (the accumulator)
    COMPUTE_RUN       this simulation's folder (the files it writes; the plusargs')
    COMPUTE_LAYERS    layer-by-layer subset: comma-separated step names, or "kinds"
                      (the first step of each kind); default every step
    COMPUTE_WAVES_STEP  the step whose run is recorded (a build with COMPUTE_WAVES)
    COMPUTE_IMAGES    images for the chained mode (default: every prepared image)
    COCOSIM_RESULTS   where the summary JSON goes (default build/test-results)
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from cosim.tb.env.config import GoldenData, accel_selection, golden_selection


@dataclass
class ComputeConfig:
    test_name: str
    sim: str
    work: Path
    run: Path
    golden: GoldenData
    results_dir: Path
    layers: str = ""
    images: int | None = None
    max_report_rows: int = 10
    waves_step: str = ""
    #: commands not run because the engine hung before them
    skipped: list[str] = field(default_factory=list)
    #: wall seconds per activity of the run (act_load, engine, observe, check, coverage)
    walls: dict[str, float] = field(default_factory=dict)

    def timed(self, activity: str, seconds: float) -> None:
        self.walls[activity] = self.walls.get(activity, 0.0) + seconds

    @classmethod
    def from_environment(cls, test_name: str) -> ComputeConfig:
        from cosim.tb.sim import RESULTS_DIR

        package_dir, golden_dir = golden_selection()
        golden = GoldenData(package_dir, golden_dir, accel_selection())
        work = Path(os.environ["COMPUTE_WORK"])
        run = Path(os.environ.get("COMPUTE_RUN", "") or work)
        images = os.environ.get("COMPUTE_IMAGES", "").strip()
        return cls(test_name=test_name, sim=os.environ.get("COCOSIM_SIM", "sim"), work=work,
                   run=run, golden=golden,
                   results_dir=Path(os.environ.get("COCOSIM_RESULTS", "") or RESULTS_DIR),
                   layers=os.environ.get("COMPUTE_LAYERS", "").strip(),
                   images=int(images) if images else None,
                   waves_step=os.environ.get("COMPUTE_WAVES_STEP", "").strip())

    @cached_property
    def run_info(self) -> dict[str, Any]:
        return json.loads((self.work / "run.json").read_text())

    @property
    def rounding(self) -> str:
        return str(self.run_info["rounding"])

    @cached_property
    def program(self) -> Any:
        """The engine program prepare() wrote (program.json; the package is not read)."""
        from cosim.golden.engine_program import Program

        return Program.from_json(json.loads((self.work / "program.json").read_text()))

    @cached_property
    def expected(self) -> Any:
        """golden.npz (lazy arrays): input/<i>, out/<i>/<step>, top1."""
        return np.load(self.work / "golden.npz")

    @cached_property
    def coverage_bins(self) -> list[list[list[str]]]:
        """coverage.json: per image, per step, the bins of its golden stimulus."""
        return json.loads((self.work / "coverage.json").read_text())["bins"]

    def step_bins(self, image: int, index: int) -> list[str]:
        return self.coverage_bins[image][index]

    @property
    def accelerator(self) -> dict[str, int]:
        """The datapath constants of the run: word_bits, tile_oc, lanes, bias_bits."""
        return {k: int(v) for k, v in self.run_info["accelerator"].items()}

    @property
    def pe_macs_per_cycle(self) -> int:
        """MACs the PE array does per cycle: tile_oc x tile_ic."""
        acc = self.accelerator
        return acc["tile_oc"] * acc["lanes"]

    @property
    def image_count(self) -> int:
        n = int(self.run_info["images"])
        return n if self.images is None else min(n, self.images)

    def selected_steps(self) -> list[int]:
        """Step indices of the layer-by-layer mode (COMPUTE_LAYERS)."""
        steps = self.program.steps
        if not self.layers:
            return list(range(len(steps)))
        if self.layers == "kinds":
            return self.program.first_of_each_kind()
        names = [n.strip() for n in self.layers.split(",") if n.strip()]
        return [self.program.index(n) for n in names]
