"""Power-of-two post-training quantization of a CNN of the supported ops.

Pipeline (each step optional where noted, all deterministic for a seed); the
float-side steps read the model's FX graph (quant.float_graph), never its
attribute names (docs/quantization.md):

1. fold BatchNorm into the preceding convolutions (the float model the
   hardware's weights come from; exported as params_float/);
2. cross-layer equalization (CLE, Nagel et al. 2019): along every
   producer -> ReLU -> consumer chain of the graph, rescale the producer's
   output channel i by 1/s_i and the consumer's matching input channel by s_i,
   s_i = sqrt(r1_i / r2_i), until the per-channel weight ranges of both agree;
   exact in float because ReLU is positively homogeneous;
2b. optional empirical bias correction (QuantConfig.bias_correction): subtract
   E[(W_q - W) x] per output channel from each layer's bias;
3. FX prepare with po2 observers, calibration on training images;
4. optional short QAT fine-tune with po2 fake-quant (activation scales frozen
   after calibration, weight scales follow the weights);
5. convert to fbgemm quantized modules;
5b. per-channel weights only: raise a channel's po2 weight scale until its bias
   fits the int16 bias word (fit_bias_channel_scales);
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
import torch.nn.functional as F
from cosim.quant import float_graph, fx_quant
from cosim.quant.data import DataConfig, build_dataset, calibration_subset, make_loader
from cosim.quant.graph import describe, weighted
from cosim.quant.po2 import WEIGHT_RANGE_FULL, WEIGHT_RANGE_GUARDED
from cosim.quant.train import run_epochs, seed_everything
from tqdm import tqdm

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
    bias_correction: bool = False

    def weight_limits(self) -> tuple[int, int]:
        if self.weight_range not in WEIGHT_RANGES:
            raise ValueError(f"weight_range must be one of {sorted(WEIGHT_RANGES)}")
        return WEIGHT_RANGES[self.weight_range]


# --- 1. BatchNorm folding ------------------------------------------------------------


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Eval copy of `model` with every conv2d -> BatchNorm2d edge of its FX graph fused.

    The graph is normalized and checked first (quant.float_graph): a node outside
    the supported ops, or a BatchNorm that does not follow a conv, is a one-line
    FloatGraphError. The conv keeps its module name (features.0.0,
    features.2.conv.2, layer1.0.conv1, ...); the BatchNorm becomes a Passthrough.
    """
    return float_graph.fold_batchnorm(model)


# --- 2. Cross-layer equalization ------------------------------------------------------


def equalization_chains(model: nn.Module) -> tuple[list[float_graph.Chain], list[str]]:
    """(chains, notes) of a folded model: producer -> ReLU -> consumer chains found in
    its FX graph, and why every other conv2d/linear starts none (quant.float_graph)."""
    return float_graph.equalization_chains(model)


def equalization_pairs(model: nn.Module) -> list[tuple[nn.Module, nn.Module]]:
    """(producer, consumer) modules of the equalization chains, in graph order.

    For MobileNetV2: stem -> block 1's depthwise conv, expand -> depthwise ->
    project within each block, the last 1x1 conv -> the classifier through the
    (linear, per-channel) average pool and flatten.
    """
    chains, _ = equalization_chains(model)
    return [(model.get_submodule(c.producer), model.get_submodule(c.consumer)) for c in chains]


def _channels(producer: nn.Module) -> int:
    return producer.weight.shape[0]


def _out_channel_range(layer: nn.Module) -> torch.Tensor:
    return layer.weight.detach().abs().flatten(1).amax(dim=1)


def _in_channel_range(consumer: nn.Module, channels: int) -> torch.Tensor:
    """Per producer channel: the largest |w| of the consumer's weights it multiplies."""
    weight = consumer.weight.detach().abs()
    if isinstance(consumer, nn.Conv2d) and consumer.groups == 1 or (
            isinstance(consumer, nn.Linear) and weight.shape[1] == channels):
        return weight.transpose(0, 1).flatten(1).amax(dim=1)
    index = float_graph.consumer_channel_index(consumer, channels)
    column_max = weight.flatten(2).amax(dim=2) if weight.dim() > 2 else weight
    return torch.zeros(channels, dtype=weight.dtype).scatter_reduce(
        0, index.flatten(), column_max.flatten(), "amax", include_self=False)


@torch.no_grad()
def _scale_pair(producer: nn.Module, consumer: nn.Module, factor: torch.Tensor) -> None:
    """Divide producer's output channel i by factor_i, multiply consumer's input channel i."""
    shape_out = (-1,) + (1,) * (producer.weight.dim() - 1)
    producer.weight.div_(factor.view(shape_out))
    if producer.bias is not None:
        producer.bias.div_(factor)
    weight = consumer.weight
    if isinstance(consumer, nn.Conv2d) and consumer.groups == 1 or (
            isinstance(consumer, nn.Linear) and weight.shape[1] == factor.numel()):
        weight.mul_(factor.view((1, -1) + (1,) * (weight.dim() - 2)))
    else:
        index = float_graph.consumer_channel_index(consumer, factor.numel())
        weight.mul_(factor[index].view(index.shape + (1,) * (weight.dim() - 2)))


def cross_layer_equalize(model: nn.Module, sweeps: int = 20, tolerance: float = 1e-4,
                         chains: list[float_graph.Chain] | None = None) -> int:
    """Equalize a folded model in place over its graph's chains (found when not given);
    returns the number of sweeps run."""
    if chains is None:
        chains, _ = equalization_chains(model)
    pairs = [(model.get_submodule(c.producer), model.get_submodule(c.consumer)) for c in chains]
    if not pairs:
        return 0
    for sweep in range(1, sweeps + 1):
        largest_change = 0.0
        for producer, consumer in pairs:
            r1 = _out_channel_range(producer)
            r2 = _in_channel_range(consumer, _channels(producer))
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
    """After QAT, make `folded` hold the fine-tuned float weights: for every conv2d and
    linear node of the folded model's graph, the prepared module of the same name."""
    for name in float_graph.weighted_layers(folded):
        module, trained = folded.get_submodule(name), prepared.get_submodule(name)
        module.weight.copy_(trained.weight)
        if module.bias is not None:
            module.bias.copy_(trained.bias)


# --- Bias correction (optional, before FX prepare) -----------------------------------


@torch.no_grad()
def fake_quantized_weight(weight: torch.Tensor, qconfig) -> torch.Tensor:
    """`weight` on the grid FX convert will put it on: the qconfig's weight observer
    (po2 scale, the weight range as quant_min/quant_max) and round/clamp."""
    observer = qconfig.weight()
    observer(weight)
    scale, zero_point = observer.calculate_qparams()
    qmin, qmax = observer.quant_min, observer.quant_max
    if observer.qscheme in (torch.per_channel_affine, torch.per_channel_symmetric):
        return torch.fake_quantize_per_channel_affine(
            weight, scale.float(), zero_point.int(), observer.ch_axis, qmin, qmax)
    return torch.fake_quantize_per_tensor_affine(weight, float(scale), int(zero_point),
                                                 qmin, qmax)


@torch.no_grad()
def correct_bias(folded: nn.Module, qconfigs: dict, default_qconfig, loader,
                 quiet: bool = True) -> tuple[dict[str, float], list[str]]:
    """Empirical bias correction (Nagel et al. 2019; AIMET's "empirical" mode), in place.

    For every conv2d/linear of the folded float model: the expected output error of
    its weight quantization, E[(W_q - W) x] per output channel, over the calibration
    images, with x the layer's float input (forward hooks, one pass, every layer
    measured on the same uncorrected float model), is subtracted from its bias.
    W_q is the weight on the grid of the layer's qconfig (`qconfigs` by module name,
    else `default_qconfig`). Returns ({layer: largest |shift|}, notes of skipped layers).
    """
    sums: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}
    notes: list[str] = []
    handles = []

    def hook_for(name: str, delta: torch.Tensor):
        def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            x = inputs[0]
            if isinstance(module, nn.Conv2d):
                error = F.conv2d(x, delta, None, module.stride, module.padding,
                                 module.dilation, module.groups)
                error = error.transpose(0, 1).reshape(error.shape[1], -1)
            else:
                error = F.linear(x, delta).reshape(-1, delta.shape[0]).transpose(0, 1)
            sums[name] = sums.get(name, 0) + error.double().sum(dim=1)
            counts[name] = counts.get(name, 0) + error.shape[1]
        return hook

    for name in float_graph.weighted_layers(folded):
        module = folded.get_submodule(name)
        if module.bias is None:
            notes.append(f"bias correction: {name}: skipped, the layer has no bias")
            continue
        qconfig = qconfigs.get(name, default_qconfig)
        delta = fake_quantized_weight(module.weight.detach(), qconfig) - module.weight.detach()
        handles.append(module.register_forward_hook(hook_for(name, delta)))
    try:
        folded.eval()
        for images, _ in tqdm(loader, desc="bias correction", unit="batch", disable=quiet,
                              leave=False):
            folded(images)
    finally:
        for handle in handles:
            handle.remove()
    shifts: dict[str, float] = {}
    for name, total in sums.items():
        expected_error = (total / counts[name]).float()
        folded.get_submodule(name).bias.sub_(expected_error)
        shifts[name] = float(expected_error.abs().max())
    return shifts, notes


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
    chains, notes = equalization_chains(folded)
    sweeps = cross_layer_equalize(folded, chains=chains) if config.cle else 0
    if not config.cle:
        notes = ["CLE: off (QuantConfig.cle is False)"]
    calibration_set = calibration_subset(build_dataset(data, "train"),
                                         config.calibration_images, config.seed)
    loader = make_loader(calibration_set, config.batch_size, shuffle=False, seed=config.seed)
    qat = config.qat_epochs > 0
    qconfig = fx_quant.po2_qconfig(config.method, config.weight_limits(), config.per_channel,
                                   qat=qat)
    # The logits decide the class: clipping them (percentile, mse) creates ties at
    # 255, so the output layer's activation range always covers what it saw.
    output_layer = float_graph.weighted_layers(folded)[-1]
    output_qconfig = fx_quant.po2_qconfig(config.method, config.weight_limits(),
                                          config.per_channel, qat=qat,
                                          activation_method="minmax")
    module_qconfigs = {output_layer: output_qconfig}
    bias_shifts: dict[str, float] = {}
    if config.bias_correction and qat:
        notes.append("bias correction: skipped, QAT (qat_epochs > 0) trains the biases")
    elif config.bias_correction:
        # Before prepare: the activation observers then calibrate on the corrected model.
        bias_shifts, bias_notes = correct_bias(folded, module_qconfigs, qconfig, loader, quiet)
        notes.extend(bias_notes)
    model_to_prepare = copy.deepcopy(folded)
    prepared = fx_quant.prepare(model_to_prepare, qconfig, example_input(data), qat=qat,
                                module_qconfigs=module_qconfigs)
    if qat:
        prepared.eval()
    _calibrate(prepared, loader, quiet)
    if qat:
        _qat_finetune(prepared, data, config, quiet)
        _copy_trained_weights(prepared, folded)
    converted = fx_quant.convert(prepared)
    raised: dict[str, int] = {}
    if config.per_channel:
        raised = fit_bias_channel_scales(converted, folded)
        notes.extend(f"bias fit: {name}: {count} channel weight scale(s) raised so the "
                     "int16 bias fits" for name, count in raised.items() if count)
    snap = snap_to_integer_datapath(converted, config.weight_limits())
    details = {"cle_sweeps": sweeps, "calibration_images": len(calibration_set),
               "config": dataclasses.asdict(config), "graph_notes": notes,
               "cle_chains": [[chain.producer, chain.consumer] for chain in chains]
               if config.cle else [],
               "bias_correction": bias_shifts, **snap}
    if config.per_channel:
        details["weight_scales_raised"] = raised
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


def bias_fit_exponent(bias: float, input_scale: float, weight_scale: float) -> int:
    """Smallest k >= 0 with round_half_even(bias / (input_scale * weight_scale * 2**k))
    inside int16: how many doublings a channel's po2 weight scale needs so its bias fits
    the int16 bias word (0 when it already fits)."""
    k = 0
    while True:
        code = round(bias / (input_scale * weight_scale * 2.0 ** k))  # half-even
        if INT16_MIN <= code <= INT16_MAX:
            return k
        k += 1


@torch.no_grad()
def fit_bias_channel_scales(converted: nn.Module, folded: nn.Module) -> dict[str, int]:
    """Per-channel weights only: raise each channel's weight scale until its bias fits.

    The int16 bias word holds bias / (x_scale * w_scale). A per-channel po2 weight
    scale is chosen from that channel's weights alone; when it comes out smaller than
    the tensor's (any channel but the largest), the bias step x_scale * w_scale is
    smaller too, and a bias that is large for its channel's weights no longer fits
    int16: saturating it moves the channel's output by up to many output codes (on the
    shipped small CNN, conv2 channel 26: bias -2.48, saturated to -1.0, 47 codes).
    Rule: each channel's scale becomes the smallest power of two >= its observer's
    scale with round_half_even(bias / (x_scale * w_scale)) in [-32768, 32767]
    (bias_fit_exponent), and that channel's weights are re-quantized from the folded
    float weights (`folded`, the module of the same name) on the new grid; the other
    channels keep their integers and scales. Per-tensor weights are left alone (one
    scale for all channels: raising it would coarsen every channel). In place; returns
    {layer: number of channels raised} for every per-channel layer.
    """
    raised: dict[str, int] = {}
    for node in weighted(describe(converted)):
        module, name = node["module"], node["name"]
        weight = module.weight()
        if weight.qscheme() not in (torch.per_channel_affine, torch.per_channel_symmetric):
            continue
        bias = module.bias()
        raised[name] = 0
        if bias is None:
            continue
        x_scale = node["input"]["scale"]
        scales = weight.q_per_channel_scales().double()
        exponents = [bias_fit_exponent(b, x_scale, s)
                     for b, s in zip(bias.double().tolist(), scales.tolist(), strict=True)]
        channels = [c for c, k in enumerate(exponents) if k]
        if not channels:
            continue
        float_weight = folded.get_submodule(name).weight.detach().float()
        new_scales = scales * torch.tensor([2.0 ** k for k in exponents], dtype=torch.float64)
        axis = weight.q_per_channel_axis()
        requantized = torch.quantize_per_channel(
            float_weight, new_scales, weight.q_per_channel_zero_points(), axis,
            torch.qint8).int_repr()
        integers = weight.int_repr().clone()
        index = torch.tensor(channels)
        integers.index_copy_(axis, index, requantized.index_select(axis, index))
        weight = torch._make_per_channel_quantized_tensor(
            integers, new_scales, weight.q_per_channel_zero_points(), axis)
        module.set_weight_bias(weight, bias)
        raised[name] = len(channels)
    return raised


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
