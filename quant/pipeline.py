"""The flow's steps as functions the CLI calls: quantize, export, verify, package.

`quantize` saves its result (float and quantized state dicts, provenance) to a
torch file so `export` can run on its own; `package` runs everything in one
process and writes report.json next to the manifest.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from quant import fx_quant
from quant.data import DataConfig
from quant.errors import UserError
from quant.export import export_package
from quant.model import mobilenet_v2_relu
from quant.package import load_package
from quant.ptq import QuantConfig, evaluate_pair, fold_batchnorm, quantize_model
from quant.rebuild import quantized_skeleton
from quant.train import load_checkpoint
from quant.verify import RebuildCheck, check_rebuild

RESULT_FORMAT = "cnn-cosim-quantized"


class FlowError(UserError):
    """A user error in the flow's inputs (one-line message)."""


@dataclass
class QuantResult:
    """Everything export needs: both models, provenance, accuracies."""

    folded: nn.Module
    reference: nn.Module
    details: dict
    data: DataConfig
    config: QuantConfig
    checkpoint_info: dict
    float_top1: float
    int8_top1: float
    seconds: float
    top1_agreement: float = math.nan
    logit_sqnr_db: float = math.nan


def run_quantize(checkpoint: Path, config: QuantConfig, data: DataConfig | None = None,
                 quiet: bool = False) -> QuantResult:
    """Load a checkpoint, quantize it, and measure float and int8 top-1 on the test split."""
    float_model, info = load_checkpoint(checkpoint)
    if data is None:
        data = DataConfig(**info["data"])
    start = time.perf_counter()
    folded, reference, details = quantize_model(float_model, data, config, quiet=quiet)
    seconds = time.perf_counter() - start
    metrics = evaluate_pair(float_model, reference, data, quiet=quiet)
    return QuantResult(folded, reference, details, data, config, info, metrics["float_top1"],
                       metrics["int8_top1"], seconds, metrics["top1_agreement"],
                       metrics["logit_sqnr_db"])


def save_quant_result(result: QuantResult, path: Path) -> None:
    """Write a quantize result atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": RESULT_FORMAT,
        "folded": result.folded.state_dict(),
        "reference": result.reference.state_dict(),
        "details": result.details,
        "data": dataclasses.asdict(result.data),
        "config": dataclasses.asdict(result.config),
        "checkpoint_info": result.checkpoint_info,
        "float_top1": result.float_top1,
        "int8_top1": result.int8_top1,
        "seconds": result.seconds,
        "top1_agreement": result.top1_agreement,
        "logit_sqnr_db": result.logit_sqnr_db,
    }
    temp = path.with_name(f".{path.name}.tmp")
    torch.save(payload, temp)
    os.replace(temp, path)


def load_quant_result(path: Path) -> QuantResult:
    """Read a file written by save_quant_result and rebuild both models."""
    path = Path(path)
    if not path.is_file():
        raise FlowError(f"{path}: quantize result not found (run 'cosim quantize' first)")
    with fx_quant.quiet():
        payload = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(payload, dict) or payload.get("format") != RESULT_FORMAT:
        raise FlowError(f"{path}: not a '{RESULT_FORMAT}' file")
    info, data = payload["checkpoint_info"], DataConfig(**payload["data"])
    config = QuantConfig(**payload["config"])
    folded = fold_batchnorm(mobilenet_v2_relu(info["num_classes"], info["width_mult"]))
    folded.load_state_dict(payload["folded"])
    reference = quantized_skeleton(info["num_classes"], info["width_mult"],
                                   [3, data.image_size, data.image_size], config.per_channel,
                                   config.weight_limits())
    reference.load_state_dict(payload["reference"])
    return QuantResult(folded, reference.eval(), payload["details"], data, config, info,
                       payload["float_top1"], payload["int8_top1"], payload["seconds"],
                       payload["top1_agreement"], payload["logit_sqnr_db"])


def run_export(result: QuantResult, out: Path) -> tuple[dict, float]:
    """Write the package; returns (manifest, seconds)."""
    start = time.perf_counter()
    manifest = export_package(out, result.folded, result.reference,
                              result.details["bias_float"], result.data, result.config,
                              result.checkpoint_info, result.details)
    return manifest, time.perf_counter() - start


def run_verify(package_dir: Path, images: int, data: DataConfig | None = None,
               quiet: bool = False) -> RebuildCheck:
    """Validate the package (sha256, formats, cross-checks) and run the rebuild check."""
    package = load_package(package_dir)
    package.check_consistency()
    return check_rebuild(package, images=images, data=data, quiet=quiet)


def write_report(package_dir: Path, result: QuantResult | None, check: RebuildCheck,
                 extra: dict | None = None) -> dict:
    """report.json next to the manifest: accuracies and the rebuild check (merged with
    an existing report, so `verify` after `package` keeps the accuracies)."""
    path = Path(package_dir) / "report.json"
    report = json.loads(path.read_text()) if path.is_file() else {}
    if result is not None:
        report.update({
            "float_top1": result.float_top1,
            "int8_top1": result.int8_top1,
            "top1_drop": result.float_top1 - result.int8_top1,
            "top1_agreement": result.top1_agreement,
            "logit_sqnr_db": result.logit_sqnr_db,
            "test_split": f"{result.data.name} test",
            "quantize_seconds": result.seconds,
        })
    report["rebuild"] = check.as_dict()
    report["rebuild_identical_fraction"] = check.identical_fraction
    report.update(extra or {})
    temp = path.with_name(".report.json.tmp")
    temp.write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")
    os.replace(temp, path)
    return report
