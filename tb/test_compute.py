"""pytest entry of the compute engine (tb/tests_compute.py on cnn_compute_top).

    .venv/bin/python -m pytest tb/test_compute.py -v
    .venv/bin/python -m pytest tb/test_compute.py -k verilator

Verilator: the whole network, layer by layer and chained, every activation of every
layer against the golden model (hardware arithmetic), RTL top-1 = golden top-1 on
COMPUTE_IMAGES images (default 2). Icarus: the first step of each kind, layer by
layer. Each run prepares its work folder under build/compute/<network>/ (the
parameter stream, descriptors, golden codes; tb/compute/prepare.py) and builds
cnn_compute_top with that network's memory sizes.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from cosim.tb.sim import (
    BUILD,
    PACKAGE_DIR,
    RESULTS_DIR,
    RTL_DIR,
    run_cocotb,
    simulator_available,
)

TOPLEVEL = "cnn_compute_top"
MODULE = "cosim.tb.tests_compute"
COMPUTE_RTL = ("param_loader.sv", "param_memory.sv", "param_write_checker.sv", "act_memory.sv",
               "param_stream_player.sv", "cnn_compute_engine.sv", "cnn_compute_top.sv")
PASS_THROUGH = ("COCOSIM_VERBOSE", "COCOSIM_PACKAGE", "COCOSIM_GOLDEN", "COCOSIM_ACCEL")
IMAGES = int(os.environ.get("COMPUTE_IMAGES", "2") or 2)

pytestmark = pytest.mark.sim


def compute_sources(network) -> list[Path]:
    """The network's layout package and the compute top's modules."""
    return [network.sources[0], *(RTL_DIR / n for n in COMPUTE_RTL)]


def accelerator_rounding(network) -> str:
    """The accelerator file's datapath rounding (default accelerator: half_even)."""
    from cosim.golden.accelerator import load_accelerator

    if network.accel is not None:
        return load_accelerator(network.accel).rounding
    record = getattr(network.layout, "accelerator", None) or {}
    path = record.get("path") if isinstance(record, dict) else None
    if path and Path(path).is_file():
        return load_accelerator(Path(path)).rounding
    return "half_even"


def half_up_accelerator() -> Path:
    """The default accelerator with [datapath] rounding = "half_up" (typical hardware),
    written under build/compute/accelerators/."""
    from cosim.golden.accelerator import SHIPPED_ACCELERATORS

    text = Path(SHIPPED_ACCELERATORS["default"]).read_text()
    assert 'rounding = "half_even"' in text
    text = text.replace('name = "default"', 'name = "default_half_up"').replace(
        'rounding = "half_even"', 'rounding = "half_up"')
    path = BUILD / "compute" / "accelerators" / "default_half_up.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)
    return path


def variant_network(network, variant: str):
    """The shipped network on accelerator `variant` ("half_up" or a shipped file name)."""
    from cosim.golden.accelerator import SHIPPED_ACCELERATORS
    from cosim.tb.sim import select_network

    path = half_up_accelerator() if variant == "half_up" else Path(SHIPPED_ACCELERATORS[variant])
    return select_network({"COCOSIM_PACKAGE": str(network.package_dir),
                           "COCOSIM_ACCEL": str(path)})


def prepare_for(network, images: int = IMAGES, size: int | None = None):
    from cosim.quant.package import load_package
    from cosim.tb.compute.prepare import prepare

    package = load_package(network.package_dir)
    key = hashlib.sha256(f"{network.package_dir}|{network.golden_dir}|{network.accel}|"
                         f"{images}|{size}".encode())
    work = BUILD / "compute" / key.hexdigest()[:12]
    return prepare(work, package, network.layout, accelerator_rounding(network), images, size)


@pytest.fixture(scope="module")
def prepared(network):
    return prepare_for(network)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)


def run_compute(sim: str, test: str, network, prepared, env: dict | None = None,
                sources: list[Path] | None = None, tag: str | None = None,
                results=None, waves_step: str = "",
                plusargs_replaced: dict[str, str] | None = None) -> dict:
    """Build (cached) and run one compute test; return its summary JSON.

    waves_step: rerun that step alone with waves from just before it (a build with
    COMPUTE_WAVES); the summary's "waves" names the dump and its GTKWave save file.
    plusargs_replaced: plusarg name -> value instead of the prepared one (e.g. a
    corrupted +PARAM_EXPECT image: the check of the checker)."""
    results = Path(results or RESULTS_DIR)
    summary_path = results / f"{test}-{sim}.json"
    summary_path.unlink(missing_ok=True)
    run_env = {k: os.environ[k] for k in PASS_THROUGH if k in os.environ}
    run_env |= network.env
    run = BUILD / "compute" / "runs" / f"{test}-{sim}{'-' + tag if tag else ''}"
    run_env |= {"COCOSIM_SIM": sim, "COCOSIM_RESULTS": str(results),
                "COMPUTE_WORK": str(prepared.work), "COMPUTE_RUN": str(run)}
    run_env |= env or {}
    plusargs = prepared.plusargs(run)
    for name, value in (plusargs_replaced or {}).items():
        plusargs = [p for p in plusargs if not p.startswith(f"+{name}=")] + [f"+{name}={value}"]
    if waves_step:
        wave_file = run / f"{_safe(waves_step)}.fst"
        wave_file.unlink(missing_ok=True)
        plusargs.append(f"+COMPUTE_WAVES={wave_file}")
        run_env.setdefault("COMPUTE_LAYERS", waves_step)  # the step alone, by default
        run_env["COMPUTE_WAVES_STEP"] = waves_step
    xml = run_cocotb(sim, MODULE, testcase=test, extra_env=run_env, plusargs=plusargs,
                     check=False, tag=tag, sources=sources or compute_sources(network),
                     parameters=prepared.parameters, toplevel=TOPLEVEL,
                     defines={"COMPUTE_WAVES": 1} if waves_step else None,
                     hdl_waves=bool(waves_step))
    assert summary_path.is_file(), f"{test} on {sim} ended before its report phase; see {xml}"
    summary = json.loads(summary_path.read_text())
    summary["xml"] = str(xml)
    if waves_step:
        from cosim.tb.compute.waves import write_compute_gtkw

        summary["waves"] = {"dump": str(wave_file), "exists": wave_file.is_file()}
        if wave_file.is_file():
            gtkw = write_compute_gtkw(wave_file.with_suffix(".gtkw"), wave_file)
            summary["waves"]["gtkw"] = str(gtkw)
    return summary


def _require(sim: str) -> None:
    if not simulator_available(sim):
        pytest.skip(f"{sim} is not installed")


def _waves_of_first_failure(sim: str, summary: dict, network, prepared) -> str:
    """Rerun the first failing layer alone with waves from just before it."""
    failed = [s["name"] for s in summary.get("steps", []) if s["mode"] == "layer" and
              (s["mismatches"] or s["padding_errors"] or s["unknown_words"])]
    if not failed:
        return ""
    w = run_compute(sim, "LayerByLayerTest", network, prepared, waves_step=failed[0],
                    tag="waves", results=RESULTS_DIR / "compute-waves")
    waves = w.get("waves", {})
    return (f"\nwaves of {failed[0]} (rerun alone): gtkwave {waves.get('dump')} "
            f"{waves.get('gtkw', '')}")


def _explain(summary: dict) -> str:
    failed = [s for s in summary.get("steps", []) if s["mismatches"] or s["padding_errors"]
              or s["unknown_words"]]
    lines = [f"{summary['test']} on {summary['sim']}: {summary['steps_failed']} step(s) "
             f"failed; errors: {summary['errors'][:3]}"]
    for s in failed[:5]:
        lines.append(f"  {s['mode']} {s['name']}: {s['mismatches']}/{s['codes']} codes differ, "
                     f"first {s['first'][:3]}")
    return "\n".join(lines)


@pytest.mark.slow
def test_whole_network_verilator(network, prepared):
    """Every step layer by layer, then the whole network chained on IMAGES images."""
    _require("verilator")
    s = run_compute("verilator", "LayerThenChainedTest", network, prepared)
    if not s["passed"]:
        pytest.fail(_explain(s) + _waves_of_first_failure("verilator", s, network, prepared),
                    pytrace=False)
    n = len(prepared.program.steps)
    modes = {(r["mode"], r["name"]) for r in s["steps"]}
    assert len({m for m in modes if m[0] == "layer"}) == n
    assert len({m for m in modes if m[0] == "chained"}) == n
    assert s["codes_identical"] == s["codes_checked"] > 0
    assert len(s["top1"]) == prepared.images
    assert all(t["golden"] == t["rtl"] for t in s["top1"])
    assert s["parameter_load"]["image_words_wrong"] == 0


#: Icarus 11 "sorry" notes on the engine: limits of Icarus, not warnings of the RTL
ICARUS_SORRY = ("sorry: constant selects in always_* processes",
                "sorry: Case unique/unique0 qualities are ignored")


@pytest.mark.parametrize("top", [TOPLEVEL, "cnn_compute_harness", "param_write_checker"])
def test_compute_rtl_lints_and_compiles(top, network, tmp_path):
    """verilator --lint-only -Wall (no warning) and iverilog -g2012 -Wall (no warning
    but Icarus's own "sorry" notes) of the compute tops and the write checker."""
    import subprocess

    from cosim.tb.sim import verilator_root

    srcs = [str(p) for p in [*compute_sources(network), RTL_DIR / "cnn_compute_harness.sv"]]
    lint = subprocess.run([str(verilator_root() / "bin" / "verilator"), "--lint-only", "-Wall",
                           "--timing", "--top-module", top, *srcs],
                          capture_output=True, text=True,
                          env=os.environ | {"VERILATOR_ROOT": str(verilator_root())})
    assert lint.returncode == 0 and "%Warning" not in lint.stderr, lint.stderr
    if not simulator_available("icarus"):
        return
    comp = subprocess.run(["iverilog", "-g2012", "-Wall", "-s", top, "-o",
                           str(tmp_path / "top.vvp"), *srcs], capture_output=True, text=True)
    other = [ln for ln in (comp.stdout + comp.stderr).splitlines()
             if ln.strip() and not any(note in ln for note in ICARUS_SORRY)]
    assert comp.returncode == 0 and not other, "\n".join(other)


@pytest.mark.parametrize("fault", ["wrong_word", "address_not_in_mask", "extra_mask_word"])
def test_parameter_check_fails_on_a_corrupted_image(fault, network, prepared):
    """The check of the parameter check: the HDL write checker gets an expected image
    that differs from what the loader writes in one place; the compute test must fail
    and say what differs (one Verilator run of the first step per fault)."""
    _require("verilator")
    run = BUILD / "compute" / "runs" / f"param-fault-{fault}"
    run.mkdir(parents=True, exist_ok=True)
    image = (prepared.work / "param_image.hex").read_text().splitlines()
    mask = (prepared.work / "param_image_mask.hex").read_text().splitlines()
    k = next(i for i, line in enumerate(image) if i > 100 and not line.startswith("@"))
    if fault == "wrong_word":
        word = image[k]
        image[k] = word[:-1] + ("0" if word[-1] != "0" else "1")   # the low digit
        want = "1 write(s) differ from the golden image"
    elif fault == "address_not_in_mask":
        mask[k] = "0"
        want = "fall outside the image (first: unexpected"
    else:  # one more index, in a gap between the image's address runs
        covered, at = set(), 0
        for line in mask:
            if line.startswith("@"):
                at = int(line[1:], 16)
            else:
                covered.add(at)
                at += 1
        gap = next(i for i in range(max(covered)) if i not in covered)
        mask += [f"@{gap:x}", "1"]
        want = "image words (+PARAM_EXPECT), the image has"
    (run / "image.hex").write_text("\n".join(image) + "\n")
    (run / "mask.hex").write_text("\n".join(mask) + "\n")
    s = run_compute("verilator", "LayerByLayerTest", network, prepared, tag=f"fault-{fault}",
                    env={"COMPUTE_LAYERS": prepared.program.steps[0].name},
                    results=RESULTS_DIR / "compute-param-fault" / fault,
                    plusargs_replaced={"PARAM_EXPECT": str(run / "image.hex"),
                                       "PARAM_EXPECT_MASK": str(run / "mask.hex")})
    assert not s["passed"], f"{fault}: the corrupted image was not noticed"
    assert any(want in e for e in s["errors"]), f"{fault}: errors {s['errors']}"


ICARUS_KINDS = ("regular", "depthwise", "pointwise", "linear", "add", "pool")


def run_each_kind_icarus(network, prepared, tag: str, results: Path) -> dict:
    """LayerByLayerTest of the first step of each kind (COMPUTE_LAYERS=kinds) in one
    Icarus simulation; asserts that it passed with every one of those steps identical
    to golden; returns the summary."""
    _require("icarus")
    program = prepared.program
    names = [program.steps[i].name for i in program.first_of_each_kind()]
    s = run_compute("icarus", "LayerByLayerTest", network, prepared,
                    env={"COMPUTE_LAYERS": "kinds"}, tag=tag, results=results)
    assert s["passed"], _explain(s)
    assert [(r["name"], r["mismatches"]) for r in s["steps"]] == [(n, 0) for n in names]
    assert all(r["codes"] > 0 for r in s["steps"])
    return s


def kinds_of(program) -> list[str]:
    """The kinds of a program's steps (a weighted step's kind, else its op), sorted."""
    return sorted({st.kind or st.op for st in program.steps})


def test_each_kind_icarus(network, prepared):
    """The first step of each kind on Icarus, layer by layer in one simulation
    (COMPUTE_LAYERS=kinds): regular, depthwise, pointwise, the residual add, the global
    average pool and the linear layer, each after the previous one in the same engine.
    (A linear or pointwise layer after an add used to stop Icarus 11 in a zero-delay
    loop of the engine's write-port process; docs/compute-engine.md.)"""
    kinds = kinds_of(prepared.program)
    assert set(kinds) <= set(ICARUS_KINDS), kinds
    if Path(network.package_dir).resolve() == PACKAGE_DIR.resolve():
        assert kinds == sorted(ICARUS_KINDS), kinds  # the shipped network has all
    run_each_kind_icarus(network, prepared, "kinds", RESULTS_DIR / "compute-icarus")


@pytest.mark.parametrize("sim", ["verilator", "icarus"])
def test_layer_waves(sim, network, prepared):
    """A layer's rerun records waves from just before it: the dump exists, starts after
    the parameter load, and holds every signal of the GTKWave save file."""
    _require(sim)
    from cosim.tb.sim import gtkw_signals

    step = next(s.name for s in prepared.program.steps if s.op == "add")
    s = run_compute(sim, "LayerByLayerTest", network, prepared, waves_step=step, tag="waves",
                    results=RESULTS_DIR / "compute-waves")
    assert s["passed"], _explain(s)
    waves = s["waves"]
    assert waves["exists"], f"no wave dump {waves['dump']}"
    signals = gtkw_signals(Path(waves["gtkw"]))
    assert len(signals) >= 20
    from cosim.tb.sim import fst_signal_names

    try:
        names = fst_signal_names(Path(waves["dump"]))
    except FileNotFoundError:
        pytest.skip("GTKWave's fst2vcd is not installed")
    missing = [n for n in signals if n not in names]
    assert not missing, f"signals of the save file not in the dump: {missing}"


@pytest.mark.slow
@pytest.mark.matrix
@pytest.mark.parametrize("variant", ["half_up", "acc128"])
def test_accelerator_variant_verilator(variant, network):
    """The whole network layer by layer and chained on another accelerator file: the
    default with half-up rounding, and acc128 (128-bit words, tile 8x16, int32 biases)."""
    _require("verilator")
    net = variant_network(network, variant)
    prep = prepare_for(net, images=1)
    assert prep.rounding == ("half_up" if variant == "half_up" else "half_even")
    s = run_compute("verilator", "LayerThenChainedTest", net, prep, tag=variant,
                    results=RESULTS_DIR / "compute-variants" / variant)
    if not s["passed"]:
        pytest.fail(_explain(s) + _waves_of_first_failure("verilator", s, net, prep),
                    pytrace=False)
    assert s["codes_identical"] == s["codes_checked"] > 0
    assert len(s["steps"]) == 2 * len(prep.program.steps)
    assert all(t["golden"] == t["rtl"] for t in s["top1"]) and s["top1"]
