"""Reading $writememh dumps of the activation memory, vectorized."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from cosim.golden.engine_program import read_act_dump_masked


def read_dump(path: Path, lo: int, hi: int, lanes: int) -> tuple[np.ndarray, np.ndarray]:
    """(words uint8 [hi-lo+1, lanes], unknown bool [hi-lo+1]) of a dump of lo..hi
    (golden.engine_program.read_act_dump_masked, not strict: a word with an x/z digit,
    or one missing from the file, is unknown and its bytes read 0)."""
    words, unknown = read_act_dump_masked(path, lo, hi, lanes, strict=False)
    return words, unknown.any(axis=1)


def read_stats(path: Path, count: int) -> np.ndarray:
    """The first `count` 64-bit words of the stats dump (cycles per descriptor)."""
    text = Path(path).read_bytes()
    if b"//" in text:
        text = re.sub(rb"//[^\n]*", b"", text)
    tokens = [t for t in text.split() if t[:1] != b"@"][:count]
    return np.array([int(t, 16) if all(c in b"0123456789abcdefABCDEF" for c in t) else -1
                     for t in tokens], dtype=np.int64)
