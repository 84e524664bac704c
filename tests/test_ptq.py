"""Tests of quant.ptq (BN folding, CLE, snapping) and quant.graph on a converted MobileNetV2."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn as nn
from torchvision.models.mobilenetv2 import InvertedResidual
from torchvision.ops.misc import Conv2dNormActivation

from quant import fx_quant
from quant.data import DataConfig
from quant.graph import describe, weighted
from quant.model import mobilenet_v2_relu
from quant.po2 import WEIGHT_RANGE_FULL, WEIGHT_RANGE_GUARDED
from quant.ptq import (
    INT16_MAX,
    INT16_MIN,
    QuantConfig,
    cross_layer_equalize,
    equalization_pairs,
    fold_batchnorm,
    quantize_model,
    round_half_even_int16,
    shift_exponents,
    snap_to_integer_datapath,
    weight_scale_tensor,
)

WEIGHTED_TYPES = (nn.Conv2d, nn.Linear)


# --------------------------------------------------------------------------- helpers


def randomize_batchnorm(model: nn.Module, seed: int) -> nn.Module:
    """Give every BatchNorm non-trivial statistics and affine parameters."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                channels = module.num_features
                module.running_mean.copy_(torch.randn(channels, generator=gen) * 0.5)
                module.running_var.copy_(torch.rand(channels, generator=gen) * 1.5 + 0.5)
                module.weight.copy_(torch.rand(channels, generator=gen) + 0.5)
                module.bias.copy_(torch.randn(channels, generator=gen) * 0.5)
    return model.eval()


def weighted_names(model: nn.Module) -> list[str]:
    return [name for name, module in model.named_modules() if isinstance(module, WEIGHTED_TYPES)]


def relative_error(result: torch.Tensor, reference: torch.Tensor) -> float:
    return float((result - reference).abs().max() / reference.abs().max())


def out_range(layer: nn.Module) -> torch.Tensor:
    """Per-output-channel max |w| (independent of quant.ptq's helpers)."""
    return layer.weight.detach().abs().reshape(layer.weight.shape[0], -1).amax(dim=1)


def in_range(layer: nn.Module) -> torch.Tensor:
    """Per-input-channel max |w|; a depthwise conv's input channel i is its kernel i."""
    weight = layer.weight.detach().abs()
    if isinstance(layer, nn.Conv2d) and layer.groups > 1:
        return weight.reshape(weight.shape[0], -1).amax(dim=1)
    return weight.transpose(0, 1).reshape(weight.shape[1], -1).amax(dim=1)


def is_per_channel(weight: torch.Tensor) -> bool:
    return weight.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def float_model() -> nn.Module:
    torch.manual_seed(0)
    return randomize_batchnorm(mobilenet_v2_relu(), seed=1)


@pytest.fixture(scope="module")
def folded(float_model) -> nn.Module:
    return fold_batchnorm(float_model)


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(2))


@pytest.fixture(scope="module")
def quantized():
    """(folded float model, converted reference model, details), computed once."""
    torch.manual_seed(0)
    model = mobilenet_v2_relu()
    config = QuantConfig(calibration_images=16, batch_size=16)
    return quantize_model(model, DataConfig(), config, quiet=True)


@pytest.fixture(scope="module")
def nodes(quantized) -> list[dict]:
    return describe(quantized[1])


# --------------------------------------------------------------------------- BN folding


@torch.no_grad()
def test_fold_batchnorm_keeps_the_function(float_model, folded, images):
    assert relative_error(folded(images), float_model(images)) < 1e-5
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in float_model.modules())  # a copy


def test_fold_batchnorm_keeps_layer_names(float_model, folded):
    names = weighted_names(folded)
    assert names == weighted_names(float_model)
    assert len(names) == 53
    modules = dict(folded.named_modules())
    for name in ("features.0.0", "features.1.conv.0.0", "features.1.conv.1",
                 "features.2.conv.0.0", "features.2.conv.1.0", "features.2.conv.2",
                 "features.18.0"):
        assert isinstance(modules[name], nn.Conv2d), name
        assert modules[name].bias is not None, name
    assert isinstance(modules["classifier.1"], nn.Linear)
    # A following ReLU moves up into the BatchNorm's slot.
    assert isinstance(modules["features.0.1"], nn.ReLU)
    assert "features.0.2" not in modules and "features.2.conv.3" not in modules


# --------------------------------------------------------------------------- CLE


def expected_pair_count(model: nn.Module) -> int:
    """One pair per conv-with-ReLU inside each block, plus stem->block 1 and last->classifier."""
    blocks = [m for m in model.features if isinstance(m, InvertedResidual)]
    inside = sum(sum(isinstance(layer, Conv2dNormActivation) for layer in block.conv)
                 for block in blocks)
    return inside + 2


@pytest.fixture(scope="module")
def equalized(folded):
    model = copy.deepcopy(folded)
    return model, cross_layer_equalize(model)


def test_equalization_pairs(float_model, folded):
    pairs = equalization_pairs(folded)
    assert len(pairs) == expected_pair_count(float_model) == 35
    names = {id(module): name for name, module in folded.named_modules()}
    assert (names[id(pairs[0][0])], names[id(pairs[0][1])]) == (
        "features.0.0", "features.1.conv.0.0")
    assert (names[id(pairs[1][0])], names[id(pairs[1][1])]) == (
        "features.1.conv.0.0", "features.1.conv.1")
    assert (names[id(pairs[-1][0])], names[id(pairs[-1][1])]) == ("features.18.0",
                                                                   "classifier.1")
    for producer, consumer in pairs:
        assert out_range(producer).numel() == in_range(consumer).numel()


@torch.no_grad()
def test_cle_keeps_the_function(folded, equalized, images):
    model, sweeps = equalized
    assert 1 < sweeps < 20  # converged before the sweep limit
    assert relative_error(model(images), folded(images)) < 1e-4


def test_cle_equalizes_every_pair(folded, equalized):
    before = [(out_range(p), in_range(c)) for p, c in equalization_pairs(folded)]
    assert max(float(((r1 - r2).abs() / torch.maximum(r1, r2)).max())
               for r1, r2 in before) > 0.1
    for producer, consumer in equalization_pairs(equalized[0]):
        r1, r2 = out_range(producer), in_range(consumer)
        torch.testing.assert_close(r1, r2, rtol=1e-3, atol=0.0)


def test_cle_returns_sweeps(equalized):
    again = copy.deepcopy(equalized[0])
    assert cross_layer_equalize(again) == 1  # already equalized: converges at once
    assert cross_layer_equalize(copy.deepcopy(equalized[0]), sweeps=1) == 1


# --------------------------------------------------------------------------- snapping


def test_snapped_bias_is_an_int16_multiple(quantized, nodes):
    _, _, details = quantized
    assert len(weighted(nodes)) == 53
    for node in weighted(nodes):
        module = node["module"]
        step = node["input"]["scale"] * weight_scale_tensor(module.weight())
        bias = module.bias()
        integers, saturated = round_half_even_int16(details["bias_float"][node["name"]] / step)
        assert torch.equal(bias, (integers.double() * step).float()), node["name"]
        assert saturated == details["bias_saturated"][node["name"]], node["name"]
        # The stored float32 bias is itself an exact int16 multiple of the step.
        ratio = bias.double() / step
        assert torch.equal(ratio, torch.round(ratio)), node["name"]
        assert int(ratio.min()) >= INT16_MIN and int(ratio.max()) <= INT16_MAX


def test_snapped_weights_are_guarded(quantized, nodes):
    folded_model, _, details = quantized
    float_modules = dict(folded_model.named_modules())
    qmin, qmax = WEIGHT_RANGE_GUARDED
    for node in weighted(nodes):
        weight = node["module"].weight()
        assert weight.dtype == torch.qint8
        integers = weight.int_repr().long()
        assert int(integers.min()) >= qmin and int(integers.max()) <= qmax, node["name"]
        assert not is_per_channel(weight)
        assert int(weight.q_zero_point()) == 0
        # Recount: the folded float weights on the po2 grid, clamped to the guard.
        unclamped = torch.round(float_modules[node["name"]].weight.detach().double()
                                / weight.q_scale())
        assert torch.equal(integers, unclamped.clamp(qmin, qmax).long()), node["name"]
        recount = int(((unclamped < qmin) | (unclamped > qmax)).sum())
        assert recount == details["weights_clamped"][node["name"]], node["name"]


def test_shift_exponents(nodes):
    for node in weighted(nodes):
        shifts = shift_exponents(node)
        assert len(shifts) == 1 and all(isinstance(n, int) for n in shifts)
        w_scale = node["module"].weight().q_scale()
        ratio = node["output"]["scale"] / (node["input"]["scale"] * w_scale)
        assert 2.0 ** shifts[0] == ratio, node["name"]


def tiny_converted():
    """Conv-ReLU-Conv, po2 per-channel weights in the full range (so the guard clamps).

    Output channel 0 of the last conv has tiny weights, hence a tiny per-channel
    weight scale, so its ordinary bias of 0.5 overflows int16 steps.
    """
    torch.manual_seed(3)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 1)).eval()
    with torch.no_grad():
        model[2].weight[0] *= 1e-6
        model[2].bias[0] = 0.5
    qconfig = fx_quant.po2_qconfig("minmax", WEIGHT_RANGE_FULL, per_channel=True)
    example = torch.randn(2, 3, 8, 8)
    prepared = fx_quant.prepare(copy.deepcopy(model), qconfig, example)
    with torch.no_grad():
        for _ in range(3):
            prepared(torch.randn(2, 3, 8, 8))
    return fx_quant.convert(prepared)


def test_snap_per_channel_clamps_and_saturates():
    converted = tiny_converted()
    before = {node["name"]: node["module"].weight().int_repr().long()
              for node in weighted(describe(converted))}
    snap = snap_to_integer_datapath(converted, WEIGHT_RANGE_GUARDED)
    qmin, qmax = WEIGHT_RANGE_GUARDED
    assert sum(snap["weights_clamped"].values()) > 0
    assert snap["bias_saturated"] == {"0": 0, "2": 1}
    for node in weighted(describe(converted)):
        name, weight = node["name"], node["module"].weight()
        assert is_per_channel(weight)
        integers = weight.int_repr().long()
        assert torch.equal(integers, before[name].clamp(qmin, qmax))
        assert snap["weights_clamped"][name] == int(((before[name] < qmin)
                                                     | (before[name] > qmax)).sum())
        step = node["input"]["scale"] * weight.q_per_channel_scales().double()
        expected, saturated = round_half_even_int16(snap["bias_float"][name].double() / step)
        assert saturated == snap["bias_saturated"][name]
        assert torch.equal(node["module"].bias(), (expected.double() * step).float())
        if name == "2":
            assert float(node["module"].bias()[0]) == float(INT16_MAX * step[0])
        shifts = shift_exponents(node)
        assert len(shifts) == weight.shape[0]
        for n, w_scale in zip(shifts, weight.q_per_channel_scales().tolist(), strict=True):
            assert 2.0 ** n == node["output"]["scale"] / (node["input"]["scale"] * w_scale)


def test_round_half_even_int16():
    values = torch.tensor([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.49, -3.7])
    rounded, saturated = round_half_even_int16(values)
    assert rounded.dtype == torch.int64
    assert rounded.tolist() == [0, 2, 2, 0, -2, -2, 0, -4]
    assert saturated == 0
    edges = torch.tensor([32767.0, 32767.4, 32767.5, 40000.0, -32768.0, -32768.5, -32768.6,
                          -1e9], dtype=torch.float64)
    rounded, saturated = round_half_even_int16(edges)
    # 32767.5 -> 32768 (even) saturates; -32768.5 -> -32768 (even) does not.
    assert rounded.tolist() == [32767, 32767, 32767, 32767, -32768, -32768, -32768, -32768]
    assert saturated == 4


# --------------------------------------------------------------------------- graph.describe


def test_describe_converted_model(nodes):
    names = [node["name"] for node in nodes]
    assert len(names) == len(set(names))
    assert {node["op"] for node in nodes} == {"quantize", "conv2d", "linear", "add",
                                              "adaptive_avg_pool2d", "flatten", "dequantize"}
    assert nodes[0]["op"] == "quantize" and nodes[0]["name"] == "input"
    assert nodes[-1]["op"] == "dequantize"
    assert len(weighted(nodes)) == 53
    seen: set[str] = set()
    for node in nodes:
        assert all(source in seen for source in node["inputs"]), node["name"]
        seen.add(node["name"])
        assert math.frexp(node.get("output", node.get("input"))["scale"])[0] == 0.5


def test_describe_counts_match_torchvision(quantized, nodes):
    reference = mobilenet_v2_relu()
    blocks = [m for m in reference.features if isinstance(m, InvertedResidual)]
    residual = sum(block.use_res_connect for block in blocks)
    depthwise = sum(isinstance(m, nn.Conv2d) and m.groups > 1
                    and m.groups == m.in_channels == m.out_channels
                    for m in reference.modules())
    assert residual == 10 and depthwise == 17
    assert sum(node["op"] == "add" for node in nodes) == residual
    assert sum(node.get("kind") == "depthwise" for node in nodes) == depthwise
    assert [node["name"] for node in weighted(nodes)] == weighted_names(quantized[0])
    assert [node["name"] for node in nodes if node["op"] == "linear"] == ["classifier.1"]


# --------------------------------------------------------------------------- QuantConfig


def test_weight_limits():
    assert QuantConfig().weight_limits() == WEIGHT_RANGE_GUARDED == (-64, 64)
    assert QuantConfig(weight_range="full").weight_limits() == WEIGHT_RANGE_FULL
    with pytest.raises(ValueError, match="weight_range"):
        QuantConfig(weight_range="int4").weight_limits()


def test_qat_finetune_runs_and_exports_the_trained_weights():
    """QAT path: fake-quant training moves the weights, the folded model carries them,
    and the converted model is snapped like the PTQ one."""
    torch.manual_seed(0)
    small = mobilenet_v2_relu(width_mult=0.25).eval()
    data = DataConfig(image_size=16)
    before = fold_batchnorm(small)
    folded, converted, details = quantize_model(
        small, data, QuantConfig(qat_epochs=1, calibration_images=16, batch_size=256),
        quiet=True)
    moved = [name for name, module in folded.named_modules()
             if isinstance(module, torch.nn.Conv2d)
             and not torch.equal(module.weight, before.get_submodule(name).weight)]
    assert moved, "QAT changed no weight"
    for node in weighted(describe(converted)):
        module = node["module"]
        step = node["input"]["scale"] * module.weight().q_scale()
        bias = module.bias().double()
        assert torch.equal(bias, torch.round(bias / step) * step), node["name"]
    assert details["config"]["qat_epochs"] == 1
