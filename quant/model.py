"""MobileNetV2 with ReLU activations (the accelerator has no ReLU6 clamp).

torchvision's MobileNetV2 is used as is, with every ReLU6 replaced by ReLU.
ReLU is positively homogeneous (relu(a*x) = a*relu(x) for a > 0), which is what
lets cross-layer equalization rescale channels across it.
"""

from __future__ import annotations

import torch.nn as nn
from torchvision.models import mobilenet_v2

ARCH = "mobilenet_v2_relu"


def replace_relu6(module: nn.Module) -> nn.Module:
    """Replace every nn.ReLU6 under `module` by nn.ReLU, in place; returns `module`."""
    for name, child in module.named_children():
        if isinstance(child, nn.ReLU6):
            setattr(module, name, nn.ReLU(inplace=False))
        else:
            replace_relu6(child)
    return module


def mobilenet_v2_relu(num_classes: int = 10, width_mult: float = 1.0,
                      dropout: float = 0.2) -> nn.Module:
    """MobileNetV2 (torchvision layout and layer names) with ReLU instead of ReLU6.

    With width_mult=1.0 it has 52 convolutions and one linear layer, i.e.
    53 weighted layers; with 10 classes they hold 2,202,560 weights.
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    if width_mult <= 0:
        raise ValueError(f"width_mult must be > 0, got {width_mult}")
    model = mobilenet_v2(weights=None, num_classes=num_classes, width_mult=width_mult,
                         dropout=dropout)
    return replace_relu6(model)
