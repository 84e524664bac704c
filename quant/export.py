"""Write the parameter package: manifest.json, per-layer txt/hex files, reference model.

Layout (see docs/file-formats.md for every format)::

    manifest.json
    reference_model.safetensors the reference int8 model's state (snapped biases: what the
                                hardware computes), in the names of the quant.qgraph model
                                built from the manifest's layers (no model code needed)
    params_float/<layer>/weight.txt, bias.txt           float32 (BatchNorm folded, CLE applied)
    params_quant_linear/<layer>/weight.txt, weight.hex  int8
    params_quant_linear/<layer>/bias.txt                float32 bias before snapping
    params_quant_linear/<layer>/bias_int16.txt, .hex    int16 bias
    params_quant_linear/<layer>/scale.txt, zero_point.txt
    params_quant_linear/<node>/scale.txt, zero_point.txt   input quantize, adds and cats
    params_quant_linear/scaling_factor.txt, .hex        shift n per weighted layer

The package is written into a temporary directory and exchanged with the old one
in one atomic step (quant.formats.atomic_directory), so a failed or killed export
leaves the old package or the new one, never a half-written one. The folder carries
the marker of quant.outdir; `--out` replaces only such a folder (or an empty one)
unless forced.
"""

from __future__ import annotations

import dataclasses
import math
import platform
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from cosim.quant import __version__, fx_quant
from cosim.quant.data import DataConfig, normalization
from cosim.quant.formats import (
    atomic_directory,
    write_float_txt,
    write_hex,
    write_int_txt,
    write_qparams_txt,
    write_scaling_factor_hex,
    write_scaling_factor_txt,
)
from cosim.quant.graph import INTERNAL_KEYS, describe
from cosim.quant.outdir import check_output, marker_bytes
from cosim.quant.package import FORMAT, FORMAT_VERSION, file_entry, write_manifest
from cosim.quant.ptq import QuantConfig, round_half_even_int16, shift_exponents, weight_scale_tensor
from cosim.quant.tensorfile import encode_state, write_tensor_file

FLOAT_DIR = "params_float"
QUANT_DIR = "params_quant_linear"
REFERENCE_MODEL = "reference_model.safetensors"
REFERENCE_FORMAT = "cnn-cosim-reference"
#: Images on which the skeleton loaded with the exported state must equal the
#: in-memory reference model, element for element.
SKELETON_CHECK_IMAGES = 8


class ExportCheckError(RuntimeError):
    """The model skeleton does not reproduce the reference model (a bug of the tool)."""


def reference_metadata(model_info: dict) -> dict:
    """The JSON metadata of reference_model.safetensors (informative: the structure
    comes from the manifest's layers)."""
    meta = {"format": REFERENCE_FORMAT, "version": 1, "arch": model_info.get("arch"),
            "num_classes": model_info.get("num_classes"),
            "width_mult": model_info.get("width_mult"),
            "input_shape": model_info.get("input_shape")}
    if model_info.get("kwargs") is not None:
        meta["kwargs"] = model_info["kwargs"]
    return meta


def model_section(checkpoint_info: dict, data: DataConfig) -> dict:
    """arch, kwargs (when known), num_classes, width_mult (when known: MobileNetV2) and
    input_shape of the manifest's model section."""
    section = {"arch": checkpoint_info.get("arch")}
    if checkpoint_info.get("kwargs") is not None:
        section["kwargs"] = dict(checkpoint_info["kwargs"])
    for key in ("num_classes", "width_mult"):
        if checkpoint_info.get(key) is not None:
            section[key] = checkpoint_info[key]
    section["input_shape"] = [3, data.image_size, data.image_size]
    return section


def _check_images(data: DataConfig, count: int) -> torch.Tensor:
    """`count` test images of `data` (seeded random inputs when the dataset is absent)."""
    from cosim.quant.data import DataError, build_dataset

    try:
        dataset = build_dataset(data, "test")
        return torch.stack([dataset[i][0] for i in range(min(count, len(dataset)))])
    except (DataError, OSError):
        generator = torch.Generator().manual_seed(0)
        return torch.randn(count, 3, data.image_size, data.image_size, generator=generator)


@torch.no_grad()
def check_skeleton(reference: nn.Module, path: Path, layers: list[dict], data: DataConfig
                   ) -> None:
    """Load the reference file written at `path` into a fresh quant.qgraph model of the
    manifest's `layers` (what verify and golden-verify load) and compare its outputs
    with the in-memory `reference` (the FX-converted model) on a few images: they must
    be identical (integer codes). ExportCheckError otherwise."""
    from cosim.quant import qgraph
    from cosim.quant.tensorfile import decode_state, read_tensor_file

    with fx_quant.quiet():
        skeleton = qgraph.build(layers)
        tensors, _ = read_tensor_file(path)
        skeleton.load_state_dict(decode_state(tensors, skeleton.state_dict()))
        images = _check_images(data, SKELETON_CHECK_IMAGES)
        expected, got = reference.eval()(images), skeleton.eval()(images)
    if expected.shape != got.shape or not torch.equal(expected, got):
        differing = int((expected != got).sum()) if expected.shape == got.shape else -1
        raise ExportCheckError(f"the model skeleton loaded with {path.name} differs from "
                               f"the quantized model ({differing} of {expected.numel()} "
                               "outputs); the export is refused")


@torch.no_grad()
def reference_state(reference: nn.Module, layers: list[dict]) -> dict[str, torch.Tensor]:
    """The tensors of reference_model.safetensors: the numbers of the converted model
    `reference` in the quant.qgraph model of `layers` (its state-dict names), encoded
    by quant.tensorfile."""
    from cosim.quant import qgraph

    with fx_quant.quiet():
        model = qgraph.transfer(qgraph.build(layers), layers, reference)
    return encode_state(model.state_dict())


def _weight_qparams(weight: torch.Tensor) -> dict:
    scales = weight_scale_tensor(weight).tolist()
    if weight.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
        return {"scale": scales, "zero_point": [0] * len(scales),
                "qscheme": "per_channel_symmetric"}
    return {"scale": scales[0], "zero_point": 0, "qscheme": "per_tensor_symmetric"}


def _as_list(value: float | list) -> list:
    return value if isinstance(value, list) else [value]


def _write_weighted(root: Path, node: dict, float_module: nn.Module, bias_float: torch.Tensor,
                    weight_range: tuple[int, int]) -> dict:
    """Files and manifest entry of one conv/linear layer."""
    name, module = node["name"], node["module"]
    weight = module.weight()
    weight_int8 = weight.int_repr().numpy().astype(np.int64)
    step = node["input"]["scale"] * weight_scale_tensor(weight)
    bias_int16, saturated = round_half_even_int16(bias_float.double() / step)
    weight_q = _weight_qparams(weight)
    files: dict[str, Path] = {}
    float_dir, quant_dir = root / FLOAT_DIR / name, root / QUANT_DIR / name
    float_dir.mkdir(parents=True)
    quant_dir.mkdir(parents=True)
    files["weight_float_txt"] = float_dir / "weight.txt"
    write_float_txt(files["weight_float_txt"], float_module.weight.detach().numpy())
    files["bias_float_txt"] = float_dir / "bias.txt"
    float_bias = float_module.bias
    if float_bias is None:
        float_bias = torch.zeros(float_module.weight.shape[0])
    write_float_txt(files["bias_float_txt"], float_bias.detach().numpy())
    files["weight_txt"] = quant_dir / "weight.txt"
    write_int_txt(files["weight_txt"], weight_int8)
    files["weight_hex"] = quant_dir / "weight.hex"
    write_hex(files["weight_hex"], weight_int8, 8)
    files["bias_txt"] = quant_dir / "bias.txt"
    write_float_txt(files["bias_txt"], bias_float.numpy())
    files["bias_int16_txt"] = quant_dir / "bias_int16.txt"
    write_int_txt(files["bias_int16_txt"], bias_int16.numpy())
    files["bias_int16_hex"] = quant_dir / "bias_int16.hex"
    write_hex(files["bias_int16_hex"], bias_int16.numpy(), 16)
    files["scale_txt"] = quant_dir / "scale.txt"
    write_qparams_txt(files["scale_txt"], {"input": [node["input"]["scale"]],
                                           "weight": _as_list(weight_q["scale"]),
                                           "output": [node["output"]["scale"]]})
    files["zero_point_txt"] = quant_dir / "zero_point.txt"
    write_qparams_txt(files["zero_point_txt"], {"input": [node["input"]["zero_point"]],
                                                "weight": _as_list(weight_q["zero_point"]),
                                                "output": [node["output"]["zero_point"]]})
    shifts = shift_exponents(node)
    entry = {"name": name, "op": node["op"], "kind": node["kind"], "inputs": node["inputs"],
             "weight_shape": list(weight.shape), "bias_shape": [weight.shape[0]]}
    if node["op"] == "conv2d":
        entry.update({"stride": list(module.stride), "padding": list(module.padding),
                      "dilation": list(module.dilation), "groups": int(module.groups)})
    entry.update({
        "relu": node["relu"], "input": node["input"],
        "weight": {**weight_q, "range": list(weight_range)},
        "output": node["output"],
        "shift": shifts if weight_q["qscheme"] == "per_channel_symmetric" else shifts[0],
        "bias_saturated": saturated,
        "files": {role: file_entry(root, path) for role, path in files.items()},
    })
    return entry


def _write_node_qparams(root: Path, node: dict) -> dict:
    """scale.txt / zero_point.txt of a quantize, add or cat node (roles: output; or
    input0, input1, ..., output)."""
    directory = root / QUANT_DIR / node["name"]
    directory.mkdir(parents=True)
    if node["op"] == "quantize":
        roles = {"output": node["output"]}
    else:
        roles = {f"input{k}": q for k, q in enumerate(node["input"])}
        roles["output"] = node["output"]
    write_qparams_txt(directory / "scale.txt",
                      {role: [q["scale"]] for role, q in roles.items()})
    write_qparams_txt(directory / "zero_point.txt",
                      {role: [q["zero_point"]] for role, q in roles.items()})
    return {"scale_txt": file_entry(root, directory / "scale.txt"),
            "zero_point_txt": file_entry(root, directory / "zero_point.txt")}


def _node_entry(root: Path, node: dict) -> dict:
    entry = {key: value for key, value in node.items() if key not in INTERNAL_KEYS}
    if node["op"] in ("quantize", "add", "cat"):
        entry["files"] = _write_node_qparams(root, node)
    else:
        entry["files"] = {}
    return entry


def export_package(out: Path, folded: nn.Module, reference: nn.Module, bias_float: dict,
                   data: DataConfig, quant_config: QuantConfig, checkpoint_info: dict,
                   details: dict, force: bool = False, inputs: Sequence[Path] = ()) -> dict:
    """Write the package to `out` (replacing it atomically); returns the manifest.

    `folded` is the float model whose weights were quantized; `reference` the
    converted, snapped int8 model; `bias_float` maps layer names to the float
    biases before snapping. `out` follows the --out policy of quant.outdir
    (`force`; `inputs`: paths it may not be or hold); PackageError if refused.
    """
    out = check_output(out, folder=True, force=force, inputs=inputs)
    out.parent.mkdir(parents=True, exist_ok=True)
    nodes = describe(reference)
    float_modules = dict(folded.named_modules())
    weight_range = quant_config.weight_limits()
    with atomic_directory(out, marker=marker_bytes("package")) as root:
        layers = []
        for node in nodes:
            if node["op"] in ("conv2d", "linear"):
                layers.append(_write_weighted(root, node, float_modules[node["name"]],
                                              bias_float[node["name"]], weight_range))
            else:
                layers.append(_node_entry(root, node))
        weighted = [layer for layer in layers if layer["op"] in ("conv2d", "linear")]
        scaling_txt = root / QUANT_DIR / "scaling_factor.txt"
        write_scaling_factor_txt(scaling_txt, [(layer["name"], _as_list(layer["shift"]))
                                               for layer in weighted])
        scaling_hex = root / QUANT_DIR / "scaling_factor.hex"
        write_scaling_factor_hex(scaling_hex, [shift for layer in weighted
                                               for shift in _as_list(layer["shift"])])
        model_info = model_section(checkpoint_info, data)
        write_tensor_file(root / REFERENCE_MODEL, reference_state(reference, layers),
                          reference_metadata(model_info))
        check_skeleton(reference, root / REFERENCE_MODEL, layers, data)
        mean, std = normalization(data)
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "created_by": f"cnn-cosim {__version__}",
            "model": {
                **model_info,
                "checkpoint": Path(checkpoint_info.get("path", "")).name,
                "checkpoint_sha256": checkpoint_info.get("sha256"),
                "float_test_top1_at_training": checkpoint_info.get("test_top1"),
                "weighted_layers": len(weighted),
                "weights": int(sum(math.prod(layer["weight_shape"]) for layer in weighted)),
            },
            "data": {**dataclasses.asdict(data), "mean": list(mean), "std": list(std)},
            "quantization": {
                "engine": fx_quant.ENGINE,
                "weights": "int8 symmetric, zero point 0, po2 scale, "
                           + ("per-channel" if quant_config.per_channel else "per-tensor"),
                "weight_range": list(weight_range),
                "activations": "uint8 affine, po2 scale",
                "bias": "int16 = saturate(round_half_even(bias / (x_scale * w_scale)))",
                "shift": "n = log2(y_scale / (x_scale * w_scale)); n <= 0 is a left shift",
                "reference_bias": "snapped: bias_int16 * x_scale * w_scale",
                **dataclasses.asdict(quant_config),
                "cle_sweeps": details.get("cle_sweeps"),
                "weights_clamped": int(sum(details.get("weights_clamped", {}).values())),
            },
            "calibration": {"dataset": data.name, "split": "train",
                            "images": details.get("calibration_images"),
                            "method": quant_config.method, "seed": quant_config.seed},
            "environment": {"torch": torch.__version__, "python": platform.python_version(),
                            "machine": platform.machine()},
            "files": {"scaling_factor_txt": file_entry(root, scaling_txt),
                      "scaling_factor_hex": file_entry(root, scaling_hex),
                      "reference_model": file_entry(root, root / REFERENCE_MODEL)},
            "layers": layers,
        }
        write_manifest(root / "manifest.json", manifest)
    return manifest
