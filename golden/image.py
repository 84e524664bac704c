"""The parameter stream and the expected memory image, computed from the package alone.

Stream: for each weighted layer in execution order, three segments (weights,
biases, record), each its header words followed by its data words. The header
carries no address; a loader computes every address from (layer, kind) and the
layout (rtl/cnn_layout_pkg.sv). The header is a `config.header.bits`-bit integer
(default 64 bits, zero-extended to wider words; a header wider than a word spans
ceil(bits / word_bits) words, low word first). Default bit fields:

    [63:56] magic 0xA5   [55:48] layer index   [47:44] segment kind (0 weights,
    1 biases, 2 record)   [43:40] 0   [39:16] data word count   [15:0] 0

Image: address -> word for every stored word (segment words only; alignment gaps
are never written). Addresses are word addresses.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from cosim.golden.layout import (
    TENSORS,
    HeaderFormat,
    Layout,
    LayoutConfig,
    LayoutError,
    RecordFields,
    bytes_to_words,
    package_shapes,
    words_to_bytes,
)
from cosim.quant.formats import PackageError, atomic_write_bytes
from cosim.quant.package import layer_shifts, po2_exponent

__all__ = [
    "HEADER_FIELDS",
    "HEADER_MAGIC",
    "GOLDEN_FILES",
    "GoldenResult",
    "MemoryImage",
    "Segment",
    "build_image",
    "build_stream",
    "check_layout_matches",
    "header_value",
    "header_word",
    "package_sha256",
    "header_words",
    "image_from_stream",
    "parse_header",
    "record_fields",
    "stream_words",
    "words_to_hex",
    "write_golden",
]

#: The default header (HeaderFormat()): magic and bit fields name -> (lsb, width).
HEADER_MAGIC = HeaderFormat().magic
HEADER_FIELDS: dict[str, tuple[int, int]] = HeaderFormat().field_dict
#: Files write_golden writes under the output directory.
GOLDEN_FILES = (
    "stream.hex", "stream_tlast.hex", "stream_segments.csv", "image.hex", "image.npz",
    "address_map.md", "address_map.csv", "memory_map.png", "layout.json",
)


def header_word(layer: int, kind: int, count: int, header: HeaderFormat | None = None) -> int:
    """The header of a segment as one integer (`header.bits` wide; default 64 bits):
    magic, layer index, kind code, data word count."""
    header = header or HeaderFormat()
    fields = {"magic": header.magic, "layer": layer, "kind": kind, "count": count}
    word = 0
    for name, lsb, width in header.fields:
        value = fields[name]
        if not 0 <= value < 1 << width:
            raise LayoutError(f"header {name} {value} does not fit in {width} bits")
        word |= value << lsb
    return word


def header_words(value: int, config: LayoutConfig) -> np.ndarray:
    """A header integer as config.header_words words (word 0 = bits [word_bits-1:0])."""
    n = config.header_words
    raw = int(value).to_bytes(n * config.word_bytes, "little")
    return bytes_to_words(np.frombuffer(raw, dtype=np.uint8), config)


def header_value(words: np.ndarray, config: LayoutConfig) -> int:
    """The header integer of config.header_words header words (inverse of header_words)."""
    return int.from_bytes(words_to_bytes(words, config).tobytes(), "little")


def parse_header(word: int, header: HeaderFormat | None = None) -> tuple[int, int, int]:
    """(layer, kind, count) of a header integer; LayoutError on a bad magic or a
    reserved bit (any bit outside the fields, up to and beyond header.bits) set."""
    header = header or HeaderFormat()
    word = int(word)
    digits = (header.bits + 3) // 4
    fields = {name: (word >> lsb) & ((1 << width) - 1) for name, lsb, width in header.fields}
    used = sum(((1 << width) - 1) << lsb for _, lsb, width in header.fields)
    mdigits = (header.width("magic") + 3) // 4 + 2
    if fields["magic"] != header.magic:
        raise LayoutError(f"header {word:#0{digits + 2}x}: magic {fields['magic']:#0{mdigits}x}, "
                          f"expected {header.magic:#0{mdigits}x}")
    if word & ~used:
        raise LayoutError(f"header {word:#0{digits + 2}x}: reserved bits are not zero")
    return fields["layer"], fields["kind"], fields["count"]


@dataclass(frozen=True)
class Segment:
    """One stream segment: the header (an integer), the data words (uint64, layout word
    shape) and header_words, the header as words (build_stream fills it in; when left
    None it is the header in one word of the data's shape, as for the default header)."""

    layer: int
    name: str
    kind: int
    header: int
    words: np.ndarray
    header_words: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.header_words is None:
            limbs = 1 if self.words.ndim == 1 else self.words.shape[1]
            value = int(self.header)
            hw = np.array([[(value >> (64 * k)) & ((1 << 64) - 1) for k in range(limbs)]],
                          dtype=np.uint64)
            object.__setattr__(self, "header_words", hw.reshape(1) if self.words.ndim == 1
                               else hw)

    @property
    def tensor(self) -> str:
        return TENSORS[self.kind]

    @property
    def count(self) -> int:
        return int(self.words.shape[0])


class MemoryImage(NamedTuple):
    """The expected memory: ascending word addresses (int64) and their words (uint64)."""

    addresses: np.ndarray
    words: np.ndarray

    def read(self, base: int, count: int) -> np.ndarray:
        """The `count` words stored from address `base` on (they must all be stored)."""
        start = int(np.searchsorted(self.addresses, base))
        stop = start + count
        last = base + count - 1
        if stop > self.addresses.size or (
            count and (self.addresses[start] != base or self.addresses[stop - 1] != last)
        ):
            raise LayoutError(f"image does not hold {count} words from address {base:#x}")
        return self.words[start:stop]

    def word_at(self, address: int) -> np.ndarray | int | None:
        """The word at `address` (an int for 64-bit words), or None if nothing is stored."""
        i = int(np.searchsorted(self.addresses, address))
        if i >= self.addresses.size or self.addresses[i] != address:
            return None
        w = self.words[i]
        return int(w) if self.words.ndim == 1 else w


# ---------------------------------------------------------------- from the package


def check_layout_matches(package: Any, layout: Layout) -> None:
    """LayoutError unless `layout` was computed for this package's weighted layers."""
    shapes = package_shapes(package)
    if shapes != layout.layers:
        for i, (a, b) in enumerate(zip(shapes, layout.layers, strict=False)):
            if a != b:
                raise LayoutError(f"layout does not match the package at weighted layer {i}: "
                                  f"package {a}, layout {b}")
        raise LayoutError(f"layout has {len(layout.layers)} layers, the package "
                          f"{len(shapes)} weighted layers")


def record_fields(package: Any, name: str) -> RecordFields:
    """A layer's record from its manifest entry (scales must be powers of two)."""
    layer = package.layer(name)
    where = f"layer {name!r}"

    def exponent(scale: float, what: str) -> int:
        e = po2_exponent(scale)
        if e is None or not -128 <= e <= 127:
            raise PackageError(package.manifest_path, f"{where} {what} scale {scale!r} is not "
                               "a power of two 2**e with e in [-128, 127]")
        return e

    def zero_point(q: dict, what: str) -> int:
        zp = q["zero_point"]
        if not 0 <= zp <= 255:
            raise PackageError(package.manifest_path,
                               f"{where} {what} zero_point {zp} is not in uint8 [0, 255]")
        return zp

    w_scale = layer["weight"]["scale"]
    w_scales = w_scale if isinstance(w_scale, list) else [w_scale]
    shape = [int(d) for d in layer["weight_shape"]]
    geometry: dict[str, Any] = {"out_channels": shape[0], "in_channels": shape[1],
                                "kernel": (1, 1)}
    if layer["op"] == "conv2d":  # a linear layer keeps the defaults (1x1, stride 1, ...)
        groups = int(layer["groups"])
        geometry = {"groups": groups, "stride": tuple(layer["stride"]),
                    "padding": tuple(layer["padding"]), "dilation": tuple(layer["dilation"]),
                    "out_channels": shape[0], "in_channels": shape[1] * groups,
                    "kernel": (shape[2], shape[3])}
    return RecordFields(
        **geometry, kind=layer["kind"], relu=bool(layer["relu"]),
        input_zero_point=zero_point(layer["input"], "input"),
        output_zero_point=zero_point(layer["output"], "output"),
        input_exp=exponent(layer["input"]["scale"], "input"),
        output_exp=exponent(layer["output"]["scale"], "output"),
        shift=tuple(layer_shifts(layer)),
        weight_exp=tuple(exponent(s, "weight") for s in w_scales),
    )


def build_stream(package: Any, layout: Layout) -> list[Segment]:
    """Segments in streaming order: per weighted layer, weights, biases, record."""
    check_layout_matches(package, layout)
    segments: list[Segment] = []
    for i, shape in enumerate(layout.layers):
        name = shape.name
        data = (layout.pack_weights(i, package.weight_int8(name)),
                layout.pack_biases(i, package.bias_int16(name)),
                layout.pack_record(i, record_fields(package, name)))
        for kind, words in enumerate(data):
            header = header_word(i, kind, words.shape[0], layout.config.header)
            segments.append(Segment(i, name, kind, header, words,
                                    header_words(header, layout.config)))
    return segments


def image_from_stream(segments: Sequence[Segment], layout: Layout) -> MemoryImage:
    """The memory a correct loader leaves after `segments`: addresses from (layer, kind)."""
    addresses, words = [], []
    for seg in segments:
        layer, kind, count = parse_header(seg.header, layout.config.header)
        if count != seg.count:
            raise LayoutError(f"segment {seg.name} {seg.tensor}: header count {count} != "
                              f"{seg.count} data words")
        info = layout.segment(layer, TENSORS[kind])
        if count != info.words:
            raise LayoutError(f"segment {seg.name} {seg.tensor}: {count} words, the layout "
                              f"expects {info.words}")
        addresses.append(np.arange(info.base, info.end, dtype=np.int64))
        words.append(seg.words)
    addr = np.concatenate(addresses)
    order = np.argsort(addr, kind="stable")
    addr, data = addr[order], np.concatenate(words)[order]
    if addr.size > 1 and np.any(addr[1:] == addr[:-1]):
        raise LayoutError("two segments write the same address")
    return MemoryImage(addr, data)


def build_image(package: Any, layout: Layout) -> MemoryImage:
    """The expected memory image of a package under a layout."""
    return image_from_stream(build_stream(package, layout), layout)


def stream_words(segments: Sequence[Segment], config: LayoutConfig) -> tuple[np.ndarray,
                                                                               np.ndarray]:
    """(every stream word in order, headers included; tlast: True on each segment's last
    word)."""
    parts, last = [], []
    for seg in segments:
        head = seg.header_words
        assert head is not None
        parts += [head, seg.words]
        flags = np.zeros(seg.count + head.shape[0], dtype=bool)
        flags[-1] = True
        last.append(flags)
    return np.concatenate(parts), np.concatenate(last)


# ---------------------------------------------------------------- writers

_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def words_to_hex(words: np.ndarray, config: LayoutConfig) -> np.ndarray:
    """[n, word_bits/4 + 1] ASCII bytes: each word as lowercase hex (MSB first) and '\\n'."""
    b = words_to_bytes(words, config)[:, ::-1]
    out = np.empty((b.shape[0], 2 * b.shape[1] + 1), dtype=np.uint8)
    out[:, 0:-1:2] = _HEX[b >> 4]
    out[:, 1:-1:2] = _HEX[b & 0xF]
    out[:, -1] = ord("\n")
    return out


def image_hex(image: MemoryImage, config: LayoutConfig) -> tuple[bytes, bytes]:
    """($readmemh text of the image, $readmemh text of its mask).

    The image: '@<word index>' (hex) before each run of consecutive addresses, then
    one word per line, lowercase hex, MSB first (image.hex of `cosim golden`). The
    mask: the same '@' runs with one '1' per word: the word indices the image holds
    (rtl/param_write_checker.sv reads both)."""
    lines = words_to_hex(image.words, config)
    addr = image.addresses
    starts = np.flatnonzero(np.r_[True, addr[1:] != addr[:-1] + 1]) if addr.size else []
    chunks, mask = [], []
    bounds = [*list(starts), addr.size]
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        at = f"@{int(addr[a]):x}\n".encode("ascii")
        chunks += [at, lines[a:b].tobytes()]
        mask += [at, b"1\n" * (b - a)]
    return b"".join(chunks), b"".join(mask)


def _csv_bytes(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue().encode("ascii")


@dataclass(frozen=True)
class GoldenResult:
    """What write_golden wrote, with timings in seconds."""

    out_dir: Path
    files: dict[str, Path]
    stream_words: int
    image_words: int
    build_seconds: float
    write_seconds: float


def write_golden(package: Any, layout: Layout, out_dir: Path | str = "build/golden",
                 plot: bool = True, accelerator: dict[str, Any] | None = None
                 ) -> GoldenResult:
    """Write the stream, the expected image and the address map under `out_dir`.

    Each file is written atomically (temp file, then rename); everything is
    computed before the first file is written. plot=False skips memory_map.png.
    accelerator: {"name", "sha256"} (and optionally "path", "overrides") recorded in
    layout.json (golden.accelerator.Accelerator.record()); default: layout.accelerator.
    """
    from cosim.golden import report

    out = Path(out_dir)
    t0 = time.perf_counter()
    segments = build_stream(package, layout)
    image = image_from_stream(segments, layout)
    build_seconds = time.perf_counter() - t0
    cfg = layout.config
    stream, tlast = stream_words(segments, cfg)
    contents: dict[str, bytes] = {}
    contents["stream.hex"] = words_to_hex(stream, cfg).tobytes()
    contents["stream_tlast.hex"] = _tlast_bytes(tlast)
    rows, line = [], 1
    digits = (cfg.header.bits + 3) // 4
    for n, seg in enumerate(segments):
        info = layout.segment(seg.layer, seg.tensor)
        rows.append([n, seg.layer, seg.name, seg.kind, seg.tensor, line, seg.count,
                     info.base, f"{seg.header:0{digits}x}"])
        line += cfg.header_words + seg.count
    contents["stream_segments.csv"] = _csv_bytes(
        ["segment", "layer", "name", "kind", "tensor", "header_line", "words", "base",
         "header_hex"], rows)
    contents["image.hex"] = image_hex(image, cfg)[0]
    buf = io.BytesIO()
    np.savez(buf, addresses=image.addresses.astype(np.uint64), words=image.words)
    contents["image.npz"] = buf.getvalue()
    contents["address_map.md"] = report.address_map_markdown(layout).encode("utf-8")
    contents["address_map.csv"] = report.address_map_csv(layout).encode("ascii")
    table = layout.table()
    if accelerator is not None:
        table["accelerator"] = dict(accelerator)
    elif "accelerator" in table:
        table["accelerator"] = dict(table["accelerator"])
    manifest = getattr(package, "root", None)
    if manifest is not None and (Path(manifest) / "manifest.json").is_file():
        table["package"] = {"manifest_sha256": package_sha256(Path(manifest)),
                            "path": str(Path(manifest).resolve())}
    table["stream"] = {"header_magic": cfg.header.magic,
                       "header_fields": cfg.header.as_dict()["fields"],
                       "header_bits": cfg.header.bits, "header_words": cfg.header_words,
                       "segments": len(segments), "words": int(tlast.size)}
    contents["layout.json"] = (json.dumps(table, indent=1) + "\n").encode("ascii")
    if plot:
        contents["memory_map.png"] = report.memory_map_png(layout)
    files = {}
    for name, data in contents.items():
        atomic_write_bytes(out / name, data)
        files[name] = out / name
    return GoldenResult(out, files, int(tlast.size), int(image.addresses.size), build_seconds,
                        time.perf_counter() - t0 - build_seconds)


def package_sha256(package_dir: Path | str) -> str:
    """The package's identity: sha256 of its manifest.json bytes (the manifest lists the
    sha256 of every file, so this covers the whole package once it is consistent)."""
    import hashlib

    return hashlib.sha256((Path(package_dir) / "manifest.json").read_bytes()).hexdigest()


def _tlast_bytes(tlast: np.ndarray) -> bytes:
    out = np.empty((tlast.size, 2), dtype=np.uint8)
    out[:, 0] = np.where(tlast, ord("1"), ord("0"))
    out[:, 1] = ord("\n")
    return out.tobytes()
