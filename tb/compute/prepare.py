"""The golden side of a compute run, made before the simulator starts.

`prepare(...)` writes the run's input files into one work folder and returns the
build parameters and plusargs of cnn_compute_top, so that the simulator process
only reads files (no torch, no golden inference, no package or image rebuilt
inside the simulator):

    work/param_stream.hex   the parameter stream for the HDL player ({tlast, word})
    work/descriptors.hex    every step's 16-field descriptor
    work/golden.npz         per image: the input codes' words, every step's expected
                            output words, the golden top-1
    work/param_image.hex    the golden parameter-memory image and its mask, read by
    work/param_image_mask.hex   rtl/param_write_checker.sv (+PARAM_EXPECT[_MASK])
    work/program.json       the engine program (golden.engine_program.Program.to_json)
    work/coverage.json      per image, per step: the coverage bins of its golden
                            stimulus (tb/compute/coverage_bins.py)
    work/run.json           rounding, images, image size, stream and image words, the
                            accelerator's datapath constants (and the key of the inputs)

The work folder is read-only for runs: each simulation has its own run folder for
the files it writes (`plusargs(run)`: act_load.hex, act_dump.hex, stats.hex,
param_dump.hex, waves). Preparing is locked and keyed, so parallel test workers
share one preparation.

The golden model is IntegerModel(rounding, float32_step=False): the hardware
arithmetic of docs/arithmetic.md, the engine's contract.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from cosim.golden.engine_program import (
    Program,
    build_program,
    expected_outputs,
    input_words,
    unpack_activation,
    write_param_stream,
)

#: version of the work folder's files (a change re-prepares every work folder)
FORMAT = 2

#: files of a run folder (written by the simulation)
RUN_FILES = ("act_load.hex", "act_dump.hex", "stats.hex", "param_dump.hex")


@dataclass(frozen=True)
class Prepared:
    """What a run needs: the work folder, the program, the build parameters."""

    work: Path
    program: Program
    wbuf_depth: int
    stream_words: int
    rounding: str
    images: int
    image_size: int

    @property
    def parameters(self) -> dict[str, int]:
        """Top-level parameters of cnn_compute_top for this network."""
        return {"ACT_DEPTH": max(2, self.program.act_words),
                "STREAM_DEPTH": max(2, self.stream_words),
                "DESC_DEPTH": max(16, 1 << (16 * len(self.program.steps) - 1).bit_length()),
                "STATS_DEPTH": max(2, 1 << (len(self.program.steps) - 1).bit_length()),
                "WBUF_DEPTH": self.wbuf_depth,
                "ROUND_HALF_EVEN": int(self.rounding == "half_even")}

    def plusargs(self, run: Path) -> list[str]:
        """Plusargs of a simulation whose own files go to folder `run` (created)."""
        run.mkdir(parents=True, exist_ok=True)
        w = self.work
        return [f"+PARAM_STREAM={w / 'param_stream.hex'}", f"+DESC_FILE={w / 'descriptors.hex'}",
                f"+PARAM_EXPECT={w / 'param_image.hex'}",
                f"+PARAM_EXPECT_MASK={w / 'param_image_mask.hex'}",
                f"+ACT_LOAD={run / 'act_load.hex'}", f"+ACT_DUMP={run / 'act_dump.hex'}",
                f"+STATS_DUMP={run / 'stats.hex'}", f"+DUMP_FILE={run / 'param_dump.hex'}"]


def wbuf_depth(package: Any, lanes: int) -> int:
    """Weight-buffer entries the largest tile needs (a power of two, at least 16):
    ceil(IC / lanes) * KH * KW (KH * KW for a depthwise layer)."""
    need = 16
    for entry in package.layers:
        if entry["op"] not in ("conv2d", "linear"):
            continue
        shape = list(entry["weight_shape"]) + [1, 1]
        kk = shape[2] * shape[3]
        depthwise = entry.get("kind") == "depthwise"
        need = max(need, kk if depthwise else -(-shape[1] // lanes) * kk)
    return 1 << (need - 1).bit_length()


def test_images(package: Any, count: int, size: int | None = None) -> np.ndarray:
    """float32 NCHW normalized test images of the package's dataset; `size` resizes
    (bilinear) to size x size, e.g. the 224x224 bench row. A package without a
    dataset (a synthetic one) gets seeded normal images (seed 0, std 2: codes from
    saturated low to saturated high) of its model.input_shape."""
    import torch
    from cosim.quant.data import build_dataset
    from cosim.quant.verify import data_config

    if "data" not in package.manifest:
        c, h, w = package.manifest["model"]["input_shape"]
        g = torch.Generator().manual_seed(0)
        x = 2.0 * torch.randn(count, c, size or h, size or w, generator=g)
        return x.numpy().astype(np.float32)
    dataset = build_dataset(data_config(package), "test")
    x = torch.stack([dataset[i][0] for i in range(min(count, len(dataset)))])
    if size is not None and x.shape[-1] != size:
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear",
                                            align_corners=False)
    return x.numpy().astype(np.float32)


def prepare(work: Path, package: Any, layout: Any, rounding: str, images: int = 1,
            size: int | None = None) -> Prepared:
    """Write the run's input files into `work` (created) for `images` test images;
    reuse them when `work` already holds this preparation (same package, layout,
    rounding, images, size)."""
    from cosim.golden.image import package_sha256
    from cosim.tb.sim import _locked

    work.mkdir(parents=True, exist_ok=True)
    key = json.dumps({"format": FORMAT, "package": package_sha256(package.root),
                      "layout": repr(layout.config),
                      "bases": repr(layout.layers), "rounding": rounding, "images": images,
                      "size": size}, sort_keys=True)
    with _locked(work / "prepare.lock"):
        info_path = work / "run.json"
        info = json.loads(info_path.read_text()) if info_path.is_file() else {}
        if info.get("key") != key:
            info = _write_inputs(work, package, layout, rounding, images, size)
            info["key"] = key
            info_path.write_text(json.dumps(info) + "\n")
    program = Program.from_json(json.loads((work / "program.json").read_text()))
    return Prepared(work, program, wbuf_depth(package, program.lanes), int(info["stream_words"]),
                    rounding, int(info["images"]), int(info["image_size"]))


def _write_inputs(work: Path, package: Any, layout: Any, rounding: str, images: int,
                  size: int | None) -> dict[str, Any]:
    from cosim.golden.image import build_image, image_hex
    from cosim.golden.infer import IntegerModel
    from cosim.quant.formats import atomic_write_bytes

    x = test_images(package, images, size)
    program = build_program(package, layout, input_shape=x.shape[1:])
    n_stream = write_param_stream(work / "param_stream.hex", package, layout)
    program.write_descriptors(work / "descriptors.hex")
    image = build_image(package, layout)
    image_text, mask_text = image_hex(image, layout.config)
    atomic_write_bytes(work / "param_image.hex", image_text)
    atomic_write_bytes(work / "param_image_mask.hex", mask_text)
    model = IntegerModel.from_package(package, rounding=rounding, float32_step=False)
    write_expected(work, package, program, model, x)
    atomic_write_bytes(work / "program.json", json.dumps(program.to_json()).encode())
    cfg = layout.config
    return {"rounding": rounding, "images": int(x.shape[0]), "image_size": int(x.shape[-1]),
            "channels": int(x.shape[1]), "stream_words": n_stream,
            "image_words": int(image.addresses.size),
            "accelerator": {"word_bits": int(cfg.word_bits), "tile_oc": int(cfg.tile_oc),
                            "lanes": int(cfg.tile_ic), "bias_bits": int(cfg.bias_bits)}}


#: files of a work folder that do not depend on the images (a derived work folder,
#: tb/compute_mutants.py's stress image, links them)
IMAGE_INDEPENDENT = ("param_stream.hex", "descriptors.hex", "param_image.hex",
                     "param_image_mask.hex", "program.json")


def write_expected(work: Path, package: Any, program: Program, model: Any,
                   x: np.ndarray) -> None:
    """golden.npz (per image of x, float32 NCHW: the input words, every step's expected
    output words, the top-1) and coverage.json (per image and step: the bins of its
    golden stimulus) in `work`, from IntegerModel `model`."""
    from cosim.quant.formats import atomic_write_bytes
    from cosim.tb.compute.coverage_bins import step_bins

    arrays: dict[str, np.ndarray] = {}
    top1 = []
    coverage: list[list[list[str]]] = []
    for i in range(x.shape[0]):
        run = model.run(x[i:i + 1])
        arrays[f"input/{i}"] = input_words(program, run)
        for name, words in expected_outputs(program, run).items():
            arrays[f"out/{i}/{name}"] = words
        top1.append(int(np.argmax(run[program.logits_name].reshape(-1))))

        def codes_of(t: Any, i: int = i) -> np.ndarray:
            name = program.aliases.get(t.name, t.name)
            words = arrays[f"input/{i}"] if name == program.input_name \
                else arrays[f"out/{i}/{name}"]
            return unpack_activation(words, t, program.lanes).astype(np.int64)

        coverage.append([step_bins(step, package, codes_of) for step in program.steps])
    arrays["top1"] = np.array(top1, dtype=np.int64)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write_bytes(work / "golden.npz", buffer.getvalue())
    atomic_write_bytes(work / "coverage.json",
                       json.dumps({"steps": [s.name for s in program.steps],
                                   "bins": coverage}).encode())
