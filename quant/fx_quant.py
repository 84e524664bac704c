"""Every call into PyTorch's FX graph mode quantization lives here.

FX graph mode (prepare_fx / prepare_qat_fx / convert_fx) is deprecated
upstream and slated for removal; keeping it in one module makes the move to
its successor a one-file change. Its deprecation warnings are silenced here,
inside these calls, and nowhere else.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import torch
import torch.nn as nn
from cosim.quant.po2 import ACTIVATION_RANGE, Po2Observer, Po2PerChannelObserver
from torch.ao.quantization import FakeQuantize, QConfig, QConfigMapping
from torch.fx import GraphModule

ENGINE = "fbgemm"  # "x86" routes some convolutions to oneDNN, which rounds differently


@contextlib.contextmanager
def _fx_quiet() -> Iterator[None]:
    """Silence the deprecation chatter of FX quantization for the enclosed calls only."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\.ao\..*")
        warnings.filterwarnings("ignore", message=r".*(deprecated|quantize_per_).*")
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        # quantized cat with inputs of different qparams requantizes them; the golden
        # model does the same and golden-verify proves it bit for bit (arithmetic.md)
        warnings.filterwarnings("ignore", message=r"All inputs of this cat operator")
        yield


def use_engine() -> None:
    """Select the fbgemm quantized engine (the arithmetic contract is measured on it)."""
    torch.backends.quantized.engine = ENGINE


def po2_qconfig(method: str, weight_range: tuple[int, int], per_channel: bool,
                qat: bool = False, activation_method: str | None = None) -> QConfig:
    """QConfig with po2 observers: uint8 affine activations, symmetric int8 weights.

    With qat=True both are wrapped in FakeQuantize so training sees the rounding
    and clamping; the observers then keep choosing po2 scales.
    `activation_method` overrides `method` for the activation observer.
    """
    activation = Po2Observer.with_args(dtype=torch.quint8, qscheme=torch.per_tensor_affine,
                                       quant_min=ACTIVATION_RANGE[0],
                                       quant_max=ACTIVATION_RANGE[1],
                                       method=activation_method or method)
    if per_channel:
        weight = Po2PerChannelObserver.with_args(dtype=torch.qint8,
                                                 qscheme=torch.per_channel_symmetric,
                                                 quant_min=weight_range[0],
                                                 quant_max=weight_range[1], method=method)
    else:
        weight = Po2Observer.with_args(dtype=torch.qint8, qscheme=torch.per_tensor_symmetric,
                                       quant_min=weight_range[0], quant_max=weight_range[1],
                                       method=method)
    if qat:
        activation = FakeQuantize.with_args(observer=activation, quant_min=ACTIVATION_RANGE[0],
                                            quant_max=ACTIVATION_RANGE[1])
        weight = FakeQuantize.with_args(observer=weight, quant_min=weight_range[0],
                                        quant_max=weight_range[1])
    return QConfig(activation=activation, weight=weight)


def prepare(model: nn.Module, qconfig: QConfig, example: torch.Tensor,
            qat: bool = False, module_qconfigs: dict[str, QConfig] | None = None) -> GraphModule:
    """Trace `model`, fuse conv+relu, insert observers (or fake-quant modules for QAT).

    `module_qconfigs` maps module names to a QConfig that replaces the global one.
    """
    from torch.ao.quantization.quantize_fx import prepare_fx, prepare_qat_fx

    use_engine()
    mapping = QConfigMapping().set_global(qconfig)
    for name, module_qconfig in (module_qconfigs or {}).items():
        mapping.set_module_name(name, module_qconfig)
    with _fx_quiet():
        if qat:
            return prepare_qat_fx(model.train(), mapping, (example,))
        return prepare_fx(model.eval(), mapping, (example,))


def convert(prepared: GraphModule) -> GraphModule:
    """Replace observed modules by fbgemm quantized modules (eval mode)."""
    from torch.ao.quantization.quantize_fx import convert_fx

    use_engine()
    with _fx_quiet():
        return convert_fx(prepared.eval())


def freeze_observers(prepared: GraphModule, weights_too: bool = False) -> None:
    """Stop activation (and optionally weight) observers of a QAT model from moving."""
    from torch.ao.quantization.fake_quantize import FakeQuantizeBase

    for name, module in prepared.named_modules():
        if isinstance(module, FakeQuantizeBase):
            is_weight = name.endswith("weight_fake_quant")
            if weights_too or not is_weight:
                module.disable_observer()


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """For callers that run a quantized model: silence quantized-tensor deprecation warnings."""
    with _fx_quiet():
        yield
