"""RTL mutants of the parameter loader, and a runner that checks a testbench kills them.

A mutant is one realistic bug, made by a text substitution on a COPY of the RTL
under ``build/mutants/<name>/`` (rtl/ is never edited); the pattern must occur
exactly once in its file, so a mutant that no longer applies fails loudly
instead of silently testing the original design.

The killer is pluggable: any cocotb module (and test cases / environment)
that passes on the original RTL. A mutant is killed when at least one of its
tests fails on the mutated RTL. Default killer: the pyuvm environment
(tb/tests_uvm.py: RandomSubsetTest then MalformedTest, seed 7). Another one plugs
in with ``Killer("test_bare", testcase="bare_loop,stall,bad_headers",
extra_env={"BARE_LAYERS": "0,1,2,52"})`` or ``MUTATION_KILLER=module:test_a,test_b``
in the environment of pytest.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from sim import REPO, RTL_SOURCES, CocotbFailure, results_summary, run_cocotb

MUTANTS_ROOT = REPO / "build" / "mutants"


@dataclass(frozen=True)
class Mutant:
    name: str
    file: str          # file name among RTL_SOURCES
    pattern: str       # exact text; must occur exactly once in the file
    replacement: str
    bug: str           # what a designer would have got wrong


MUTANTS: tuple[Mutant, ...] = (
    Mutant("addr_tile_off_by_one", "param_loader.sv",
           "assign mem_addr = base_q + ADDR_W'(word_idx_q);",
           "assign mem_addr = base_q + ADDR_W'(word_idx_q) + ADDR_W'(word_idx_q == 8);",
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
           "header count never compared with seg_words"),
    Mutant("stall_ignored", "param_loader.sv",
           "assign s_axis_tready = rst_n && !mem_stall;",
           "assign s_axis_tready = rst_n;",
           "mem_stall does not hold the stream (writes while the memory is busy)"),
    Mutant("drop_never_ends", "param_loader.sv",
           "if (s_axis_tlast) state_d = ST_HEADER;",
           "if (s_axis_tlast) state_d = ST_DROP;",
           "DROP ignores tlast: one bad header loses the rest of the stream"),
    Mutant("record_base_from_biases", "param_loader.sv",
           "if (hdr_seg_valid) base_q <= ADDR_W'(seg_base(hdr_layer, hdr_kind));",
           "if (hdr_seg_valid) base_q <= ADDR_W'(seg_base(hdr_layer, "
           "hdr_kind == SEG_RECORDS ? SEG_BIASES : hdr_kind));",
           "record segments written at the biases base (wrong table entry)"),
)


@dataclass(frozen=True)
class Killer:
    """The testbench run against each mutant: a cocotb module, test cases, environment.

    The default is the pyuvm environment itself (a random subset of layers with
    back-pressure-free streaming, then every malformed-segment case), with a
    fixed seed so the subset, and so the verdict, is reproducible.
    """

    test_module: str = "tb.tests_uvm"
    testcase: str | None = "RandomSubsetTest,MalformedTest"
    extra_env: Mapping[str, str] = field(default_factory=lambda: {
        "COCOSIM_SIM": "icarus", "COCOSIM_RESULTS": str(MUTANTS_ROOT / "results")})
    plusargs: Sequence[str] = ("+DUMP_FILE=param_memory.hex",)
    seed: int | None = 7

    @classmethod
    def from_env(cls, default: Killer | None = None) -> Killer:
        """MUTATION_KILLER=module[:test_a,test_b] replaces the default killer."""
        spec = os.environ.get("MUTATION_KILLER", "").strip()
        if not spec:
            return default or cls()
        module, _, cases = spec.partition(":")
        return cls(module, cases or None, {}, ("+DUMP_FILE=param_memory.hex",), None)


@dataclass
class MutantResult:
    mutant: Mutant
    killed: bool
    failed: list[str]    # tests of the killer that failed on the mutant
    xml: Path | None
    error: str = ""      # the mutant could not be built or simulated


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


def run_killer(killer: Killer, sim: str = "icarus", sources: Sequence[Path] | None = None,
               tag: str | None = None) -> tuple[list[str], Path]:
    """Run the killer on `sources` (None: the original RTL); (failed tests, results XML)."""
    xml = run_cocotb(sim, killer.test_module, testcase=killer.testcase,
                     extra_env=dict(killer.extra_env), plusargs=list(killer.plusargs),
                     sources=sources, tag=tag, check=False, seed_value=killer.seed)
    tests, failed = results_summary(xml)
    if tests == 0:
        raise CocotbFailure(f"killer {killer.test_module}:{killer.testcase} ran no test")
    return failed, xml


def run_mutant(mutant: Mutant, killer: Killer, sim: str = "icarus") -> MutantResult:
    try:
        failed, xml = run_killer(killer, sim, apply(mutant), tag=f"mutant-{mutant.name}")
    except (CocotbFailure, RuntimeError) as e:  # build error or simulator crash
        return MutantResult(mutant, False, [], None, error=str(e).splitlines()[0])
    return MutantResult(mutant, bool(failed), failed, xml)


def run_mutants(mutants: Iterable[Mutant] = MUTANTS, killer: Killer | None = None,
                sim: str = "icarus", jobs: int | None = None) -> list[MutantResult]:
    """Run the killer on each mutant (in parallel simulator processes)."""
    killer = killer or Killer.from_env()
    mutants = list(mutants)
    jobs = jobs or min(len(mutants), os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(lambda m: run_mutant(m, killer, sim), mutants))


def report(results: Sequence[MutantResult]) -> str:
    killed = sum(r.killed for r in results)
    lines = [f"mutants killed: {killed}/{len(results)}"]
    for r in results:
        status = "KILLED" if r.killed else ("ERROR " if r.error else "ALIVE ")
        why = r.error or (", ".join(r.failed) if r.failed else "every test passed")
        lines.append(f"  {status} {r.mutant.name:24s} {r.mutant.bug}  [{why}]")
    return "\n".join(lines)
