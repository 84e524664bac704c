"""Check that a package alone reproduces the reference quantized model.

The rebuilt model (quant.rebuild, from txt files only) and the saved
reference model (reference_model.safetensors: the reference's int8 state, loaded
into the same converted graph, which quant.qgraph builds from the manifest's
layers; no model code is imported and nothing in the package is executed) run on
the same real test images; their int8 outputs are compared element by element
(integers, equality). Works for every architecture.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from cosim.quant import fx_quant
from cosim.quant.data import DataConfig, build_dataset, make_loader
from cosim.quant.formats import PackageError
from cosim.quant.package import Package
from cosim.quant.rebuild import rebuild_model
from cosim.quant.rebuild import skeleton_for as reference_skeleton
from cosim.quant.tensorfile import TensorFileError, decode_state, read_tensor_file
from torch.fx import GraphModule
from tqdm import tqdm


@dataclass(frozen=True)
class RebuildCheck:
    """Result of comparing the rebuilt model with the reference model."""

    images: int
    elements: int
    identical_elements: int
    top1_reference: float
    top1_rebuilt: float
    top1_agreement: float

    @property
    def identical_fraction(self) -> float:
        return self.identical_elements / max(self.elements, 1)

    def as_dict(self) -> dict:
        return {"images": self.images, "elements": self.elements,
                "identical_elements": self.identical_elements,
                "identical_fraction": self.identical_fraction,
                "top1_reference": self.top1_reference, "top1_rebuilt": self.top1_rebuilt,
                "top1_agreement": self.top1_agreement}


def data_config(package: Package) -> DataConfig:
    """The DataConfig the package was calibrated with (root may be overridden by callers)."""
    data = package.manifest["data"]
    fields = {key: data[key] for key in DataConfig.__dataclass_fields__ if key in data}
    return DataConfig(**fields)


def load_reference(package: Package) -> GraphModule:
    """The reference model saved in the package: reference_model.safetensors (int8
    weights as integers with their scales and zero points, snapped biases, every
    activation scale and zero point) loaded into the converted graph of the manifest's
    layers (quant.qgraph; any architecture, no model code). Reading runs no code from
    the file; PackageError when the file is not such a file or does not fit the
    layers."""
    from cosim.quant.export import REFERENCE_FORMAT

    path = package.file_path("reference_model")
    try:
        tensors, meta = read_tensor_file(path)
        if not isinstance(meta, dict) or meta.get("format") != REFERENCE_FORMAT:
            raise TensorFileError(f"metadata format is not {REFERENCE_FORMAT!r}")
        model = reference_skeleton(package)
        with fx_quant.quiet():
            model.load_state_dict(decode_state(tensors, model.state_dict()))
    except (TensorFileError, RuntimeError) as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
        raise PackageError(path, f"not a reference model of this package ({first})"
                           ) from None
    return model.eval()


def _to_int8(output: torch.Tensor, scale: float, zero_point: int) -> torch.Tensor:
    """Dequantized output back to its integer codes (exact: po2 scale, integer codes)."""
    return torch.round(output.double() / scale).to(torch.int64) + zero_point


@torch.no_grad()
def check_rebuild(package: Package, images: int = 64, data: DataConfig | None = None,
                  quiet: bool = False) -> RebuildCheck:
    """Compare rebuilt and reference model outputs on `images` real test images."""
    fx_quant.use_engine()
    data = data or data_config(package)
    output_node = [layer for layer in package.layers if layer["op"] == "dequantize"][-1]
    scale, zero_point = output_node["input"]["scale"], output_node["input"]["zero_point"]
    rebuilt = rebuild_model(package)
    reference = load_reference(package)
    dataset = build_dataset(data, "test")
    count = min(images, len(dataset))
    subset = torch.utils.data.Subset(dataset, range(count))
    loader = make_loader(subset, 32, shuffle=False, seed=0)
    elements = identical = correct_ref = correct_new = agree = 0
    with fx_quant.quiet():
        for batch, labels in tqdm(loader, desc="rebuild check", disable=quiet, leave=False):
            expected = _to_int8(reference(batch), scale, zero_point)
            got = _to_int8(rebuilt(batch), scale, zero_point)
            elements += expected.numel()
            identical += int((expected == got).sum())
            top_ref, top_new = expected.argmax(1), got.argmax(1)
            correct_ref += int((top_ref == labels).sum())
            correct_new += int((top_new == labels).sum())
            agree += int((top_ref == top_new).sum())
    return RebuildCheck(images=count, elements=elements, identical_elements=identical,
                        top1_reference=100.0 * correct_ref / max(count, 1),
                        top1_rebuilt=100.0 * correct_new / max(count, 1),
                        top1_agreement=100.0 * agree / max(count, 1))
