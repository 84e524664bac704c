"""Rows for the golden model: NumPy integer inference of one 224x224 image vs PyTorch.

Both run the same image in the same process: the golden model (golden.infer, every
layer's codes kept, as the scoreboard uses it; and logits only) against the PyTorch
quantized model rebuilt from the same package (fbgemm). Each figure is the median
of interleaved repeats after a warm-up.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from cosim.golden.infer import IntegerModel
from cosim.quant import fx_quant
from cosim.quant.choices import SHIPPED_CHECKPOINT
from cosim.quant.data import DataConfig, build_dataset
from cosim.quant.package import Package, load_package
from cosim.quant.pipeline import run_export, run_quantize
from cosim.quant.ptq import QuantConfig
from cosim.quant.rebuild import rebuild_model

DEFAULT_PACKAGE = Path("build/package")


def _interleaved_medians(functions: list[Callable[[], object]], repeats: int,
                         warmup: int = 3) -> list[float]:
    """Median wall time (s) of each function, run in turn `repeats` times after a warm-up."""
    for _ in range(warmup):
        for function in functions:
            function()
    times: list[list[float]] = [[] for _ in functions]
    for _ in range(repeats):
        for index, function in enumerate(functions):
            start = time.perf_counter()
            function()
            times[index].append(time.perf_counter() - start)
    return [statistics.median(series) for series in times]


def _measure(package: Package, repeats: int) -> list[dict]:
    fx_quant.use_engine()
    image = build_dataset(DataConfig(image_size=224), "test")[0][0].unsqueeze(0)
    x = image.numpy()
    golden = IntegerModel.from_package(package)
    model = rebuild_model(package)

    def pytorch() -> torch.Tensor:
        with torch.no_grad(), fx_quant.quiet():
            return model(image)

    exact = bool(np.array_equal(golden.run(x)[golden.output_name], pytorch().numpy()))
    run_s, logits_s, torch_s = _interleaved_medians(
        [lambda: golden.run(x), lambda: golden.logits(x), pytorch], repeats)
    layers = len(golden.names)
    common = (f"torch threads {torch.get_num_threads()}; "
              f"{'bit-exact' if exact else 'OUTPUT DIFFERS'}; median of {repeats}")
    baseline = "PyTorch fbgemm quantized model (rebuilt), same image"
    return [
        {"name": f"golden inference, one 224x224 image, all {layers} layers' codes",
         "seconds": run_s, "baseline": baseline, "baseline_seconds": torch_s,
         "detail": f"{run_s / torch_s:.2f}x PyTorch; {common}"},
        {"name": "golden inference, one 224x224 image, logits only",
         "seconds": logits_s, "baseline": baseline, "baseline_seconds": torch_s,
         "detail": f"{logits_s / torch_s:.2f}x PyTorch; {common}"},
    ]


def rows(package: Path = DEFAULT_PACKAGE, repeats: int = 30) -> list[dict]:
    """Golden vs PyTorch inference of one 224x224 image (uses `package`; without one,
    a package is quantized and exported into a temporary directory first)."""
    if (Path(package) / "manifest.json").is_file():
        return _measure(load_package(package), repeats)
    with tempfile.TemporaryDirectory() as scratch:
        result = run_quantize(SHIPPED_CHECKPOINT, QuantConfig(calibration_images=64), quiet=True)
        out = Path(scratch) / "package"
        run_export(result, out)
        return _measure(load_package(out), repeats)


if __name__ == "__main__":
    for row in rows():
        print(f"{row['name']}: {row['seconds'] * 1e3:.2f} ms vs {row['baseline_seconds'] * 1e3:.2f}"
              f" ms ({row['detail']})")
