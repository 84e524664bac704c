"""A user's own model module, as a user would write it (tests/test_your_network.py).

Importing it appends a line to the file named by $COSIM_TEST_IMPORT_MARKER, so a test
can prove which commands import it (only those given `--model my_nets:...`).
"""

from __future__ import annotations

import os

import torch.nn as nn
import torchvision

if os.environ.get("COSIM_TEST_IMPORT_MARKER"):
    with open(os.environ["COSIM_TEST_IMPORT_MARKER"], "a") as marker:
        marker.write("imported\n")


def torchvision_resnet18(num_classes: int = 1000) -> nn.Module:
    """torchvision's ResNet-18, untouched."""
    return torchvision.models.resnet18(num_classes=num_classes)


class WithSigmoid(nn.Module):
    """A CNN with an op the integer datapath does not have (a sigmoid)."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.act = nn.Sigmoid()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, num_classes)

    def forward(self, x):
        return self.fc(self.pool(self.act(self.conv(x))).flatten(1))


def with_sigmoid(num_classes: int = 10) -> nn.Module:
    return WithSigmoid(num_classes)
