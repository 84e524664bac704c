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

#: Built-in architectures (quant.model.BUILTIN_ARCHS), the default first.
BUILTIN_ARCH_NAMES = ("mobilenet_v2_relu", "resnet18", "small_cnn")
DEFAULT_ARCH = BUILTIN_ARCH_NAMES[0]
#: How a user factory is written: `package.module:function` (dotted identifiers).
FACTORY_PATTERN = (r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*"
                   r":[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")

#: The float checkpoints shipped with the package, one per built-in architecture, all
#: trained on the offline digits at 32x32 (scripts/train_checkpoints.py remakes the
#: last two; their recipe, wall time and float top-1 are inside each file).
SHIPPED_CHECKPOINTS = {
    "mobilenet_v2_relu": SHIPPED_CHECKPOINT,
    "small_cnn": Path(__file__).parent / "checkpoints" / "small_cnn_digits32.pt",
    "resnet18": Path(__file__).parent / "checkpoints" / "resnet18_digits32.pt",
}


def unchecked_architecture_note(arch: object) -> str:
    """Why a package's structure is not compared with a reference architecture."""
    return (f"model arch {str(arch)[:200]!r} is not a built-in architecture; its layer "
            "structure is not compared with a reference (cosim imports no code a file "
            "names)")
