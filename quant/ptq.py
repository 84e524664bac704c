"""Power-of-two post-training quantization of MobileNetV2-ReLU.

Pipeline (each step optional where noted, all deterministic for a seed):

1. fold BatchNorm into the preceding convolutions (the float model the
   hardware's weights come from; exported as params_float/);
2. cross-layer equalization (CLE, Nagel et al. 2019): rescale channel i of a
   conv followed by ReLU by 1/s_i and the matching input channel of the next
   layer by s_i, s_i = sqrt(r1_i / r2_i), until the per-channel weight ranges
   of both agree; exact in float because ReLU is positively homogeneous;
3. FX prepare with po2 observers, calibration on training images;
4. optional short QAT fine-tune with po2 fake-quant (activation scales frozen
   after calibration, weight scales follow the weights);
5. convert to fbgemm quantized modules;
6. snap: clamp weights into the guarded range and replace each float bias by
   bias_int16 * x_scale * w_scale, so PyTorch's float-bias conv equals the
   integer datapath (see docs/arithmetic.md). The result is the reference model.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.nn.utils.fusion import fuse_conv_bn_eval
from tqdm import tqdm

from quant import fx_quant
from quant.data import DataConfig, build_dataset, calibration_subset, make_loader
from quant.graph import describe, weighted
from quant.po2 import WEIGHT_RANGE_FULL, WEIGHT_RANGE_GUARDED
from quant.train import run_epochs, seed_everything

WEIGHT_RANGES = {"guarded": WEIGHT_RANGE_GUARDED, "full": WEIGHT_RANGE_FULL}
INT16_MIN, INT16_MAX = -(1 << 15), (1 << 15) - 1


@dataclass(frozen=True)
class QuantConfig:
    """PTQ settings. `method` picks po2 scales for weights and activations alike."""

    method: str = "mse"
    per_channel: bool = False
    weight_range: str = "guarded"
    cle: bool = True
    calibration_images: int = 512
    batch_size: int = 64
    qat_epochs: int = 0
    qat_lr: float = 1e-3
    seed: int = 0

    def weight_limits(self) -> tuple[int, int]:
        if self.weight_range not in WEIGHT_RANGES:
            raise ValueError(f"weight_range must be one of {sorted(WEIGHT_RANGES)}")
        return WEIGHT_RANGES[self.weight_range]


# --- 1. BatchNorm folding ------------------------------------------------------------


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Copy of `model` (eval) with every Conv2d -> BatchNorm2d pair inside a Sequential fused.

    The BatchNorm is removed from its Sequential, so the conv keeps its name
    (features.0.0, features.2.conv.2, ...) and a following ReLU moves up one
    index.
    """
    model = copy.deepcopy(model).eval()

    def visit(module: nn.Module) -> None:
        for name, child in list(module.named_children()):
            if isinstance(child, nn.Sequential):
                kept: list[nn.Module] = []
                for sub in child:
                    if isinstance(sub, nn.BatchNorm2d) and kept and isinstance(kept[-1], nn.Conv2d):
                        kept[-1] = fuse_conv_bn_eval(kept[-1], sub)
                    else:
                        kept.append(sub)
                setattr(module, name, nn.Sequential(*kept))
            visit(getattr(module, name))

    visit(model)
    return model


# --- 2. Cross-layer equalization ------------------------------------------------------


def _first_conv(module: nn.Module) -> nn.Conv2d:
    return module if isinstance(module, nn.Conv2d) else module[0]


def equalization_pairs(model: nn.Module) -> list[tuple[nn.Module, nn.Module]]:
    """(producer, consumer) pairs whose producer ends in ReLU, for folded MobileNetV2.

    Within each inverted residual block: expand -> depthwise -> project. Across
    blocks: the stem conv feeds block 1's depthwise conv, and the last 1x1 conv
    feeds the classifier through the (linear, per-channel) average pool.
    """
    features = model.features
    stem = _first_conv(features[0])  # stem conv + ReLU
    pairs: list[tuple[nn.Module, nn.Module]] = []
    for index, block in enumerate(list(features)[1:-1]):
        layers = [_first_conv(layer) for layer in block.conv]
        if index == 0:
            pairs.append((stem, layers[0]))
        # Every layer but the block's last (project, no ReLU) ends in ReLU.
        pairs.extend(zip(layers[:-1], layers[1:], strict=True))
    last_conv = _first_conv(features[-1])
    linear = [m for m in model.classifier if isinstance(m, nn.Linear)][0]
    pairs.append((last_conv, linear))
    return pairs


def _out_channel_range(layer: nn.Module) -> torch.Tensor:
    return layer.weight.detach().abs().flatten(1).amax(dim=1)


def _in_channel_range(layer: nn.Module) -> torch.Tensor:
    weight = layer.weight.detach().abs()
    if isinstance(layer, nn.Conv2d) and layer.groups > 1:  # depthwise: channel i is kernel i
        return weight.flatten(1).amax(dim=1)
    return weight.transpose(0, 1).flatten(1).amax(dim=1)


@torch.no_grad()
def _scale_pair(producer: nn.Module, consumer: nn.Module, factor: torch.Tensor) -> None:
    """Divide producer's output channel i by factor_i, multiply consumer's input channel i."""
    shape_out = (-1,) + (1,) * (producer.weight.dim() - 1)
    producer.weight.div_(factor.view(shape_out))
    if producer.bias is not None:
        producer.bias.div_(factor)
    if isinstance(consumer, nn.Conv2d) and consumer.groups > 1:
        consumer.weight.mul_(factor.view((-1,) + (1,) * (consumer.weight.dim() - 1)))
    else:
        consumer.weight.mul_(factor.view((1, -1) + (1,) * (consumer.weight.dim() - 2)))


def cross_layer_equalize(model: nn.Module, sweeps: int = 20, tolerance: float = 1e-4) -> int:
    """Equalize a folded model in place; returns the number of sweeps run."""
    pairs = equalization_pairs(model)
    for sweep in range(1, sweeps + 1):
        largest_change = 0.0
        for producer, consumer in pairs:
            r1, r2 = _out_channel_range(producer), _in_channel_range(consumer)
            valid = (r1 > 0) & (r2 > 0)
            factor = torch.where(valid, torch.sqrt(r1 / r2.clamp_min(1e-30)),
                                 torch.ones_like(r1))
            largest_change = max(largest_change, float((factor.log().abs()).max()))
            _scale_pair(producer, consumer, factor)
        if largest_change < tolerance:
            return sweep
    return sweeps


# --- 3-5. Calibrate, optional QAT, convert ----------------------------------------------


@torch.no_grad()
def _calibrate(prepared: nn.Module, loader, quiet: bool) -> None:
    for images, _ in tqdm(loader, desc="calibrate", unit="batch", disable=quiet, leave=False):
        prepared(images)


def _qat_finetune(prepared: nn.Module, data: DataConfig, config: QuantConfig,
                  quiet: bool) -> None:
    fx_quant.freeze_observers(prepared)
    train_set = build_dataset(data, "train", augment=True)
    loader = make_loader(train_set, config.batch_size, shuffle=True, seed=config.seed)
    optimizer = torch.optim.SGD(prepared.parameters(), lr=config.qat_lr, momentum=0.9)
    steps = config.qat_epochs * len(loader)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(1, steps))
    run_epochs(prepared, loader, optimizer, schedule, nn.CrossEntropyLoss(), config.qat_epochs,
               "qat", quiet)


@torch.no_grad()
def _copy_trained_weights(prepared: nn.Module, folded: nn.Module) -> None:
    """After QAT, make `folded` hold the fine-tuned float weights (same layer names)."""
    trained = dict(prepared.named_modules())
    for name, module in folded.named_modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            module.weight.copy_(trained[name].weight)
            module.bias.copy_(trained[name].bias)


def example_input(data: DataConfig, batch: int = 1) -> torch.Tensor:
    return torch.zeros(batch, 3, data.image_size, data.image_size)


def quantize_model(float_model: nn.Module, data: DataConfig, config: QuantConfig,
                   quiet: bool = False) -> tuple[nn.Module, nn.Module, dict]:
    """Quantize a float model; returns (folded float model, reference int8 model, details).

    The folded float model is the one whose weights are quantized (BatchNorm
    folded, CLE applied). The reference model has snapped biases and guarded
    weights (see snap_to_integer_datapath).
    """
    seed_everything(config.seed)
    folded = fold_batchnorm(float_model)
    sweeps = cross_layer_equalize(folded) if config.cle else 0
    calibration_set = calibration_subset(build_dataset(data, "train"),
                                         config.calibration_images, config.seed)
    loader = make_loader(calibration_set, config.batch_size, shuffle=False, seed=config.seed)
    qat = config.qat_epochs > 0
    qconfig = fx_quant.po2_qconfig(config.method, config.weight_limits(), config.per_channel,
                                   qat=qat)
    # The logits decide the class: clipping them (percentile, mse) creates ties at
    # 255, so the output layer's activation range always covers what it saw.
    output_layer = [name for name, module in folded.named_modules()
                    if isinstance(module, (nn.Conv2d, nn.Linear))][-1]
    output_qconfig = fx_quant.po2_qconfig(config.method, config.weight_limits(),
                                          config.per_channel, qat=qat,
                                          activation_method="minmax")
    model_to_prepare = copy.deepcopy(folded)
    prepared = fx_quant.prepare(model_to_prepare, qconfig, example_input(data), qat=qat,
                                module_qconfigs={output_layer: output_qconfig})
    if qat:
        prepared.eval()
    _calibrate(prepared, loader, quiet)
    if qat:
        _qat_finetune(prepared, data, config, quiet)
        _copy_trained_weights(prepared, folded)
    converted = fx_quant.convert(prepared)
    snap = snap_to_integer_datapath(converted, config.weight_limits())
    details = {"cle_sweeps": sweeps, "calibration_images": len(calibration_set),
               "config": dataclasses.asdict(config), **snap}
    return folded, converted, details


# --- 6. Snap to the integer datapath -----------------------------------------------


def round_half_even_int16(values: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Round half to even (torch.round) and saturate to int16; returns (int64 tensor, count)."""
    rounded = torch.round(values.double())
    saturated = int(((rounded < INT16_MIN) | (rounded > INT16_MAX)).sum())
    return rounded.clamp(INT16_MIN, INT16_MAX).to(torch.int64), saturated


def weight_scale_tensor(weight: torch.Tensor) -> torch.Tensor:
    """Per-output-channel float64 scales of a quantized weight (per-tensor: expanded)."""
    if weight.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
        return weight.q_per_channel_scales().double()
    return torch.full((weight.shape[0],), weight.q_scale(), dtype=torch.float64)


@torch.no_grad()
def snap_to_integer_datapath(converted: nn.Module, weight_limits: tuple[int, int]) -> dict:
    """Make the converted model compute exactly what an integer datapath computes.

    For every conv/linear: weights clamped into `weight_limits` (fbgemm
    saturation guard), bias replaced by bias_int16 * x_scale * w_scale with
    bias_int16 = saturate_int16(round_half_even(bias / (x_scale * w_scale))).
    Returns per-layer dicts: "bias_saturated" and "weights_clamped" (counts) and
    "bias_float" (the float bias before snapping).
    """
    qmin, qmax = weight_limits
    saturated_counts: dict[str, int] = {}
    clamped_counts: dict[str, int] = {}
    bias_float: dict[str, torch.Tensor] = {}
    for node in weighted(describe(converted)):
        module = node["module"]
        weight = module.weight()
        integers = weight.int_repr()
        clamped_counts[node["name"]] = int(((integers < qmin) | (integers > qmax)).sum())
        if clamped_counts[node["name"]]:
            integers = integers.clamp(qmin, qmax)
            if weight.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
                weight = torch._make_per_channel_quantized_tensor(
                    integers, weight.q_per_channel_scales(), weight.q_per_channel_zero_points(),
                    weight.q_per_channel_axis())
            else:
                weight = torch._make_per_tensor_quantized_tensor(integers, weight.q_scale(),
                                                                 weight.q_zero_point())
        step = node["input"]["scale"] * weight_scale_tensor(weight)
        bias = module.bias()
        bias = torch.zeros(weight.shape[0]) if bias is None else bias.detach().clone()
        bias_float[node["name"]] = bias
        bias_int16, saturated = round_half_even_int16(bias.double() / step)
        saturated_counts[node["name"]] = saturated
        module.set_weight_bias(weight, (bias_int16.double() * step).float())
    return {"bias_saturated": saturated_counts, "weights_clamped": clamped_counts,
            "bias_float": bias_float}


def shift_exponents(node: dict) -> list[int]:
    """n = log2(y_scale / (x_scale * w_scale)) per output channel (one entry per-tensor)."""
    weight = node["module"].weight()
    scales = weight_scale_tensor(weight)
    if weight.qscheme() not in (torch.per_channel_affine, torch.per_channel_symmetric):
        scales = scales[:1]
    shifts = []
    for w_scale in scales.tolist():
        ratio = node["output"]["scale"] / (node["input"]["scale"] * w_scale)
        exponent = math.log2(ratio)
        if exponent != round(exponent):
            raise ValueError(f"{node['name']}: scales are not powers of two (ratio {ratio})")
        shifts.append(int(round(exponent)))
    return shifts


@torch.no_grad()
def evaluate_pair(float_model: nn.Module, quantized: nn.Module, data: DataConfig,
                  quiet: bool = False) -> dict:
    """Float vs int8 on the test split, in one pass over the same batches.

    Returns float_top1 and int8_top1 (percent), top1_agreement (percent of
    images where both pick the same class) and logit_sqnr_db
    (10*log10(sum f^2 / sum (q - f)^2) over all logits, q dequantized).
    """
    float_model.eval()
    quantized.eval()
    loader = make_loader(build_dataset(data, "test"), 256, shuffle=False, seed=0)
    total = float_correct = int8_correct = agree = 0
    signal = noise = 0.0
    with fx_quant.quiet():
        for images, labels in tqdm(loader, desc="evaluate float/int8", disable=quiet,
                                   leave=False):
            reference, candidate = float_model(images), quantized(images)
            float_class, int8_class = reference.argmax(1), candidate.argmax(1)
            float_correct += int((float_class == labels).sum())
            int8_correct += int((int8_class == labels).sum())
            agree += int((float_class == int8_class).sum())
            total += int(labels.numel())
            signal += float(reference.double().pow(2).sum())
            noise += float((candidate.double() - reference.double()).pow(2).sum())
    total = max(total, 1)
    return {"float_top1": 100.0 * float_correct / total,
            "int8_top1": 100.0 * int8_correct / total,
            "top1_agreement": 100.0 * agree / total,
            "logit_sqnr_db": 10.0 * math.log10(signal / noise) if noise > 0 else math.inf}
