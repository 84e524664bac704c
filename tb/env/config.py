"""EnvConfig: every knob of the environment, set once by the test, read through ConfigDB.

The test builds one EnvConfig in its build_phase (usually `EnvConfig.from_environment`)
and stores it with `ConfigDB().set(None, "*", "cfg", cfg)`; every component reads it
with `ConfigDB().get(self, "", "cfg")`.

Environment variables read by `from_environment` (all optional):

| variable | default | meaning |
| --- | --- | --- |
| COCOTB_RANDOM_SEED, RANDOM_SEED | cocotb's | seed of every random choice |
| COCOSIM_BACKPRESSURE | test's choice | back-pressure spec, see `BackPressure.parse` |
| COCOSIM_VERBOSE | 0 | 1: one line per stored segment |
| COCOSIM_PACKAGE | build/package | parameter package directory (any network) |
| COCOSIM_GOLDEN | build/golden | golden directory made from COCOSIM_PACKAGE (see below) |
| COCOSIM_RESULTS | build/test-results | summary / coverage JSON directory |
| COCOSIM_SIM | from cocotb.SIM_NAME | simulator name used in result file names |
| COCOSIM_STOP_ON_ERROR | 0 | 1: MalformedSeq stops after the first failing case (mutation killer) |

With COCOSIM_PACKAGE alone the golden side is computed from the package (default
LayoutConfig); COCOSIM_GOLDEN without COCOSIM_PACKAGE, or a golden directory whose
layout.json / image.npz is not that package's, is a GoldenSelectionError (one line;
`golden_selection`, `GoldenData.check`).

tb/sim.py turns RANDOM_SEED into COCOTB_RANDOM_SEED and prints it. The plusarg
`+DUMP_FILE=<path>` names the memory dump file (docs/rtl-interface.md); without
it the env still dumps, to the RTL's default `param_memory.hex` in the
simulator's working directory (a pass needs the final memory compared).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from cosim.quant.workdir import build_root

REPO = Path(__file__).resolve().parents[2]


def _repo_path(value: str | Path) -> Path:
    """A path from the environment; relative ones are relative to the repository (the
    simulator runs in its own run directory, so the cwd would be misleading)."""
    path = Path(value)
    return path if path.is_absolute() else REPO / path

#: error_flags bits (docs/rtl-interface.md).
FLAG_MAGIC = 1 << 0          # bad magic or non-zero reserved header bits
FLAG_LAYER = 1 << 1          # layer >= NUM_LAYERS
FLAG_KIND = 1 << 2           # kind >= NUM_KINDS
FLAG_COUNT = 1 << 3          # header count != seg_words(layer, kind)
FLAG_EARLY_TLAST = 1 << 4    # tlast before the last data word
FLAG_MISSING_TLAST = 1 << 5  # no tlast on the last data word
FLAG_ADDRESS = 1 << 6        # address out of range
FLAG_NAMES = ("bad_magic", "unknown_layer", "unknown_kind", "wrong_count", "early_tlast",
              "missing_tlast", "address_range")

#: loader `state` port encoding (docs/rtl-interface.md).
STATE_HEADER, STATE_DATA, STATE_DROP = 0, 1, 2
STATE_NAMES = ("HEADER", "DATA", "DROP")

#: Initial contents of every memory word (param_memory's INIT_POISON default: this
#: 64-bit pattern in every 64-bit limb). A word never written reads as the poison on
#: 4-state and 2-state simulators alike, so a dropped write (also of a zero word) shows.
MEM_POISON = 0xBAD0_C0DE_DEAD_F00D

#: The RTL's dump file when no +DUMP_FILE plusarg is given (relative to the sim's cwd).
DEFAULT_DUMP_FILE = "param_memory.hex"

BACKPRESSURE_PATTERNS = ("none", "random", "bursty")


@dataclass(frozen=True)
class BackPressure:
    """How the driver slows the stream down.

    pattern: "none" (mem_stall low), "random" (each presented word is stalled a
    geometric number of cycles, stall probability `stall_p` per cycle) or "bursty"
    (stall bursts of `burst_len` cycles every `burst_every` words, both drawn
    uniformly from the given ranges). A segment driven under "random" or "bursty"
    sees at least one stall, so coverage of short segments means what it says.
    idle_p: probability that the driver leaves tvalid low for 1..idle_max cycles
    before a word (independent of the pattern).
    """

    pattern: str = "none"
    stall_p: float = 0.25
    burst_len: tuple[int, int] = (4, 48)
    burst_every: tuple[int, int] = (32, 512)
    idle_p: float = 0.0
    idle_max: int = 4

    def __post_init__(self) -> None:
        if self.pattern not in BACKPRESSURE_PATTERNS:
            raise ValueError(f"back-pressure pattern must be one of "
                             f"{', '.join(BACKPRESSURE_PATTERNS)}, got {self.pattern!r}")
        if not 0 <= self.stall_p < 1 or not 0 <= self.idle_p < 1:
            raise ValueError("stall_p and idle_p must be in [0, 1)")

    @classmethod
    def parse(cls, text: str) -> BackPressure:
        """'none', 'random', 'random(0.3)', 'bursty', 'bursty(8,64)', each optionally
        followed by ',idle(0.1)' (or 'idle(0.1)' alone: no stall, idle gaps only)."""
        kwargs: dict[str, Any] = {}
        for part in re.findall(r"[a-z]+(?:\([^)]*\))?", text.strip().lower()):
            name, _, args = part.partition("(")
            vals = [float(v) for v in args.rstrip(")").split(",") if v.strip()]
            if name == "idle":
                kwargs["idle_p"] = vals[0] if vals else 0.1
            elif name == "random":
                kwargs["pattern"] = "random"
                if vals:
                    kwargs["stall_p"] = vals[0]
            elif name == "bursty":
                kwargs["pattern"] = "bursty"
                if vals:
                    kwargs["burst_len"] = (int(vals[0]), int(vals[-1]))
            elif name == "none":
                kwargs["pattern"] = "none"
            else:
                raise ValueError(f"unknown back-pressure term {part!r} in {text!r}")
        return cls(**kwargs)

    @property
    def label(self) -> str:
        text = {"none": "none", "random": f"random({self.stall_p:g})",
                "bursty": f"bursty({self.burst_len[0]},{self.burst_len[1]})"}[self.pattern]
        return text + (f",idle({self.idle_p:g})" if self.idle_p else "")

    @property
    def active(self) -> bool:
        return self.pattern != "none" or self.idle_p > 0

    def plan(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray | None,
                                                             np.ndarray | None]:
        """Per-word stall cycles and idle cycles for `n` words (None: all zero).

        Computed once per segment with numpy, so the driver does no random work
        per clock.
        """
        stall = idle = None
        if self.pattern == "random" and self.stall_p > 0:
            stall = rng.geometric(1.0 - self.stall_p, n) - 1
            if not stall.any():
                stall[rng.integers(n)] = rng.geometric(1.0 - self.stall_p)
        elif self.pattern == "bursty":
            stall = np.zeros(n, dtype=np.int64)
            k = int(rng.integers(0, min(n, self.burst_every[1])))
            while k < n:
                stall[k] = rng.integers(self.burst_len[0], self.burst_len[1] + 1)
                k += int(rng.integers(self.burst_every[0], self.burst_every[1] + 1))
        if self.idle_p > 0:
            idle = np.where(rng.random(n) < self.idle_p,
                            rng.integers(1, self.idle_max + 1, n), 0)
        if stall is not None and not stall.any():
            stall = None
        if idle is not None and not idle.any():
            idle = None
        return stall, idle


@dataclass(frozen=True)
class HeaderSpec:
    """The stream header of a layout: `bits` wide, split into `words` stream words of
    `word_bits` (word 0 = header bits [word_bits-1:0], low word first); `fields` maps
    magic, layer, kind, count to (lsb, width) in the header; every other bit of the
    `words * word_bits` driven bits is reserved (zero)."""

    bits: int = 64
    word_bits: int = 64
    magic: int = 0xA5
    fields: tuple[tuple[str, int, int], ...] = (("magic", 56, 8), ("layer", 48, 8),
                                                ("kind", 44, 4), ("count", 16, 24))

    @property
    def words(self) -> int:
        """Stream words per header."""
        return -(-self.bits // self.word_bits)

    @property
    def field_map(self) -> dict[str, tuple[int, int]]:
        return {name: (lsb, width) for name, lsb, width in self.fields}

    @property
    def limbs(self) -> int:
        """uint64 columns per stream word (words of up to 64 bits: 1, shape (n,))."""
        return max(1, -(-self.word_bits // 64))

    @cached_property
    def reserved_bits(self) -> tuple[int, ...]:
        """Every driven header bit that belongs to no field (padding included)."""
        mask = sum(((1 << w) - 1) << lsb for _, lsb, w in self.fields)
        return tuple(b for b in range(self.words * self.word_bits) if not mask >> b & 1)

    def field(self, header: int, name: str) -> int:
        lsb, width = self.field_map[name]
        return (int(header) >> lsb) & ((1 << width) - 1)

    def with_field(self, header: int, name: str, value: int) -> int:
        lsb, width = self.field_map[name]
        mask = ((1 << width) - 1) << lsb
        return (int(header) & ~mask) | ((int(value) << lsb) & mask)

    def split(self, header: int) -> np.ndarray:
        """The header as its stream words, uint64 (words,) or (words, limbs)."""
        out = np.zeros((self.words, self.limbs), dtype=np.uint64)
        h, wmask = int(header), (1 << self.word_bits) - 1
        for i in range(self.words):
            w = (h >> (i * self.word_bits)) & wmask
            for j in range(self.limbs):
                out[i, j] = (w >> (64 * j)) & (2**64 - 1)
        return out.reshape(self.words) if self.word_bits <= 64 else out


def _as_lsb_width(value: Any) -> tuple[int, int]:
    if isinstance(value, dict):
        return int(value["lsb"]), int(value["width"])
    if hasattr(value, "lsb"):
        return int(value.lsb), int(value.width)
    lsb, width = value
    return int(lsb), int(width)


def header_spec(layout: Any) -> HeaderSpec:
    """The HeaderSpec of a golden Layout (its LayoutConfig's `header`; a config without
    one has today's 64-bit header)."""
    cfg = layout.config if hasattr(layout, "config") else layout
    word_bits = int(getattr(cfg, "word_bits", 64))
    hdr = getattr(cfg, "header", None)
    if hdr is None:
        from cosim.golden.image import HEADER_FIELDS, HEADER_MAGIC
        return HeaderSpec(64, word_bits, HEADER_MAGIC,
                          tuple((k, *v) for k, v in HEADER_FIELDS.items()))
    fields = getattr(hdr, "fields", None)
    if fields is None:
        fields = {k: getattr(hdr, k) for k in ("magic", "layer", "kind", "count")}
    out = []
    if isinstance(fields, dict):
        for name, value in fields.items():
            out.append((str(name), *_as_lsb_width(value)))
    else:  # (name, lsb, width) triples (golden.layout.HeaderFormat)
        for name, lsb, width in fields:
            out.append((str(name), int(lsb), int(width)))
    magic = getattr(hdr, "magic", None)
    if magic is None or hasattr(magic, "lsb"):
        magic = getattr(hdr, "magic_value", 0xA5)
    return HeaderSpec(int(getattr(hdr, "bits", 64)), word_bits, int(magic), tuple(out))


def address_scale(layout: Any) -> int:
    """Port address of word address 1: the word's bytes for byte addressing
    (address_unit "byte": port address = word address * word.bits / 8), else 1."""
    cfg = layout.config if hasattr(layout, "config") else layout
    if getattr(cfg, "address_unit", "word") == "byte":
        return int(cfg.word_bits) // 8
    return 1


class GoldenSelectionError(ValueError):
    """COCOSIM_PACKAGE / COCOSIM_GOLDEN name no usable pair (the text is one line)."""


def check_package_record(table: dict[str, Any], layout_json: Path, package_dir: Path) -> None:
    """Pre-run check of the golden folder's package: the manifest sha256 that layout.json
    records (cosim golden writes it) must be the sha256 of COCOSIM_PACKAGE's manifest.json;
    GoldenSelectionError naming both values otherwise (a layout.json without the record,
    from an older cosim golden, is checked through its image instead)."""
    from cosim.golden.image import package_sha256

    record = table.get("package")
    if not record:
        return
    got = package_sha256(package_dir)
    if record["manifest_sha256"] != got:
        made = f" ({record['path']})" if record.get("path") else ""
        raise GoldenSelectionError(
            f"pre-run check: the golden folder ({layout_json}) was made from package "
            f"{record['manifest_sha256'][:16]}{made}, COCOSIM_PACKAGE {package_dir} is "
            f"package {got[:16]} (manifest.json sha256)")


def golden_selection(env: Any = None) -> tuple[Path, Path | None]:
    """(package directory, golden directory or None) the environment selects.

    Neither variable set: build/package and build/golden. COCOSIM_PACKAGE alone: that
    package, its golden side computed in memory with the default LayoutConfig.
    Both: the golden directory must have been made from that package (GoldenData
    checks it). COCOSIM_GOLDEN alone is refused: the scoreboard's expectations and the
    layout come from the package, and a golden directory does not name its package.
    """
    env = os.environ if env is None else env
    package, golden = env.get("COCOSIM_PACKAGE", "").strip(), env.get("COCOSIM_GOLDEN",
                                                                        "").strip()
    if golden and not package:
        raise GoldenSelectionError(
            f"COCOSIM_GOLDEN={golden} is set without COCOSIM_PACKAGE: set COCOSIM_PACKAGE to "
            "the package that golden directory was made from (or unset COCOSIM_GOLDEN)")
    if not package:
        return build_root() / "package", build_root() / "golden"
    return _repo_path(package), _repo_path(golden) if golden else None


@dataclass
class GoldenData:
    """The golden side, loaded once: package, layout, stream segments, expected image.

    golden_dir None: everything is computed from the package (default LayoutConfig).
    Otherwise the directory's layout.json gives the LayoutConfig and must describe the
    package's weighted layers, and its image.npz must equal the image built from the
    package; `check()` raises GoldenSelectionError (one line) when they disagree.
    """

    package_dir: Path
    golden_dir: Path | None
    #: accelerator file (COCOSIM_ACCEL): with no golden directory, its LayoutConfig is
    #: the layout's; with one, it must be the file the golden layout.json records
    accel: Path | None = None

    @cached_property
    def package(self) -> Any:
        from cosim.quant.errors import UserError
        from cosim.quant.package import load_package

        if not (Path(self.package_dir) / "manifest.json").is_file():
            raise GoldenSelectionError(f"{self.package_dir}: no manifest.json (COCOSIM_PACKAGE "
                                       "must name a parameter package directory)")
        try:
            return load_package(self.package_dir)
        except UserError as e:
            raise GoldenSelectionError(str(e)) from None

    @cached_property
    def layout_table(self) -> dict[str, Any] | None:
        """The golden directory's layout.json as read (None: no golden directory)."""
        _ = self.layout
        return self._table

    @cached_property
    def layout(self) -> Any:
        from cosim.golden.image import check_layout_matches
        from cosim.golden.layout import Layout, LayoutConfig, LayoutError, read_layout_json
        from cosim.quant.errors import UserError

        cfg, record = LayoutConfig(), None
        self._table: dict[str, Any] | None = None
        if self.golden_dir is None and self.accel is not None:
            return accelerator_layout(self.accel, self.package)
        if self.golden_dir is not None:
            if not self.golden_dir.is_dir():
                raise GoldenSelectionError(f"{self.golden_dir}: golden directory not found "
                                           "(COCOSIM_GOLDEN; make it with 'cosim golden')")
            layout_json = self.golden_dir / "layout.json"
            if layout_json.is_file():
                # schema-checked, and the layout recomputed from it must equal the file
                try:
                    described, table = read_layout_json(layout_json)
                    check_layout_matches(self.package, described)
                except (UserError, LayoutError) as e:
                    raise GoldenSelectionError(
                        f"golden directory {self.golden_dir} and package {self.package_dir} "
                        f"disagree: {e}") from None
                check_package_record(table, layout_json, self.package_dir)
                cfg, record = described.config, getattr(described, "accelerator", None)
                self._table = table
        try:
            if record is not None:
                return Layout.from_package(self.package, cfg, record)
            return Layout.from_package(self.package, cfg)
        except LayoutError as e:
            raise GoldenSelectionError(f"{self.package_dir}: {e}") from None

    @cached_property
    def header(self) -> HeaderSpec:
        """The stream header format of the layout."""
        return header_spec(self.layout)

    @cached_property
    def segments(self) -> list[Any]:
        """golden.image.Segment list in streaming (tiling) order."""
        from cosim.golden.image import build_stream
        return build_stream(self.package, self.layout)

    @cached_property
    def image(self) -> Any:
        """golden.image.MemoryImage built from the package; a golden directory's
        image.npz must hold the same words (GoldenSelectionError otherwise)."""
        from cosim.golden.image import image_from_stream
        image = image_from_stream(self.segments, self.layout)
        npz = None if self.golden_dir is None else self.golden_dir / "image.npz"
        if npz is not None and npz.is_file():
            with np.load(npz) as data:
                addresses, words = data["addresses"].astype(np.int64), data["words"]
            if not (np.array_equal(addresses, image.addresses)
                    and np.array_equal(words, image.words)):
                raise GoldenSelectionError(
                    f"{npz} does not hold the image of package {self.package_dir} (made from "
                    "another package or by another version; rerun 'cosim golden')")
        return image

    def check(self) -> None:
        """Load everything once: GoldenSelectionError (one line) on any disagreement."""
        _ = self.image

    @property
    def num_layers(self) -> int:
        return len(self.layout.layers)


def accelerator_layout(path: Path, package: Any) -> Any:
    """The Layout of a package under an accelerator file (GoldenSelectionError: one
    line naming the file and key)."""
    from cosim.golden.layout import package_shapes
    from cosim.quant.errors import UserError
    try:
        from cosim.golden.accelerator import load_accelerator
    except ImportError:
        raise GoldenSelectionError(f"COCOSIM_ACCEL={path}: this cosim has no accelerator "
                                   "files (cosim.golden.accelerator)") from None
    try:
        return load_accelerator(Path(path)).layout(package_shapes(package))
    except (UserError, OSError) as e:
        raise GoldenSelectionError(str(e).splitlines()[0] if str(e) else repr(e)) from None


def accel_selection(env: Any = None) -> Path | None:
    """The accelerator file COCOSIM_ACCEL names (relative: to the repository), or None."""
    env = os.environ if env is None else env
    text = env.get("COCOSIM_ACCEL", "").strip()
    return _repo_path(text) if text else None


_GOLDEN: dict[tuple[Path, Path | None, Path | None], GoldenData] = {}


@dataclass
class EnvConfig:
    """Configuration of one test run (see the module docstring)."""

    dut: Any
    test_name: str = "test"
    sim: str = "sim"
    seed: int = 0
    package_dir: Path = field(default_factory=lambda: build_root() / "package")
    golden_dir: Path | None = field(default_factory=lambda: build_root() / "golden")
    results_dir: Path = field(default_factory=lambda: build_root() / "test-results")
    backpressure: BackPressure = field(default_factory=BackPressure)
    verbose: bool = False
    dump_file: Path | None = None
    reset_cycles: int = 4
    #: clocks the driver waits for s_axis_tready (mem_stall low) before giving up
    ready_timeout: int = 10_000
    #: X/Z can appear (Icarus, commercial simulators); False for 2-state Verilator
    four_state: bool = True
    max_report_rows: int = 20
    #: 64-bit pattern every memory word starts with (None: the DUT has no poison
    #: fill; then an unwritten word may read as X or 0)
    init_poison: int | None = MEM_POISON
    #: stop the sequence at its next reset once an error was seen (mutation killer)
    stop_on_error: bool = False
    #: accelerator file given by the user (COCOSIM_ACCEL), None: the golden side's
    accel: Path | None = None
    #: a cocotb Event the driver waits for before its first write (the test sets it
    #: once its pre-run check passed); None: no gate
    prerun_gate: Any = None

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)
        #: errors the scoreboard counted so far (read by sequences for stop_on_error)
        self.errors_seen = 0

    @property
    def golden(self) -> GoldenData:
        """Shared by every test of one simulation (loading takes about 0.4 s)."""
        key = (Path(self.package_dir).resolve(),
               None if self.golden_dir is None else Path(self.golden_dir).resolve(),
               None if self.accel is None else Path(self.accel).resolve())
        if key not in _GOLDEN:
            _GOLDEN[key] = GoldenData(*key)
        return _GOLDEN[key]

    def child_rng(self, salt: int) -> np.random.Generator:
        """An independent generator per component, stable whatever else draws numbers."""
        return np.random.default_rng([self.seed, salt])

    @classmethod
    def from_environment(cls, dut: Any, test_name: str,
                         backpressure: BackPressure | str | None = None) -> EnvConfig:
        import cocotb

        env = os.environ
        # tb/sim.py turns RANDOM_SEED into COCOTB_RANDOM_SEED (the seed it prints)
        text = env.get("COCOTB_RANDOM_SEED") or env.get("RANDOM_SEED")
        seed = int(text, 0) if text else int(getattr(cocotb, "RANDOM_SEED", 0))
        sim = env.get("COCOSIM_SIM") or _short_sim_name(getattr(cocotb, "SIM_NAME", "sim"))
        bp_text = env.get("COCOSIM_BACKPRESSURE")
        if bp_text:
            bp = BackPressure.parse(bp_text)
        elif isinstance(backpressure, str):
            bp = BackPressure.parse(backpressure)
        else:
            bp = backpressure or BackPressure()
        dump = getattr(cocotb, "plusargs", {}).get("DUMP_FILE")
        if not (isinstance(dump, str) and dump):
            dump = DEFAULT_DUMP_FILE  # what the RTL writes without the plusarg
        dump_path = Path(dump) if Path(dump).is_absolute() else Path.cwd() / dump
        package_dir, golden_dir = golden_selection(env)
        return cls(
            accel=accel_selection(env),
            dut=dut, test_name=test_name, sim=sim, seed=seed,
            package_dir=package_dir, golden_dir=golden_dir,
            results_dir=_repo_path(env.get("COCOSIM_RESULTS",
                                           build_root() / "test-results")),
            backpressure=bp,
            verbose=env.get("COCOSIM_VERBOSE", "0") not in ("", "0", "false", "no"),
            dump_file=dump_path,
            four_state=sim != "verilator",
            stop_on_error=env.get("COCOSIM_STOP_ON_ERROR", "0") not in ("", "0", "false",
                                                                         "no"),
        )


def _short_sim_name(name: str) -> str:
    low = name.lower()
    for short in ("icarus", "verilator", "questa", "xcelium", "vcs", "riviera", "nvc", "ghdl"):
        if short in low:
            return short
    return re.sub(r"[^a-z0-9]+", "_", low).strip("_") or "sim"
