"""Scoreboard: every memory write against the golden image, then the final memory.

Inputs: WriteBatch (write monitor) and SegmentObservation (stream monitor).

- Each batch is checked when it arrives (numpy): the address must hold a word of the
  golden image and the word must equal it; X/Z writes are errors.
- Each observation predicts the writes of its segment (all of a good segment's words,
  the allowed prefix of a malformed one, none for a rejected header) into an
  expected-write count per address, and checks error_flags (sticky since the last
  reset) and segments_done.
- At the end: every address written exactly as often as predicted (so: every
  expected word once, nothing outside a segment's own range, nothing twice unless a
  reset-and-reload predicted it), and the memory dump (+DUMP_FILE) equal to the
  golden image at every predicted address and unwritten (X or 0) elsewhere.

Mismatch messages name layer, tensor and coordinates (golden.layout.Layout.locate)
and list the first differences as a table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pyuvm import ConfigDB, uvm_scoreboard, uvm_subscriber

from tb.env.config import FLAG_NAMES, EnvConfig
from tb.env.items import ResetItem, SegmentItem
from tb.env.stream_monitor import SegmentObservation
from tb.env.write_monitor import WriteBatch

KINDS = ("weights", "biases", "record")


@dataclass
class Difference:
    """One wrong memory word (write or final dump)."""

    what: str          # "write" or "dump"
    address: int
    expected: int | None
    got: int | None    # None: X/Z
    note: str = ""


class Scoreboard(uvm_scoreboard):
    """Checks writes, flags and the final memory against the golden image."""

    def build_phase(self) -> None:
        self.cfg: EnvConfig = ConfigDB().get(self, "", "cfg")
        self.write_export = uvm_subscriber.uvm_AnalysisImp("write_export", self,
                                                           self.write_batch)
        self.segment_export = uvm_subscriber.uvm_AnalysisImp("segment_export", self,
                                                             self.segment_done)
        golden = self.cfg.golden
        self.layout = golden.layout
        self.g_addr = golden.image.addresses.astype(np.int64)
        self.g_words = golden.image.words
        self.depth = int(self.layout.depth)
        self.expected_count = np.zeros(self.depth, dtype=np.int32)
        self.write_count = np.zeros(self.depth, dtype=np.int32)
        self.words_checked = 0
        self.write_errors = 0           # data, gap, out-of-range, X/Z writes
        self.differences: list[Difference] = []
        self.errors: list[str] = []     # one line each, first ones kept
        self.error_count = 0
        self.flags_expected = 0
        self.flags_dont_care = 0
        self.done_expected = 0
        self.segments_seen = 0
        self.dump_checked = False
        self.dump_path: Path | None = None   # set by the env once the memory was dumped
        #: memory before this test (words, unknown) when an earlier test of the same
        #: simulation left words in it; None: fresh memory (X or 0 everywhere)
        self.baseline: tuple[np.ndarray, np.ndarray] | None = None
        self.dump_mismatches = 0

    # ------------------------------------------------------------------ helpers

    def error(self, message: str) -> None:
        self.error_count += 1
        if len(self.errors) < 50:
            self.errors.append(message)
            self.logger.error(message)

    def _golden_index(self, addresses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        idx = np.searchsorted(self.g_addr, addresses)
        idx_c = np.minimum(idx, self.g_addr.size - 1)
        return idx_c, self.g_addr[idx_c] == addresses

    def _differ(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        d = a != b
        return d if d.ndim == 1 else d.any(axis=1)

    # ------------------------------------------------------------------ writes

    def write_batch(self, batch: WriteBatch) -> None:
        n = len(batch)
        self.words_checked += n
        if batch.overrun:
            self.error(f"write log overrun: {batch.overrun} writes lost before write "
                       f"#{batch.first} (wlog_tick too rare or monitor too slow)")
        addr = batch.addresses
        inside = (addr >= 0) & (addr < self.depth)
        np.add.at(self.write_count, addr[inside], 1)
        idx, stored = self._golden_index(addr)
        wrong = np.zeros(n, dtype=bool)
        wrong[stored] = self._differ(batch.words[stored], self.g_words[idx[stored]])
        bad = batch.bad | ~stored | wrong
        if not bad.any():
            return
        for i in np.flatnonzero(bad):
            a = int(addr[i])
            self.write_errors += 1
            if batch.bad[i]:
                note, got = "X/Z on the write bus", None
            elif a >= self.depth or a < 0:
                note, got = f"address out of range (depth {self.depth})", _int(batch.words[i])
            elif not stored[i]:
                note, got = "write into an alignment gap", _int(batch.words[i])
            else:
                note, got = "wrong word", _int(batch.words[i])
            exp = _int(self.g_words[idx[i]]) if stored[i] else None
            if len(self.differences) < 10 * self.cfg.max_report_rows:
                self.differences.append(Difference("write", a, exp, got, note))
        i = int(np.flatnonzero(bad)[0])
        a = int(addr[i])
        c = self.layout.locate(a) if 0 <= a < self.depth else None
        where = (f"layer {c.layer} {c.name} {c.tensor} word {c.word_index}" if c
                 else "outside every segment")
        self.error(f"{int(bad.sum())} bad write(s) in a batch of {n} (writes #{batch.first}.."
                   f"#{batch.first + n - 1}); first at {a:#x} ({where})")

    # ------------------------------------------------------------------ segments

    def segment_done(self, obs: SegmentObservation) -> None:
        rec = obs.record
        if isinstance(rec.item, ResetItem) or rec.reset:
            self.flags_expected = self.flags_dont_care = self.done_expected = 0
            if obs.error_flags != 0:
                self.error(f"error_flags {obs.error_flags:#04x} right after reset, "
                           "expected 0")
            return
        item: SegmentItem = rec.item
        self.segments_seen += 1
        if obs.tick_missing:
            self.error(f"{item}: no wlog_tick after its last word")
        self._predict(item)
        if item.malformation == "truncated":
            return  # mid-segment: flags and counters are checked at the next end/reset
        self.flags_expected |= item.expected_flags
        self.flags_dont_care |= item.dont_care_flags
        if item.well_formed:
            self.done_expected += 1
        care = ~self.flags_dont_care & 0xFF
        if (obs.error_flags & care) != (self.flags_expected & care):
            self.error(f"{item}: error_flags {obs.error_flags:#04x} "
                       f"({_flag_names(obs.error_flags)}), expected "
                       f"{self.flags_expected:#04x} ({_flag_names(self.flags_expected)})"
                       + (f", don't care {self.flags_dont_care:#04x}"
                          if self.flags_dont_care else ""))
            self.flags_expected = obs.error_flags  # report once, not for every later item
        if obs.segments_done != self.done_expected:
            self.error(f"{item}: segments_done {obs.segments_done}, expected "
                       f"{self.done_expected} since reset")
            self.done_expected = obs.segments_done
        if self.cfg.verbose and item.well_formed:
            info = self.layout.segment(item.layer, ("weight", "bias", "record")[item.kind])
            self.logger.info(f"stored layer {item.layer:3d} {item.seg_name:<22s} "
                             f"{KINDS[item.kind]:<7s} at {info.base:#07x} "
                             f"{item.count:6d} words")

    def _predict(self, item: SegmentItem) -> None:
        if item.expected_writes <= 0:
            return
        info = self.layout.segment(item.layer, ("weight", "bias", "record")[item.kind])
        self.expected_count[info.base:info.base + item.expected_writes] += 1

    # ------------------------------------------------------------------ end of test

    @property
    def words_expected(self) -> int:
        return int(self.expected_count.sum())

    def check_counts(self) -> None:
        """Every address written exactly as often as predicted."""
        diff = np.flatnonzero(self.write_count != self.expected_count)
        if diff.size == 0:
            return
        exp, got = self.expected_count[diff], self.write_count[diff]
        missing = diff[(got < exp) & (got == 0)]
        unexpected = diff[exp == 0]
        other = diff[(exp > 0) & (got > 0)]
        for label, where in (("never written", missing), ("written but not expected",
                                                          unexpected),
                             ("written a wrong number of times", other)):
            if where.size:
                self.error(f"{where.size} address(es) {label}: "
                           + self._addresses_text(where, exp, got))

    def _addresses_text(self, where: np.ndarray, exp: np.ndarray | None = None,
                        got: np.ndarray | None = None) -> str:
        parts = []
        for a in where[:5]:
            c = self.layout.locate(int(a))
            place = f"{c.name} {c.tensor} word {c.word_index}" if c else "gap"
            parts.append(f"{int(a):#x} ({place}; expected {int(self.expected_count[a])}x, "
                         f"written {int(self.write_count[a])}x)")
        more = f", ... {where.size - 5} more" if where.size > 5 else ""
        return "; ".join(parts) + more

    def load_baseline(self, path: Path) -> None:
        """Memory contents before this test (a dump taken right after the first reset)."""
        limbs = 1 if self.g_words.ndim == 1 else self.g_words.shape[1]
        self.baseline = read_memh(Path(path), self.depth, limbs)

    def check_dump(self, path: Path) -> None:
        """The memory dump equals the golden image where writes were predicted."""
        if not Path(path).is_file():
            self.error(f"memory dump {path} was not written (dump_req / +DUMP_FILE)")
            return
        limbs = 1 if self.g_words.ndim == 1 else self.g_words.shape[1]
        values, unknown = read_memh(Path(path), self.depth, limbs)
        self.dump_checked = True
        want = self.expected_count > 0
        idx, stored = self._golden_index(np.arange(self.depth, dtype=np.int64))
        exp_words = self.g_words[idx]
        wrong = want & (unknown | self._differ(values, exp_words))
        if self.baseline is None:
            # unpredicted addresses must be unwritten: X (4-state) or 0 (2-state init)
            zero = ~values.any(axis=1) if values.ndim == 2 else values == 0
            stray = ~want & ~unknown & ~zero
        else:  # ... or hold what they held before this test
            b_values, b_unknown = self.baseline
            stray = ~want & ((unknown != b_unknown) | self._differ(values, b_values))
        self.dump_mismatches = int(wrong.sum() + stray.sum())
        for a in np.flatnonzero(wrong)[: 10 * self.cfg.max_report_rows]:
            self.differences.append(Difference(
                "dump", int(a), _int(exp_words[a]) if stored[a] else None,
                None if unknown[a] else _int(values[a]), "final memory differs"))
        for a in np.flatnonzero(stray)[: self.cfg.max_report_rows]:
            self.differences.append(Difference(
                "dump", int(a), None if self.baseline is None else _int(self.baseline[0][a]),
                None if unknown[a] else _int(values[a]),
                "changed, but no write was predicted here"))
        if self.dump_mismatches:
            self.error(f"final memory: {int(wrong.sum())} word(s) differ from the golden "
                       f"image, {int(stray.sum())} word(s) changed where no write was predicted")

    def check_phase(self) -> None:
        self.check_counts()
        if self.dump_path is not None:
            self.check_dump(self.dump_path)
        else:
            self.logger.warning("memory not dumped (no +DUMP_FILE): final memory not compared")
        if self.differences:
            self.logger.error("first differences:\n" + self.difference_table())

    @property
    def mismatches(self) -> int:
        return self.error_count

    def difference_table(self, rows: int | None = None) -> str:
        """address, expected, got, layer, tensor and per differing lane oc/ic/kh/kw."""
        rows = rows or self.cfg.max_report_rows
        head = (f"{'what':<5} {'address':>9} {'expected':>18} {'got':>18} {'layer':>5} "
                f"{'tensor':<7} coordinates / note")
        lines = [head, "-" * len(head)]
        for d in self.differences[:rows]:
            c = self.layout.locate(d.address) if 0 <= d.address < self.depth else None
            exp = f"{d.expected:016x}" if d.expected is not None else "-"
            got = f"{d.got:016x}" if d.got is not None else "X/Z"
            layer = f"{c.layer}" if c else "-"
            tensor = c.tensor if c else "gap"
            lines.append(f"{d.what:<5} {d.address:#9x} {exp:>18} {got:>18} {layer:>5} "
                         f"{tensor:<7} {_coordinates(c, d)}; {d.note}")
        if len(self.differences) > rows:
            lines.append(f"... {len(self.differences) - rows} more")
        return "\n".join(lines)


# ---------------------------------------------------------------------- helpers


def _int(word: Any) -> int:
    w = np.asarray(word, dtype=np.uint64).reshape(-1)
    return sum(int(v) << (64 * i) for i, v in enumerate(w))


def _flag_names(flags: int) -> str:
    names = [n for i, n in enumerate(FLAG_NAMES) if flags >> i & 1]
    return ", ".join(names) or "none"


def _coordinates(c: Any, d: Difference) -> str:
    """Tile/kernel position and, per lane that differs, oc/ic."""
    if c is None:
        return "-"
    head = c.name
    if c.tensor == "weight":
        head += f" oc_tile {c.oc_tile} ic_tile {c.ic_tile} kh {c.kh} kw {c.kw}"
    elif c.tensor == "bias":
        head += f" oc_tile {c.oc_tile}"
    else:
        head += f" {c.field}"
    if not c.lanes or d.expected is None or d.got is None:
        return head
    bits = 16 if c.tensor == "bias" else 8
    lanes = []
    for lane in c.lanes:
        e = (d.expected >> (bits * lane.lane)) & ((1 << bits) - 1)
        g = (d.got >> (bits * lane.lane)) & ((1 << bits) - 1)
        if e != g:
            ic = f" ic {lane.ic}" if lane.ic is not None else ""
            pad = " pad" if lane.padding else ""
            lanes.append(f"lane {lane.lane} (oc {lane.oc}{ic}{pad}) {e:0{bits // 4}x}->"
                         f"{g:0{bits // 4}x}")
    return head + (": " + ", ".join(lanes[:4]) + (" ..." if len(lanes) > 4 else "")
                   if lanes else "")


def read_memh(path: Path, depth: int, limbs: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """A $writememh file -> (words uint64 (depth,) or (depth, limbs), X/Z-or-unset mask).

    Handles '@addr' tokens, '//' comments and any whitespace; a word holding x/z
    digits (Icarus: never written) or missing from the file is flagged unknown.
    """
    digits = 16 * limbs
    text = path.read_bytes()
    if b"//" in text:
        text = re.sub(rb"//[^\n]*", b"", text)
    tokens = text.split()
    marks = [i for i, t in enumerate(tokens) if t[:1] == b"@"]
    addr = np.empty(len(tokens) - len(marks), dtype=np.int64)
    data: list[bytes] = []
    pos, nxt = 0, 0
    for i, start in zip([-1, *marks], [*marks, len(tokens)], strict=True):
        run = tokens[i + 1:start]
        base = int(tokens[i][1:], 16) if i >= 0 else nxt
        addr[pos:pos + len(run)] = np.arange(base, base + len(run))
        data += run
        pos += len(run)
        nxt = base + len(run)
    values = np.zeros((depth, limbs), dtype=np.uint64)
    unknown = np.ones(depth, dtype=bool)
    keep = (addr >= 0) & (addr < depth)
    if not keep.all():
        data = [t for t, k in zip(data, keep.tolist(), strict=True) if k]
        addr = addr[keep]
    if data:
        if any(len(t) != digits for t in data):
            data = [t.rjust(digits, b"0")[-digits:] for t in data]
        raw = np.frombuffer(b"".join(data).lower(), dtype=np.uint8).reshape(-1, digits)
        nib = _HEX_LUT[raw]
        good = (nib != 255).all(axis=1)
        nib[~good] = 0
        nib64 = nib.astype(np.uint64)
        shifts = np.arange(60, -4, -4, dtype=np.uint64)
        for li in range(limbs):
            part = nib64[:, digits - 16 * (li + 1): digits - 16 * li]
            values[addr, li] = np.bitwise_or.reduce(part << shifts, axis=1)
        unknown[addr] = ~good
    return (values.reshape(depth) if limbs == 1 else values), unknown


_HEX_LUT = np.full(256, 255, dtype=np.uint8)
for _i, _c in enumerate(b"0123456789abcdef"):
    _HEX_LUT[_c] = _i
