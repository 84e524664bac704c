"""The golden image as AXI sees it: segment spans, their words as bytes, DMA order.

Byte address of word address w = base + w * word_bytes (docs/stimulus-paths.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

TENSORS = ("weight", "bias", "record")
KIND_NAMES = ("weights", "biases", "record")


@dataclass(frozen=True)
class SegmentSpan:
    """One segment of the layout: [base, base + words) in word addresses."""

    layer: int
    kind: int          # 0 weights, 1 biases, 2 record (the stream header's kind)
    name: str
    base: int
    words: int

    @property
    def end(self) -> int:
        return self.base + self.words

    @property
    def index(self) -> int:
        """The DMA's segment index (layer * 3 + kind; seg_first / seg_count)."""
        return self.layer * len(TENSORS) + self.kind

    def __str__(self) -> str:
        return f"layer {self.layer} {self.name} {KIND_NAMES[self.kind]}"


def segment_spans(layout: Any) -> list[SegmentSpan]:
    """Every non-empty segment in the DMA's order (layer 0.., kind 0..2)."""
    spans = []
    for layer in range(len(layout.layers)):
        for kind, tensor in enumerate(TENSORS):
            info = layout.segment(layer, tensor)
            if int(info.words) > 0:
                spans.append(SegmentSpan(layer, kind, str(info.name), int(info.base),
                                         int(info.words)))
    return spans


def word_bytes(layout: Any) -> int:
    """Bytes per memory word = bytes per AXI beat."""
    return int(layout.config.word_bits) // 8


def words_to_bytes(words: np.ndarray, word_bits: int) -> bytes:
    """Memory words (uint64, shape (n,) or (n, limbs), limb 0 low) as little-endian
    bytes, word_bits / 8 bytes per word."""
    nbytes = word_bits // 8
    w = np.ascontiguousarray(words, dtype="<u8")
    raw = w.reshape(w.shape[0], -1).view(np.uint8).reshape(w.shape[0], -1)
    return raw[:, :nbytes].tobytes()


class ImageWords:
    """The golden image's words by word address (numpy, no Python loop per word)."""

    def __init__(self, image: Any, word_bits: int) -> None:
        self.addresses = np.asarray(image.addresses, dtype=np.int64)
        self.words = image.words
        self.word_bits = word_bits

    def span_words(self, base: int, n: int) -> np.ndarray:
        i = int(np.searchsorted(self.addresses, base))
        if i + n > self.addresses.size or self.addresses[i] != base or \
                self.addresses[i + n - 1] != base + n - 1:
            raise ValueError(f"words {base:#x}..{base + n - 1:#x} are not all in the image")
        return self.words[i:i + n]

    def span_bytes(self, base: int, n: int) -> bytes:
        return words_to_bytes(self.span_words(base, n), self.word_bits)
