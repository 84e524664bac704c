"""The accelerator file: a TOML description of the target accelerator's parameter memory.

    from cosim.golden.accelerator import load_accelerator
    acc = load_accelerator("golden/accelerators/acc32_16x16.toml")   # or a shipped name
    layout = acc.layout(shapes)          # golden.layout.Layout with acc.layout_config

The file (format_version = 1; every key in docs/accelerator-file.md) is parsed with
tomllib, validated against ACCELERATOR_SCHEMA (JSON Schema Draft 2020-12; unknown keys
are errors) and then checked semantically (alignments, header fields, lane order and
bias width). Every problem is one line `<file>: <dotted.key>: expected ..., got ...`
raised as AcceleratorError (a UserError: the command line exits 2). The shipped files
are golden/accelerators/*.toml (package data); default.toml gives LayoutConfig().
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cosim.golden.layout import (
    ADDRESS_UNITS,
    BIAS_BITS,
    DEPTHWISE_LOOPS,
    HEADER_FIELD_NAMES,
    LANE_ORDERS,
    RECORD_FORMATS,
    REGIONS,
    WEIGHT_LOOPS,
    HeaderFormat,
    LayerShape,
    Layout,
    LayoutConfig,
    LayoutError,
)
from cosim.quant import tomlfile
from cosim.quant.errors import UserError

__all__ = [
    "ACCELERATOR_DIR",
    "ACCELERATOR_MAX_BYTES",
    "ACCELERATOR_SCHEMA",
    "FORMAT_VERSION",
    "ROUNDINGS",
    "SHIPPED_ACCELERATORS",
    "Accelerator",
    "AcceleratorError",
    "default_accelerator",
    "load_accelerator",
    "resolve_accelerator",
    "schema_keys",
]

FORMAT_VERSION = 1
#: Folder of the shipped accelerator files (installed as package data of cosim.golden).
ACCELERATOR_DIR = Path(__file__).resolve().parent / "accelerators"
#: Shipped accelerator files: name -> path (the name is the file's stem and its `name`).
SHIPPED_ACCELERATORS: dict[str, Path] = {
    p.stem: p for p in sorted(ACCELERATOR_DIR.glob("*.toml"))}
#: Largest accelerator file read (bytes).
ACCELERATOR_MAX_BYTES = 64 << 10
ROUNDINGS = ("half_even", "half_up")
NAME_PATTERN = "^[a-z0-9_-]{1,64}$"


class AcceleratorError(UserError, ValueError):
    """A problem in an accelerator file; the message is one line naming the file and key."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


# ---------------------------------------------------------------- schema

def _int(lo: int, hi: int, multiple: int | None = None, what: str = "an integer") -> dict:
    text = f"{what} in [{lo}, {hi}]" + (f", a multiple of {multiple}" if multiple else "")
    s: dict[str, Any] = {"type": "integer", "minimum": lo, "maximum": hi, "description": text}
    if multiple:
        s["multipleOf"] = multiple
    return s


def _enum(values: Sequence[Any]) -> dict:
    return {"enum": list(values), "description": "one of " + ", ".join(
        json.dumps(v) for v in values)}


def _perm(names: Sequence[str]) -> dict:
    return {"type": "array", "minItems": len(names), "maxItems": len(names),
            "uniqueItems": True, "items": {"enum": list(names)},
            "description": "a permutation of " + ", ".join(json.dumps(n) for n in names)}


def _table(props: dict[str, Any], required: Sequence[str] = (), what: str = "a table") -> dict:
    return {"type": "object", "additionalProperties": False, "required": list(required),
            "properties": props, "description": what}


_FIELD = _table({"lsb": _int(0, 4095), "width": _int(1, 4096)}, ["lsb", "width"],
                "a table { lsb = ..., width = ... }")

#: JSON Schema (Draft 2020-12) of an accelerator file as tomllib parses it. Every schema
#: node has a "description": the "expected ..." text of its error message.
ACCELERATOR_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "cosim accelerator file (docs/accelerator-file.md)",
    **_table({
        "format_version": {"const": FORMAT_VERSION, "description": f"{FORMAT_VERSION}"},
        "name": {"type": "string", "pattern": NAME_PATTERN,
                 "description": "a name of 1 to 64 characters a-z, 0-9, _ or -"},
        "description": {"type": "string", "maxLength": 2000,
                        "description": "a string of at most 2000 characters"},
        "word": _table({"bits": _int(8, 1024, 8), "lane_order": _enum(LANE_ORDERS)},
                       ["bits"]),
        "tile": _table({"oc": _int(1, 4096), "ic": _int(1, 4096), "dw": _int(1, 4096)},
                       ["oc", "ic"]),
        "weights": _table({"loop_order": _perm(WEIGHT_LOOPS),
                           "depthwise_loop_order": _perm(DEPTHWISE_LOOPS)}),
        "bias": _table({"bits": _enum(BIAS_BITS)}),
        "record": _table({"format": _enum(RECORD_FORMATS)}),
        "memory": _table({
            "region_order": _perm(REGIONS),
            "region_align": _int(1, 1 << 30),
            "segment_align": _int(1, 1 << 20),
            "depth": {"anyOf": [{"const": "auto"}, {"type": "integer", "minimum": 1,
                                                    "maximum": 1 << 40}],
                      "description": "\"auto\" or an integer in [1, 2^40] (words)"},
            "address_unit": _enum(ADDRESS_UNITS),
        }),
        "header": _table({
            "bits": _int(1, 4096),
            "magic": {"type": "integer", "minimum": 0,
                      "description": "a non-negative integer"},
            "fields": _table({n: _FIELD for n in HEADER_FIELD_NAMES}, HEADER_FIELD_NAMES,
                             "a table of the fields " + ", ".join(HEADER_FIELD_NAMES)),
        }),
        "datapath": _table({"rounding": _enum(ROUNDINGS)}),
    }, ["format_version", "name", "word", "tile"], "an accelerator table"),
}


def schema_keys(schema: dict[str, Any] | None = None, prefix: str = "") -> list[str]:
    """Every dotted key of the schema (tables and leaves), in schema order."""
    return tomlfile.schema_keys(ACCELERATOR_SCHEMA if schema is None else schema, prefix,
                                tables=True)


def _shown(value: Any) -> str:
    return tomlfile.shown(value, sort_keys=False, squeeze=False)


def _schema_error(where: str, data: dict[str, Any]) -> None:
    """AcceleratorError for the first schema violation of `data` (deterministic order)."""
    found = tomlfile.schema_error(ACCELERATOR_SCHEMA, data, style="description")
    if found is not None:
        key, text = found
        raise AcceleratorError(f"{where}: {key}: {text}")


# ---------------------------------------------------------------- the accelerator


@dataclass(frozen=True)
class Accelerator:
    """A loaded accelerator file: name, path, sha256 (of the file's bytes), description,
    layout_config (golden.layout.LayoutConfig), rounding ("half_even" or "half_up") and
    raw (the parsed TOML)."""

    name: str
    path: Path
    sha256: str
    description: str
    layout_config: LayoutConfig
    rounding: str
    raw: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)

    def record(self, overrides: Sequence[str] = ()) -> dict[str, Any]:
        """What layout.json records: {"name", "sha256", "path"} (+ "overrides")."""
        out: dict[str, Any] = {"name": self.name, "sha256": self.sha256,
                               "path": str(self.path)}
        if overrides:
            out["overrides"] = list(overrides)
        return out

    def layout(self, shapes: Sequence[LayerShape], config: LayoutConfig | None = None,
               overrides: Sequence[str] = ()) -> Layout:
        """The Layout of `shapes` under this accelerator (or `config`, derived from it);
        a network that does not fit the file's header or memory.depth is an
        AcceleratorError naming the file and key."""
        try:
            return Layout(shapes, config or self.layout_config, self.record(overrides))
        except LayoutError as e:
            text = str(e)
            key = ("memory.depth" if "memory_depth" in text else "header.fields.count.width"
                   if "-bit count" in text else "header.fields.layer.width"
                   if "layer index" in text else None)
            if key is None:
                raise
            raise AcceleratorError(f"{self.path}: {key}: expected a value this network fits, "
                                   f"got {_shown(self._value(key))} ({text})") from None

    def _value(self, key: str) -> Any:
        node: Any = self.raw
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        return node


def _file_error(where: str) -> tomlfile.ErrorFactory:
    """The AcceleratorError of each problem reading the file `where`."""
    def error(problem: tomlfile.TomlProblem) -> AcceleratorError:
        kind = problem.kind
        if kind == "missing":
            text = "(file): expected an accelerator file (TOML), got no such file" + \
                _names_hint()
        elif kind == "unreadable":
            text = f"(file): expected a readable file, got {problem.detail}"
        elif kind in ("directory", "not_regular"):
            text = "(file): expected a regular TOML file, got " + (
                "a directory" if kind == "directory" else "not a regular file")
        elif kind == "too_big":
            text = (f"(file): expected at most {ACCELERATOR_MAX_BYTES} bytes, got "
                    f"{'more' if problem.size is None else problem.size}")
        elif kind == "not_utf8":
            text = (f"(file): expected UTF-8 text, got a byte {problem.byte:#04x} at offset "
                    f"{problem.offset}")
        else:
            text = f"(syntax): expected TOML, got {problem.detail}"
        return AcceleratorError(f"{where}: {text}")
    return error


def _names_hint() -> str:
    return f" (shipped accelerators: {', '.join(SHIPPED_ACCELERATORS)})"


def resolve_accelerator(spec: str | os.PathLike[str]) -> Path:
    """A path, or the name of a shipped accelerator (e.g. "acc32_16x16") -> its file."""
    text = os.fspath(spec)
    if text in SHIPPED_ACCELERATORS and not Path(text).exists():
        return SHIPPED_ACCELERATORS[text]
    return Path(text)


def _semantic(where: str, data: dict[str, Any]) -> LayoutConfig:
    """LayoutConfig of validated TOML data; AcceleratorError (file, key) on a
    combination the schema cannot express."""
    word, tile = data["word"], data["tile"]
    weights, bias = data.get("weights", {}), data.get("bias", {})
    record, memory = data.get("record", {}), data.get("memory", {})
    header = data.get("header", {})
    d = LayoutConfig()
    bits = word["bits"]
    lane_order = word.get("lane_order", d.lane_order)
    bias_bits = bias.get("bits", d.bias_bits)
    if lane_order == "big" and bits % bias_bits:
        raise AcceleratorError(f"{where}: word.lane_order: expected \"little\" when bias.bits "
                               f"({bias_bits}) does not divide word.bits ({bits}), got \"big\"")
    seg = memory.get("segment_align", d.segment_align)
    reg = memory.get("region_align", d.region_align)
    if reg % seg:
        raise AcceleratorError(f"{where}: memory.region_align: expected a multiple of "
                               f"memory.segment_align ({seg}), got {reg}")
    dh = HeaderFormat()
    hbits = header.get("bits", dh.bits)
    fields = header.get("fields")
    if fields is None:
        fields = {n: {"lsb": lsb, "width": w} for n, lsb, w in dh.fields}
    used: dict[int, str] = {}
    for name in HEADER_FIELD_NAMES:
        lsb, width = fields[name]["lsb"], fields[name]["width"]
        if lsb + width > hbits:
            raise AcceleratorError(f"{where}: header.fields.{name}: expected bits inside the "
                                   f"{hbits}-bit header (lsb + width <= {hbits}), got "
                                   f"lsb {lsb}, width {width}")
        for b in range(lsb, lsb + width):
            if b in used:
                raise AcceleratorError(f"{where}: header.fields.{name}: expected bits that no "
                                       f"other field uses, got bit {b} shared with "
                                       f"{used[b]}")
            used[b] = name
    if fields["kind"]["width"] < 2:
        raise AcceleratorError(f"{where}: header.fields.kind.width: expected at least 2 (3 "
                               f"segment kinds), got {fields['kind']['width']}")
    magic = header.get("magic", dh.magic)
    if magic >> fields["magic"]["width"]:
        raise AcceleratorError(f"{where}: header.magic: expected a value that fits the "
                               f"{fields['magic']['width']}-bit magic field, got {magic:#x}")
    depth = memory.get("depth", "auto")
    try:
        return LayoutConfig(
            word_bits=bits, tile_oc=tile["oc"], tile_ic=tile["ic"],
            tile_dw=tile.get("dw", tile["ic"]),
            segment_align=seg, region_align=reg,
            weight_loop_order=tuple(weights.get("loop_order", WEIGHT_LOOPS)),
            depthwise_loop_order=tuple(weights.get("depthwise_loop_order", DEPTHWISE_LOOPS)),
            bias_bits=bias_bits, lane_order=lane_order,
            record_format=record.get("format", d.record_format),
            region_order=tuple(memory.get("region_order", REGIONS)),
            memory_depth=None if depth == "auto" else depth,
            address_unit=memory.get("address_unit", d.address_unit),
            header=HeaderFormat(bits=hbits, magic=magic, fields=tuple(
                (n, fields[n]["lsb"], fields[n]["width"]) for n in HEADER_FIELD_NAMES)))
    except LayoutError as e:  # not reached for a schema-valid file; kept one line
        raise AcceleratorError(f"{where}: (layout): expected a consistent layout, "
                               f"got {e}") from None


def load_accelerator(path: str | os.PathLike[str]) -> Accelerator:
    """Read, validate and check an accelerator file (a path or a shipped name)."""
    p = resolve_accelerator(path)
    where = str(p)
    fail = _file_error(where)
    raw = tomlfile.read_toml_bytes(p, ACCELERATOR_MAX_BYTES, fail)
    data = tomlfile.parse_toml(raw, fail)
    _schema_error(where, data)
    config = _semantic(where, data)
    return Accelerator(
        name=data["name"], path=p, sha256=hashlib.sha256(raw).hexdigest(),
        description=data.get("description", ""), layout_config=config,
        rounding=data.get("datapath", {}).get("rounding", "half_even"), raw=data)


def default_accelerator() -> Accelerator:
    """The shipped default.toml (today's layout: LayoutConfig())."""
    return load_accelerator(SHIPPED_ACCELERATORS["default"])
