"""Rows for the compute engine: the pyuvm testbench against the pure-HDL harness.

Each figure is measured against a baseline in the same run, one simulation after
the other (never in parallel), alternating and keeping each side's fastest run
(Verilator: 3 at 32x32, 2 at 224x224; Icarus: 1):

- whole network chained, per simulator: wall of the pyuvm ChainedTest (tb/tests_compute.py,
  1 image, every step's output checked) against rtl/cnn_compute_harness.sv (the same
  engine, the same input files, driven from an initial block: the simulator alone),
  both on the same simulator => the testbench overhead (target <= 1.3x), also shown
  without the fixed start-up that Python, cocotb and pyuvm add to any run (the wall of
  the StartupOnly test minus that of the harness with nothing to do, both on the same
  build). Both sides check the parameter load the same way (rtl/param_write_checker.sv:
  every write against the golden image, in HDL). The
  harness's dump of the whole activation memory is compared bit-exact with the
  chained golden outputs of every step. Total cycles, MACs, MACs/cycle and
  utilization = MACs / (cycles * tile_oc * tile_ic); a per-layer table (cycles,
  utilization) from the test's summary is printed and kept in build/bench.json.
- parameter load: words/s of the HDL stream player path (ParameterLoadTest: the
  pyuvm test's load, every write checked in HDL against the golden image) against
  the bare cocotb loop of tb/test_bare.py (one Python await per word;
  bench/sim_throughput.py's runner), alternating, each side's fastest of 3
  => speedup (target >= 5x).
- 224x224: one image through the pure-HDL harness on Verilator (target <= 600 s),
  against the 32x32 harness run, and the pyuvm ChainedTest on the same image: the
  testbench overhead where the network, not the start-up, dominates.
  BENCH_COMPUTE_224=0 skips it.

Knobs: BENCH_COMPUTE_SIMS (default "verilator,icarus"), BENCH_COMPUTE_224 (default 1),
BENCH_COMPUTE_224_PYUVM=0 skips the pyuvm ChainedTest at 224x224 (the overhead on a
network large enough that the fixed start-up hardly counts).
BENCH_COMPUTE_ICARUS_STEPS (default "all", or a number N): Icarus runs the whole network
chained like Verilator (about 1.5 minutes per run here), or the first N steps only (the
harness chained, the pyuvm LayerByLayerTest on the same steps: the same engine cycles).
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
from functools import partial
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
STARTUP_TEST = "StartupOnly"
LOAD_REPEATS = 3  # parameter-load row: alternate bare / player runs, keep each one's fastest
#: the overhead rows: harness, harness under cocotb and pyuvm test, alternating, fastest of
REPEATS = {"verilator": 3, "icarus": 1}
REPEATS_224 = 2
ICARUS_STEPS = "all"  # or e.g. 10: features.0 .. features.3.add


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
    VERILATOR_ARGS (--timing, C++20) and VERILATOR_MAKE_FLAGS (-O2), as the cocotb
    builds; Icarus 11: iverilog -g2012."""
    sim_module = _tb()
    sim_module._setup_env(sim)
    h = hashlib.sha256()
    for s in sources:
        h.update(str(s).encode() + b"\0" + Path(s).read_bytes())
    h.update(json.dumps(parameters, sort_keys=True).encode())
    h.update(sim_module._tool_version(sim).encode())
    h.update(repr(sim_module.VERILATOR_MAKE_FLAGS).encode())
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
               "-MAKEFLAGS", " ".join(sim_module.VERILATOR_MAKE_FLAGS),
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


def _harness_plusargs(prepared, run: Path, n: int) -> list[str]:
    """Plusargs of a harness run of descriptors 0..n-1 on image 0 (files in `run`)."""
    from cosim.golden.engine_program import write_act_load

    expected = np.load(prepared.work / "golden.npz")
    plus = prepared.plusargs(run)
    write_act_load(run / "act_load.hex", [(prepared.program.input, expected["input/0"])])
    for f in ("act_dump.hex", "stats.hex"):
        (run / f).unlink(missing_ok=True)
    return plus + [f"+STREAM_WORDS={prepared.stream_words}", f"+NUM_DESC={n}",
                   f"+ACT_WORDS={prepared.program.act_words}"]


def run_harness(sim: str, exe: Path, prepared, run: Path, n_steps: int | None = None) -> dict:
    """Run the harness on the prepared work folder (image 0), descriptors 0..n_steps-1
    chained (default all); returns the wall time, the printed counts, the per-step cycles
    and the bit-exact comparison of the dump with those steps' chained golden outputs."""
    n = len(prepared.program.steps) if n_steps is None else n_steps
    plus = _harness_plusargs(prepared, run, n)
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
    image_words = int(json.loads((prepared.work / "run.json").read_text())["image_words"])
    bad = counts["pchk_wrong"] + counts["pchk_duplicate"] + counts["pchk_unexpected"]
    if counts["pchk_expected"] != image_words or counts["pchk_checked"] != image_words or bad:
        raise RuntimeError(f"{sim} harness: parameter write check failed ({line.strip()}); "
                           f"the image has {image_words} words")
    return {"wall_s": wall, "counts": counts, **_compare_dump(prepared, run, n)}


def run_harness_cocotb(sim: str, network, prepared, run: Path,
                       n_steps: int | None = None) -> dict:
    """The same harness run under cocotb with Python idle (tb/tests_harness.py waits
    for `finished`): the wall and the same bit-exact comparison of the dump."""
    from cosim.tb.sim import results_summary, run_cocotb

    n = len(prepared.program.steps) if n_steps is None else n_steps
    plus = _harness_plusargs(prepared, run, n) + ["+NO_FINISH"]
    t0 = time.perf_counter()
    xml = run_cocotb(sim, "cosim.tb.tests_harness", None, plusargs=plus, check=False,
                     tag=f"bench-{prepared.image_size}", sources=harness_sources(network),
                     parameters=prepared.parameters, toplevel=HARNESS_TOP)
    wall = time.perf_counter() - t0
    tests, failed = results_summary(xml)
    if tests != 1 or failed:
        raise RuntimeError(f"{sim} harness under cocotb: {tests} test(s), failed {failed}")
    return {"wall_s": wall, **_compare_dump(prepared, run, n)}


def _compare_dump(prepared, run: Path, n: int) -> dict:
    """The harness's dump of the activation memory against the chained golden outputs of
    steps 0..n-1 (integer equality), and the per-step cycles of its stats dump."""
    from cosim.tb.compute.dump import read_dump, read_stats

    program = prepared.program
    expected = np.load(prepared.work / "golden.npz")
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
    return {"codes": codes, "identical_codes": same, "unknown_words": words_bad,
            "steps": steps}


def run_harness_empty(sim: str, exe: Path, prepared, run: Path) -> float:
    """Wall of the harness with nothing to do (no stream word, no descriptor, one word
    dumped): the simulator's fixed cost (process, model, initial blocks and the
    $readmemh of the stream player and the write checker)."""
    plus = prepared.plusargs(run) + ["+STREAM_WORDS=0", "+NUM_DESC=0", "+ACT_WORDS=1"]
    (run / "act_load.hex").write_text("00\n")
    cmd = [str(exe), *plus] if sim == "verilator" else ["vvp", "-n", str(exe), *plus]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=run, stdin=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    if done.returncode != 0 or "HARNESS" not in done.stdout:
        raise RuntimeError(f"{sim} empty harness run failed (rc {done.returncode})")
    return wall


# ---------------------------------------------------------------- the pyuvm test

def run_pyuvm(sim: str, network, prepared, scratch: Path, test: str = "ChainedTest",
              tag: str = "bench", layers: str = "") -> tuple[dict, float]:
    """One pyuvm compute test, exactly that test (run_cocotb's testcase filter is
    anchored); returns its summary (empty for StartupOnly) and its wall."""
    from cosim.tb.sim import run_cocotb
    from cosim.tb.test_compute import MODULE, PASS_THROUGH, TOPLEVEL, compute_sources

    summary_path = scratch / f"{test}-{sim}.json"
    summary_path.unlink(missing_ok=True)
    run = _tb().BUILD / "compute" / "runs" / f"{test}-{sim}-{tag}"
    env = {k: os.environ[k] for k in PASS_THROUGH if k in os.environ} | network.env
    env |= {"COCOSIM_SIM": sim, "COCOSIM_RESULTS": str(scratch),
            "COMPUTE_WORK": str(prepared.work), "COMPUTE_RUN": str(run),
            "COMPUTE_IMAGES": "1"}
    if layers:
        env["COMPUTE_LAYERS"] = layers
    t0 = time.perf_counter()
    xml = run_cocotb(sim, MODULE, test, extra_env=env, plusargs=prepared.plusargs(run),
                     check=False, tag=f"{test}.{tag}", sources=compute_sources(network),
                     parameters=prepared.parameters, toplevel=TOPLEVEL)
    wall = time.perf_counter() - t0
    from cosim.tb.sim import results_summary

    tests, failed = results_summary(xml)
    if test == STARTUP_TEST:
        if tests != 1 or failed:
            raise RuntimeError(f"{sim} {test}: {tests} test(s) ran, failed {failed}; see {xml}")
        return {}, wall
    if tests != 1 or failed or not summary_path.is_file():
        raise RuntimeError(f"{sim} {test}: {tests} test(s) ran, failed {failed}; see {xml}")
    return json.loads(summary_path.read_text()), wall


def startup_seconds(sim: str, network, prepared, scratch: Path, exe: Path) -> dict:
    """The fixed cost of a pyuvm run: the wall of StartupOnly (tb/tests_compute.py: the
    same build, process, Python, cocotb, pyuvm and test module, no check) and of the
    harness with nothing to do; their difference is what Python and cocotb add to every
    run, whatever the network's size."""
    _, pyuvm = run_pyuvm(sim, network, prepared, scratch, STARTUP_TEST)
    hdl = run_harness_empty(sim, exe, prepared, scratch / f"harness-{sim}-empty")
    return {"pyuvm_s": pyuvm, "harness_s": hdl, "python_s": max(0.0, pyuvm - hdl)}


def overhead_text(wall: float, harness: float, idle: float,
                  startup: dict) -> tuple[dict, str]:
    """The overhead figures of a pyuvm run (wall) against the harness as a simulator
    binary (harness) and the same harness under cocotb with Python idle (idle), and the
    words of the row. overhead = wall / harness (the target); its two factors:
    cocotb_loop = idle / harness (cocotb's scheduler, no Python work) and testbench =
    wall / idle (what the pyuvm testbench itself adds)."""
    figures = {"overhead": wall / harness, "cocotb_loop": idle / harness,
               "testbench": wall / idle,
               "overhead_without_startup": (wall - startup["python_s"]) / harness}
    verdict = "met" if figures["overhead"] <= TARGET_OVERHEAD else "not met"
    return figures, (
        f"testbench overhead {figures['overhead']:.2f}x the harness (target <= "
        f"{TARGET_OVERHEAD}: {verdict}) = cocotb's scheduler loop {figures['cocotb_loop']:.2f}x "
        f"(the same harness under cocotb, Python idle: {idle:.2f} s) x the pyuvm testbench "
        f"itself {figures['testbench']:.2f}x; {figures['overhead_without_startup']:.2f}x "
        f"without the fixed start-up of Python, cocotb and pyuvm ({startup['python_s']:.2f} "
        f"s: StartupOnly {startup['pyuvm_s']:.2f} s, empty harness {startup['harness_s']:.2f} s)")


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
    startups: dict[str, dict] = {}
    for simulator in sims:
        exe, _ = build_harness(simulator, sources, prepared.parameters)
        _prebuild(sim_module, simulator, network, prepared)
        # Icarus: BENCH_COMPUTE_ICARUS_STEPS, the whole network by default; a subset runs
        # layer by layer on the pyuvm side (same cycles)
        subset = None
        if simulator == "icarus":
            value = os.environ.get("BENCH_COMPUTE_ICARUS_STEPS", str(ICARUS_STEPS)).strip()
            subset = None if value == "all" else min(int(value), len(program.steps))
        steps = program.steps if subset is None else program.steps[:subset]
        startup = startup_seconds(simulator, network, prepared, scratch, exe)
        load_before = _load()
        test = "ChainedTest" if subset is None else "LayerByLayerTest"
        layers_of = "" if subset is None else ",".join(s.name for s in steps)
        h, idle, (summary, wall) = _fastest(
            REPEATS[simulator],
            partial(run_harness, simulator, exe, prepared, scratch / f"harness-{simulator}",
                    subset),
            partial(run_harness_cocotb, simulator, network, prepared,
                    scratch / f"harness-cocotb-{simulator}", subset),
            partial(run_pyuvm, simulator, network, prepared, scratch, test, layers=layers_of))
        load_after = _load()
        if subset is None:
            harness32[simulator] = h
            startups[simulator] = startup
        if not summary["passed"]:
            raise RuntimeError(f"{simulator}: {test} failed: {summary['errors'][:3]}")
        layers = _layer_table(summary)
        _print_layers(simulator, layers)
        cycles = sum(r["cycles"] for r in layers)
        macs = sum(s.macs for s in steps)
        c = h["counts"]
        hw_frac = h["identical_codes"] / h["codes"]
        figures, words = overhead_text(wall, h["wall_s"], idle["wall_s"], startup)
        detail = (f"{words}; harness dump {h['identical_codes']:,}/{h['codes']:,} "
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
            **figures, "startup": startup, "harness_cocotb_idle_s": idle["wall_s"],
            "cycles": cycles, "harness_run_cycles": c["run_cycles"],
            "macs": macs, "macs_per_cycle": macs / cycles,
            "utilization": macs / (cycles * pe), "harness_identical_fraction": hw_frac,
            "harness_unknown_words": h["unknown_words"],
            "pyuvm_total_wall_s": summary["total_wall_s"],
            "pyuvm_compute_wall_s": summary["compute_wall_s"],
            "layers": layers,
            "harness_steps": h["steps"],
        })
        # parameter load: HDL stream player (checked) vs the bare cocotb loop, alternating,
        # each side's fastest of LOAD_REPEATS
        loads, bares = [], []
        for _ in range(LOAD_REPEATS):
            bares.append(_bare(sim_module, simulator, scratch))
            only, _ = run_pyuvm(simulator, network, prepared, scratch, "ParameterLoadTest")
            if not only["passed"]:
                raise RuntimeError(f"{simulator} ParameterLoadTest failed: {only['errors'][:3]}")
            loads.append(only["parameter_load"])
        load = min(loads, key=lambda r: r["wall_s"])
        bare = max(bares, key=lambda r: r["words_per_s"])
        player_rate = load["stream_words"] / load["wall_s"]
        speedup = player_rate / bare["words_per_s"]
        out.append({
            "name": f"parameter load on {simulator}: HDL stream player, pyuvm "
                    f"({load['stream_words']:,} words, every write checked in HDL; fastest of "
                    f"{LOAD_REPEATS}, alternating with the baseline)",
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
        out.append(_row_224(sim_module, network, harness32["verilator"], scratch, pe,
                            startups["verilator"]))
    return out


def _fastest(repeats: int, *runs):
    """Each run `repeats` times, alternating (a, b, c, a, b, c, ...); per run its fastest
    result (by "wall_s", or the wall of a (summary, wall) pair)."""
    def wall(result) -> float:
        return result[1] if isinstance(result, tuple) else result["wall_s"]

    results: list[list] = [[] for _ in runs]
    for _ in range(repeats):
        for i, run in enumerate(runs):
            results[i].append(run())
    return [min(r, key=wall) for r in results]


def _prebuild(sim_module, simulator: str, network, prepared) -> None:
    """The cocotb builds (cached) of cnn_compute_top and of the harness, outside the
    timed runs."""
    sources = harness_sources(network)
    sim_module.build(simulator, sources[:-1], None, prepared.parameters, False,
                     "cnn_compute_top")
    sim_module.build(simulator, sources, None, prepared.parameters, False, HARNESS_TOP)


def _row_224(sim_module, network, h32: dict, scratch: Path, pe: int, startup: dict) -> dict:
    from cosim.tb.test_compute import prepare_for

    t0 = time.perf_counter()
    prepared = prepare_for(network, images=1, size=224)
    t_prep = time.perf_counter() - t0
    program = prepared.program
    exe, t_build = build_harness("verilator", harness_sources(network), prepared.parameters)
    pyuvm = _env_flag("BENCH_COMPUTE_224_PYUVM", "1")
    if pyuvm:
        _prebuild(sim_module, "verilator", network, prepared)
    runs = [lambda: run_harness("verilator", exe, prepared, scratch / "harness-verilator-224")]
    if pyuvm:
        runs += [lambda: run_harness_cocotb("verilator", network, prepared,
                                            scratch / "harness-cocotb-verilator-224"),
                 lambda: run_pyuvm("verilator", network, prepared, scratch, tag="bench224")]
    fastest = _fastest(REPEATS_224, *runs)
    h = fastest[0]
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
    if pyuvm:
        idle, (summary, wall) = fastest[1], fastest[2]
        if not summary["passed"]:
            raise RuntimeError(f"verilator 224x224 ChainedTest failed: {summary['errors'][:3]}")
        figures, words = overhead_text(wall, h["wall_s"], idle["wall_s"], startup)
        row.update(pyuvm_wall_s=wall, pyuvm_passed=summary["passed"], **figures,
                   harness_cocotb_idle_s=idle["wall_s"],
                   pyuvm_codes_identical=summary["codes_identical"],
                   pyuvm_codes_checked=summary["codes_checked"])
        row["detail"] += (f"; pyuvm ChainedTest {wall:.1f} s, "
                          f"{summary['codes_identical']:,}/{summary['codes_checked']:,} codes "
                          f"identical: {words}")
    return row


if __name__ == "__main__":
    os.chdir(REPO)
    for r in rows():
        print({k: v for k, v in r.items() if k not in ("layers", "harness_steps")})
