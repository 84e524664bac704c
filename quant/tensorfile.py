"""Tensor files that cannot carry code: safetensors plus JSON metadata.

Used for the quantize result (`cosim quantize` -> `cosim export --quantized`) and
the package's reference model (reference_model.safetensors). A safetensors file is
an 8-byte little-endian header length, a JSON header (names, dtypes, shapes, byte
offsets, and a `__metadata__` map of strings) and raw tensor bytes: reading it
never runs code.

State dicts of quantized models are stored tensor by tensor: a plain tensor under
its own name; a quantized tensor (qint8/quint8) as `<name>::int_repr` (its
integers), `<name>::scale` (float64, a scalar per tensor or one per channel),
`<name>::zero_point` (int64, same shape) and, per channel, `<name>::axis`; a tuple
(the packed weight and bias of a quantized linear) as `<name>::0`, `<name>::1`;
a torch.dtype entry is not stored (the model skeleton supplies it). Loading is
driven by a template state dict (the skeleton's): every name, dtype and shape
must match it, nothing may be missing or extra.
"""

from __future__ import annotations

import json
import os
import stat
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import safetensors.torch
import torch
from cosim.quant.formats import PathLike, atomic_write_bytes

__all__ = ["MAX_FILE_BYTES", "TensorFileError", "decode_state", "encode_state",
           "read_regular_file", "read_tensor_file", "tensor_file_bytes", "write_tensor_file"]

#: Largest tensor file read (bytes): the full MobileNetV2 quantize result is about
#: 12 MB; anything over this is refused before it is parsed.
MAX_FILE_BYTES = 1 << 30

_PER_CHANNEL = (torch.per_channel_affine, torch.per_channel_symmetric)
_QUANTIZED = {torch.qint8: torch.int8, torch.quint8: torch.uint8, torch.qint32: torch.int32}


class TensorFileError(ValueError):
    """A tensor file or its content is not what was expected (message without the path)."""


def encode_state(state: Mapping[str, Any], prefix: str = "") -> dict[str, torch.Tensor]:
    """Flatten a state dict into plain tensors (see the module docstring)."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        name = prefix + key
        if isinstance(value, torch.dtype):
            continue
        if isinstance(value, tuple):
            for index, item in enumerate(value):
                out.update(encode_state({f"{key}::{index}": item}, prefix))
            continue
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{name}: cannot store a {type(value).__name__}")
        value = value.detach()
        if value.is_quantized:
            out[f"{name}::int_repr"] = value.int_repr().contiguous().clone()
            if value.qscheme() in _PER_CHANNEL:
                out[f"{name}::scale"] = value.q_per_channel_scales().double().clone()
                out[f"{name}::zero_point"] = value.q_per_channel_zero_points().long().clone()
                out[f"{name}::axis"] = torch.tensor(value.q_per_channel_axis())
            else:
                out[f"{name}::scale"] = torch.tensor(value.q_scale(), dtype=torch.float64)
                out[f"{name}::zero_point"] = torch.tensor(value.q_zero_point())
        else:
            out[name] = value.contiguous().clone()
    return out


def _take(tensors: dict[str, torch.Tensor], name: str, dtype: torch.dtype,
          shape: tuple[int, ...] | None) -> torch.Tensor:
    if name not in tensors:
        raise TensorFileError(f"tensor {name!r} is missing")
    tensor = tensors.pop(name)
    if tensor.dtype != dtype:
        raise TensorFileError(f"tensor {name!r} is {tensor.dtype}, expected {dtype}")
    if shape is not None and tuple(tensor.shape) != shape:
        raise TensorFileError(f"tensor {name!r} has shape {list(tensor.shape)}, expected "
                              f"{list(shape)}")
    return tensor


def _decode(tensors: dict[str, torch.Tensor], name: str, template: Any) -> Any:
    if isinstance(template, torch.dtype):
        return template
    if isinstance(template, tuple):
        return tuple(_decode(tensors, f"{name}::{index}", item)
                     for index, item in enumerate(template))
    if template is None:
        return None
    if not isinstance(template, torch.Tensor):
        raise TypeError(f"{name}: unexpected template entry {type(template).__name__}")
    shape = tuple(template.shape)
    if not template.is_quantized:
        return _take(tensors, name, template.dtype, shape)
    integers = _take(tensors, f"{name}::int_repr", _QUANTIZED[template.dtype], shape)
    if template.qscheme() in _PER_CHANNEL:
        axis = int(_take(tensors, f"{name}::axis", torch.int64, ()))
        if axis != template.q_per_channel_axis():
            raise TensorFileError(f"tensor {name!r}: per-channel axis {axis}, expected "
                                  f"{template.q_per_channel_axis()}")
        channels = (shape[axis],)
        scales = _take(tensors, f"{name}::scale", torch.float64, channels)
        zero_points = _take(tensors, f"{name}::zero_point", torch.int64, channels)
        if not (torch.isfinite(scales).all() and (scales > 0).all()):
            raise TensorFileError(f"tensor {name!r}: scales must be positive and finite")
        return torch._make_per_channel_quantized_tensor(integers, scales, zero_points, axis)
    scale = float(_take(tensors, f"{name}::scale", torch.float64, ()))
    zero_point = int(_take(tensors, f"{name}::zero_point", torch.int64, ()))
    if not (scale > 0 and torch.isfinite(torch.tensor(scale))):
        raise TensorFileError(f"tensor {name!r}: scale must be positive and finite")
    return torch._make_per_tensor_quantized_tensor(integers, scale, zero_point)


def decode_state(tensors: Mapping[str, torch.Tensor], template: Mapping[str, Any],
                 prefix: str = "") -> dict[str, Any]:
    """The inverse of encode_state for the entries named `prefix + key` of `tensors`,
    shaped like `template` (a state_dict(); its module versions are kept);
    TensorFileError on a missing, extra or mismatched tensor."""
    pool = {name: tensor for name, tensor in tensors.items() if name.startswith(prefix)}
    state = OrderedDict((key, _decode(pool, prefix + key, value))
                        for key, value in template.items())
    metadata = getattr(template, "_metadata", None)
    if metadata is not None:  # module versions: from the skeleton, never from the file
        state._metadata = metadata  # type: ignore[attr-defined]
    if pool:
        raise TensorFileError(f"unexpected tensor {sorted(pool)[0]!r}")
    return state


def tensor_file_bytes(tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, Any]) -> bytes:
    """A safetensors file whose `__metadata__` holds `metadata` as JSON under 'cosim'."""
    return safetensors.torch.save(dict(tensors),
                                  metadata={"cosim": json.dumps(metadata, sort_keys=True)})


def write_tensor_file(path: PathLike, tensors: Mapping[str, torch.Tensor],
                      metadata: Mapping[str, Any]) -> None:
    """Write a tensor file atomically (unique temp name, then rename)."""
    atomic_write_bytes(path, tensor_file_bytes(tensors, metadata))


def read_regular_file(path: PathLike, max_bytes: int, what: str = "a safetensors file"
                      ) -> bytes:
    """The bytes of a regular file of at most `max_bytes` (checked on the open file before
    reading; a FIFO is opened without blocking and refused, a device refused); `what`
    names the expected content in messages. TensorFileError (message without the path)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise TensorFileError("not found") from None
    except OSError as error:
        raise TensorFileError(f"cannot be opened ({error.strerror})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = "a folder" if stat.S_ISDIR(info.st_mode) else "not a regular file"
            raise TensorFileError(f"is {kind}; expected {what}")
        if info.st_size > max_bytes:
            raise TensorFileError(f"is {info.st_size:,} bytes, more than the {max_bytes:,} "
                                  f"expected of {what}")
        with os.fdopen(fd, "rb") as f:
            fd = -1
            try:
                data = f.read(max_bytes + 1)
            except OSError as error:
                raise TensorFileError(f"cannot be read ({error.strerror})") from None
    finally:
        if fd >= 0:
            os.close(fd)
    if len(data) > max_bytes:
        raise TensorFileError(f"grew beyond {max_bytes:,} bytes while read")
    return data


def read_tensor_file(path: PathLike, max_bytes: int = MAX_FILE_BYTES
                     ) -> tuple[dict[str, torch.Tensor], Any]:
    """(tensors, metadata) of a file written by write_tensor_file; TensorFileError if it
    is not a regular file, too large, not safetensors, or has no JSON 'cosim' metadata."""
    data = read_regular_file(path, max_bytes)
    if len(data) < 8 or data[:2] == b"PK" or data[:1] == b"\x80":
        what = ("a zip archive (a torch or TorchScript file?)" if data[:2] == b"PK" else
                "a pickle" if data[:1] == b"\x80" else "too short")
        raise TensorFileError(f"is {what}, not a safetensors file")
    try:
        tensors = safetensors.torch.load(data)
        header_length = int.from_bytes(data[:8], "little")
        header = json.loads(data[8:8 + header_length])
        metadata = json.loads(header["__metadata__"]["cosim"])
    except (safetensors.SafetensorError, ValueError, KeyError, TypeError,
            RecursionError) as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
        raise TensorFileError(f"not a safetensors file written by cnn-cosim ({first})"
                              ) from None
    return tensors, metadata
