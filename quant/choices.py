"""The names the command line offers, without importing torch.

`cosim` builds its parser from these, so that `cosim --help`, `cosim check` and
every user error start in well under a second; the modules that implement them
(quant.data, quant.po2, quant.ptq, quant.train) import the same names from here.
"""

from __future__ import annotations

from pathlib import Path

#: Datasets `--data` accepts (quant.data).
DATASETS = ("digits", "imagenette", "imagefolder")
#: po2 scale choices `--method` accepts (quant.po2).
METHODS = ("minmax", "percentile", "mse")
#: Weight ranges `--weight-range` accepts (keys of quant.ptq.WEIGHT_RANGES).
WEIGHT_RANGE_NAMES = ("full", "guarded")
#: The float checkpoint shipped with the package (quant.train).
SHIPPED_CHECKPOINT = Path(__file__).parent / "checkpoints" / "mobilenet_v2_relu_digits32.pt"
