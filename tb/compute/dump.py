"""Reading $writememh dumps of the activation memory, vectorized."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

_LUT = np.full(256, 255, dtype=np.uint8)
for _i, _c in enumerate(b"0123456789abcdef"):
    _LUT[_c] = _i
for _i, _c in enumerate(b"ABCDEF"):
    _LUT[_c] = 10 + _i


def read_dump(path: Path, lo: int, hi: int, lanes: int) -> tuple[np.ndarray, np.ndarray]:
    """(words uint8 [hi-lo+1, lanes], unknown bool [hi-lo+1]) of a dump of lo..hi.

    Icarus writes the words from lo without an address; Verilator may write
    '// comments' and '@<hex address>' (absolute). A word with an x/z digit, or one
    missing from the file, is unknown (its bytes read 0)."""
    n = hi - lo + 1
    text = Path(path).read_bytes()
    if b"//" in text:
        text = re.sub(rb"//[^\n]*", b"", text)
    tokens = text.split()
    words = np.zeros((n, lanes), dtype=np.uint8)
    unknown = np.ones(n, dtype=bool)
    marks = [i for i, t in enumerate(tokens) if t[:1] == b"@"]
    digits = 2 * lanes
    for start, stop in zip([-1, *marks], [*marks, len(tokens)], strict=True):
        run = tokens[start + 1:stop]
        if not run:
            continue
        base = int(tokens[start][1:], 16) if start >= 0 else lo
        if any(len(t) != digits for t in run):
            run = [t.rjust(digits, b"0")[-digits:] for t in run]
        raw = _LUT[np.frombuffer(b"".join(run), dtype=np.uint8).reshape(-1, digits)]
        good = (raw != 255).all(axis=1)
        raw[~good] = 0
        value = (raw[:, 0::2] << 4) | raw[:, 1::2]       # bytes, most significant first
        rows = np.arange(base - lo, base - lo + len(run))
        keep = (rows >= 0) & (rows < n)
        words[rows[keep]] = value[keep, ::-1]            # lane 0 = last byte
        unknown[rows[keep]] = ~good[keep]
    return words, unknown


def read_stats(path: Path, count: int) -> np.ndarray:
    """The first `count` 64-bit words of the stats dump (cycles per descriptor)."""
    text = Path(path).read_bytes()
    if b"//" in text:
        text = re.sub(rb"//[^\n]*", b"", text)
    tokens = [t for t in text.split() if t[:1] != b"@"][:count]
    return np.array([int(t, 16) if all(c in b"0123456789abcdefABCDEF" for c in t) else -1
                     for t in tokens], dtype=np.int64)
