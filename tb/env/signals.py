"""Fast, read-only access to DUT signals and arrays (the only place that touches GPI).

cocotb's `handle.value` builds a LogicArray per read (about 5 us); a monitor that
reads a 1024-entry write log, or a driver that samples tready every clock, would
spend most of its time there. These helpers read the raw bit string through the
handle's GPI object (`handle._handle`, cocotb 2.x) and decode whole batches with
numpy; they fall back to the public API when that attribute is missing.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


def raw_reader(handle: Any) -> Callable[[], str]:
    """A zero-argument function returning the signal's bit string ('0'/'1'/'x'/'z')."""
    gpi = getattr(handle, "_handle", None)
    if gpi is not None and hasattr(gpi, "get_signal_val_binstr"):
        return gpi.get_signal_val_binstr
    return lambda: str(handle.value)


def binstr_depositor(handle: Any) -> Callable[[str], None]:
    """A one-argument function that deposits a bit string (MSB first, exactly the
    signal's width) on `handle`, scheduled exactly like `handle.value = ...` (applied
    in the next ReadWrite phase) but without cocotb's per-write type conversion."""
    try:
        from cocotb.handle import _GPISetAction, _schedule_write
        return functools.partial(_schedule_write, handle, handle._handle.set_signal_val_binstr,
                                 _GPISetAction.DEPOSIT)
    except (ImportError, AttributeError):  # another cocotb: the public (slower) path
        def deposit(bits: str) -> None:
            handle.value = int(bits, 2)
        return deposit


def to_binstrs(words: np.ndarray, width: int) -> list[str]:
    """uint64 words (n,) or (n, limbs), limb 0 = bits [63:0] -> bit strings of `width`
    characters, MSB first (numpy; about 0.1 us per word)."""
    w = np.asarray(words, dtype=np.uint64)
    w = w.reshape(w.shape[0], -1)
    n = w.shape[0]
    if n == 0:
        return []
    be = np.ascontiguousarray(w[:, ::-1]).astype(">u8").view(np.uint8).reshape(n, -1)
    bits = np.unpackbits(be, axis=1)[:, -width:]
    text = (bits + ord("0")).astype(np.uint8).tobytes().decode("ascii")
    return [text[i:i + width] for i in range(0, n * width, width)]


def bit_reader(handle: Any) -> Callable[[], bool]:
    """A zero-argument function: True when a 1-bit signal is 1 (X/Z read as False)."""
    read = raw_reader(handle)
    return lambda: read() == "1"


def int_reader(handle: Any) -> Callable[[], int]:
    """A zero-argument function returning the signal as an unsigned int (X/Z -> -1)."""
    read = raw_reader(handle)

    def value() -> int:
        s = read()
        try:
            return int(s, 2)
        except ValueError:
            return -1
    return value


class ArrayReader:
    """Reads entries of an unpacked array (wlog_addr, wlog_data, ...) in batches."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle
        self.size = len(handle.range)
        # entry i -> raw reader of array[i] (whatever the declared direction)
        self._readers = [raw_reader(handle[i]) for i in range(self.size)]
        self.width = len(self._readers[0]())

    def read_range(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """(values, unknown) of entries start, start+1, ... stop-1 (modulo the size):
        values uint64 (n,) or (n, limbs) for entries wider than 64 bits; unknown marks
        entries with X/Z bits."""
        size, readers = self.size, self._readers
        a, b = start % size, (stop - 1) % size + 1
        if stop - start <= 0:
            return decode_bits([], self.width)
        if a < b and stop - start == b - a:
            strings = [f() for f in readers[a:b]]
        else:
            strings = [f() for f in readers[a:]] + [f() for f in readers[:b]]
        return decode_bits(strings, self.width)


def decode_bits(strings: Sequence[str], width: int) -> tuple[np.ndarray, np.ndarray]:
    """Bit strings (MSB first) -> (uint64 values (n,) or (n, limbs), X/Z mask (n,))."""
    n = len(strings)
    limbs = max(1, -(-width // 64))
    if n == 0:
        shape = (0,) if limbs == 1 else (0, limbs)
        return np.zeros(shape, dtype=np.uint64), np.zeros(0, dtype=bool)
    chars = np.frombuffer("".join(strings).encode("ascii"), dtype=np.uint8).reshape(n, width)
    ones = chars == ord("1")
    unknown = ~(ones | (chars == ord("0"))).all(axis=1)
    pad = limbs * 64 - width
    if pad:
        ones = np.concatenate([np.zeros((n, pad), dtype=bool), ones], axis=1)
    be = np.packbits(ones, axis=1)                     # big-endian bytes, MSB first
    le = np.ascontiguousarray(be[:, ::-1]).view("<u8")  # limb 0 = bits [63:0]
    values = le.reshape(n) if limbs == 1 else le.reshape(n, limbs)
    return values.astype(np.uint64, copy=False), unknown
