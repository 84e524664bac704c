"""The accelerator matrix: every shipped accelerator file x two networks, the whole
parameter image through the reference loader RTL, every write checked, 0 mismatches.

    make matrix                                                   # the cells marked matrix
    .venv/bin/python -m pytest -q -m matrix tb/test_accel_matrix.py -k acc128

Accelerators (golden/accelerators/): default.toml (64-bit words, tile 8x8),
acc32_16x16.toml (32-bit words, tile 16x16, two-word headers), acc128.toml (128-bit
words, tile 8x16, int32 biases). Networks: MobileNetV2-ReLU (the default
build/package) and the small CNN (the shipped quant/checkpoints/small_cnn_digits32.pt,
`cosim package --checkpoint ... --out build/matrix/small_cnn/package`).

Each cell: `cosim golden --package P --accel FILE --out build/matrix/<net>/<accel>/golden`,
then WholeNetworkTest with COCOSIM_PACKAGE / COCOSIM_GOLDEN / COCOSIM_ACCEL: the RTL is
built with the layout package generated for that (network, accelerator)
(tb/sim.py select_network, sources_for_layout), the pre-run check compares the DUT's
parameters, the package and the accelerator file, and the scoreboard checks every
write and the final memory against the golden image. The default cell (default.toml
x MobileNetV2) is tb/test_uvm.py's WholeNetworkTest in make test on both simulators;
the other cells carry the `matrix` marker and run on both simulators (Icarus takes
47 s for the 563,414 words of MobileNetV2 on acc32_16x16, Verilator 17 s). One more
row, `acc8` (acc32_16x16.toml with 8-bit words, written under build/matrix/: 8-word
headers, a 24-bit count spanning 3 words), streams the small CNN on Icarus: the
smallest word the RTL takes. Wall times per cell:
build/test-results/matrix/<cell>/cell.json.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from cosim.tb.sim import BUILD, REPO, RESULTS_DIR, _locked, ensure_golden, run_cocotb

ACCELERATORS = ("default", "acc32_16x16", "acc128")
NETWORKS = ("mobilenet_v2_relu", "small_cnn")
MATRIX = BUILD / "matrix"
SMALL_CNN_CHECKPOINT = REPO / "quant" / "checkpoints" / "small_cnn_digits32.pt"
TEST = "WholeNetworkTest"


def accelerator_file(name: str) -> Path:
    """A shipped accelerator file, or "acc8": acc32_16x16.toml with 8-bit words."""
    import cosim.golden

    shipped = Path(cosim.golden.__file__).resolve().parent / "accelerators"
    if name != "acc8":
        return shipped / f"{name}.toml"
    text = (shipped / "acc32_16x16.toml").read_text()
    new = text.replace("\nbits = 32\n", "\nbits = 8\n", 1).replace(
        'name = "acc32_16x16"', 'name = "acc8"', 1)
    assert new.count("bits = 8\n") == 1 and 'name = "acc8"' in new, "acc32_16x16.toml changed"
    out = MATRIX / "acc8.toml"
    out.parent.mkdir(parents=True, exist_ok=True)
    if not out.is_file() or out.read_text() != new:
        out.write_text(new)
    return out


def _cosim(*args: str) -> None:
    cosim = Path(sys.executable).parent / "cosim"
    subprocess.run([str(cosim), *args], check=True, cwd=REPO)


def network_package(network: str) -> Path:
    """The parameter package of a network (made with the cosim CLI when missing)."""
    if network == "mobilenet_v2_relu":
        ensure_golden()
        return BUILD / "package"
    out = MATRIX / network / "package"
    with _locked(MATRIX / f"{network}.lock"):
        if not (out / "manifest.json").is_file():
            _cosim("package", "-q", "--checkpoint", str(SMALL_CNN_CHECKPOINT), "--out", str(out),
                   "--force")
    return out


def _stamp(package: Path, acc: Path) -> str:
    """What a cell's golden directory depends on: the accelerator file, the package
    manifest (it lists every file's sha256) and the golden code."""
    import cosim.golden

    h = hashlib.sha256()
    code = sorted(Path(cosim.golden.__file__).resolve().parent.glob("*.py"))
    for f in [acc, package / "manifest.json", *code]:
        h.update(f.name.encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


def cell_golden(network: str, accel: str) -> tuple[Path, Path, Path]:
    """(package, golden directory, accelerator file) of a cell; the golden directory is
    made from the package with `cosim golden --accel` (a few seconds) unless it is
    current (a stamp of its inputs: cells on two simulators share it, also under
    pytest -n 2, so it is never rewritten while another cell reads it)."""
    package = network_package(network)
    acc = accelerator_file(accel)
    golden = MATRIX / network / accel / "golden"
    stamp = golden.parent / "golden.stamp"
    with _locked(MATRIX / f"{network}-{accel}.lock"):
        want = _stamp(package, acc)
        if not (stamp.is_file() and stamp.read_text() == want
                and (golden / "layout.json").is_file()):
            stamp.unlink(missing_ok=True)
            _cosim("golden", "-q", "--package", str(package), "--accel", str(acc), "--out",
                   str(golden), "--no-plot", "--force")
            stamp.write_text(want)
    return package, golden, acc


def _cells():
    for accel in ACCELERATORS:
        for network in NETWORKS:
            if (accel, network) == ("default", "mobilenet_v2_relu"):
                continue  # tb/test_uvm.py WholeNetworkTest, make test, both simulators
            sims = ["verilator", "icarus"]
            for sim in sims:
                yield pytest.param(accel, network, sim, id=f"{accel}-{network}-{sim}",
                                   marks=[pytest.mark.matrix, pytest.mark.sim,
                                          pytest.mark.slow])
    yield pytest.param("acc8", "small_cnn", "icarus", id="acc8-small_cnn-icarus",
                       marks=[pytest.mark.matrix, pytest.mark.sim, pytest.mark.slow])


@pytest.mark.parametrize(("accel", "network", "sim"), list(_cells()))
def test_cell(accel: str, network: str, sim: str) -> None:
    t0 = time.perf_counter()
    package, golden, acc = cell_golden(network, accel)
    t_golden = time.perf_counter() - t0
    cell = f"{accel}-{network}-{sim}"
    results = RESULTS_DIR / "matrix" / cell
    summary_path = results / f"{TEST}-{sim}.json"
    summary_path.unlink(missing_ok=True)
    env = {"COCOSIM_PACKAGE": str(package), "COCOSIM_GOLDEN": str(golden),
           "COCOSIM_ACCEL": str(acc), "COCOSIM_SIM": sim, "COCOSIM_RESULTS": str(results)}
    dump = BUILD / "sim" / "dumps" / f"matrix-{cell}.hex"
    xml = run_cocotb(sim, "cosim.tb.tests_uvm", testcase=TEST, extra_env=env,
                     plusargs=[f"+DUMP_FILE={dump}"], check=False, tag=f"matrix-{cell}",
                     seed_value=1)
    wall = time.perf_counter() - t0
    assert summary_path.is_file(), f"{cell}: no summary (see {xml})"
    s = json.loads(summary_path.read_text())
    if s.get("prerun_error"):
        pytest.fail(f"{cell}: {s['prerun_error']}", pytrace=False)
    with np.load(golden / "image.npz") as data:
        image_words = int(data["addresses"].shape[0])
    times = {"cell": cell, "accelerator": accel, "network": network, "sim": sim,
             "golden_s": round(t_golden, 1), "wall_s": round(wall, 1),
             "stimulus_s": s["wall_s"], "stream_words": s["stream_words"],
             "words_checked": s["words_checked"], "mismatches": s["mismatches"]}
    (results / "cell.json").write_text(json.dumps(times, indent=1) + "\n")
    print(f"matrix cell {cell}: {s['words_checked']}/{image_words} writes checked, "
          f"{s['mismatches']} mismatches, {s['stream_words']} stream words; golden "
          f"{t_golden:.1f} s, cell {wall:.1f} s (stimulus {s['wall_s']} s)")
    assert s["mismatches"] == 0, f"{cell}: " + "\n".join(s["errors"])
    assert s["words_checked"] == s["words_expected"] == image_words, (
        f"{cell}: {s['words_checked']} writes checked, {s['words_expected']} expected, "
        f"image holds {image_words} words")
    assert s["dump_checked"] and s["passed"], f"{cell}: see {xml}"
