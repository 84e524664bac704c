"""Rebuild the quantized PyTorch model from the package files alone (no .pt file).

The model structure comes from the manifest's node list (quant.qgraph builds the
converted GraphModule from it: no model code is imported, so every architecture
rebuilds); every number comes from the package's text files: int8 weights
(weight.txt), int16 biases (bias_int16.txt, turned into the snapped float bias
bias_int16 * x_scale * w_scale), and the scales and zero points (scale.txt,
zero_point.txt). If the result equals the reference model on real images, the
files carry everything the hardware needs.

For a built-in architecture (quant.model.BUILTIN_ARCHS), `check_architecture` also
compares the package's structure with that architecture's converted graph.
"""

from __future__ import annotations

import functools
import json
from typing import TYPE_CHECKING

import numpy as np
import torch
from cosim.quant import fx_quant, qgraph
from cosim.quant.choices import unchecked_architecture_note
from cosim.quant.formats import PackageError
from cosim.quant.graph import STRUCTURE_KEYS, describe, structure
from torch.fx import GraphModule

if TYPE_CHECKING:  # quant.package imports this module (check_architecture); no cycle at run time
    from cosim.quant.package import Package

__all__ = ["STRUCTURE_KEYS", "check_architecture", "converted_skeleton", "rebuild_model",
           "reference_structure", "skeleton_for"]


def converted_skeleton(float_model: torch.nn.Module, input_shape: list[int],
                       per_channel: bool = False,
                       weight_range: tuple[int, int] = (-128, 127)) -> GraphModule:
    """`float_model` through the quantize path's float preparation (quant.ptq's BatchNorm
    folding and graph normalization), FX prepare and convert, calibrated on one zero
    image: the converted graph of that architecture, with placeholder numbers."""
    from cosim.quant.ptq import fold_batchnorm

    folded = fold_batchnorm(float_model)
    qconfig = fx_quant.po2_qconfig("minmax", weight_range, per_channel)
    example = torch.zeros(1, *input_shape)
    with fx_quant.quiet():
        prepared = fx_quant.prepare(folded, qconfig, example)
        with torch.no_grad():
            prepared(example)
        return fx_quant.convert(prepared)


def skeleton_for(package: Package) -> GraphModule:
    """The converted GraphModule of the manifest's layers (quant.qgraph), with
    placeholder numbers; PackageError if the layers cannot be built."""
    try:
        return qgraph.build(package.layers)
    except qgraph.QGraphError as error:
        raise PackageError(package.manifest_path, str(error)) from None


def _quantized_weight(weight_int8: np.ndarray, scales: list[float]) -> torch.Tensor:
    integers = torch.from_numpy(weight_int8.astype(np.int8))
    if len(scales) == 1:
        return torch._make_per_tensor_quantized_tensor(integers, scales[0], 0)
    return torch._make_per_channel_quantized_tensor(
        integers, torch.tensor(scales, dtype=torch.float64),
        torch.zeros(len(scales), dtype=torch.int64), 0)


@torch.no_grad()
def rebuild_model(package: Package) -> GraphModule:
    """The reference quantized model, reconstructed from the package's txt files."""
    model = skeleton_for(package)
    for layer in package.layers:
        name = layer["name"]
        if layer["op"] in ("quantize", "add"):
            files = package.qparams(name)
            qgraph.set_qparams(model, package.layers, name, files["scale"]["output"][0],
                               files["zero_point"]["output"][0])
        elif layer["op"] in ("conv2d", "linear"):
            files = package.qparams(name)
            x_scale = files["scale"]["input"][0]
            w_scales = files["scale"]["weight"]
            weight = _quantized_weight(package.weight_int8(name), w_scales)
            bias_int16 = torch.from_numpy(package.bias_int16(name)).double()
            bias = (bias_int16 * x_scale * torch.tensor(w_scales, dtype=torch.float64)).float()
            module = model.get_submodule(name)
            module.set_weight_bias(weight, bias)
            module.scale = float(files["scale"]["output"][0])
            module.zero_point = int(files["zero_point"]["output"][0])
    return model.eval()


# ---------------------------------------------------------------- built-in architectures


def _builtin_archs() -> tuple[str, ...]:
    from cosim.quant import model as model_module

    return tuple(getattr(model_module, "BUILTIN_ARCHS", {model_module.ARCH: None}))


def _spec_of(model_info: dict) -> tuple[str, dict]:
    """(arch, kwargs) of a manifest's model section; a manifest without kwargs (older,
    MobileNetV2 only) gives num_classes and width_mult."""
    arch = model_info.get("arch")
    if "kwargs" in model_info:
        return arch, dict(model_info["kwargs"])
    kwargs = {}
    if "num_classes" in model_info:
        kwargs["num_classes"] = int(model_info["num_classes"])
    if "width_mult" in model_info:
        kwargs["width_mult"] = float(model_info["width_mult"])
    return arch, kwargs


@functools.cache
def _reference_structure(arch: str, kwargs_json: str, input_shape: tuple[int, ...]
                         ) -> tuple[dict, ...]:
    from cosim.quant import model as model_module

    kwargs = json.loads(kwargs_json)
    if hasattr(model_module, "build_model"):
        float_model = model_module.build_model(model_module.ModelSpec(arch, kwargs))
    else:  # before quant.model grew its registry: MobileNetV2 only
        float_model = model_module.mobilenet_v2_relu(**kwargs)
    skeleton = converted_skeleton(float_model, list(input_shape))
    return tuple(structure(node) for node in describe(skeleton))


def reference_structure(arch: str, kwargs: dict, input_shape: list[int]) -> tuple[dict, ...]:
    """The layers of the built-in architecture `arch(**kwargs)` as a package describes
    them (quant.graph.structure of its converted graph at `input_shape`)."""
    return _reference_structure(arch, json.dumps(kwargs, sort_keys=True), tuple(input_shape))


def check_architecture(package: Package) -> str | None:
    """PackageError unless every layer of the package has the structure of the built-in
    architecture the manifest names (arch and kwargs): same layers in the same order,
    and per layer the same STRUCTURE_KEYS values and weight qscheme. For an
    architecture that is not built in (a user factory `pkg.mod:fn`, or a name this
    version does not know) nothing is imported and the check is skipped: the returned
    note says so (None when the check ran)."""
    model_info = package.manifest["model"]
    where = package.manifest_path
    arch, kwargs = _spec_of(model_info)
    if arch not in _builtin_archs():
        return unchecked_architecture_note(arch)
    shape = model_info.get("input_shape") or [3, 32, 32]
    described = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
    try:
        reference = reference_structure(arch, kwargs, list(shape))
    except Exception as error:  # noqa: BLE001 - the arch's factory refuses its kwargs
        from cosim.quant.errors import one_line

        raise PackageError(where, f"model {arch}({described}) cannot be built as the "
                           f"reference ({type(error).__name__}: {one_line(error)})") from None
    layers = package.layers
    model = f"{arch}({described})"
    for index, (got, want) in enumerate(zip(layers, reference, strict=False)):
        if got["name"] != want["name"]:
            raise PackageError(where, f"layers[{index}] is {got['name']!r}; the {arch} "
                               f"reference has {want['name']!r} there (model {model})")
        mine = structure(got)
        for key in STRUCTURE_KEYS:  # the weight qscheme is the user's choice
            if key in want and mine.get(key) != want[key]:
                raise PackageError(where, f"layers[{index}] ({got['name']!r}): {key} "
                                   f"{mine.get(key)!r}; the {arch} reference has "
                                   f"{want[key]!r} (model {model})")
    if len(layers) != len(reference):
        raise PackageError(where, f"{len(layers)} layers; the {arch} reference has "
                           f"{len(reference)} (model {model})")
    return None
