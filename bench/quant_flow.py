"""Rows for the quantization flow: PTQ and export of the full network."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import torch
from cosim.quant import fx_quant
from cosim.quant.choices import SHIPPED_CHECKPOINT
from cosim.quant.data import build_dataset, calibration_subset, make_loader
from cosim.quant.pipeline import run_export, run_quantize
from cosim.quant.ptq import QuantConfig
from cosim.quant.train import load_checkpoint


def _float_pass_seconds(checkpoint: Path, images: int) -> float:
    """Baseline: one float forward pass over the calibration images."""
    model, info = load_checkpoint(checkpoint)
    from cosim.quant.data import DataConfig

    data = DataConfig(**info["data"])
    subset = calibration_subset(build_dataset(data, "train"), images, 0)
    loader = make_loader(subset, 64, shuffle=False, seed=0)
    start = time.perf_counter()
    with torch.no_grad():
        for batch, _ in loader:
            model(batch)
    return time.perf_counter() - start


def _raw_write_seconds(package: Path) -> tuple[float, int]:
    """Baseline: write the package's bytes again as one flat file per original file."""
    files = [path for path in package.rglob("*") if path.is_file()]
    blobs = [path.read_bytes() for path in files]
    with tempfile.TemporaryDirectory() as scratch:
        start = time.perf_counter()
        for index, blob in enumerate(blobs):
            with open(os.path.join(scratch, f"{index}"), "wb") as handle:
                handle.write(blob)
        seconds = time.perf_counter() - start
    return seconds, sum(len(blob) for blob in blobs)


def rows(checkpoint: Path = SHIPPED_CHECKPOINT, calibration_images: int = 512) -> list[dict]:
    """PTQ and export wall times for the whole network, with same-run baselines."""
    fx_quant.use_engine()
    baseline_ptq = _float_pass_seconds(checkpoint, calibration_images)
    config = QuantConfig(calibration_images=calibration_images)
    result = run_quantize(checkpoint, config, quiet=True)
    with tempfile.TemporaryDirectory() as scratch:
        package = Path(scratch) / "package"
        manifest, export_seconds = run_export(result, package)
        baseline_export, size = _raw_write_seconds(package)
    weights = manifest["model"]["weights"]
    return [
        {"name": "PTQ, full network (fold, CLE, calibrate, convert, snap)",
         "seconds": result.seconds,
         "baseline": f"float forward of the {calibration_images} calibration images",
         "baseline_seconds": baseline_ptq,
         "detail": f"{manifest['model']['weighted_layers']} layers, {weights:,} weights"},
        {"name": "export, full network (txt, hex, manifest, TorchScript)",
         "seconds": export_seconds,
         "baseline": f"raw write of the same {size / 1e6:.1f} MB",
         "baseline_seconds": baseline_export,
         "detail": f"{size / 1e6:.1f} MB in the package"},
    ]
