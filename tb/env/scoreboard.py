"""Scoreboard: every memory write against the golden image, then the final memory.

Inputs: WriteBatch (write monitor) and SegmentObservation (stream monitor).

- Each batch is checked when it arrives (numpy): the address must hold a word of the
  golden image and the word must equal it; X/Z writes are errors.
- Each observation predicts the writes of its segment (all of a good segment's words,
  the allowed prefix of a malformed one, none for a rejected header) into an
  expected-write count per address, and predicts the loader status (`LoaderStatus`:
  state, layer, kind, segments_done, words_written, error_flags sticky since the last
  reset, rst_writes 0); the observed status must equal it at every segment end, at
  every probe inside an item, right after every reset (all zero) and at idle
  (before every reset and at the end).
- Handshake violations the driver saw (s_axis_tready high in reset or under
  mem_stall) are errors too.
- At the end: every address written exactly as often as predicted (so: every
  expected word once, nothing outside a segment's own range, nothing twice unless a
  reset-and-reload predicted it; this does not depend on the memory's initial
  contents), and the memory dump equal to the golden image at every predicted
  address and untouched (the poison pattern, or the baseline) elsewhere. A run
  whose memory was not dumped and compared fails.

Every error counts under a check name (`checks_failed`: "write", "status.<field>",
"reset_writes", "handshake.*", "counts", "dump", "dump.missing", ...), so a mutation
run can tell which check caught a bug.

Mismatch messages name layer, tensor and coordinates (golden.layout.Layout.locate)
and list the first differences as a table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from cosim.tb.env.config import FLAG_NAMES, STATE_HEADER, EnvConfig, address_scale
from cosim.tb.env.items import ResetItem, SegmentItem
from cosim.tb.env.stream_monitor import LoaderStatus, SegmentObservation
from cosim.tb.env.write_monitor import WriteBatch
from pyuvm import ConfigDB, uvm_scoreboard, uvm_subscriber

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
        #: port address of word address 1 (byte addressing: the word's bytes); the
        #: write log holds port addresses, the checks use word addresses
        self.addr_scale = address_scale(self.layout)
        self.expected_count = np.zeros(self.depth, dtype=np.int32)
        self.write_count = np.zeros(self.depth, dtype=np.int32)
        self.words_checked = 0
        self.write_errors = 0           # data, gap, out-of-range, X/Z writes
        self.differences: list[Difference] = []
        self.errors: list[str] = []     # one line each, first ones kept
        self.error_count = 0
        self.checks_failed: dict[str, int] = {}
        self.status_checks = 0          # status comparisons made
        self.flags_dont_care = 0
        self.expected = _RESET_STATUS   # predicted loader status (since the last reset)
        self.segments_seen = 0
        self.dump_checked = False
        self.dump_path: Path | None = None   # set by the env once the memory was dumped
        #: memory before this test (words, unknown) when an earlier test of the same
        #: simulation left words in it; None: fresh memory (X or 0 everywhere)
        self.baseline: tuple[np.ndarray, np.ndarray] | None = None
        self.dump_mismatches = 0
        self.reset_write_text = lambda: "?"   # the env points it at the stream monitor
        poison = self.cfg.init_poison
        word_bits = int(self.layout.config.word_bits)
        #: the poison as a memory word: the 64-bit pattern in every limb, cut to the width
        self.poison_limbs = None if poison is None else poison_limbs(poison, word_bits)
        same = 0 if poison is None else int(
            (self.g_words.reshape(self.g_words.shape[0], -1) == self.poison_limbs)
            .all(axis=1).sum())
        if same and word_bits >= POISON_MIN_BITS:
            self.error(f"a golden word equals the memory poison pattern {poison:#018x}: "
                       "a dropped write there would be invisible (change INIT_POISON)",
                       "poison")
        elif same:  # a narrow word cannot be unlike every golden word
            self.logger.warning(
                f"{same} golden word(s) equal the {word_bits}-bit memory poison "
                f"{int(self.poison_limbs[0]):#x}: a write the memory drops there shows only "
                "in the write log and the write counts, not in the dump")

    # ------------------------------------------------------------------ helpers

    def error(self, message: str, check: str = "other") -> None:
        self.error_count += 1
        self.cfg.errors_seen += 1
        self.checks_failed[check] = self.checks_failed.get(check, 0) + 1
        if len(self.errors) < 50:
            self.errors.append(f"[{check}] {message}")
            self.logger.error(f"[{check}] {message}")

    def handshake_error(self, check: str, message: str) -> None:
        """A violation seen by the driver (connected to SegmentDriver.error_hooks)."""
        self.error(message, check)

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
                       f"#{batch.first} (wlog_tick too rare or monitor too slow)", "overrun")
        addr = batch.addresses
        scale = self.addr_scale
        misaligned = np.zeros(n, dtype=bool)
        if scale != 1:  # byte addresses on the port: word address * word bytes
            misaligned = addr % scale != 0
            addr = np.where(misaligned, -1, addr // scale)
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
            elif misaligned[i]:
                a = int(batch.addresses[i])
                note, got = (f"byte address {a:#x} is not a multiple of the word's "
                             f"{scale} bytes"), _int(batch.words[i])
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
                   f"#{batch.first + n - 1}); first at {a:#x} ({where})", "write")

    # ------------------------------------------------------------------ segments

    def segment_done(self, obs: SegmentObservation) -> None:
        """Predict the status (and writes) from each record; compare where it is due."""
        rec = obs.record
        if obs.point == "reset" or (rec is not None and isinstance(rec.item, ResetItem)):
            self.expected, self.flags_dont_care = _RESET_STATUS, 0
            self.compare(obs, self.expected, "right after reset")
            return
        if obs.point == "idle" or rec is None:
            self.compare(obs, self.expected, "at idle")
            return
        item: SegmentItem = rec.item
        e = self.expected
        if obs.point == "probe":
            self.compare(obs, LoaderStatus(
                item.probe_state, item.header_layer, item.header_kind, e.segments_done,
                e.words_written + item.probe_writes, e.error_flags | item.probe_flags),
                f"{item}: after stream word {item.probe_after}")
            return
        self.segments_seen += 1
        if obs.tick_missing:
            self.error(f"{item}: no wlog_tick after its last word", "tick")
        self._predict(item)
        self.flags_dont_care |= item.dont_care_flags
        full = item.header_complete  # a header cut short by tlast shows no new layer/kind
        self.expected = LoaderStatus(
            item.end_state, item.header_layer if full else e.layer,
            item.header_kind if full else e.kind,
            e.segments_done + int(item.well_formed), e.words_written + item.expected_writes,
            e.error_flags | item.expected_flags)
        if item.tlast and obs.final:
            self.compare(obs, self.expected, f"{item}: at its end")
        if self.cfg.verbose and item.well_formed:
            info = self.layout.segment(item.layer, ("weight", "bias", "record")[item.kind])
            self.logger.info(f"stored layer {item.layer:3d} {item.seg_name:<22s} "
                             f"{KINDS[item.kind]:<7s} at {info.base:#07x} "
                             f"{item.count:6d} words")

    def compare(self, obs: SegmentObservation, expected: LoaderStatus, where: str) -> None:
        """Every status output against its prediction; one error per differing field
        (check "status.<field>", "reset_writes"), then the prediction follows the DUT so
        that one bug is reported once, not at every later segment."""
        self.status_checks += 1
        got = obs.status
        care = ~self.flags_dont_care & 0xFF
        diff = [f for f in got.differences(expected)
                if f != "error_flags" or (got.error_flags & care) != (expected.error_flags
                                                                      & care)]
        if not diff:
            return
        for name in diff:
            if name == "rst_writes":
                self.error(f"{where}: {got.rst_writes} memory write(s) while rst_n was low "
                           f"since time 0 (last: {self.reset_write_text()}), expected 0",
                           "reset_writes")
                continue
            text = f"{where} ({obs.point}): {name} {got.text(name)}, expected " \
                   f"{expected.text(name)}"
            if name == "error_flags":
                text += (f" ({_flag_names(got.error_flags)} vs "
                         f"{_flag_names(expected.error_flags)})")
            self.error(text, f"status.{name}")
        if obs.point != "probe":
            self.expected = got

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
                           + self._addresses_text(where, exp, got), "counts")

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
            self.error(f"memory dump {path} was not written (dump_req / +DUMP_FILE)",
                       "dump.missing")
            return
        limbs = 1 if self.g_words.ndim == 1 else self.g_words.shape[1]
        values, unknown = read_memh(Path(path), self.depth, limbs)
        self.dump_checked = True
        want = self.expected_count > 0
        idx, stored = self._golden_index(np.arange(self.depth, dtype=np.int64))
        exp_words = self.g_words[idx]
        wrong = want & (unknown | self._differ(values, exp_words))
        if self.baseline is None and self.cfg.init_poison is not None:
            # unpredicted addresses must still hold the poison the memory starts with
            untouched = (values.reshape(values.shape[0], -1) == self.poison_limbs).all(axis=1)
            stray = ~want & (unknown | ~untouched)
        elif self.baseline is None:
            # a DUT without poison fill: unwritten is X (4-state) or 0 (2-state init)
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
                "dump", int(a), (self.cfg.init_poison if self.baseline is None
                                 else _int(self.baseline[0][a])),
                None if unknown[a] else _int(values[a]),
                "changed, but no write was predicted here"))
        if self.dump_mismatches:
            self.error(f"final memory: {int(wrong.sum())} word(s) differ from the golden "
                       f"image, {int(stray.sum())} word(s) changed where no write was predicted",
                       "dump")

    def check_phase(self) -> None:
        self.check_counts()
        if self.dump_path is not None:
            self.check_dump(self.dump_path)
        if not self.dump_checked:
            self.error("the final memory was not dumped and compared (dump_req / +DUMP_FILE):"
                       " a pass needs it", "dump.missing")
        if self.differences:
            self.logger.error("first differences:\n" + self.difference_table())

    @property
    def mismatches(self) -> int:
        return self.error_count

    def result(self) -> dict[str, Any]:
        """The scoreboard's fields of a test's summary JSON (every stimulus path): passed
        (no mismatch and the final dump compared), the word counts, write and dump errors,
        and the checks that fired -> error count."""
        return {
            "passed": self.mismatches == 0 and self.dump_checked,
            "words_expected": self.words_expected,
            "words_checked": self.words_checked,
            "mismatches": self.mismatches,
            "write_errors": self.write_errors,
            "dump_checked": self.dump_checked,
            "dump_mismatches": self.dump_mismatches,
            "checks_failed": dict(sorted(self.checks_failed.items())),
        }

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


_RESET_STATUS = LoaderStatus(STATE_HEADER, 0, 0, 0, 0, 0, 0)


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


#: words at least this wide must all differ from the poison (narrower ones cannot)
POISON_MIN_BITS = 32


def poison_limbs(pattern: int, word_bits: int) -> np.ndarray:
    """The memory's poison word (`pattern`, 64 bits, in every 64-bit limb, cut to
    `word_bits`) as uint64 limbs, limb 0 = bits [63:0]."""
    limbs = max(1, -(-word_bits // 64))
    out = np.full(limbs, np.uint64(pattern), dtype=np.uint64)
    top = word_bits - 64 * (limbs - 1)
    if top < 64:
        out[-1] &= np.uint64((1 << top) - 1)
    return out


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
