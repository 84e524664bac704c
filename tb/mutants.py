"""RTL mutants of the parameter loader, and a runner that checks a testbench kills them.

A mutant is one realistic bug, made by a text substitution on a COPY of the RTL
under ``build/mutants/<name>/`` (rtl/ is never edited); the pattern must occur
exactly once in its file, so a mutant that no longer applies fails loudly
instead of silently testing the original design.

The killer is pluggable: any cocotb module (and test cases / environment)
that passes on the original RTL. A mutant is killed when at least one of its
tests fails on the mutated RTL. Default killer: the pyuvm environment's
MalformedTest (tb/tests_uvm.py), seed 1, stopping after the first case with an
error. Another one plugs in with ``Killer("cosim.tb.test_bare", testcase="bare_loop,stall,
bad_headers", extra_env={"BARE_LAYERS": "0,1,2,52"})`` or
``MUTATION_KILLER=module:test_a,test_b`` in the environment of pytest.

The same machinery runs a user's mutants on the user's own RTL (`cosim mutate`,
cosim/mutate.py): `Killer.toplevel` names the top module, and `apply`, `run_killer`,
`run_mutants` take the sources and the folders (`root`, `results_root`) to write in.

Each mutant has an `area` (datapath, handshake, status, reset, error, memory);
the report (`report`, `write_report` -> build/test-results/mutation-<sim>.json)
says which test killed each mutant and which scoreboard checks fired.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from cosim.tb.sim import (
    REPO,
    RTL_SOURCES,
    TOPLEVEL,
    CocotbFailure,
    results_summary,
    run_cocotb,
)

MUTANTS_ROOT = REPO / "build" / "mutants"


@dataclass(frozen=True)
class Mutant:
    name: str
    file: str          # file name among RTL_SOURCES
    pattern: str       # exact text; must occur exactly once in the file
    replacement: str
    bug: str           # what a designer would have got wrong
    area: str = "datapath"  # datapath, handshake, status, reset, error, memory
    #: accelerator variant the mutant needs (VARIANTS; "": the default package): logic
    #: that only exists for multi-word headers or byte addresses is mutated there
    variant: str = ""


MUTANTS: tuple[Mutant, ...] = (
    Mutant("addr_tile_off_by_one", "param_loader.sv",
           "assign word_addr = base_q + ADDR_W'(word_idx_q);",
           "assign word_addr = base_q + ADDR_W'(word_idx_q) + ADDR_W'(word_idx_q == 8);",
           "address off by one at the first tile boundary (word 8 goes to base + 9)"),
    Mutant("lanes_swapped", "param_loader.sv",
           "assign mem_wdata = s_axis_tdata;",
           "assign mem_wdata = {s_axis_tdata[WORD_W-1:16], s_axis_tdata[7:0], "
           "s_axis_tdata[15:8]};",
           "lanes 0 and 1 of every written word swapped"),
    Mutant("last_word_dropped", "param_loader.sv",
           "assign mem_we = accept && (state_q == ST_DATA) && addr_ok;",
           "assign mem_we = accept && (state_q == ST_DATA) && addr_ok && !last_word;",
           "the last data word of a segment is never written"),
    Mutant("bias_sign_bit_zeroed", "param_loader.sv",
           "assign mem_wdata = s_axis_tdata;",
           "assign mem_wdata = (kind_q == SEG_BIASES) ? "
           "(s_axis_tdata & ~(WORD_W'(1) << 15)) : s_axis_tdata;",
           "bit 15 (sign of int16 lane 0) of bias words forced to 0"),
    Mutant("data_bit_stuck_at_0", "param_loader.sv",
           "assign mem_wdata = s_axis_tdata;",
           "assign mem_wdata = s_axis_tdata & ~(WORD_W'(1) << 37);",
           "write-data bit 37 stuck at 0"),
    Mutant("count_check_disabled", "param_loader.sv",
           "assign hdr_errors[ERR_COUNT] = hdr_seg_valid && "
           "(hdr_count != seg_words(hdr_layer, hdr_kind));",
           "assign hdr_errors[ERR_COUNT] = 1'b0;",
           "header count never compared with seg_words", "error"),
    Mutant("stall_ignored", "param_loader.sv",
           "assign s_axis_tready = rst_n && !mem_stall;",
           "assign s_axis_tready = rst_n;",
           "mem_stall does not hold the stream (writes while the memory is busy)", "handshake"),
    Mutant("drop_never_ends", "param_loader.sv",
           "if (s_axis_tlast) state_d = ST_HEADER;",
           "if (s_axis_tlast) state_d = ST_DROP;",
           "DROP ignores tlast: one bad header loses the rest of the stream", "error"),
    Mutant("record_base_from_biases", "param_loader.sv",
           "if (hdr_seg_valid) base_q <= ADDR_W'(seg_base(hdr_layer, hdr_kind));",
           "if (hdr_seg_valid) base_q <= ADDR_W'(seg_base(hdr_layer, "
           "hdr_kind == SEG_RECORDS ? SEG_BIASES : hdr_kind));",
           "record segments written at the biases base (wrong table entry)"),
    # ---- status outputs
    Mutant("words_written_counts_headers", "param_loader.sv",
           "if (mem_we) words_written_q <= words_written_q + 32'd1;",
           "if (accept) words_written_q <= words_written_q + 32'd1;",
           "words_written counts every accepted word (headers too), not writes", "status"),
    Mutant("segments_done_on_early_tlast", "param_loader.sv",
           "            new_errors[ERR_EARLY_LAST] = 1'b1;\n            state_d = ST_HEADER;\n"
           "          end else if (last_word && !s_axis_tlast) begin",
           "            new_errors[ERR_EARLY_LAST] = 1'b1;\n            seg_ok = 1'b1;\n"
           "            state_d = ST_HEADER;\n"
           "          end else if (last_word && !s_axis_tlast) begin",
           "segments_done also counts a segment cut short by an early tlast", "status"),
    Mutant("layer_kind_only_on_valid_header", "param_loader.sv",
           "        layer_q <= hdr_layer;\n        kind_q <= hdr_kind;",
           "        if (hdr_errors == '0) begin\n          layer_q <= hdr_layer;\n"
           "          kind_q <= hdr_kind;\n        end",
           "layer/kind status stale after a rejected header (updated for valid ones only)",
           "status"),
    Mutant("kind_from_every_word", "param_loader.sv",
           "      if (accept && state_q == ST_HEADER && hdr_final) begin\n"
           "        layer_q <= hdr_layer;\n        kind_q <= hdr_kind;",
           "      if (accept) kind_q <= hdr_kind;\n"
           "      if (accept && state_q == ST_HEADER && hdr_final) begin\n"
           "        layer_q <= hdr_layer;",
           "kind status re-decoded from every accepted word (wrong at the segment end)",
           "status"),
    Mutant("drop_shown_as_header", "param_loader.sv",
           "assign state = state_q;",
           "assign state = (state_q == ST_DROP) ? ST_HEADER : state_q;",
           "state port reports DROP as HEADER", "status"),
    # ---- reset
    Mutant("words_written_not_reset", "param_loader.sv",
           "      words_written_q <= '0;\n", "",
           "words_written survives reset", "reset"),
    Mutant("segments_done_not_reset", "param_loader.sv",
           "      segments_done_q <= '0;\n", "",
           "segments_done survives reset", "reset"),
    Mutant("flags_sticky_across_reset", "param_loader.sv",
           "      error_flags_q <= '0;\n", "",
           "error_flags not cleared by reset", "reset"),
    Mutant("tready_high_in_reset", "param_loader.sv",
           "assign s_axis_tready = rst_n && !mem_stall;",
           "assign s_axis_tready = !mem_stall;",
           "s_axis_tready does not depend on rst_n (high during reset)", "reset"),
    Mutant("write_during_reset", "param_loader.sv",
           "assign mem_we = accept && (state_q == ST_DATA) && addr_ok;",
           "assign mem_we = s_axis_tvalid && !mem_stall && (state_q == ST_DATA) && addr_ok;",
           "write enable from tvalid and mem_stall, not the handshake: writes during reset",
           "reset"),
    # ---- handshake
    Mutant("index_advances_on_stalled_word", "param_loader.sv",
           "      end else if (accept && state_q == ST_DATA) begin",
           "      end else if (s_axis_tvalid && state_q == ST_DATA) begin",
           "word index advances while the word is stalled (skipped addresses)", "handshake"),
    Mutant("drop_exits_on_idle_tlast", "param_loader.sv",
           "    if (accept) begin\n      case (state_q)",
           "    if (state_q == ST_DROP && s_axis_tlast && !accept) state_d = ST_HEADER;\n"
           "    if (accept) begin\n      case (state_q)",
           "DROP ends on tlast without the handshake (an idle cycle's tlast)", "handshake"),
    Mutant("valid_header_tlast_ignored", "param_loader.sv",
           "          end else if (s_axis_tlast) begin\n"
           "            new_errors[ERR_EARLY_LAST] = 1'b1;  // a header alone",
           "          end else if (1'b0) begin\n"
           "            new_errors[ERR_EARLY_LAST] = 1'b1;  // a header alone",
           "a valid header carrying tlast starts a segment (no flag, next header = data)",
           "handshake"),
    Mutant("tlast_on_word0_ignored", "param_loader.sv",
           "if (s_axis_tlast && !last_word) begin",
           "if (s_axis_tlast && !last_word && word_idx_q != '0) begin",
           "tlast on the first data word is ignored", "handshake"),
    # ---- error logic
    Mutant("flags_not_sticky", "param_loader.sv",
           "error_flags_q <= error_flags_q | new_errors;",
           "error_flags_q <= (accept && state_q == ST_HEADER) ? new_errors : "
           "(error_flags_q | new_errors);",
           "error_flags cleared by the next header (not sticky until reset)", "error"),
    Mutant("bad_header_tlast_drops", "param_loader.sv",
           "state_d = s_axis_tlast ? ST_HEADER : ST_DROP;",
           "state_d = ST_DROP;",
           "a rejected header with tlast goes to DROP (eats the next segment)", "error"),
    Mutant("bad_header_no_drop", "param_loader.sv",
           "state_d = s_axis_tlast ? ST_HEADER : ST_DROP;",
           "state_d = ST_HEADER;",
           "a rejected header is not followed by DROP (its data words parsed as headers)",
           "error"),
    Mutant("reserved_bit_12_ignored", "param_loader.sv",
           "(((HDR_W'(1) << HDR_COUNT_BITS) - 1) << HDR_COUNT_LSB);",
           "(((HDR_W'(1) << HDR_COUNT_BITS) - 1) << HDR_COUNT_LSB) | (HDR_W'(1) << 12);",
           "reserved header bit 12 not checked", "error"),
    Mutant("reserved_bit_41_ignored", "param_loader.sv",
           "(((HDR_W'(1) << HDR_COUNT_BITS) - 1) << HDR_COUNT_LSB);",
           "(((HDR_W'(1) << HDR_COUNT_BITS) - 1) << HDR_COUNT_LSB) | (HDR_W'(1) << 41);",
           "reserved header bit 41 not checked", "error"),
    Mutant("layer_check_off_by_one", "param_loader.sv",
           "32'(hdr_layer) >= 32'(NUM_LAYERS)", "32'(hdr_layer) > 32'(NUM_LAYERS)",
           "layer == NUM_LAYERS accepted", "error"),
    Mutant("kind_check_off_by_one", "param_loader.sv",
           "32'(hdr_kind) >= 32'(NUM_KINDS)", "32'(hdr_kind) > 32'(NUM_KINDS)",
           "kind == NUM_KINDS accepted", "error"),
    Mutant("missing_tlast_not_flagged", "param_loader.sv",
           "new_errors[ERR_NO_LAST] = 1'b1;", "new_errors[ERR_NO_LAST] = 1'b0;",
           "no flag for a last data word without tlast", "error"),
    # ---- memory
    Mutant("zero_write_dropped", "param_memory.sv",
           "if (we) mem[word_index(waddr)] <= wdata;",
           "if (we && wdata != '0) mem[word_index(waddr)] <= wdata;",
           "the memory ignores writes of an all-zero word", "memory"),
    # ---- logic of other accelerator files (multi-word headers, byte addresses)
    Mutant("header_words_swapped", "param_loader.sv",
           "assign hdr_cat = {s_axis_tdata, hdr_low_q};",
           "assign hdr_cat = {hdr_low_q, s_axis_tdata};",
           "multi-word header assembled high word first (the stream sends the low word "
           "first)", "datapath", variant="acc32_16x16"),
    Mutant("header_index_kept_on_tlast", "param_loader.sv",
           "if (hdr_final || s_axis_tlast) begin",
           "if (hdr_final) begin",
           "a tlast on an early header word does not restart the header (the next "
           "segment's first word is taken as a later header word)", "handshake",
           variant="acc32_16x16"),
    Mutant("byte_address_not_scaled", "param_loader.sv",
           "assign mem_addr = MEM_ADDR_W'(word_addr) * MEM_ADDR_W'(WORD_BYTES_L);",
           "assign mem_addr = MEM_ADDR_W'(word_addr);",
           "byte-addressed memory port driven with the word address", "datapath",
           variant="byte64"),
    Mutant("header_padding_unchecked", "param_loader.sv",
           "((hdr_cat & ~HDR_FIELDS_MASK) != '0);",
           "((hdr_cat[HDR_BITS-1:0] & ~HDR_FIELDS_MASK[HDR_BITS-1:0]) != '0);",
           "the zero padding above the header's bits in its last word is not checked",
           "error", variant="acc128"),
    Mutant("dump_never_written", "param_memory.sv",
           "      $writememh(dump_file, mem);\n", "",
           "dump_req does not write the dump file", "memory"),
)

#: Accelerator variants of the mutants: a shipped file of golden/accelerators/ (by
#: stem) or "byte64" (default.toml with memory.address_unit = "byte", written under
#: build/mutants/). The killer streams build/package laid out for that file
#: (COCOSIM_ACCEL, no golden directory) into RTL built with its generated package.
VARIANTS = ("acc32_16x16", "acc128", "byte64")


def variant_file(variant: str) -> Path:
    """The accelerator file of a variant."""
    import cosim.golden

    shipped = Path(cosim.golden.__file__).resolve().parent / "accelerators"
    if variant == "byte64":
        text = (shipped / "default.toml").read_text()
        if 'address_unit = "word"' not in text:
            raise ValueError("golden/accelerators/default.toml has no address_unit = \"word\" "
                             "line to turn into byte addressing")
        text = text.replace('address_unit = "word"', 'address_unit = "byte"', 1)
        text = text.replace('name = "', 'name = "byte-', 1)
        out = MUTANTS_ROOT / "accelerators" / "byte64.toml"
        out.parent.mkdir(parents=True, exist_ok=True)
        if not out.is_file() or out.read_text() != text:
            out.write_text(text)
        return out
    path = shipped / f"{variant}.toml"
    if not path.is_file():
        raise ValueError(f"mutant variant {variant!r}: no {path}")
    return path


def variant_env(variant: str) -> dict[str, str]:
    """The killer's environment for a variant ({} for the default package)."""
    if not variant:
        return {}
    from cosim.tb.sim import PACKAGE_DIR, ensure_golden
    ensure_golden()  # build/package exists
    return {"COCOSIM_PACKAGE": str(PACKAGE_DIR), "COCOSIM_ACCEL": str(variant_file(variant))}


def variant_sources(variant: str) -> tuple[Path, ...]:
    """The RTL sources of a variant: the package generated for its layout."""
    if not variant:
        return RTL_SOURCES
    from cosim.tb.sim import select_network
    return select_network(variant_env(variant), check=False).sources


#: a mutant's class counts towards "handshake, status, reset and error logic"
CONTROL_CLASSES = ("handshake", "status", "reset", "error")


@dataclass(frozen=True)
class Killer:
    """The testbench run against each mutant: a cocotb module, test cases, environment.

    The default is the pyuvm environment's MalformedTest: every malformation of the
    enumerated space, each under no pressure, mem_stall on every word and tvalid-low
    gaps with junk, each in its own reset window followed by a well-formed victim of
    each segment kind, with every status output checked at every segment end, probe,
    reset and idle, and the final memory dump. Seed pinned (1): the pressure plans are
    deterministic anyway, so the verdict is. COCOSIM_STOP_ON_ERROR=1 stops the stimulus
    after the first case with an error (that case completes under every pressure, and
    the end-of-test checks still run), which makes a kill cheap. `toplevel`: the HDL
    top module of the sources (a user's own top: cosim mutate).
    """

    test_module: str = "cosim.tb.tests_uvm"
    testcase: str | None = "MalformedTest"
    extra_env: Mapping[str, str] = field(default_factory=lambda: {
        "COCOSIM_STOP_ON_ERROR": "1"})
    plusargs: Sequence[str] = ("+DUMP_FILE=param_memory.hex",)
    seed: int | None = 1
    toplevel: str = TOPLEVEL
    #: top-level build parameters of the sources (e.g. cnn_compute_top's memory sizes)
    parameters: Mapping[str, object] = field(default_factory=dict)

    @classmethod
    def from_env(cls, default: Killer | None = None) -> Killer:
        """MUTATION_KILLER=module[:test_a,test_b] replaces the default killer."""
        spec = os.environ.get("MUTATION_KILLER", "").strip()
        if not spec:
            return default or cls()
        module, _, cases = spec.partition(":")
        return cls(module, cases or None, {}, ("+DUMP_FILE=param_memory.hex",), 1)


@dataclass
class MutantResult:
    mutant: Mutant
    killed: bool
    failed: list[str]    # tests of the killer that failed on the mutant
    xml: Path | None
    error: str = ""      # the mutant could not be built or simulated
    #: scoreboard checks that fired (from the pyuvm summary JSON), name -> errors
    checks: dict[str, int] = field(default_factory=dict)
    first_error: str = ""
    seconds: float = 0.0


def apply(mutant: Mutant, root: Path = MUTANTS_ROOT,
          sources: Sequence[Path] = RTL_SOURCES) -> list[Path]:
    """Copy the sources to root/<name>/ with the substitution applied; the copies' paths."""
    out = root / mutant.name
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    names = [Path(p).name for p in sources]
    assert mutant.file in names, f"{mutant.name}: {mutant.file} is not a source"
    copies = []
    for src in map(Path, sources):
        text = src.read_text()
        if src.name == mutant.file:
            n = text.count(mutant.pattern)
            assert n == 1, (f"mutant {mutant.name}: pattern found {n} times in {src.name} "
                            f"(must be exactly once): {mutant.pattern!r}")
            text = text.replace(mutant.pattern, mutant.replacement)
        dst = out / src.name
        dst.write_text(text)
        copies.append(dst)
    return copies


def results_dir(sim: str, tag: str, root: Path | None = None) -> Path:
    """Where the killer's summary JSONs of one run go (one directory per run: parallel
    runs must not overwrite each other's); under `root` (default MUTANTS_ROOT/results)."""
    return (MUTANTS_ROOT / "results" if root is None else Path(root)) / sim / tag


def run_killer(killer: Killer, sim: str = "icarus", sources: Sequence[Path] | None = None,
               tag: str = "mutant-baseline", variant: str = "",
               results_root: Path | None = None) -> tuple[list[str], Path]:
    """Run the killer on `sources` (None: the original RTL of `variant`); (failed tests,
    results XML). The pyuvm summaries of the run are in results_dir(sim, tag,
    results_root) (see killer_checks)."""
    out = results_dir(sim, tag, results_root)
    shutil.rmtree(out, ignore_errors=True)
    env = {**killer.extra_env, **variant_env(variant), "COCOSIM_SIM": sim,
           "COCOSIM_RESULTS": str(out)}
    if sources is None and variant:
        sources = variant_sources(variant)
    xml = run_cocotb(sim, killer.test_module, testcase=killer.testcase,
                     extra_env=env, plusargs=list(killer.plusargs),
                     sources=sources, tag=tag, check=False, seed_value=killer.seed,
                     toplevel=killer.toplevel, parameters=dict(killer.parameters) or None)
    tests, failed = results_summary(xml)
    if tests == 0:
        raise CocotbFailure(f"killer {killer.test_module}:{killer.testcase} ran no test")
    return failed, xml


def killer_checks(sim: str, tag: str, results_root: Path | None = None
                  ) -> tuple[dict[str, int], str]:
    """(scoreboard checks that fired -> error count, first error message) of one killer
    run, from its pyuvm summary JSONs (empty for a killer that writes none); a pre-run
    check that stopped the test counts as the check "prerun"."""
    checks: dict[str, int] = {}
    first = ""
    for summary in sorted(results_dir(sim, tag, results_root).glob("*.json")):
        if summary.name.startswith("coverage-"):
            continue
        data = json.loads(summary.read_text())
        if data.get("prerun_error"):
            checks["prerun"] = checks.get("prerun", 0) + 1
            first = first or str(data["prerun_error"])
        for k, v in data.get("checks_failed", {}).items():
            checks[k] = checks.get(k, 0) + v
        first = first or next(iter(data.get("errors", [])), "")
    return checks, first


def run_mutant(mutant: Mutant, killer: Killer, sim: str = "icarus",
               sources: Sequence[Path] | None = None, root: Path = MUTANTS_ROOT,
               results_root: Path | None = None) -> MutantResult:
    """Apply one mutant (to `sources`, default the RTL of its variant; copies under
    root/<name>/) and run the killer on it."""
    t0 = time.perf_counter()
    try:
        tag = f"mutant-{mutant.name}"
        copies = apply(mutant, root=root,
                       sources=variant_sources(mutant.variant) if sources is None else sources)
        failed, xml = run_killer(killer, sim, copies, tag=tag, variant=mutant.variant,
                                 results_root=results_root)
        checks, first = killer_checks(sim, tag, results_root)
    except (CocotbFailure, RuntimeError) as e:  # build error or simulator crash
        return MutantResult(mutant, False, [], None, error=str(e).splitlines()[0],
                            seconds=time.perf_counter() - t0)
    return MutantResult(mutant, bool(failed), failed, xml, checks=checks, first_error=first,
                        seconds=time.perf_counter() - t0)


def run_mutants(mutants: Iterable[Mutant] = MUTANTS, killer: Killer | None = None,
                sim: str = "icarus", jobs: int | None = None,
                sources: Sequence[Path] | None = None, root: Path = MUTANTS_ROOT,
                results_root: Path | None = None) -> list[MutantResult]:
    """Run the killer on each mutant (in parallel simulator processes, `jobs` at a time;
    default: the number of CPUs). sources/root/results_root: see run_mutant."""
    killer = killer or Killer.from_env()
    mutants = list(mutants)
    jobs = jobs or min(len(mutants), os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return list(pool.map(lambda m: run_mutant(m, killer, sim, sources, root,
                                                  results_root), mutants))


def report(results: Sequence[MutantResult]) -> str:
    """killed/total, then one line per mutant: status, name, area, which test killed it
    and which scoreboard checks fired."""
    killed = sum(r.killed for r in results)
    lines = [f"mutants killed: {killed}/{len(results)}"]
    for r in results:
        status = "KILLED" if r.killed else ("ERROR " if r.error else "ALIVE ")
        if r.error:
            why = r.error
        elif r.failed:
            why = ", ".join(r.failed) + (" by " + ", ".join(sorted(r.checks))
                                         if r.checks else "")
        else:
            why = "every test passed"
        lines.append(f"  {status} {r.mutant.name:32s} {r.mutant.area:9s} {r.mutant.bug}  "
                     f"[{why}] {r.seconds:.1f} s")
    return "\n".join(lines)


def write_report(results: Sequence[MutantResult], sim: str, killer: Killer, wall_s: float,
                 path: Path | None = None) -> Path:
    """build/test-results/mutation-<sim>.json: killed/total and, per mutant, the test
    that killed it and the scoreboard checks that fired."""
    path = path or REPO / "build" / "test-results" / f"mutation-{sim}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "sim": sim, "killer": f"{killer.test_module}:{killer.testcase}", "seed": killer.seed,
        "killed": sum(r.killed for r in results), "total": len(results),
        "wall_s": round(wall_s, 1),
        "mutants": [{"name": r.mutant.name, "area": r.mutant.area, "bug": r.mutant.bug,
                     "file": r.mutant.file, "killed": r.killed, "killed_by": r.failed,
                     "checks": r.checks, "first_error": r.first_error, "error": r.error,
                     "seconds": round(r.seconds, 1)} for r in results],
    }
    from cosim.quant.formats import atomic_write_bytes  # unique temp name, then rename

    atomic_write_bytes(path, (json.dumps(data, indent=1) + "\n").encode())
    return path
