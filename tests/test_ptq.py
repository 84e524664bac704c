"""Tests of quant.ptq (BN folding, CLE, snapping) and quant.graph on a converted MobileNetV2."""

from __future__ import annotations

import copy
import dataclasses
import math
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from cosim.quant import float_graph, fx_quant
from cosim.quant.data import DataConfig
from cosim.quant.float_graph import SUPPORTED, FloatGraphError
from cosim.quant.graph import describe, weighted
from cosim.quant.model import mobilenet_v2_relu
from cosim.quant.po2 import WEIGHT_RANGE_FULL, WEIGHT_RANGE_GUARDED
from cosim.quant.ptq import (
    INT16_MAX,
    INT16_MIN,
    QuantConfig,
    bias_fit_exponent,
    correct_bias,
    cross_layer_equalize,
    equalization_chains,
    equalization_pairs,
    fake_quantized_weight,
    fit_bias_channel_scales,
    fold_batchnorm,
    quantize_model,
    round_half_even_int16,
    shift_exponents,
    snap_to_integer_datapath,
    weight_scale_tensor,
)
from torchvision.models import resnet18
from torchvision.models.mobilenetv2 import InvertedResidual
from torchvision.ops.misc import Conv2dNormActivation

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
    assert float_graph.weighted_layers(folded) == names  # graph order = module order here
    modules = dict(folded.named_modules())
    for name in ("features.0.0", "features.1.conv.0.0", "features.1.conv.1",
                 "features.2.conv.0.0", "features.2.conv.1.0", "features.2.conv.2",
                 "features.18.0"):
        assert isinstance(modules[name], nn.Conv2d), name
        assert modules[name].bias is not None, name
    assert isinstance(modules["classifier.1"], nn.Linear)
    # The BatchNorm's slot holds a Passthrough (no graph node); the ReLU stays where it was.
    assert isinstance(modules["features.0.1"], float_graph.Passthrough)
    assert isinstance(modules["features.0.2"], nn.ReLU)
    assert isinstance(modules["features.2.conv.3"], float_graph.Passthrough)
    assert isinstance(modules["classifier.0"], float_graph.Passthrough)  # Dropout, eval
    assert type(folded) is type(float_model)  # the hierarchy is kept, not flattened
    graph_ops = {float_graph.op_of(node, dict(float_graph.trace(folded).named_modules()))
                 for node in float_graph.trace(folded).graph.nodes}
    assert "batchnorm" not in graph_ops


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


#: The pairs (and their order) the Sequential-based implementation found on the folded
#: MobileNetV2 before CLE became graph-driven (computed once from commit 5fef9c7).
BASELINE_PAIRS = (
    [("features.0.0", "features.1.conv.0.0"), ("features.1.conv.0.0", "features.1.conv.1")]
    + [pair for block in range(2, 18)
       for pair in ((f"features.{block}.conv.0.0", f"features.{block}.conv.1.0"),
                    (f"features.{block}.conv.1.0", f"features.{block}.conv.2"))]
    + [("features.18.0", "classifier.1")])


def test_equalization_pairs_are_the_baseline_pairs(folded):
    names = {id(module): name for name, module in folded.named_modules()}
    pairs = [(names[id(p)], names[id(c)]) for p, c in equalization_pairs(folded)]
    assert len(BASELINE_PAIRS) == 35
    assert pairs == BASELINE_PAIRS
    chains, notes = equalization_chains(folded)
    assert [(c.producer, c.consumer) for c in chains] == BASELINE_PAIRS
    # Every other weighted layer has a note: 17 project convs and the classifier.
    assert len(notes) == 53 - 35
    assert any("features.17.conv.2: skipped, followed by conv2d 'features.18.0'" in n
               for n in notes)


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
    return tiny_float_and_converted()[1]


def tiny_float_and_converted() -> tuple[nn.Module, nn.Module]:
    """(float model, converted model) of tiny_converted."""
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
    return model, fx_quant.convert(prepared)


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


@pytest.mark.parametrize("x_exp", [-8, -4, 0])
@pytest.mark.parametrize("w_exp", [-12, -7, -1])
def test_bias_fit_exponent(x_exp, w_exp):
    step = 2.0 ** (x_exp + w_exp)
    # Codes at and around the int16 limits (half-even ties included), and far beyond.
    for code in (0, 1.5, 32767, 32767.4, 32767.5, 32768, 65534, 65535, 65536, 1e6,
                 -32768, -32768.5, -32769, -65536, -65537, -1e6):
        k = bias_fit_exponent(code * step, 2.0 ** x_exp, 2.0 ** w_exp)
        assert k >= 0
        fits = [INT16_MIN <= round(code / 2 ** j) <= INT16_MAX for j in range(k + 1)]
        assert fits[-1] and not any(fits[:-1]), (code, k)  # the smallest k that fits


def test_fit_bias_channel_scales_raises_only_the_overflowing_channel():
    """Channel 0 of layer '2' has tiny weights and bias 0.5: its scale is raised to the
    smallest po2 that fits the bias in int16, its weights re-quantized from float; every
    other channel keeps its integers and scale; snapping then saturates nothing."""
    model, converted = tiny_float_and_converted()
    before = {node["name"]: (node["module"].weight().int_repr().clone(),
                             node["module"].weight().q_per_channel_scales().clone())
              for node in weighted(describe(converted))}
    assert snap_to_integer_datapath(tiny_converted(), WEIGHT_RANGE_GUARDED)[
        "bias_saturated"] == {"0": 0, "2": 1}  # what the old flow exported
    raised = fit_bias_channel_scales(converted, model)
    assert raised == {"0": 0, "2": 1}
    for node in weighted(describe(converted)):
        name, weight = node["name"], node["module"].weight()
        integers, scales = weight.int_repr(), weight.q_per_channel_scales()
        old_integers, old_scales = before[name]
        changed = [c for c in range(weight.shape[0]) if scales[c] != old_scales[c]]
        assert changed == ([0] if name == "2" else [])
        for c in range(weight.shape[0]):
            if c not in changed:
                assert torch.equal(integers[c], old_integers[c]), (name, c)
        for c in changed:
            scale = float(scales[c])
            assert scale > float(old_scales[c]) and math.frexp(scale)[0] == 0.5
            bias = float(node["module"].bias().detach()[c])
            x_scale = node["input"]["scale"]
            assert INT16_MIN <= round(bias / (x_scale * scale)) <= INT16_MAX
            assert not INT16_MIN <= round(bias / (x_scale * scale / 2)) <= INT16_MAX
            float_weight = model.get_submodule(name).weight.detach()[c]
            expected = torch.round(float_weight.double() / scale).clamp(-128, 127)
            assert torch.equal(integers[c].double(), expected), (name, c)
    snap = snap_to_integer_datapath(converted, WEIGHT_RANGE_GUARDED)
    assert snap["bias_saturated"] == {"0": 0, "2": 0}


def test_quantize_model_per_channel_saturates_no_bias():
    """Per-channel weights on a net whose conv has a channel with small weights and a
    large bias: quantize_model raises that channel's scale (details, graph note) and no
    int16 bias saturates; per-tensor weights are left as they were (no such key)."""
    torch.manual_seed(0)
    model = small_cnn().eval()
    with torch.no_grad():
        conv = model.get_submodule("4")
        conv.weight[3] *= 0.1
        conv.bias[3] = -3.0 * float(conv.weight[3].abs().sum())
    config = QuantConfig(calibration_images=16, batch_size=16, per_channel=True)
    _, converted, details = quantize_model(model, DataConfig(), config, quiet=True)
    assert sum(details["bias_saturated"].values()) == 0
    assert details["weight_scales_raised"]["4"] >= 1
    assert any(note.startswith("bias fit: 4: ") for note in details["graph_notes"])
    for node in weighted(describe(converted)):
        step = node["input"]["scale"] * weight_scale_tensor(node["module"].weight())
        _, saturated = round_half_even_int16(details["bias_float"][node["name"]] / step)
        assert saturated == 0, node["name"]
    tensor_config = dataclasses.replace(config, per_channel=False)
    _, _, tensor_details = quantize_model(model, DataConfig(), tensor_config, quiet=True)
    assert "weight_scales_raised" not in tensor_details


@pytest.mark.slow
def test_shipped_small_cnn_per_channel_is_as_good_as_float():
    """The shipped small CNN per-channel: before the bias fit its conv1/conv2 biases
    saturated int16 (7 channels) and int8 top-1 fell about 21 points below float."""
    from cosim.quant.pipeline import run_quantize

    checkpoint = Path(__file__).resolve().parents[1] / "quant/checkpoints/small_cnn_digits32.pt"
    result = run_quantize(checkpoint, QuantConfig(per_channel=True), quiet=True)
    assert sum(result.details["bias_saturated"].values()) == 0
    assert sum(result.details["weight_scales_raised"].values()) > 0
    assert result.int8_top1 >= result.float_top1 - 1.0


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


# --------------------------------------------------------------------------- float graph


class Wrap(nn.Module):
    """A model whose forward is `body(self, x)` over the given submodules."""

    def __init__(self, body, **modules: nn.Module) -> None:
        super().__init__()
        self.body = body
        for name, module in modules.items():
            setattr(self, name, module)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self, x)


def conv(cin: int, cout: int, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, padding=1, groups=groups)


def randomized(model: nn.Module, seed: int) -> nn.Module:
    """Weights with very different per-channel ranges (so CLE has work to do)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                module.weight.copy_(torch.randn(module.weight.shape, generator=gen))
                module.weight.mul_(torch.rand(module.weight.shape[0], generator=gen).mul(8)
                                   .add(0.05).view((-1,) + (1,) * (module.weight.dim() - 1)))
                module.bias.copy_(torch.randn(module.bias.shape, generator=gen))
    return randomize_batchnorm(model, seed)


def test_trace_error_is_one_line():
    class Branchy(nn.Module):
        def forward(self, x):
            return x if x.sum() > 0 else -x

    with pytest.raises(FloatGraphError, match=r"^model Branchy cannot be traced by torch\.fx"
                       ) as info:
        fold_batchnorm(Branchy())
    assert "\n" not in str(info.value)


UNSUPPORTED = [
    ("sig", Wrap(lambda m, x: m.sig(m.c(x)), c=conv(3, 4), sig=nn.Sigmoid()),
     "graph node 'sig' (call_module Sigmoid)"),
    ("cat dim 0", Wrap(lambda m, x: torch.cat([m.c(x), m.c(x)], 0), c=conv(3, 4)),
     "graph node 'cat' (call_function cat, dim=0)"),
    ("hardtanh(-1, 1)", Wrap(lambda m, x: m.h(m.c(x)), c=conv(3, 4), h=nn.Hardtanh()),
     "graph node 'h' (call_module Hardtanh)"),
    ("add a constant", Wrap(lambda m, x: m.c(x) + 1.0, c=conv(3, 4)),
     "graph node 'add' (call_function add)"),
    ("mul", Wrap(lambda m, x: m.c(x) * m.c(x), c=conv(3, 4)),
     "graph node 'mul' (call_function mul)"),
    ("flatten(0)", Wrap(lambda m, x: torch.flatten(m.c(x)), c=conv(3, 4)),
     "graph node 'flatten' (call_function flatten, start_dim=0)"),
    ("reflect padding", Wrap(lambda m, x: m.c(x), c=nn.Conv2d(3, 4, 3, padding_mode="reflect")),
     "graph node 'c' (call_module Conv2d)"),
    ("parameter", Wrap(lambda m, x: F.conv2d(x, m.c.weight), c=conv(3, 4)),
     "graph node 'c_weight' (get_attr c.weight)"),
]


@pytest.mark.parametrize("label, model, start", UNSUPPORTED, ids=[u[0] for u in UNSUPPORTED])
def test_unsupported_node_is_one_line(label, model, start):
    with pytest.raises(FloatGraphError) as info:
        fold_batchnorm(model)
    message = str(info.value)
    assert message == f"{start} is not a supported op; supported: {SUPPORTED}"


SUPPORTED_MODELS = [
    ("relu6 module", Wrap(lambda m, x: m.r(m.c(x)), c=conv(3, 4), r=nn.ReLU6())),
    ("hardtanh(0, 6)", Wrap(lambda m, x: F.hardtanh(m.c(x), 0.0, 6.0), c=conv(3, 4))),
    ("functional ops", Wrap(lambda m, x: F.adaptive_avg_pool2d(F.avg_pool2d(F.max_pool2d(
        torch.relu(m.c(x)) + F.relu(m.c(x)), 2), 2), 1), c=conv(3, 4))),
    ("cat dim 1, iadd, method relu", Wrap(lambda m, x: torch.cat([m.c(x), m.c(x)], dim=1)
                                          .relu(), c=conv(3, 4))),
    ("torch.add", Wrap(lambda m, x: torch.add(m.c(x), m.c(x)), c=conv(3, 4))),
]


@pytest.mark.parametrize("label, model", SUPPORTED_MODELS, ids=[s[0] for s in SUPPORTED_MODELS])
def test_supported_ops_pass_the_check(label, model):
    folded_model = fold_batchnorm(model)
    float_graph.check_supported(float_graph.trace(folded_model))


def test_batchnorm_not_after_a_conv_is_one_line():
    model = Wrap(lambda m, x: m.bn(m.r(m.c(x))), c=conv(3, 4), r=nn.ReLU(),
                 bn=nn.BatchNorm2d(4))
    with pytest.raises(FloatGraphError, match=r"^graph node 'bn' \(call_module BatchNorm2d\) "
                       r"cannot be folded: it does not follow a conv2d; "):
        fold_batchnorm(model)
    model = Wrap(lambda m, x: (lambda y: m.bn(y) + m.c2(y))(m.c(x)), c=conv(3, 4),
                 c2=conv(4, 4), bn=nn.BatchNorm2d(4))
    with pytest.raises(FloatGraphError, match=r"conv 'c' before it has 2 users"):
        fold_batchnorm(model)


@torch.no_grad()
def test_fold_batchnorm_on_resnet18(images):
    model = randomize_batchnorm(resnet18(num_classes=10), seed=4)
    folded_model = fold_batchnorm(model)
    assert relative_error(folded_model(images), model(images)) < 1e-5
    assert weighted_names(folded_model) == weighted_names(model)
    assert float_graph.weighted_layers(folded_model) == weighted_names(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded_model.modules())
    assert all(folded_model.get_submodule(name).bias is not None
               for name in weighted_names(model))


FLATTEN_FORMS = {
    "nn.Flatten": lambda m, x: m.fc(m.flat(m.r(m.c(x)))),
    "x.flatten(1)": lambda m, x: m.fc(m.r(m.c(x)).flatten(1)),
    "y.view(y.size(0), -1)": lambda m, x: (lambda y: m.fc(y.view(y.size(0), -1)))(m.r(m.c(x))),
    "y.reshape(y.size(0), -1)": lambda m, x: (lambda y: m.fc(y.reshape(y.size(0), -1)))(
        m.r(m.c(x))),
    "y.view(y.shape[0], -1)": lambda m, x: (lambda y: m.fc(y.view(y.shape[0], -1)))(
        m.r(m.c(x))),
    "torch.reshape(y, (y.size(0), -1))": lambda m, x: (
        lambda y: m.fc(torch.reshape(y, (y.size(0), -1))))(m.r(m.c(x))),
    "torch.flatten(y, 1) in a submodule": lambda m, x: m.fc(m.inner(m.r(m.c(x)))),
}


def flatten_model(form) -> nn.Module:
    inner = Wrap(lambda m, y: F.dropout(y.view(y.size(0), -1), 0.5, m.training))
    return Wrap(form, c=conv(3, 4), r=nn.ReLU(), flat=nn.Flatten(), fc=nn.Linear(4 * 64, 5),
                inner=inner).eval()


@pytest.mark.parametrize("form", FLATTEN_FORMS)
@torch.no_grad()
def test_normalize_flatten_forms(form):
    """Every flatten form becomes torch.flatten(x, 1) and stays on the quantized tensor."""
    torch.manual_seed(5)
    model = flatten_model(FLATTEN_FORMS[form])
    x = torch.randn(2, 3, 8, 8)
    reference = model(x)
    folded_model = fold_batchnorm(model)
    torch.testing.assert_close(folded_model(x), reference, rtol=0, atol=0)
    gm = float_graph.trace(folded_model)
    targets = [node.target for node in gm.graph.nodes if node.op != "placeholder"]
    assert targets.count(torch.flatten) == 1
    assert not {"view", "reshape", "size", "flatten", torch.reshape, F.dropout} & set(targets)
    assert [n for n in gm.graph.nodes if n.op == "call_module"][0].target == "c"  # names kept
    qconfig = fx_quant.po2_qconfig("minmax", WEIGHT_RANGE_GUARDED, per_channel=False)
    prepared = fx_quant.prepare(folded_model, qconfig, x)
    prepared(x)
    converted = fx_quant.convert(prepared)
    kinds = [node.target for node in converted.graph.nodes
             if node.op in ("call_function", "call_method")]
    # One quantize of the input, one dequantize of the logits: flatten stays quantized.
    assert kinds.count(torch.quantize_per_tensor) == 1 and kinds.count("dequantize") == 1
    assert torch.flatten in kinds


def test_view_by_another_tensors_batch_size_is_unsupported():
    """view(x.size(0), -1) of a tensor other than x is not provably a flatten."""
    model = flatten_model(lambda m, x: m.fc(m.r(m.c(x)).view(x.size(0), -1)))
    with pytest.raises(FloatGraphError, match=r"^graph node 'size' \(call_method size\) is not"):
        fold_batchnorm(model)


def test_unnormalized_flatten_leaves_the_quantized_domain():
    """The probe that makes normalize necessary: FX dequantizes around nn.Flatten."""
    torch.manual_seed(5)
    model = flatten_model(FLATTEN_FORMS["nn.Flatten"])
    x = torch.randn(2, 3, 8, 8)
    qconfig = fx_quant.po2_qconfig("minmax", WEIGHT_RANGE_GUARDED, per_channel=False)
    prepared = fx_quant.prepare(copy.deepcopy(model), qconfig, x)
    prepared(x)
    kinds = [node.target for node in fx_quant.convert(prepared).graph.nodes
             if node.op in ("call_function", "call_method")]
    assert kinds.count(torch.quantize_per_tensor) == 2 and kinds.count("dequantize") == 2


# --------------------------------------------------------------------------- CLE chains

#: (label, model, expected chains, a fragment every note list must contain)
CHAIN_CASES = [
    ("conv-relu-conv", lambda: Wrap(lambda m, x: m.b(m.r(m.a(x))), a=conv(3, 8), r=nn.ReLU(),
                                    b=conv(8, 6)), [("a", "b")], None),
    ("functional relu", lambda: Wrap(lambda m, x: m.b(F.relu(m.a(x))), a=conv(3, 8),
                                     b=conv(8, 6)), [("a", "b")], None),
    ("grouped consumer", lambda: Wrap(lambda m, x: m.b(m.r(m.a(x))), a=conv(3, 8),
                                      r=nn.ReLU(), b=conv(8, 6, groups=2)), [("a", "b")], None),
    ("grouped producer", lambda: Wrap(lambda m, x: m.b(m.r(m.a(m.s(x)))), s=conv(3, 4),
                                      a=conv(4, 8, groups=2), r=nn.ReLU(), b=conv(8, 6)),
     [("a", "b")], "CLE: s: skipped, followed by conv2d 'a', not a ReLU"),
    ("depthwise x2 consumer", lambda: Wrap(lambda m, x: m.b(m.r(m.a(x))), a=conv(3, 8),
                                           r=nn.ReLU(), b=conv(8, 16, groups=8)),
     [("a", "b")], None),
    ("avgpool-flatten-linear", lambda: Wrap(
        lambda m, x: m.fc(torch.flatten(F.avg_pool2d(m.r(m.a(x)), 2), 1)), a=conv(3, 8),
        r=nn.ReLU(), fc=nn.Linear(8 * 16, 5)), [("a", "fc")], None),
    ("global pool-flatten-linear", lambda: Wrap(
        lambda m, x: m.fc(m.flat(m.pool(m.r(m.a(x))))), a=conv(3, 8), r=nn.ReLU(),
        pool=nn.AdaptiveAvgPool2d(1), flat=nn.Flatten(), fc=nn.Linear(8, 5)),
     [("a", "fc")], None),
    ("linear-relu-linear", lambda: Wrap(
        lambda m, x: m.fc2(m.r(m.fc1(torch.flatten(x, 1)))), fc1=nn.Linear(3 * 64, 9),
        r=nn.ReLU(), fc2=nn.Linear(9, 4)), [("fc1", "fc2")], None),
    ("max pool", lambda: Wrap(lambda m, x: m.b(m.p(m.r(m.a(x)))), a=conv(3, 8), r=nn.ReLU(),
                              p=nn.MaxPool2d(2), b=conv(8, 6)), [],
     "CLE: a: skipped, not equalized across a max pool 'p'"),
    ("relu6", lambda: Wrap(lambda m, x: m.b(m.r(m.a(x))), a=conv(3, 8), r=nn.ReLU6(),
                           b=conv(8, 6)), [],
     "CLE: a: skipped, followed by ReLU6 'r', which is not positively homogeneous"),
    ("concatenation", lambda: Wrap(lambda m, x: m.b(torch.cat([m.r(m.a(x)), x], 1)),
                                   a=conv(3, 8), r=nn.ReLU(), b=conv(11, 6)), [],
     "CLE: a: skipped, not equalized across a concatenation 'cat'"),
    ("residual add", lambda: Wrap(lambda m, x: m.b(m.r(m.a(x)) + m.c(x)), a=conv(3, 8),
                                  c=conv(3, 8), r=nn.ReLU(), b=conv(8, 6)), [],
     "CLE: a: skipped, not equalized across an add 'add'"),
    ("relu with two users", lambda: Wrap(lambda m, x: (lambda y: m.b(y) + m.c(y))(m.r(m.a(x))),
                                         a=conv(3, 8), r=nn.ReLU(), b=conv(8, 6),
                                         c=conv(8, 6)), [],
     "CLE: a: skipped, 'r' has 2 users ('b', 'c')"),
    ("producer with two users", lambda: Wrap(lambda m, x: (lambda y: m.b(m.r(y)) + y[:, :6])(
        m.a(x)), a=conv(3, 8), r=nn.ReLU(), b=conv(8, 6)), None, None),
    ("linear on a 4-d tensor", lambda: Wrap(lambda m, x: m.fc(m.r(m.a(x))), a=conv(3, 8),
                                            r=nn.ReLU(), fc=nn.Linear(8, 8)), [],
     "CLE: a: skipped, linear 'fc' acts on the last dimension, not on channels"),
]


def test_getitem_is_unsupported():
    """The 'producer with two users' model slices a tensor: an unsupported node."""
    with pytest.raises(FloatGraphError, match=r"^graph node 'getitem' \(call_function getitem"):
        fold_batchnorm(CHAIN_CASES[13][1]())


@pytest.mark.parametrize("label, make, expected, note",
                         [c for c in CHAIN_CASES if c[2] is not None],
                         ids=[c[0] for c in CHAIN_CASES if c[2] is not None])
@torch.no_grad()
def test_equalization_chains(label, make, expected, note):
    model = randomized(make().eval(), seed=6)
    folded_model = fold_batchnorm(model)
    chains, notes = equalization_chains(folded_model)
    assert [(c.producer, c.consumer) for c in chains] == expected
    if note is not None:
        assert note in notes, notes
    x = torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(7))
    equalized = copy.deepcopy(folded_model)
    sweeps = cross_layer_equalize(equalized)
    assert relative_error(equalized(x), folded_model(x)) < 1e-4  # exact up to rounding
    if not expected:
        assert sweeps == 0
        for name in weighted_names(folded_model):
            assert torch.equal(equalized.get_submodule(name).weight,
                               folded_model.get_submodule(name).weight)
        return
    assert sweeps >= 2
    for producer_name, consumer_name in expected:
        producer = equalized.get_submodule(producer_name)
        consumer = equalized.get_submodule(consumer_name)
        r1 = out_range(producer)
        index = float_graph.consumer_channel_index(consumer, r1.numel())
        # Independent of quant.ptq: per producer channel, the largest |w| it multiplies.
        column = consumer.weight.detach().abs().reshape(*index.shape, -1).amax(dim=2)
        r2 = torch.stack([column[index == i].max() for i in range(r1.numel())])
        torch.testing.assert_close(r1, r2, rtol=1e-3, atol=0.0)


@torch.no_grad()
def test_cle_width_025_skips_the_residual_stem():
    """At width 0.25 block 1 has a residual add: the stem's ReLU output has two users, so
    the stem -> block 1 pair of the attribute-based code (which changed the function) is
    not equalized; CLE keeps the function."""
    torch.manual_seed(0)
    model = randomize_batchnorm(mobilenet_v2_relu(width_mult=0.25), seed=1)
    assert model.features[1].use_res_connect
    folded_model = fold_batchnorm(model)
    chains, notes = equalization_chains(folded_model)
    pairs = [(c.producer, c.consumer) for c in chains]
    assert pairs == BASELINE_PAIRS[1:]
    assert notes[0].startswith("CLE: features.0.0: skipped, 'features.0.2' has 2 users")
    equalized = copy.deepcopy(folded_model)
    cross_layer_equalize(equalized)
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    assert relative_error(equalized.features[:2](x), folded_model.features[:2](x)) < 1e-4
    assert relative_error(equalized(x), folded_model(x)) < 1e-4


# --------------------------------------------------------------------------- bias correction


def small_cnn() -> nn.Module:
    """Conv/BN/ReLU/maxpool stages, a grouped conv, a flatten and an MLP head (32x32)."""
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 32, 3, padding=1, groups=4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Dropout(0.1), nn.Linear(32 * 64, 64), nn.ReLU(), nn.Linear(64, 10))


@torch.no_grad()
def test_fake_quantized_weight_is_what_convert_stores():
    for per_channel in (False, True):
        torch.manual_seed(8)
        model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 4, 1)).eval()
        qconfig = fx_quant.po2_qconfig("mse", WEIGHT_RANGE_GUARDED, per_channel)
        expected = {name: fake_quantized_weight(model.get_submodule(name).weight, qconfig)
                    for name in ("0", "2")}
        x = torch.randn(4, 3, 8, 8)
        prepared = fx_quant.prepare(copy.deepcopy(model), qconfig, x)
        prepared(x)
        converted = fx_quant.convert(prepared)
        for name, weight in expected.items():
            assert torch.equal(converted.get_submodule(name).weight().dequantize(), weight)


def mean_output(layer: nn.Module, x: torch.Tensor, weight: torch.Tensor,
                bias: torch.Tensor) -> torch.Tensor:
    """Per output channel, the mean of `layer`'s output with the given weight and bias."""
    if isinstance(layer, nn.Conv2d):
        return F.conv2d(x.double(), weight.double(), bias.double(), layer.stride, layer.padding,
                        layer.dilation, layer.groups).mean(dim=(0, 2, 3))
    return F.linear(x.double(), weight.double(), bias.double()).mean(dim=0)


@torch.no_grad()
def test_correct_bias_removes_the_mean_weight_error():
    """After correction, on the same images and float inputs, each layer's mean output
    with quantized weights and the new bias equals the float layer's mean output."""
    torch.manual_seed(9)
    folded_model = fold_batchnorm(randomized(small_cnn().eval(), seed=9))
    original = copy.deepcopy(folded_model)
    batches = [(torch.randn(8, 3, 32, 32), torch.zeros(8)) for _ in range(3)]
    qconfig = fx_quant.po2_qconfig("minmax", WEIGHT_RANGE_GUARDED, per_channel=False)
    shifts, notes = correct_bias(folded_model, {}, qconfig, batches)
    names = float_graph.weighted_layers(original)
    assert sorted(shifts) == sorted(names) and notes == []
    assert all(shift > 0 for shift in shifts.values())
    inputs: dict[str, list[torch.Tensor]] = {name: [] for name in names}
    hooks = [original.get_submodule(name).register_forward_hook(
        lambda module, args, out, name=name: inputs[name].append(args[0])) for name in names]
    for images, _ in batches:
        original(images)
    for hook in hooks:
        hook.remove()
    for name in names:
        before, after = original.get_submodule(name), folded_model.get_submodule(name)
        w_q = fake_quantized_weight(before.weight, qconfig)
        x = torch.cat(inputs[name])
        float_mean = mean_output(before, x, before.weight, before.bias)
        uncorrected = mean_output(before, x, w_q, before.bias) - float_mean
        corrected = mean_output(before, x, w_q, after.bias) - float_mean
        assert float(uncorrected.abs().max()) > 1e-4, name  # there was something to correct
        assert float(corrected.abs().max()) < 1e-5 * max(1.0, float(float_mean.abs().max())), name
        assert torch.equal(after.weight, before.weight), name


def test_correct_bias_skips_a_layer_without_bias():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.ReLU(), nn.Conv2d(4, 2, 1)).eval()
    qconfig = fx_quant.po2_qconfig("minmax", WEIGHT_RANGE_GUARDED, per_channel=False)
    shifts, notes = correct_bias(fold_batchnorm(model), {}, qconfig,
                                 [(torch.randn(2, 3, 8, 8), torch.zeros(2))])
    assert list(shifts) == ["2"]
    assert notes == ["bias correction: 0: skipped, the layer has no bias"]


# --------------------------------------------------------------------------- other networks


@pytest.mark.parametrize("arch", ["small_cnn", "resnet18"])
def test_quantize_model_other_networks(arch):
    torch.manual_seed(0)
    model = small_cnn() if arch == "small_cnn" else resnet18(num_classes=10)
    model = randomize_batchnorm(model, seed=10)
    config = QuantConfig(calibration_images=16, batch_size=16, bias_correction=True)
    folded_model, converted, details = quantize_model(model, DataConfig(), config, quiet=True)
    names = float_graph.weighted_layers(folded_model)
    assert names == weighted_names(model)
    assert [node["name"] for node in weighted(describe(converted))] == names
    assert sorted(details["bias_correction"]) == sorted(names)
    notes = details["graph_notes"]
    if arch == "small_cnn":
        assert details["cle_chains"] == [["4", "7"], ["12", "14"]]
        assert "CLE: 0: skipped, not equalized across a max pool '3'" in notes
    else:
        assert details["cle_chains"] == [[f"layer{i}.{j}.conv1", f"layer{i}.{j}.conv2"]
                                         for i in range(1, 5) for j in range(2)]
        assert "CLE: conv1: skipped, not equalized across a max pool 'maxpool'" in notes
    assert details["cle_sweeps"] >= 1
    with fx_quant.quiet(), torch.no_grad():
        x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(11))
        reference = folded_model(x)
        assert relative_error(converted(x), reference) < 0.5  # a working int8 network


def test_bias_correction_is_off_by_default_and_skipped_with_qat(quantized):
    assert QuantConfig().bias_correction is False
    assert quantized[2]["bias_correction"] == {}
    torch.manual_seed(0)
    small = mobilenet_v2_relu(width_mult=0.25).eval()
    _, _, details = quantize_model(
        small, DataConfig(image_size=16),
        QuantConfig(qat_epochs=1, calibration_images=16, batch_size=256, bias_correction=True),
        quiet=True)
    assert "bias correction: skipped, QAT (qat_epochs > 0) trains the biases" in \
        details["graph_notes"]
    assert details["bias_correction"] == {}

