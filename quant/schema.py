"""Declared JSON Schemas of every JSON file the tool reads, and one bounded reader.

Each schema is JSON Schema Draft 2020-12, checked by `jsonschema`. Conventions:

- every object has `additionalProperties: false` (an unknown key is refused), every
  format version is pinned (`const`), every integer has a range;
- `integer` means a JSON integer (1.0 is not one, true is not one);
- `"format": "po2"` asserts a power of two 2**e with e in [-128, 127] (the exponent
  range of the record word, docs/layout.md).

`read_json(path, schema, what)` reads a regular file of bounded size, refuses a
nesting deeper than MAX_JSON_DEPTH, numbers longer than MAX_NUMBER_CHARS, NaN and
Infinity and duplicate keys, then validates; the first problem is one
`PackageError` line `<file>[:<line>]: <json path>: <what was expected>`.
The semantic checks (values that depend on each other) are Python, next to the
data they check: quant.package (manifest), golden.layout (layout.json),
quant.train (checkpoint metadata).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
from cosim.quant.choices import BUILTIN_ARCH_NAMES, FACTORY_PATTERN
from cosim.quant.formats import PackageError, PathLike, read_regular_file
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError, best_match

__all__ = [
    "CHECKPOINT_SCHEMA",
    "MANIFEST_SCHEMA",
    "MAX_JSON_BYTES",
    "MAX_JSON_DEPTH",
    "MAX_NUMBER_CHARS",
    "REPORT_SCHEMA",
    "SchemaError",
    "parse_json",
    "read_json",
    "validate",
]

MAX_JSON_BYTES = 64 << 20
MAX_JSON_DEPTH = 64
MAX_NUMBER_CHARS = 40

# ---------------------------------------------------------------- bounds of the contract

MAX_CHANNELS = 1 << 16
MAX_KERNEL = 31
MAX_STRIDE = 16
MAX_DILATION = 16
MAX_PADDING = 64
MAX_SPATIAL = 4096
MAX_CLASSES = 10000
MAX_LAYERS = 4096
MAX_NAME = 200
INT8 = (-128, 127)
UINT8 = (0, 255)


class SchemaError(PackageError):
    """A JSON file that breaks its schema (a PackageError: one line naming the file)."""


# ---------------------------------------------------------------- building blocks


def _int(lo: int, hi: int) -> dict[str, Any]:
    return {"type": "integer", "minimum": lo, "maximum": hi}


def _ints(n: int, lo: int, hi: int) -> dict[str, Any]:
    return {"type": "array", "items": _int(lo, hi), "minItems": n, "maxItems": n}


def _obj(properties: Mapping[str, Any], required: tuple[str, ...] | list[str] = (),
         **extra: Any) -> dict[str, Any]:
    return {"type": "object", "properties": dict(properties), "required": list(required),
            "additionalProperties": False, **extra}


def _str(max_length: int = 1000, **extra: Any) -> dict[str, Any]:
    return {"type": "string", "maxLength": max_length, **extra}


NAME = _str(MAX_NAME, minLength=1, pattern=r"^[^\s\x00-\x1f]+$")
SHA256 = _str(64, pattern=r"^[0-9a-f]{64}$")
SCALE = {"type": "number", "exclusiveMinimum": 0, "format": "po2"}
FINITE = {"type": "number"}
QPARAMS = _obj({"scale": SCALE, "zero_point": _int(*UINT8)}, ("scale", "zero_point"))
SHIFT = _int(*INT8)
FILE_ENTRY = _obj({"path": _str(1024, minLength=1, pattern=r"^[^\\\x00]+$"), "sha256": SHA256},
                  ("path", "sha256"))

#: File roles of the package and of each op (manifest "files"); all listed roles are
#: required except the optional package roles.
PACKAGE_FILE_ROLES = ("scaling_factor_txt", "scaling_factor_hex")
OPTIONAL_PACKAGE_FILE_ROLES = ("reference_model", "reference_model_json")
WEIGHTED_FILE_ROLES = (
    "weight_float_txt", "bias_float_txt", "weight_txt", "weight_hex", "bias_txt",
    "bias_int16_txt", "bias_int16_hex", "scale_txt", "zero_point_txt",
)
QPARAM_FILE_ROLES = ("scale_txt", "zero_point_txt")
OP_FILE_ROLES: dict[str, tuple[str, ...]] = {
    "quantize": QPARAM_FILE_ROLES, "conv2d": WEIGHTED_FILE_ROLES,
    "linear": WEIGHTED_FILE_ROLES, "add": QPARAM_FILE_ROLES, "cat": QPARAM_FILE_ROLES,
    "max_pool2d": (), "avg_pool2d": (), "adaptive_avg_pool2d": (), "relu": (), "relu6": (),
    "flatten": (), "dequantize": (),
}
#: Most inputs of a cat.
MAX_CAT_INPUTS = 64
#: Pool windows: kernel 1..MAX_POOL_KERNEL, stride 1..MAX_STRIDE, padding at most half
#: the kernel (PyTorch's rule), divisor_override 1..MAX_DIVISOR.
MAX_POOL_KERNEL = 64
MAX_DIVISOR = 1 << 16


def _files(roles: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict[str, Any]:
    return _obj({r: {"$ref": "#/$defs/file"} for r in (*roles, *optional)}, roles)


WEIGHT = {
    "type": "object",
    "properties": {
        "qscheme": {"enum": ["per_tensor_symmetric", "per_channel_symmetric"]},
        "scale": True, "zero_point": True,
        "range": {**_ints(2, *INT8)},
    },
    "required": ["qscheme", "scale", "zero_point"],
    "additionalProperties": False,
    "allOf": [
        {"if": {"properties": {"qscheme": {"const": "per_tensor_symmetric"}}},
         "then": {"properties": {"scale": SCALE, "zero_point": {"const": 0}}}},
        {"if": {"properties": {"qscheme": {"const": "per_channel_symmetric"}}},
         "then": {"properties": {
             "scale": {"type": "array", "items": SCALE, "minItems": 1, "maxItems": MAX_CHANNELS},
             "zero_point": {"type": "array", "items": {"const": 0}, "minItems": 1,
                            "maxItems": MAX_CHANNELS}}}},
    ],
}

_COMMON_LAYER = {"name": NAME, "files": True}
_NULL_OR = lambda s: {"anyOf": [{"type": "null"}, s]}  # noqa: E731


def _layer(op: str, props: Mapping[str, Any], required: tuple[str, ...],
           inputs: tuple[int, int]) -> dict[str, Any]:
    lo, hi = inputs
    properties = {
        **_COMMON_LAYER, "op": {"const": op},
        "inputs": {"type": "array", "items": NAME, "minItems": lo, "maxItems": hi},
        "files": _files(OP_FILE_ROLES[op]),
        **props,
    }
    return _obj(properties, ("name", "op", "inputs", "files", *required))


_WEIGHTED = {
    "bias_shape": _ints(1, 1, MAX_CHANNELS), "relu": {"type": "boolean"},
    "input": QPARAMS, "weight": WEIGHT, "output": QPARAMS,
    "shift": {"anyOf": [SHIFT, {"type": "array", "items": SHIFT, "minItems": 1,
                                "maxItems": MAX_CHANNELS}]},
    "bias_saturated": _int(0, MAX_CHANNELS),
}
_WEIGHTED_KEYS = ("kind", "weight_shape", "bias_shape", "relu", "input", "weight", "output",
                  "shift", "bias_saturated")

#: One schema per op (manifest "layers" items, selected by "op").
LAYER_SCHEMAS: dict[str, dict[str, Any]] = {
    "quantize": _layer("quantize", {"output": QPARAMS}, ("output",), (0, 0)),
    "conv2d": _layer("conv2d", {
        **_WEIGHTED,
        "kind": {"enum": ["regular", "depthwise", "pointwise", "grouped"]},
        "weight_shape": {"type": "array", "minItems": 4, "maxItems": 4, "prefixItems": [
            _int(1, MAX_CHANNELS), _int(1, MAX_CHANNELS), _int(1, MAX_KERNEL),
            _int(1, MAX_KERNEL)]},
        "stride": _ints(2, 1, MAX_STRIDE), "padding": _ints(2, 0, MAX_PADDING),
        "dilation": _ints(2, 1, MAX_DILATION), "groups": _int(1, MAX_CHANNELS),
    }, (*_WEIGHTED_KEYS, "stride", "padding", "dilation", "groups"), (1, 1)),
    "linear": _layer("linear", {
        **_WEIGHTED,
        "kind": {"const": "linear"},
        "weight_shape": _ints(2, 1, MAX_CHANNELS * 64),
    }, _WEIGHTED_KEYS, (1, 1)),
    "add": _layer("add", {
        "input": {"type": "array", "items": QPARAMS, "minItems": 2, "maxItems": 2},
        "output": QPARAMS, "relu": {"type": "boolean"},
    }, ("input", "output", "relu"), (2, 2)),
    "cat": _layer("cat", {
        "dim": {"const": 1},
        "input": {"type": "array", "items": QPARAMS, "minItems": 2,
                  "maxItems": MAX_CAT_INPUTS},
        "output": QPARAMS,
    }, ("dim", "input", "output"), (2, MAX_CAT_INPUTS)),
    "max_pool2d": _layer("max_pool2d", {
        "kernel_size": _ints(2, 1, MAX_POOL_KERNEL), "stride": _ints(2, 1, MAX_STRIDE),
        "padding": _ints(2, 0, MAX_POOL_KERNEL // 2), "dilation": _ints(2, 1, MAX_DILATION),
        "ceil_mode": {"type": "boolean"}, "input": QPARAMS, "output": QPARAMS,
    }, ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "input", "output"),
        (1, 1)),
    "avg_pool2d": _layer("avg_pool2d", {
        "kernel_size": _ints(2, 1, MAX_POOL_KERNEL), "stride": _ints(2, 1, MAX_STRIDE),
        "padding": _ints(2, 0, MAX_POOL_KERNEL // 2), "ceil_mode": {"type": "boolean"},
        "count_include_pad": {"type": "boolean"},
        "divisor_override": _NULL_OR(_int(1, MAX_DIVISOR)),
        "input": QPARAMS, "output": QPARAMS,
    }, ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad",
        "divisor_override", "input", "output"), (1, 1)),
    "adaptive_avg_pool2d": _layer("adaptive_avg_pool2d", {
        "output_size": _ints(2, 1, MAX_SPATIAL), "input": QPARAMS, "output": QPARAMS,
    }, ("output_size", "input", "output"), (1, 1)),
    "relu": _layer("relu", {"input": QPARAMS, "output": QPARAMS}, ("input", "output"),
                   (1, 1)),
    "relu6": _layer("relu6", {"input": QPARAMS, "output": QPARAMS}, ("input", "output"),
                    (1, 1)),
    "flatten": _layer("flatten", {"start_dim": {"const": 1}, "input": QPARAMS,
                                  "output": QPARAMS}, (), (1, 1)),
    "dequantize": _layer("dequantize", {"input": QPARAMS}, ("input",), (1, 1)),
}
OPS = tuple(LAYER_SCHEMAS)

MANIFEST_FORMAT = "cnn-cosim-parameter-package"
MANIFEST_VERSION = 1
ARCH = "mobilenet_v2_relu"  # quant.model.ARCH (not imported: that module imports torch)
DATASET_NAMES = ("digits", "imagenette", "imagefolder")

_KWARG_SCALAR = {"type": ["string", "number", "boolean", "null"], "maxLength": 1000}
#: A ModelSpec's keyword arguments (quant.model.check_kwargs): identifier keys, JSON-plain
#: scalars or lists of them.
MODEL_KWARGS = {"type": "object", "maxProperties": 64,
                "propertyNames": {"pattern": r"^[A-Za-z_][A-Za-z0-9_]*$", "maxLength": 100},
                "additionalProperties": {"anyOf": [
                    _KWARG_SCALAR,
                    {"type": "array", "maxItems": 64, "items": _KWARG_SCALAR}]}}
#: A built-in architecture or a user factory `package.module:function` (quant.model).
MODEL_ARCH = {"anyOf": [{"enum": list(BUILTIN_ARCH_NAMES)},
                        _str(200, pattern=FACTORY_PATTERN)]}

MODEL = {
    **_obj({
        "arch": _str(200, minLength=1, pattern=r"^[A-Za-z0-9_.:-]+$"),
        "kwargs": MODEL_KWARGS,
        "num_classes": _int(1, MAX_CLASSES),
        "width_mult": {"type": "number", "exclusiveMinimum": 0, "maximum": 4},
        "input_shape": {"type": "array", "minItems": 3, "maxItems": 3, "prefixItems": [
            _int(1, 64), _int(1, MAX_SPATIAL), _int(1, MAX_SPATIAL)]},
        "checkpoint": _NULL_OR(_str(255)),
        "checkpoint_sha256": _NULL_OR(SHA256),
        "float_test_top1_at_training": _NULL_OR({"type": "number", "minimum": 0,
                                                 "maximum": 100}),
        "weighted_layers": _int(1, MAX_LAYERS),
        "weights": _int(1, 1 << 40),
    }, ("arch",)),
    "if": {"properties": {"arch": {"const": ARCH}}},
    "then": {"required": ["arch", "num_classes", "width_mult", "input_shape",
                          "weighted_layers", "weights"]},
}

DATA = _obj({
    "name": {"enum": list(DATASET_NAMES)}, "root": _NULL_OR(_str(4096)),
    "image_size": _int(1, MAX_SPATIAL), "download": {"type": "boolean"},
    "imagenette_size": {"enum": ["full", "320px", "160px"]},
    "mean": {"type": "array", "items": {"type": "number", "minimum": -10, "maximum": 10},
             "minItems": 3, "maxItems": 3},
    "std": {"type": "array", "items": {"type": "number", "exclusiveMinimum": 0, "maximum": 10},
            "minItems": 3, "maxItems": 3},
}, ("name", "image_size"))

QUANTIZATION = _obj({
    "engine": {"enum": ["fbgemm"]},
    "weights": _str(), "activations": _str(), "bias": _str(), "shift": _str(),
    "reference_bias": _str(),
    "weight_range": {"anyOf": [{"enum": ["guarded", "full"]}, _ints(2, *INT8)]},
    "method": _str(32, pattern=r"^[a-z0-9_]+$"),
    "per_channel": {"type": "boolean"}, "cle": {"type": "boolean"},
    "bias_correction": {"type": "boolean"},
    "calibration_images": _int(1, 1 << 24), "batch_size": _int(1, 1 << 16),
    "qat_epochs": _int(0, 10000), "qat_lr": {"type": "number", "exclusiveMinimum": 0,
                                            "maximum": 10},
    "seed": _int(-(1 << 63), (1 << 64) - 1),
    "cle_sweeps": _NULL_OR(_int(0, 1 << 20)), "weights_clamped": _int(0, 1 << 40),
})

CALIBRATION = _obj({
    "dataset": {"enum": list(DATASET_NAMES)}, "split": {"enum": ["train"]},
    "images": _NULL_OR(_int(0, 1 << 24)), "method": _str(32, pattern=r"^[a-z0-9_]+$"),
    "seed": _int(-(1 << 63), (1 << 64) - 1), "batches": _int(0, 1 << 24),
})

ENVIRONMENT = _obj({"torch": _str(100), "python": _str(100), "machine": _str(100)})

MANIFEST_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "manifest.json of a cnn-cosim parameter package (docs/file-formats.md)",
    **_obj({
        "format": {"const": MANIFEST_FORMAT},
        "format_version": {"const": MANIFEST_VERSION},
        "created_by": _str(200),
        "model": MODEL, "data": DATA, "quantization": QUANTIZATION,
        "calibration": CALIBRATION, "environment": ENVIRONMENT,
        "files": _files(PACKAGE_FILE_ROLES, OPTIONAL_PACKAGE_FILE_ROLES),
        "layers": {"type": "array", "minItems": 2, "maxItems": MAX_LAYERS,
                   "items": {"$ref": "#/$defs/layer"}},
    }, ("format", "format_version", "model", "quantization", "calibration", "files", "layers")),
    "$defs": {
        "file": FILE_ENTRY,
        "layer": {
            "type": "object", "required": ["op"],
            "properties": {"op": {"enum": list(OPS)}},
            "allOf": [{"if": {"properties": {"op": {"const": op}}, "required": ["op"]},
                       "then": {"$ref": f"#/$defs/{op}"}} for op in OPS],
        },
        **LAYER_SCHEMAS,
    },
}

_REBUILD = _obj({
    "images": _int(0, 1 << 31), "elements": _int(0, 1 << 62),
    "identical_elements": _int(0, 1 << 62),
    "identical_fraction": {"type": "number", "minimum": 0, "maximum": 1},
    "top1_reference": {"anyOf": [{"type": "null"}, {"type": "number", "minimum": 0,
                                                     "maximum": 100}]},
    "top1_rebuilt": {"anyOf": [{"type": "null"}, {"type": "number", "minimum": 0,
                                                   "maximum": 100}]},
    "top1_agreement": {"anyOf": [{"type": "null"}, {"type": "number", "minimum": 0,
                                                     "maximum": 100}]},
}, ("images", "elements", "identical_elements", "identical_fraction"))

_PERCENT = {"type": "number", "minimum": 0, "maximum": 100}
_SECONDS = {"type": "number", "minimum": 0, "maximum": 1e9}
REPORT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "report.json of a package (quant.pipeline.write_report)",
    **_obj({
        "float_top1": _PERCENT, "int8_top1": _PERCENT,
        "top1_drop": {"type": "number", "minimum": -100, "maximum": 100},
        "top1_agreement": _NULL_OR(_PERCENT),  # null: not measured (NaN)
        "logit_sqnr_db": _NULL_OR({"type": "number"}),
        "test_split": _str(200),
        "quantize_seconds": _SECONDS, "export_seconds": _SECONDS,
        "rebuild": _REBUILD,
        "rebuild_identical_fraction": {"type": "number", "minimum": 0, "maximum": 1},
        "weighted_layers": _int(0, MAX_LAYERS), "weights": _int(0, 1 << 40),
        "bias_saturated": _int(0, 1 << 40),
    }),
}

CHECKPOINT_FORMAT = "cnn-cosim-checkpoint"
CHECKPOINT_VERSION = 1
#: The metadata of a checkpoint (everything but "state_dict"), as plain values.
CHECKPOINT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "metadata of a cnn-cosim float checkpoint (quant.train.save_checkpoint)",
    **_obj({
        "format": {"const": CHECKPOINT_FORMAT},
        "version": {"const": CHECKPOINT_VERSION},
        "arch": MODEL_ARCH,
        "kwargs": MODEL_KWARGS,
        "num_classes": _int(1, MAX_CLASSES),
        "width_mult": {"type": "number", "exclusiveMinimum": 0, "maximum": 4},
        "data": {**DATA, "properties": {k: v for k, v in DATA["properties"].items()
                                        if k not in ("mean", "std")}},
        "train": _obj({
            "epochs": _int(1, 100000), "batch_size": _int(1, 1 << 16),
            "lr": {"type": "number", "exclusiveMinimum": 0, "maximum": 100},
            "momentum": {"type": "number", "minimum": 0, "maximum": 1},
            "weight_decay": {"type": "number", "minimum": 0, "maximum": 1},
            "label_smoothing": {"type": "number", "minimum": 0, "maximum": 1},
            "width_mult": {"type": "number", "exclusiveMinimum": 0, "maximum": 4},
            "seed": _int(-(1 << 63), (1 << 64) - 1),
            "model": _obj({"arch": MODEL_ARCH, "kwargs": MODEL_KWARGS}, ("arch", "kwargs")),
            "store_float16": {"type": "boolean"},
        }),
        "test_top1": _PERCENT,
        "test_top1_float32": _PERCENT,
        "train_seconds": _SECONDS,
        "train_threads": _int(1, 1 << 16),
        "torch_version": _str(100),
        "state_dict_dtype": {"enum": ["float32", "float16"]},
        "state_dict": True,
    }, ("format", "version", "arch", "num_classes", "data", "state_dict")),
    # Files without kwargs (written before it existed) are MobileNetV2-ReLU files;
    # mobilenet_v2_relu always records its width_mult.
    "allOf": [
        {"if": {"not": {"required": ["kwargs"]}},
         "then": {"properties": {"arch": {"const": ARCH}}}},
        {"if": {"properties": {"arch": {"const": ARCH}}},
         "then": {"required": ["width_mult"]}},
    ],
}


# ---------------------------------------------------------------- validation


def _is_int(_checker: Any, instance: Any) -> bool:
    return isinstance(instance, int) and not isinstance(instance, bool)


def _is_number(_checker: Any, instance: Any) -> bool:
    if isinstance(instance, bool):
        return False
    if isinstance(instance, float | np.floating):
        return math.isfinite(float(instance))
    return isinstance(instance, int | np.integer)


_TYPES = Draft202012Validator.TYPE_CHECKER.redefine_many(
    {"integer": _is_int, "number": _is_number})
_Validator = jsonschema.validators.extend(Draft202012Validator, type_checker=_TYPES)
_FORMATS = FormatChecker(formats=())


@_FORMATS.checks("po2")
def _po2(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return True  # the type keyword reports it
    if isinstance(value, int):
        if value <= 0 or value.bit_length() > 128:
            return False
        return value & (value - 1) == 0
    if not (value > 0 and math.isfinite(value)):
        return False
    mantissa, exponent = math.frexp(value)
    return mantissa == 0.5 and -128 <= exponent - 1 <= 127


@cache
def _validator(schema_id: int) -> Any:
    schema = _SCHEMAS[schema_id]
    _Validator.check_schema(schema)
    return _Validator(schema, format_checker=_FORMATS)


_SCHEMAS: dict[int, dict[str, Any]] = {}


def _short(value: Any, limit: int = 60) -> str:
    try:
        text = json.dumps(value, sort_keys=True, default=repr)
    except (TypeError, ValueError, RecursionError):
        text = repr(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _json_path(error: ValidationError, document: Any) -> str:
    """`$.layers[3] ('features.1.conv.0.0').stride[0]`: the failing value's place."""
    out = "$"
    node = document
    for part in error.absolute_path:
        if isinstance(part, int):
            out += f"[{part}]"
            try:
                node = node[part]
            except (IndexError, KeyError, TypeError):
                node = None
            if isinstance(node, dict) and isinstance(node.get("name"), str):
                out += f" ({_short(node['name'], 60)})"
        else:
            out += f".{part}" if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(part)) else \
                f"[{_short(str(part), 40)}]"
            node = node.get(part) if isinstance(node, dict) else None
    return out


def _expected(error: ValidationError) -> str:
    """The error as `<value> ...; expected ...`."""
    v, value = error.validator, error.validator_value
    got = _short(error.instance)
    if v == "type":
        kinds = value if isinstance(value, list) else [value]
        names = {"integer": "an integer", "number": "a finite number", "string": "a string",
                 "object": "an object", "array": "a list", "boolean": "true or false",
                 "null": "null"}
        return f"{got}; expected {' or '.join(names.get(k, k) for k in kinds)}"
    if v == "const":
        return f"{got}; expected {_short(value)}"
    if v == "enum":
        return f"{got}; expected one of {', '.join(_short(x) for x in value)}"
    if v in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        sign = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">",
                "exclusiveMaximum": "<"}[v]
        schema = error.schema if isinstance(error.schema, dict) else {}
        lo = schema.get("minimum", schema.get("exclusiveMinimum"))
        hi = schema.get("maximum", schema.get("exclusiveMaximum"))
        if lo is not None and hi is not None:
            return f"{got} is out of range; expected a value in [{lo}, {hi}]"
        return f"{got} is out of range; expected a value {sign} {value}"
    if v in ("minItems", "maxItems"):
        schema = error.schema if isinstance(error.schema, dict) else {}
        lo, hi = schema.get("minItems"), schema.get("maxItems")
        n = len(error.instance) if isinstance(error.instance, list) else "?"
        want = f"{lo}" if lo == hi else f"{lo or 0} to {hi if hi is not None else 'any'}"
        return f"a list of {n} items; expected {want} items"
    if v == "required":
        missing = [k for k in value if isinstance(error.instance, dict)
                   and k not in error.instance]
        return f"lacks {_short(missing[0]) if missing else 'a key'}; expected keys " \
               f"{', '.join(value)}"
    if v == "additionalProperties":
        known = set(error.schema.get("properties", {})) if isinstance(error.schema, dict) else set()
        extra = sorted(k for k in error.instance if k not in known) if isinstance(
            error.instance, dict) else []
        allowed = ", ".join(sorted(known)) or "none"
        return (f"unknown key {_short(extra[0]) if extra else '?'}; expected only keys "
                f"{allowed}"[:400])
    if v == "format" and value == "po2":
        return f"{got} is not a power of two; expected 2**e with e in [-128, 127]"
    if v == "pattern":
        return f"{got} has characters or a shape the format does not allow " \
               f"(pattern {value})"
    if v in ("minLength", "maxLength"):
        n = len(error.instance) if isinstance(error.instance, str) else "?"
        return f"a string of {n} characters; expected {v} {value}"
    if v == "anyOf":
        return f"{got} matches none of the allowed forms"
    return " ".join(error.message.split())[:300]


def validate(document: Any, schema: dict[str, Any], path: PathLike,
             line_of: Any = None) -> None:
    """SchemaError for the first (most relevant) place where `document` breaks `schema`:
    `<path>: <json path>: <what was expected>`."""
    _SCHEMAS.setdefault(id(schema), schema)
    error = best_match(_validator(id(schema)).iter_errors(document))
    if error is None:
        return
    raise SchemaError(path, f"{_json_path(error, document)}: {_expected(error)}")


# ---------------------------------------------------------------- bounded JSON

_STRING_RE = re.compile(rb'"(?:[^"\\\n]|\\.)*"')
_BRACKETS = np.zeros(256, dtype=np.int8)
_BRACKETS[ord("[")] = _BRACKETS[ord("{")] = 1
_BRACKETS[ord("]")] = _BRACKETS[ord("}")] = -1


def _depth(data: bytes) -> tuple[int, int]:
    """(maximum nesting depth of arrays/objects, byte offset where it is first reached);
    strings are skipped."""
    stripped = _STRING_RE.sub(b'""', data)
    if not stripped:
        return 0, 0
    steps = _BRACKETS[np.frombuffer(stripped, dtype=np.uint8)]
    depth = np.cumsum(steps, dtype=np.int64)
    at = int(np.argmax(depth))
    return int(depth[at]), at


class _NumberError(Exception):
    def __init__(self, token: str, why: str) -> None:
        super().__init__(token)
        self.token, self.why = token, why


def _parse_int(token: str) -> int:
    if len(token) > MAX_NUMBER_CHARS:
        raise _NumberError(token, f"an integer of {len(token)} characters; expected at most "
                           f"{MAX_NUMBER_CHARS}")
    return int(token)


def _parse_float(token: str) -> float:
    if len(token) > MAX_NUMBER_CHARS:
        raise _NumberError(token, f"a number of {len(token)} characters; expected at most "
                           f"{MAX_NUMBER_CHARS}")
    value = float(token)
    if not math.isfinite(value):
        raise _NumberError(token, f"{token[:40]} is out of the float64 range")
    return value


def _parse_constant(token: str) -> Any:
    raise _NumberError(token, f"{token} is not JSON; expected a finite number")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _NumberError(json.dumps(key), f"key {_short(key, 40)} appears twice in one "
                               "object; expected unique keys")
        out[key] = value
    return out


def parse_json(data: bytes, path: PathLike, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse JSON bytes with every bound of this module; PackageError names the line."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise PackageError(path, f"is not UTF-8 (byte {data[e.start]:#04x}: {e.reason}); "
                           "expected UTF-8 JSON", data.count(b"\n", 0, e.start) + 1) from None
    depth, at = _depth(data)
    if depth > max_depth:
        raise PackageError(path, f"JSON nested {depth} levels deep; expected at most {max_depth}",
                           None)
    try:
        return json.loads(text, parse_int=_parse_int, parse_float=_parse_float,
                          parse_constant=_parse_constant, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as e:
        raise PackageError(path, f"invalid JSON: {e.msg} (column {e.colno})", e.lineno) from None
    except _NumberError as e:
        pos = text.find(e.token)
        line = text.count("\n", 0, pos) + 1 if pos >= 0 else None
        raise PackageError(path, e.why, line) from None
    except (RecursionError, ValueError) as e:  # belt and braces; the bounds above catch both
        raise PackageError(path, f"invalid JSON ({type(e).__name__})") from None


def read_json(path: PathLike, schema: dict[str, Any] | None, what: str,
              max_bytes: int = MAX_JSON_BYTES) -> Any:
    """Read, parse and validate the JSON file `path` (a regular file of at most
    `max_bytes`); `what` names the expected content in messages. PackageError
    (SchemaError for schema violations) on the first problem."""
    data = read_regular_file(path, what, max_bytes)
    document = parse_json(data, path)
    if schema is not None:
        validate(document, schema, path)
    return document


REPORT_NAME = "report.json"


def read_report(package_dir: PathLike) -> dict[str, Any]:
    """The package's report.json validated against REPORT_SCHEMA, or {} when there is
    none. PackageError (one line naming the file) when it is malformed."""
    path = Path(package_dir) / REPORT_NAME
    if not os.path.lexists(path):
        return {}
    return read_json(path, REPORT_SCHEMA, "the package report (a JSON object)",
                     max_bytes=1 << 20)
