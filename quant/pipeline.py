"""The flow's steps as functions the CLI calls: quantize, export, verify, package.

`quantize` saves its result (float and quantized state dicts, provenance) to a
safetensors file with JSON metadata (no pickle, see quant.tensorfile) so `export`
can run on its own; `package` runs everything in one
process and writes report.json next to the manifest.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import torch
import torch.nn as nn
from cosim.quant import fx_quant
from cosim.quant.data import DataConfig
from cosim.quant.errors import UserError
from cosim.quant.export import export_package
from cosim.quant.formats import atomic_write_bytes
from cosim.quant.graph import OPS, describe, structure
from cosim.quant.model import ModelSpec
from cosim.quant.outdir import check_output
from cosim.quant.package import MAX_LAYER_WEIGHTS, load_checked_package
from cosim.quant.ptq import QuantConfig, evaluate_pair, quantize_model
from cosim.quant.schema import MODEL_KWARGS, REPORT_NAME, REPORT_SCHEMA, read_report, validate
from cosim.quant.tensorfile import (
    TensorFileError,
    decode_state,
    encode_state,
    read_tensor_file,
    write_tensor_file,
)
from cosim.quant.train import load_checkpoint
from cosim.quant.verify import RebuildCheck, check_rebuild

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
                 quiet: bool = False, model: ModelSpec | None = None) -> QuantResult:
    """Load a checkpoint, quantize it, and measure float and int8 top-1 on the test split.

    `model` names the network when the file does not (a plain state_dict or torchvision
    checkpoint) or is a user factory; naming it is what allows importing a factory
    (quant.train.load_checkpoint). `data` defaults to the checkpoint's dataset."""
    float_model, info = load_checkpoint(checkpoint, model=model,
                                        allow_import=model is not None)
    if data is None:
        if not info.get("data"):
            raise FlowError(f"{checkpoint}: the checkpoint records no dataset; name the "
                            "data it was trained on (--data, --root, --image-size)")
        data = DataConfig(**info["data"])
    return quantize_module(float_model, config, data, info=info, quiet=quiet,
                           where=str(checkpoint))


def quantize_module(float_model: nn.Module, config: QuantConfig, data: DataConfig,
                    model: ModelSpec | None = None, info: dict | None = None,
                    quiet: bool = False, where: str = "model") -> QuantResult:
    """Quantize a float nn.Module already in memory (the Python API's entry); `info` is
    the checkpoint's (arch, kwargs, num_classes, ...), else made from `model` (or the
    module's class as `module:Class`) and the module's output count."""
    from cosim.quant.data import num_classes
    from cosim.quant.model import output_classes

    if info is None:
        classes = output_classes(float_model)
        kind = type(float_model)
        arch = model.to_dict() if model is not None else {
            "arch": f"{kind.__module__}:{kind.__qualname__}", "kwargs": {}}
        info = {**arch, "num_classes": classes, "data": dataclasses.asdict(data),
                "source": "nn.Module"}
    classes = num_classes(data)
    if classes != info["num_classes"]:
        raise FlowError(f"{where}: the model classifies {info['num_classes']} "
                        f"classes but the {data.name} data has {classes}; expected the same "
                        "(quantize on the data the model was trained for)")
    float_model = float_model.eval()
    start = time.perf_counter()
    folded, reference, details = quantize_model(float_model, data, config, quiet=quiet)
    seconds = time.perf_counter() - start
    metrics = evaluate_pair(float_model, reference, data, quiet=quiet)
    return QuantResult(folded, reference, details, data, config, info, metrics["float_top1"],
                       metrics["int8_top1"], seconds, metrics["top1_agreement"],
                       metrics["logit_sqnr_db"])


RESULT_VERSION = 3
_WEIGHTED = ("conv2d", "linear")

#: The metadata of a quantize result (the JSON under the safetensors header's 'cosim'
#: key); checked before anything is built from it.
_NUMBER = {"type": "number"}
_SIZE = {"type": "integer", "minimum": 0, "maximum": 1 << 26}
_PAIR = {"type": "array", "items": _SIZE, "minItems": 2, "maxItems": 2}
#: One layer of the node list (quant.graph.structure): what quant.qgraph builds from.
_LAYER_STRUCTURE = {
    "type": "object", "required": ["name", "op", "inputs"], "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 200},
        "op": {"enum": list(OPS)},
        "inputs": {"type": "array", "maxItems": 64,
                   "items": {"type": "string", "maxLength": 200}},
        "kind": {"enum": ["regular", "depthwise", "pointwise", "grouped", "linear"]},
        "weight_shape": {"type": "array", "items": {**_SIZE, "minimum": 1},
                         "minItems": 2, "maxItems": 4},
        "bias_shape": {"type": "array", "items": _SIZE, "minItems": 1, "maxItems": 1},
        "weight_qscheme": {"enum": ["per_tensor_symmetric", "per_channel_symmetric"]},
        "stride": _PAIR, "padding": _PAIR, "dilation": _PAIR, "kernel_size": _PAIR,
        "output_size": _PAIR, "groups": {**_SIZE, "minimum": 1}, "relu": {"type": "boolean"},
        "start_dim": {"const": 1}, "dim": {"const": 1}, "ceil_mode": {"type": "boolean"},
        "count_include_pad": {"type": "boolean"},
        "divisor_override": {"anyOf": [{"type": "null"}, {**_SIZE, "minimum": 1}]},
    },
}
_RESULT_SCHEMA = {
    "type": "object",
    "required": ["format", "version", "details", "data", "config", "checkpoint_info",
                 "float_top1", "int8_top1", "seconds", "top1_agreement", "logit_sqnr_db",
                 "layers"],
    "additionalProperties": False,
    "properties": {
        "format": {"const": RESULT_FORMAT},
        "version": {"const": RESULT_VERSION},
        "details": {"type": "object", "required": ["cle_sweeps", "calibration_images"],
                    "properties": {"cle_sweeps": {"type": "integer", "minimum": 0},
                                   "calibration_images": {"type": "integer", "minimum": 0}}},
        "data": {"type": "object", "required": ["name", "image_size"],
                 "additionalProperties": False,
                 "properties": {"name": {"type": "string", "maxLength": 64},
                                "root": {"type": ["string", "null"], "maxLength": 4096},
                                "image_size": {"type": "integer", "minimum": 8,
                                               "maximum": 1024},
                                "download": {"type": "boolean"},
                                "imagenette_size": {"type": "string", "maxLength": 16}}},
        "config": {"type": "object", "additionalProperties": False,
                   "required": ["per_channel", "weight_range"],
                   "properties": {"method": {"type": "string", "maxLength": 32},
                                  "per_channel": {"type": "boolean"},
                                  "weight_range": {"enum": ["guarded", "full"]},
                                  "cle": {"type": "boolean"},
                                  "bias_correction": {"type": "boolean"},
                                  "calibration_images": {"type": "integer", "minimum": 1},
                                  "batch_size": {"type": "integer", "minimum": 1},
                                  "qat_epochs": {"type": "integer", "minimum": 0},
                                  "qat_lr": _NUMBER,
                                  "seed": {"type": "integer"}}},
        "checkpoint_info": {"type": "object", "required": ["num_classes"],
                            "properties": {"num_classes": {"type": "integer", "minimum": 1,
                                                           "maximum": 100000},
                                           "width_mult": {"type": "number",
                                                          "exclusiveMinimum": 0,
                                                          "maximum": 4},
                                           "arch": {"type": "string", "maxLength": 200},
                                           "kwargs": MODEL_KWARGS}},
        "layers": {"type": "array", "minItems": 2, "maxItems": 4096,
                   "items": _LAYER_STRUCTURE},
        "float_top1": _NUMBER, "int8_top1": _NUMBER, "seconds": _NUMBER,
        "top1_agreement": _NUMBER, "logit_sqnr_db": _NUMBER,
    },
}


def _result_metadata(result: QuantResult) -> dict:
    details = {key: value for key, value in result.details.items() if key != "bias_float"}
    return {
        "format": RESULT_FORMAT,
        "version": RESULT_VERSION,
        "details": details,
        "data": dataclasses.asdict(result.data),
        "config": dataclasses.asdict(result.config),
        "checkpoint_info": result.checkpoint_info,
        "float_top1": result.float_top1,
        "int8_top1": result.int8_top1,
        "seconds": result.seconds,
        "top1_agreement": result.top1_agreement,
        "logit_sqnr_db": result.logit_sqnr_db,
        "layers": [structure(node) for node in describe(result.reference)],
    }


class FoldedWeights(nn.Module):
    """The folded float weight and bias of every weighted layer, as submodules at the
    layers' names (what export reads of the float model: `weight`, `bias`)."""

    def __init__(self, weights: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> None:
        super().__init__()
        for name, (weight, bias) in weights.items():
            holder: nn.Module = self
            *parents, leaf = name.split(".")
            for part in parents:
                if not hasattr(holder, part):
                    holder.add_module(part, nn.Module())
                holder = getattr(holder, part)
            layer = nn.Module()
            layer.register_buffer("weight", weight)
            layer.register_buffer("bias", bias)
            holder.add_module(leaf, layer)


def _folded_state(folded: nn.Module, layers: list[dict]) -> dict[str, torch.Tensor]:
    """`<layer>.weight` and `<layer>.bias` (zeros when it has none) of the folded float
    model, for every weighted layer."""
    modules = dict(folded.named_modules())
    state = {}
    for layer in layers:
        if layer["op"] in _WEIGHTED:
            module = modules[layer["name"]]
            bias = module.bias if module.bias is not None else \
                torch.zeros(module.weight.shape[0])
            state[f"{layer['name']}.weight"] = module.weight.detach()
            state[f"{layer['name']}.bias"] = bias.detach()
    return state


def is_quant_result(path: Path) -> bool:
    """True if `path` is a readable quantize result (used by the --out policy)."""
    try:
        _, metadata = read_tensor_file(path)
    except TensorFileError:
        return False
    return isinstance(metadata, dict) and metadata.get("format") == RESULT_FORMAT


def check_quant_out(path: Path, force: bool = False, inputs: Sequence[Path] = ()) -> Path:
    """The --out policy of a quantize result file (quant.outdir); returns the path."""
    return check_output(path, folder=False, force=force, inputs=inputs,
                        recognize=is_quant_result)


def save_quant_result(result: QuantResult, path: Path, force: bool = False,
                      inputs: Sequence[Path] = ()) -> None:
    """Write a quantize result atomically: one safetensors file (no pickle) holding the
    folded float state (`folded/...`), the reference int8 state (`reference/...`, see
    quant.tensorfile), the float biases before snapping (`bias_float/<layer>`), and
    the metadata as JSON, with the node list (quant.graph.structure of every layer) that
    rebuilds the reference model without the architecture's code (quant.qgraph).
    Refuses a path the --out policy refuses (PackageError)."""
    from cosim.quant import qgraph

    path = check_quant_out(Path(path), force, inputs)
    metadata = _result_metadata(result)
    layers = metadata["layers"]
    with fx_quant.quiet():
        reference = qgraph.transfer(qgraph.build(layers), layers, result.reference)
    tensors = encode_state(_folded_state(result.folded, layers), "folded/")
    tensors.update(encode_state(reference.state_dict(), "reference/"))
    tensors.update(encode_state(dict(result.details.get("bias_float", {})), "bias_float/"))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_tensor_file(path, tensors, metadata)


def load_quant_result(path: Path) -> QuantResult:
    """Read a file written by save_quant_result: the reference model is rebuilt from the
    file's node list (quant.qgraph: no model code is imported, every architecture
    loads), the folded float model as its weighted layers' weights and biases
    (FoldedWeights). Nothing in the file is executed; a file that is not a regular file,
    over MAX_FILE_BYTES, not a quantize result or inconsistent with its node list is a
    FlowError (one line)."""
    from cosim.quant import qgraph

    path = Path(path)
    if not os.path.lexists(path):
        raise FlowError(f"{path}: quantize result not found (run 'cosim quantize' first)")
    try:
        tensors, meta = read_tensor_file(path)
    except TensorFileError as error:
        raise FlowError(f"{path}: {error}") from None
    if isinstance(meta, dict) and meta.get("format") == RESULT_FORMAT and \
            isinstance(meta.get("version"), int) and meta["version"] < RESULT_VERSION:
        raise FlowError(f"{path}: a '{RESULT_FORMAT}' version {meta['version']} file (an "
                        f"older cnn-cosim); expected version {RESULT_VERSION}: run "
                        "'cosim quantize' again")
    errors = sorted(jsonschema.Draft202012Validator(_RESULT_SCHEMA).iter_errors(meta),
                    key=lambda e: list(e.absolute_path))
    if errors:
        where = "/".join(map(str, errors[0].absolute_path)) or "metadata"
        raise FlowError(f"{path}: not a '{RESULT_FORMAT}' version {RESULT_VERSION} file "
                        f"({where}: {errors[0].message[:200]})")
    info = meta["checkpoint_info"]
    try:
        data, config = DataConfig(**meta["data"]), QuantConfig(**meta["config"])
        layers = meta["layers"]
        sizes = [math.prod(layer["weight_shape"]) for layer in layers
                 if layer["op"] in _WEIGHTED and "weight_shape" in layer]
        if max(sizes, default=0) > MAX_LAYER_WEIGHTS or sum(sizes) > 4 * MAX_LAYER_WEIGHTS:
            raise FlowError(f"{path}: a layer of {max(sizes):,} weights (or {sum(sizes):,} "
                            f"in all); expected at most {MAX_LAYER_WEIGHTS:,} per layer")
        with fx_quant.quiet():
            reference = qgraph.build(layers)
            reference.load_state_dict(decode_state(tensors, reference.state_dict(),
                                                   "reference/"))
        if [structure(node) for node in describe(reference)] != layers:
            raise ValueError("the node list does not describe the model it builds")
        weighted = [layer for layer in layers if layer["op"] in _WEIGHTED]
        template = {}
        for layer in weighted:
            template[f"{layer['name']}.weight"] = torch.zeros(layer["weight_shape"])
            template[f"{layer['name']}.bias"] = torch.zeros(layer["weight_shape"][0])
        state = decode_state(tensors, template, "folded/")
        folded = FoldedWeights({layer["name"]: (state[f"{layer['name']}.weight"],
                                                state[f"{layer['name']}.bias"])
                                for layer in weighted})
        bias_float = decode_state(tensors, {layer["name"]: torch.zeros(layer["weight_shape"][0])
                                            for layer in weighted}, "bias_float/")
    except (TensorFileError, RuntimeError, ValueError, TypeError, KeyError,
            IndexError) as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
        raise FlowError(f"{path}: does not fit the model it describes ({first})") from None
    leftover = [name for name in tensors
                if not name.startswith(("folded/", "reference/", "bias_float/"))]
    if leftover:
        raise FlowError(f"{path}: unexpected tensor {leftover[0]!r}")
    details = {**meta["details"], "bias_float": bias_float}
    return QuantResult(folded, reference.eval(), details, data, config, info,
                       meta["float_top1"], meta["int8_top1"], meta["seconds"],
                       meta["top1_agreement"], meta["logit_sqnr_db"])


def run_export(result: QuantResult, out: Path, force: bool = False,
               inputs: Sequence[Path] = ()) -> tuple[dict, float]:
    """Write the package (under the --out policy of quant.outdir: `force`, and `inputs`
    it may not replace); returns (manifest, seconds)."""
    start = time.perf_counter()
    manifest = export_package(out, result.folded, result.reference,
                              result.details["bias_float"], result.data, result.config,
                              result.checkpoint_info, result.details, force=force,
                              inputs=inputs)
    return manifest, time.perf_counter() - start


def run_verify(package_dir: Path, images: int, data: DataConfig | None = None,
               quiet: bool = False) -> RebuildCheck:
    """Validate the package (sha256, formats, cross-checks, an existing report.json) and
    run the rebuild check. Every input is checked before the long rebuild starts."""
    read_report(package_dir)
    package = load_checked_package(package_dir)
    return check_rebuild(package, images=images, data=data, quiet=quiet)




def _finite_or_none(value: Any) -> Any:
    """NaN and infinities (not measured) become null, so report.json is standard JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    return value


def write_report(package_dir: Path, result: QuantResult | None, check: RebuildCheck,
                 extra: dict | None = None) -> dict:
    """report.json next to the manifest: accuracies and the rebuild check (merged with
    an existing report, so `verify` after `package` keeps the accuracies)."""
    path = Path(package_dir) / REPORT_NAME
    report = read_report(package_dir)
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
    report = _finite_or_none(report)
    validate(report, REPORT_SCHEMA, path)  # what is written can be read back
    atomic_write_bytes(path, (json.dumps(report, indent=1, sort_keys=True, allow_nan=False)
                              + "\n").encode())
    return report
