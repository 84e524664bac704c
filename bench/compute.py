"""Rows for the compute engine: the pyuvm testbench against the pure-HDL harness.

Each figure is measured against a baseline in the same run, one simulation after
the other (never in parallel):

- whole network chained, per simulator: wall of the pyuvm ChainedTest (tb/tests_compute.py,
  1 image, every step's output checked) against rtl/cnn_compute_harness.sv (the same
  engine, the same input files, driven from an initial block: the simulator alone),
  both on the same simulator => the testbench overhead (target <= 1.3x). The
  harness's dump of the whole activation memory is compared bit-exact with the
  chained golden outputs of every step. Total cycles, MACs, MACs/cycle and
  utilization = MACs / (cycles * tile_oc * tile_ic); a per-layer table (cycles,
  utilization) from the test's summary is printed and kept in build/bench.json.
- parameter load: words/s of the HDL stream player path (the pyuvm test, every stored
  word checked against the golden image) against the bare cocotb loop of
  tb/test_bare.py (one Python await per word; bench/sim_throughput.py's runner)
  => speedup (target >= 5x).
- 224x224: one image through the pure-HDL harness on Verilator (target <= 600 s),
  against the 32x32 harness run. BENCH_COMPUTE_224=0 skips it.

Knobs: BENCH_COMPUTE_SIMS (default "verilator,icarus"), BENCH_COMPUTE_224 (default 1),
BENCH_COMPUTE_224_PYUVM=1 also runs ChainedTest at 224x224 (slow).
BENCH_COMPUTE_ICARUS_STEPS (default 10, or "all"): Icarus runs the first steps only (the
harness chained, the pyuvm LayerByLayerTest on the same steps: the same engine cycles);
the harness alone did not finish the whole network in 13 minutes on this machine.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
TB = REPO / "tb"
HARNESS = REPO / "rtl" / "cnn_compute_harness.sv"
HARNESS_TOP = "cnn_compute_harness"
TARGET_OVERHEAD = 1.3
TARGET_LOAD_SPEEDUP = 5.0
TARGET_32_SECONDS = 30.0
TARGET_224_SECONDS = 600.0
ICARUS_STEPS = 10  # features.0 .. features.3.add: regular, depthwise, pointwise, add


def _tb():
    if str(TB) not in sys.path:
        sys.path.insert(0, str(TB))
    from cosim.tb import sim

    return sim


def _env_flag(name: str, default: str) -> bool:
    return os.environ.get(name, default).strip().lower() not in ("0", "no", "off", "false", "")


# ---------------------------------------------------------------- the pure-HDL harness

def harness_sources(network) -> list[Path]:
    from cosim.tb.test_compute import compute_sources

    return [*compute_sources(network), HARNESS]


def build_harness(sim: str, sources: list[Path], parameters: dict[str, int]) -> tuple[Path, float]:
    """Build the harness (cached by sources, parameters and tool); returns (executable or
    vvp file, build seconds, 0 when cached). Verilator: --binary with the repo's
    VERILATOR_ARGS (--timing, C++20); Icarus 11: iverilog -g2012."""
    sim_module = _tb()
    sim_module._setup_env(sim)
    h = hashlib.sha256()
    for s in sources:
        h.update(str(s).encode() + b"\0" + Path(s).read_bytes())
    h.update(json.dumps(parameters, sort_keys=True).encode())
    h.update(sim_module._tool_version(sim).encode())
    out_dir = sim_module.BUILD / "bench" / "harness" / sim / h.hexdigest()[:16]
    exe = out_dir / ("Vharness" if sim == "verilator" else "harness.vvp")
    stamp = out_dir / "build.ok"
    if stamp.is_file() and exe.is_file():
        return exe, 0.0
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    t0 = time.perf_counter()
    if sim == "verilator":
        root = sim_module.verilator_root()
        cmd = [str(root / "bin" / "verilator"), "--binary", *sim_module.VERILATOR_ARGS,
               "--top-module", HARNESS_TOP, "-Mdir", str(out_dir / "obj"), "-o", str(exe),
               "-j", str(os.cpu_count() or 1), "-Wno-fatal",
               *(f"-G{k}={v}" for k, v in parameters.items()), *map(str, sources)]
        env = {**os.environ, "VERILATOR_ROOT": str(root)}
        if "OBJCACHE" not in env and shutil.which("ccache"):
            env["OBJCACHE"] = "ccache"
    else:
        cmd = ["iverilog", "-g2012", "-s", HARNESS_TOP, "-o", str(exe),
               *(f"-P{HARNESS_TOP}.{k}={v}" for k, v in parameters.items()),
               *map(str, sources)]
        env = dict(os.environ)
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=out_dir)
    (out_dir / "build.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0 or not exe.is_file():
        raise RuntimeError(f"{sim} harness build failed; {out_dir / 'build.log'}:\n"
                           + "\n".join((done.stdout + done.stderr).splitlines()[-30:]))
    seconds = time.perf_counter() - t0
    stamp.write_text(json.dumps({"cmd": cmd, "seconds": round(seconds, 2)}) + "\n")
    return exe, seconds


def run_harness(sim: str, exe: Path, prepared, run: Path, n_steps: int | None = None) -> dict:
    """Run the harness on the prepared work folder (image 0), descriptors 0..n_steps-1
    chained (default all); returns the wall time, the printed counts, the per-step cycles
    and the bit-exact comparison of the dump with those steps' chained golden outputs."""
    from cosim.golden.engine_program import write_act_load
    from cosim.tb.compute.dump import read_dump, read_stats

    program = prepared.program
    expected = np.load(prepared.work / "golden.npz")
    plus = prepared.plusargs(run)
    write_act_load(run / "act_load.hex", [(program.input, expected["input/0"])])
    for f in ("act_dump.hex", "stats.hex", "param_dump.hex"):
        (run / f).unlink(missing_ok=True)
    n = len(program.steps) if n_steps is None else n_steps
    plus += [f"+STREAM_WORDS={prepared.stream_words}", f"+NUM_DESC={n}",
             f"+ACT_WORDS={program.act_words}", "+PARAM_DUMP"]
    cmd = [str(exe), *plus] if sim == "verilator" else ["vvp", "-n", str(exe), *plus]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=run, stdin=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    (run / "harness.log").write_text(done.stdout + done.stderr)
    line = next((ln for ln in done.stdout.splitlines() if "HARNESS" in ln), "")
    if done.returncode != 0 or not line:
        raise RuntimeError(f"{sim} harness run failed (rc {done.returncode}, {wall:.1f} s); "
                           f"{run / 'harness.log'}")
    counts = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}
    lanes = program.lanes
    words, unknown = read_dump(run / "act_dump.hex", 0, program.act_words - 1, lanes)
    stats = read_stats(run / "stats.hex", n)
    codes = same = words_bad = 0
    steps = []
    for i, step in enumerate(program.steps[:n]):
        t = step.output
        want = expected[f"out/0/{step.name}"]
        got = words[t.base:t.end]
        e = want.reshape(t.tiles, t.h, t.w, lanes).transpose(0, 3, 1, 2).reshape(
            t.tiles * lanes, t.h, t.w)[:t.channels]
        g = got.reshape(t.tiles, t.h, t.w, lanes).transpose(0, 3, 1, 2).reshape(
            t.tiles * lanes, t.h, t.w)[:t.channels]
        ok = e == g
        codes += ok.size
        same += int(ok.sum())
        words_bad += int(unknown[t.base:t.end].sum())
        steps.append({"name": step.name, "cycles": int(stats[i]) if i < stats.size else -1,
                      "identical": float(ok.mean()) if ok.size else 1.0})
    return {"wall_s": wall, "counts": counts, "codes": codes, "identical_codes": same,
            "unknown_words": words_bad, "steps": steps}


# ---------------------------------------------------------------- the pyuvm test

def run_pyuvm(sim: str, network, prepared, scratch: Path, test: str = "ChainedTest",
              tag: str = "bench", layers: str = "") -> tuple[dict, float]:
    r"""One pyuvm compute test, exactly that test: tb/test_compute.py's run_compute passes
    the name as cocotb's `testcase`, which the runner turns into the regex
    r"\.(.*ChainedTest)$", so "ChainedTest" also runs LayerThenChainedTest. Here the
    same run with COCOTB_TEST_FILTER anchored to the one test (no testcase)."""
    from cosim.tb.sim import run_cocotb
    from cosim.tb.test_compute import MODULE, PASS_THROUGH, TOPLEVEL, compute_sources

    summary_path = scratch / f"{test}-{sim}.json"
    summary_path.unlink(missing_ok=True)
    run = _tb().BUILD / "compute" / "runs" / f"{test}-{sim}-{tag}"
    env = {k: os.environ[k] for k in PASS_THROUGH if k in os.environ} | network.env
    env |= {"COCOSIM_SIM": sim, "COCOSIM_RESULTS": str(scratch),
            "COMPUTE_WORK": str(prepared.work), "COMPUTE_RUN": str(run),
            "COMPUTE_IMAGES": "1", "COCOTB_TEST_FILTER": rf"\.{test}$"}
    if layers:
        env["COMPUTE_LAYERS"] = layers
    t0 = time.perf_counter()
    xml = run_cocotb(sim, MODULE, None, extra_env=env, plusargs=prepared.plusargs(run),
                     check=False, tag=f"{test}.{tag}", sources=compute_sources(network),
                     parameters=prepared.parameters, toplevel=TOPLEVEL)
    wall = time.perf_counter() - t0
    from cosim.tb.sim import results_summary

    tests, failed = results_summary(xml)
    if tests != 1 or failed or not summary_path.is_file():
        raise RuntimeError(f"{sim} {test}: {tests} test(s) ran, failed {failed}; see {xml}")
    return json.loads(summary_path.read_text()), wall


def _layer_table(summary: dict) -> list[dict]:
    return [{"name": s["name"], "op": s["op"], "kind": s["kind"], "cycles": s["cycles"],
             "macs": s["macs"], "utilization": s["utilization"], "identical": s["identical"]}
            for s in summary["steps"]]


def _print_layers(simulator: str, layers: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"compute engine per layer on {simulator} (pyuvm test, image 0)",
                  title_justify="left")
    for c in ("step", "op", "kind", "cycles", "MACs", "MACs/cycle", "utilization"):
        table.add_column(c, justify="right" if c in ("cycles", "MACs", "MACs/cycle",
                                                      "utilization") else "left")
    for r in layers:
        mpc = r["macs"] / r["cycles"] if r["cycles"] > 0 else 0.0
        table.add_row(r["name"], r["op"], r["kind"], f"{r['cycles']:,}", f"{r['macs']:,}",
                      f"{mpc:.1f}", f"{r['utilization']:.1%}")
    Console(width=140).print(table)


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load avg {one:.1f}/{five:.1f} on {os.cpu_count()} cores"


# ---------------------------------------------------------------- rows

def rows() -> list[dict]:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sim_module = _tb()
    from cosim.tb.test_compute import prepare_for

    from bench.sim_throughput import _bare

    network = sim_module.select_network()
    prepared = prepare_for(network, images=1)
    program = prepared.program
    cfg = network.layout.config
    pe = int(cfg.tile_oc) * int(cfg.tile_ic)
    sources = harness_sources(network)
    sims = [s.strip() for s in os.environ.get("BENCH_COMPUTE_SIMS", "verilator,icarus")
            .split(",") if s.strip() and sim_module.simulator_available(s.strip())]
    scratch = sim_module.BUILD / "bench" / "compute"
    scratch.mkdir(parents=True, exist_ok=True)
    out: list[dict] = []
    harness32: dict[str, dict] = {}
    for simulator in sims:
        exe, _ = build_harness(simulator, sources, prepared.parameters)
        # the pyuvm build (cached) outside the timed run
        sim_module.build(simulator, [*harness_sources(network)][:-1], None,
                         prepared.parameters, False, "cnn_compute_top")
        # Icarus: the first ICARUS_STEPS steps (whole network: > 13 min for the harness
        # alone on this machine); the pyuvm side runs them layer by layer (same cycles)
        subset = None
        if simulator == "icarus":
            value = os.environ.get("BENCH_COMPUTE_ICARUS_STEPS", str(ICARUS_STEPS)).strip()
            subset = None if value == "all" else min(int(value), len(program.steps))
        steps = program.steps if subset is None else program.steps[:subset]
        load_before = _load()
        h = run_harness(simulator, exe, prepared, scratch / f"harness-{simulator}", subset)
        if subset is None:
            test = "ChainedTest"
            summary, wall = run_pyuvm(simulator, network, prepared, scratch)
        else:
            test = "LayerByLayerTest"
            summary, wall = run_pyuvm(simulator, network, prepared, scratch, test,
                                      layers=",".join(s.name for s in steps))
        load_after = _load()
        if subset is None:
            harness32[simulator] = h
        if not summary["passed"]:
            raise RuntimeError(f"{simulator}: {test} failed: {summary['errors'][:3]}")
        layers = _layer_table(summary)
        _print_layers(simulator, layers)
        cycles = sum(r["cycles"] for r in layers)
        macs = sum(s.macs for s in steps)
        c = h["counts"]
        hw_frac = h["identical_codes"] / h["codes"]
        overhead = wall / h["wall_s"]
        detail = (f"testbench overhead {overhead:.2f}x the harness (target <= "
                  f"{TARGET_OVERHEAD}); harness dump {h['identical_codes']:,}/{h['codes']:,} "
                  f"codes identical to the chained golden ({hw_frac:.4%}), "
                  f"pyuvm {summary['codes_identical']:,}/{summary['codes_checked']:,}; "
                  f"{len(steps)} steps, {cycles:,} cycles (harness "
                  f"{c['run_cycles']:,}), {macs:,} MACs, {macs / cycles:.1f} MACs/cycle, "
                  f"utilization {macs / (cycles * pe):.1%} of {cfg.tile_oc}x{cfg.tile_ic}")
        if simulator == "verilator":
            detail += f"; whole network {wall:.1f} s (target <= {TARGET_32_SECONDS:.0f} s)"
        detail += f"; {load_before} before, {load_after} after"
        what = "whole network chained" if subset is None else \
            f"first {subset} of {len(program.steps)} steps (harness chained, pyuvm layer by layer)"
        out.append({
            "name": f"pyuvm {test} on {simulator}, MobileNetV2 "
                    f"{prepared.image_size}x{prepared.image_size} {what}, 1 image",
            "seconds": wall,
            "baseline": "pure-HDL harness (rtl/cnn_compute_harness.sv), same engine and files",
            "baseline_seconds": h["wall_s"],
            "detail": detail,
            "overhead": overhead, "cycles": cycles, "harness_run_cycles": c["run_cycles"],
            "macs": macs, "macs_per_cycle": macs / cycles,
            "utilization": macs / (cycles * pe), "harness_identical_fraction": hw_frac,
            "harness_unknown_words": h["unknown_words"],
            "pyuvm_total_wall_s": summary["total_wall_s"],
            "pyuvm_compute_wall_s": summary["compute_wall_s"],
            "layers": layers,
            "harness_steps": h["steps"],
        })
        # parameter load: HDL stream player (checked) vs the bare cocotb loop
        load = summary["parameter_load"]
        bare = _bare(sim_module, simulator, scratch)
        player_rate = load["stream_words"] / load["wall_s"]
        speedup = player_rate / bare["words_per_s"]
        out.append({
            "name": f"parameter load on {simulator}: HDL stream player, pyuvm "
                    f"({load['stream_words']:,} words, every stored word checked)",
            "seconds": load["wall_s"],
            "baseline": f"bare cocotb loop (tb/test_bare.py, {bare['words']:,} words)",
            "baseline_seconds": bare["seconds"],
            "detail": f"{player_rate:,.0f} words/s vs {bare['words_per_s']:,.0f} words/s: "
                      f"{speedup:.1f}x faster (target >= {TARGET_LOAD_SPEEDUP:.0f}x); "
                      f"{load['image_words_checked']:,} words checked, "
                      f"{load['image_words_wrong']} wrong; {load['cycles']:,} cycles",
            "words_per_s": player_rate, "bare_words_per_s": bare["words_per_s"],
            "speedup": speedup,
        })
    if "verilator" in harness32 and _env_flag("BENCH_COMPUTE_224", "1"):
        out.append(_row_224(sim_module, network, harness32["verilator"], scratch, pe))
    return out


def _row_224(sim_module, network, h32: dict, scratch: Path, pe: int) -> dict:
    from cosim.tb.test_compute import prepare_for

    t0 = time.perf_counter()
    prepared = prepare_for(network, images=1, size=224)
    t_prep = time.perf_counter() - t0
    program = prepared.program
    exe, t_build = build_harness("verilator", harness_sources(network), prepared.parameters)
    h = run_harness("verilator", exe, prepared, scratch / "harness-verilator-224")
    c = h["counts"]
    frac = h["identical_codes"] / h["codes"]
    macs = program.total_macs
    cycles = sum(s["cycles"] for s in h["steps"])
    detail = (f"{h['wall_s']:.1f} s (target <= {TARGET_224_SECONDS:.0f} s); "
              f"{h['identical_codes']:,}/{h['codes']:,} codes identical ({frac:.4%}); "
              f"{cycles:,} cycles, {macs:,} MACs, {macs / cycles:.1f} MACs/cycle, utilization "
              f"{macs / (cycles * pe):.1%}; act memory {program.act_words:,} words; "
              f"prepare {t_prep:.0f} s, build {t_build:.0f} s (not timed); {_load()}")
    row = {"name": "pure-HDL harness on verilator, MobileNetV2 224x224 whole network, 1 image",
           "seconds": h["wall_s"],
           "baseline": "the same harness at 32x32",
           "baseline_seconds": h32["wall_s"], "detail": detail,
           "cycles": cycles, "macs": macs, "utilization": macs / (cycles * pe),
           "identical_fraction": frac, "act_words": program.act_words,
           "harness_run_cycles": c["run_cycles"]}
    if _env_flag("BENCH_COMPUTE_224_PYUVM", "0"):
        summary, wall = run_pyuvm("verilator", network, prepared, scratch, tag="bench224")
        row["pyuvm_wall_s"] = wall
        row["pyuvm_passed"] = summary["passed"]
        row["detail"] += f"; pyuvm ChainedTest {wall:.1f} s ({wall / h['wall_s']:.2f}x)"
    return row


if __name__ == "__main__":
    os.chdir(REPO)
    for r in rows():
        print({k: v for k, v in r.items() if k not in ("layers", "harness_steps")})
