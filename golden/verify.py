"""Golden model vs PyTorch, every layer, on real images.

The golden model (golden.infer, NumPy, package files only) and the PyTorch
quantized model rebuilt from the same files (quant.rebuild, fbgemm) run on the
same test images: `images` at the package's input size plus `images_224` at
224x224. Every manifest node's output is compared as integers (uint8 codes; the
final dequantize node as float32 logits). The rebuilt model's final output is
also checked against the package's reference model (reference_model.safetensors,
loaded into the same skeleton by quant.verify.load_reference; no code is run).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import torch
from cosim.golden.infer import ROUNDINGS, IntegerModel
from cosim.quant import fx_quant
from cosim.quant.data import DataConfig, build_dataset
from cosim.quant.formats import PathLike
from cosim.quant.graph import IDENTITY_TYPES, describe
from cosim.quant.package import Package, load_checked_package
from cosim.quant.rebuild import rebuild_model
from cosim.quant.verify import data_config, load_reference
from torch.fx import GraphModule, Interpreter, Node
from tqdm import tqdm

__all__ = ["LAYER_FIELDS", "normalize_rounding", "torch_activations", "verify_golden"]

#: Keys of each entry of the report's `layers` list (half_up adds two more).
LAYER_FIELDS = ("name", "op", "elements", "identical_fraction", "max_abs_diff")


def normalize_rounding(rounding: str) -> str:
    """'half-even' / 'half_even' -> 'half_even' (ValueError for anything else)."""
    value = rounding.replace("-", "_")
    if value not in ROUNDINGS:
        raise ValueError(f"rounding must be one of {ROUNDINGS}, got {rounding!r}")
    return value


def _node_names(model: GraphModule) -> dict[str, str]:
    """FX node name -> manifest layer name, for the FX node that produces each layer's
    output.

    quant.graph.describe lists, per layer, the FX nodes it came from (`fx_nodes`, the
    output node last: `size` then `view` for x.view(x.size(0), -1)); identity modules
    (dropout) belong to no layer. A describe without `fx_nodes` (one op per FX node) is
    matched in graph order, identity modules skipped.
    """
    layers = describe(model)
    if all("fx_nodes" in layer for layer in layers):
        names = {layer["fx_nodes"][-1]: layer["name"] for layer in layers if layer["fx_nodes"]}
        if len(names) != len(layers):
            raise RuntimeError(f"{len(layers)} layers but {len(names)} output nodes")
        return names
    modules = dict(model.named_modules())
    fx_nodes = [node for node in model.graph.nodes
                if node.op not in ("placeholder", "get_attr", "output")
                and not (node.op == "call_module"
                         and isinstance(modules[node.target], IDENTITY_TYPES))]
    if len(fx_nodes) != len(layers):
        raise RuntimeError(f"{len(fx_nodes)} graph nodes but {len(layers)} layers")
    return {node.name: layer["name"] for node, layer in zip(fx_nodes, layers, strict=True)}


class _Recorder(Interpreter):
    """Runs the GraphModule and keeps every layer's output as a NumPy array."""

    def __init__(self, model: GraphModule, names: dict[str, str]) -> None:
        super().__init__(model)
        self.names = names
        self.record: dict[str, np.ndarray] = {}

    def run_node(self, n: Node) -> object:
        result = super().run_node(n)
        name = self.names.get(n.name)
        if name is not None and isinstance(result, torch.Tensor):
            value = result.int_repr() if result.is_quantized else result.detach()
            self.record[name] = value.numpy().copy()
        return result


@torch.no_grad()
def torch_activations(model: GraphModule, images: torch.Tensor) -> dict[str, np.ndarray]:
    """Every layer's output of the quantized GraphModule, keyed by manifest name:
    uint8 codes (int_repr, NCHW or [N, features]); the dequantize node's float32 logits."""
    recorder = _Recorder(model, _node_names(model))
    with fx_quant.quiet():
        recorder.run(images)
    return recorder.record


class _Tally:
    """Per-layer counts accumulated over batches."""

    def __init__(self, names: list[str]) -> None:
        self.elements = dict.fromkeys(names, 0)
        self.identical = dict.fromkeys(names, 0)
        self.max_diff: dict[str, float] = dict.fromkeys(names, 0.0)
        self.isolated = dict.fromkeys(names, 0)

    def add(self, name: str, golden: np.ndarray, expected: np.ndarray) -> None:
        if golden.shape != expected.shape:
            raise RuntimeError(f"{name}: golden shape {golden.shape}, PyTorch "
                               f"{expected.shape}")
        if np.issubdtype(expected.dtype, np.floating):
            diff = np.abs(golden.astype(np.float64) - expected.astype(np.float64))
        else:
            diff = np.abs(golden.astype(np.int64) - expected.astype(np.int64))
        self.elements[name] += diff.size
        self.identical[name] += int(np.count_nonzero(diff == 0))
        if diff.size:
            self.max_diff[name] = max(self.max_diff[name], float(diff.max()))


def _batches(data: DataConfig, count: int, batch_size: int
             ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    dataset = build_dataset(data, "test")
    count = min(count, len(dataset))
    for start in range(0, count, batch_size):
        items = [dataset[i] for i in range(start, min(count, start + batch_size))]
        yield (torch.stack([image for image, _ in items]),
               torch.tensor([label for _, label in items]))


@torch.no_grad()
def verify_golden(package: Package | PathLike, images: int = 54, images_224: int = 4,
                  rounding: str = "half_even", golden: IntegerModel | None = None,
                  batch_size: int = 32, quiet: bool = True,
                  data: DataConfig | None = None) -> dict:
    """Compare every layer of the golden model with PyTorch on real test images.

    `images` come from the package's test split at its input size, `images_224` from
    the same split at 224x224. `golden` overrides the model built from the package
    (e.g. one with a changed weight; its rounding then applies). `data` replaces the
    manifest's dataset (e.g. another root after the data moved). Returns the
    verify.json dict: images (total), images_224, rounding, layers [{name, op,
    elements, identical_fraction, max_abs_diff}, plus differing_fraction and
    differing_fraction_isolated (that layer alone, fed PyTorch's inputs) in half_up
    mode], top1_agreement (%, golden vs PyTorch class), top1_golden / top1_pytorch
    (% correct), identical, reference_identical (rebuilt model == the reference model),
    seconds.
    """
    rounding = normalize_rounding(rounding) if golden is None else golden.rounding
    if images < 0 or images_224 < 0 or images + images_224 < 1:
        raise ValueError("need at least one image")
    if not isinstance(package, Package):
        package = load_checked_package(package)
    fx_quant.use_engine()
    start = time.perf_counter()
    golden = golden or IntegerModel.from_package(package, rounding=rounding)
    rebuilt = rebuild_model(package)
    reference = load_reference(package)
    names = golden.names
    tally = _Tally(names)
    data = data_config(package) if data is None else data
    sets = [(data, images), (replace(data, image_size=224), images_224)]
    counted = {"total": 0, "224": 0, "agree": 0, "golden_ok": 0, "torch_ok": 0}
    reference_mismatch = 0
    golden_seconds = torch_seconds = 0.0
    bar = tqdm(total=images + images_224, desc="golden verify", disable=quiet, leave=False)
    for config, count in sets:
        size = min(batch_size, 8) if config.image_size >= 128 else batch_size
        for batch, labels in (_batches(config, count, size) if count else ()):
            tick = time.perf_counter()
            expected = torch_activations(rebuilt, batch)
            with fx_quant.quiet():
                saved = reference(batch).numpy()
            torch_seconds += time.perf_counter() - tick
            reference_mismatch += int(np.count_nonzero(saved != expected[golden.output_name]))
            tick = time.perf_counter()
            got = golden.run(batch.numpy())
            golden_seconds += time.perf_counter() - tick
            for name in names:
                tally.add(name, got[name], expected[name])
                if rounding == "half_up":
                    layer_inputs = ([batch.numpy()] if golden.op(name) == "quantize" else
                                    [expected[source] for source in golden.inputs(name)])
                    alone = golden.run_layer(name, layer_inputs)
                    tally.isolated[name] += int(np.count_nonzero(alone == expected[name]))
            golden_class = got[golden.output_name].argmax(1)
            torch_class = expected[golden.output_name].argmax(1)
            truth = labels.numpy()
            counted["total"] += len(truth)
            counted["224"] += len(truth) if config is sets[1][0] else 0
            counted["agree"] += int(np.count_nonzero(golden_class == torch_class))
            counted["golden_ok"] += int(np.count_nonzero(golden_class == truth))
            counted["torch_ok"] += int(np.count_nonzero(torch_class == truth))
            bar.update(len(truth))
    bar.close()
    layers = []
    for name in names:
        elements = tally.elements[name]
        fraction = tally.identical[name] / elements if elements else 1.0
        entry = {"name": name, "op": golden.op(name), "elements": elements,
                 "identical_fraction": fraction, "max_abs_diff": tally.max_diff[name]}
        if rounding == "half_up":
            entry["differing_fraction"] = 1.0 - fraction
            entry["differing_fraction_isolated"] = (
                1.0 - tally.isolated[name] / elements if elements else 0.0)
        layers.append(entry)
    total = max(counted["total"], 1)
    return {
        "package": str(package.root),
        "rounding": rounding,
        "float32_step": golden.float32_step,
        "images": counted["total"],
        "images_224": counted["224"],
        "image_size": data.image_size,
        "layers": layers,
        "identical": all(entry["identical_fraction"] == 1.0 for entry in layers),
        "top1_agreement": 100.0 * counted["agree"] / total,
        "top1_golden": 100.0 * counted["golden_ok"] / total,
        "top1_pytorch": 100.0 * counted["torch_ok"] / total,
        "reference_identical": reference_mismatch == 0,
        "seconds": {"total": time.perf_counter() - start, "golden": golden_seconds,
                    "pytorch": torch_seconds},
    }
