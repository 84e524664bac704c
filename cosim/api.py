"""The flow as Python functions, for notebooks and scripts (docs/your-network.md).

    from cosim import api
    from cosim.quant.data import DataConfig

    result = api.quantize("my_resnet.pt", model="resnet18", model_kwargs={"num_classes": 10},
                          data=DataConfig("digits", image_size=32))
    api.export(result, "build/package")          # manifest.json + txt/hex files
    check = api.verify("build/package")          # rebuild from the files == reference
    api.golden("build/package", "build/golden")  # stream, expected image, address map
    report = api.golden_verify("build/package")  # golden model == PyTorch, every layer

Every function takes and returns plain objects (paths, dataclasses, dicts); user
mistakes raise quant.errors.UserError subclasses with a one-line message, as the
command line prints them. Nothing here imports a user's code unless the call names it
(`model="pkg.module:factory"`, or an nn.Module handed in).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch.nn as nn

from cosim.quant.data import DataConfig
from cosim.quant.errors import UserError
from cosim.quant.model import ModelSpec
from cosim.quant.pipeline import QuantResult, run_export, run_quantize
from cosim.quant.ptq import QuantConfig
from cosim.quant.verify import RebuildCheck

__all__ = ["DataConfig", "ModelSpec", "QuantConfig", "QuantResult", "export", "golden",
           "golden_verify", "quantize", "verify"]


def _spec(model: str | ModelSpec | None, model_kwargs: dict[str, Any] | None
          ) -> ModelSpec | None:
    if model is None:
        if model_kwargs:
            raise UserError("model_kwargs needs model (the factory they are arguments of)")
        return None
    if isinstance(model, ModelSpec):
        return model if not model_kwargs else ModelSpec(model.arch,
                                                        {**model.kwargs, **model_kwargs})
    return ModelSpec(str(model), dict(model_kwargs or {}))


def quantize(checkpoint: str | Path | nn.Module, *, model: str | ModelSpec | None = None,
             model_kwargs: dict[str, Any] | None = None, data: DataConfig | None = None,
             config: QuantConfig | None = None, quiet: bool = True) -> QuantResult:
    """po2 PTQ of a float network; returns the QuantResult that `export` writes.

    `checkpoint`: a cosim checkpoint, or with `model` a plain state_dict / torchvision
    checkpoint file, or an nn.Module already in memory (then `data` is required and the
    arch is recorded as `model` if given, else as the module's class name).
    `model`: a built-in arch name (mobilenet_v2_relu, resnet18, small_cnn) or
    "package.module:factory" (imported: you named it). `data` defaults to the
    checkpoint's dataset; `config` to QuantConfig() (mse po2 scales, CLE on).
    """
    config = config or QuantConfig()
    spec = _spec(model, model_kwargs)
    if isinstance(checkpoint, nn.Module):
        if data is None:
            raise UserError("quantize(nn.Module): name the data (data=DataConfig(...))")
        from cosim.quant.pipeline import quantize_module

        return quantize_module(checkpoint, config, data, model=spec, quiet=quiet)
    return run_quantize(Path(checkpoint), config, data, quiet=quiet, model=spec)


def export(result: QuantResult, out: str | Path, force: bool = False) -> dict:
    """Write the parameter package of `result` to `out` (replaced atomically; see
    docs/file-formats.md); returns the manifest."""
    manifest, _ = run_export(result, Path(out), force=force)
    return manifest


def verify(package: str | Path, images: int = 64, data: DataConfig | None = None,
           quiet: bool = True) -> RebuildCheck:
    """Validate the package and rebuild the quantized model from its txt files alone;
    `check.identical_fraction == 1.0` when it equals the reference model on `images`
    test images (data: the manifest's unless given)."""
    from cosim.quant.pipeline import run_verify

    return run_verify(Path(package), images, data, quiet=quiet)


def golden(package: str | Path, out: str | Path, force: bool = False,
           layout: Any = None, accel: Any = None) -> Path:
    """Lay the package out in parameter memory: the header stream, the expected memory
    image and the address map under `out` (golden.image.write_golden). `accel`: an
    accelerator file, the name of a shipped one ("acc32_16x16") or a loaded
    golden.accelerator.Accelerator (default: the shipped default.toml, 64-bit words);
    `layout`: a golden.layout.LayoutConfig used instead of the accelerator's (it is
    then recorded as an override). layout.json records the accelerator. Returns `out`."""
    from cosim.cli_golden import make_golden
    from cosim.golden.accelerator import Accelerator, default_accelerator, load_accelerator

    if accel is None:
        acc = default_accelerator() if layout is None else None
    else:
        acc = accel if isinstance(accel, Accelerator) else load_accelerator(accel)
    overrides = ["layout=LayoutConfig(...)"] if layout is not None and acc is not None else []
    make_golden(Path(package), Path(out), layout, force=force, plot=False, accelerator=acc,
                overrides=overrides)
    return Path(out)


def golden_verify(package: str | Path, images: int = 54, images_224: int = 0,
                  rounding: str = "half_even", data: DataConfig | None = None,
                  quiet: bool = True) -> dict:
    """The NumPy golden model against the PyTorch model rebuilt from the package, every
    layer, on `images` test images (and `images_224` at 224x224); the verify.json dict
    (`report["identical"]` is True when every layer is bit-identical)."""
    from cosim.golden.verify import normalize_rounding, verify_golden

    return verify_golden(package, images=images, images_224=images_224,
                         rounding=normalize_rounding(rounding), quiet=quiet, data=data)
