"""Pre-run checks (tb/env/prerun.py): a DUT built for something else than the golden
side, or an accelerator file that is not the golden side's, stops the test before
the first clock with ONE line naming both values.

Each test builds the RTL with a copy of the layout package that differs in one
thing (word width, memory address width, depth, layer count, any other code) and
runs WholeNetworkTest on the default network (build/package, build/golden); the
summary JSON's `prerun_error` must be exactly the expected line, and nothing may
have been driven. The accelerator test names another shipped accelerator file in
COCOSIM_ACCEL. Icarus builds in about a second; the depth case also runs on
Verilator (the cfg_* constant outputs must be readable there before any clock).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from cosim.tb.env.prerun import file_sha256, package_digest
from cosim.tb.sim import BUILD, REPO, RESULTS_DIR, RTL_SOURCES, run_cocotb

PRERUN_DIR = BUILD / "prerun"
#: the layout package the variants edit (the committed default one)
BASE_PKG = RTL_SOURCES[0]
TEST = "WholeNetworkTest"


def _rel(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(REPO.resolve()))
    except ValueError:
        return str(path)


def _param(text: str, name: str) -> int:
    m = re.search(rf"localparam int {name} = (\d+);", text)
    assert m, f"{name} not in {BASE_PKG}"
    return int(m.group(1))


def _variant(name: str, edit) -> list[Path]:
    """RTL sources whose layout package is the default one edited by `edit(text)`."""
    text = BASE_PKG.read_text()
    new = edit(text)
    assert new != text, f"{name}: the edit changed nothing"
    out = PRERUN_DIR / name / RTL_SOURCES[0].name
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(new)
    return [out, *RTL_SOURCES[1:]]


def _base() -> list[Path]:
    return [BASE_PKG, *RTL_SOURCES[1:]]


def _set(name: str, value: int):
    def edit(text: str) -> str:
        return re.sub(rf"localparam int {name} = \d+;", f"localparam int {name} = {value};",
                      text, count=1)
    return edit


def _prerun_line(sim: str, sources: list[Path], tag: str, env: dict[str, str] | None = None
                 ) -> str:
    results = RESULTS_DIR / "prerun" / tag
    summary = results / f"{TEST}-{sim}.json"
    summary.unlink(missing_ok=True)
    run_cocotb(sim, "cosim.tb.tests_uvm", testcase=TEST, sources=sources, check=False,
               tag=f"prerun-{tag}", extra_env={"COCOSIM_SIM": sim,
                                               "COCOSIM_RESULTS": str(results), **(env or {})})
    assert summary.is_file(), f"{TEST} on {sim} wrote no summary ({tag})"
    data = json.loads(summary.read_text())
    assert data["passed"] is False and "stream_words" not in data, "nothing may be driven"
    return data.get("prerun_error", "")


@pytest.fixture(scope="module")
def default_pkg(golden_dir) -> str:
    return BASE_PKG.read_text()


def _golden_json() -> str:
    return "build/golden/layout.json" if (REPO / "build").resolve() == BUILD.resolve() \
        else _rel(BUILD / "golden" / "layout.json")


@pytest.mark.sim
def test_word_width(default_pkg):
    src = _variant("word_width", lambda t: _set("HDR_WORDS", 2)(_set("WORD_BYTES", 4)(
        _set("WORD_BITS", 32)(t))))
    assert _prerun_line("icarus", src, "word_width") == (
        f"pre-run check: DUT WORD_W is 32, the golden layout ({_golden_json()}) has "
        "word_bits 64")


@pytest.mark.sim
def test_address_width(default_pkg):
    bits = _param(default_pkg, "MEM_ADDR_BITS")
    depth = _param(default_pkg, "MEM_DEPTH")
    src = _variant("addr_width", _set("MEM_ADDR_BITS", bits + 1))
    assert _prerun_line("icarus", src, "addr_width") == (
        f"pre-run check: DUT memory address width is {bits + 1} bits, the golden layout "
        f"({_golden_json()}) has {bits} (word addresses, depth {depth})")


@pytest.mark.sim
@pytest.mark.parametrize("sim", ["icarus", "verilator"])
def test_depth(default_pkg, sim):
    depth = _param(default_pkg, "MEM_DEPTH")
    src = _variant("depth", _set("MEM_DEPTH", depth + 1))
    assert _prerun_line(sim, src, f"depth-{sim}") == (
        f"pre-run check: DUT MEM_DEPTH is {depth + 1}, the golden layout ({_golden_json()}) "
        f"has depth {depth}")


@pytest.mark.sim
def test_layer_count(default_pkg):
    n = _param(default_pkg, "NUM_LAYERS")
    src = _variant("layers", _set("NUM_LAYERS", n - 1))
    assert _prerun_line("icarus", src, "layers") == (
        f"pre-run check: DUT NUM_LAYERS is {n - 1}, the golden layout ({_golden_json()}) has "
        f"{n} weighted layers")


@pytest.mark.sim
def test_package_hash(default_pkg):
    """Same parameters, other tables (another network or accelerator): the package's
    code differs from the one the golden layout generates."""
    tile = _param(default_pkg, "TILE_OC")
    src = _variant("package", _set("TILE_OC", tile * 2))
    got, want = package_digest(src[0].read_text()), package_digest(default_pkg)
    assert _prerun_line("icarus", src, "package") == (
        f"pre-run check: the DUT's layout package {_rel(src[0])} has code sha256 {got[:16]}, "
        f"the golden layout ({_golden_json()}) generates one with sha256 {want[:16]} (built "
        "for another network or accelerator; rebuild the RTL for this golden side)")


@pytest.mark.sim
def test_accelerator_file(default_pkg, golden_dir):
    """COCOSIM_ACCEL names another file than the one the golden layout records."""
    import cosim.golden

    other = Path(cosim.golden.__file__).resolve().parent / "accelerators" / "acc128.toml"
    if not other.is_file():
        pytest.fail(f"{other} is missing (shipped accelerator files)")
    table = json.loads((Path(golden_dir) / "layout.json").read_text())
    rec = table.get("config", {}).get("accelerator") or table.get("accelerator")
    line = _prerun_line("icarus", _base(), "accel", {"COCOSIM_ACCEL": str(other)})
    sha = file_sha256(other)
    where = f"the golden layout ({_golden_json()})"
    if rec is None:
        assert line == (f"pre-run check: accelerator file {other} has sha256 {sha[:16]}, "
                        f"{where} records no accelerator (made by an older cosim golden; "
                        "rerun it with --accel)")
    else:
        assert line == (f"pre-run check: accelerator file {other} has sha256 {sha[:16]}, "
                        f"{where} was made with accelerator {rec['name']!r} (sha256 "
                        f"{rec['sha256'][:16]})")


def test_prerun_check_compares_in_order_and_skips_unknowns(golden_dir):
    """No simulator: the first disagreement wins; None (a DUT without that port, or a
    value not yet known) is not compared; an agreeing DUT gives None."""
    from cosim.tb.env.config import GoldenData
    from cosim.tb.env.prerun import layout_memory, prerun_check

    golden = GoldenData(BUILD / "package", Path(golden_dir))
    depth, bits = layout_memory(golden.layout)
    good = {"word_bits": 64, "addr_bits": bits, "mem_depth": depth,
            "num_layers": len(golden.layout.layers)}
    env = {"COCOSIM_RTL_PKG": str(BASE_PKG)}
    assert prerun_check(good, golden, env) is None
    assert prerun_check(dict.fromkeys(good), golden, {}) is None
    line = prerun_check({**good, "word_bits": 128, "mem_depth": 1}, golden, env)
    assert line is not None and line.startswith("pre-run check: DUT WORD_W is 128,")
    line = prerun_check({**good, "mem_depth": 1}, golden, env)
    assert line is not None and line.startswith("pre-run check: DUT MEM_DEPTH is 1,")
    missing = prerun_check(good, golden, {"COCOSIM_ACCEL": str(BUILD / "no-such.toml")})
    assert missing == f"pre-run check: COCOSIM_ACCEL={BUILD / 'no-such.toml'}: no such " \
                      "accelerator file"


def test_golden_folder_of_another_package(tmp_path):
    """The golden folder's layout.json records the sha256 of the manifest it was made
    from; a COCOSIM_PACKAGE with another manifest (here: the same parameters, the
    manifest re-serialized, so only the record can tell) stops with one line naming
    both values. The same package passes."""
    import shutil

    from cosim.golden.image import package_sha256, write_golden
    from cosim.golden.layout import Layout
    from cosim.quant.package import load_package
    from cosim.tb.env.config import GoldenData, GoldenSelectionError

    package = tmp_path / "package"
    shutil.copytree(BUILD / "package", package)
    golden = tmp_path / "golden"
    write_golden(load_package(package), Layout.from_package(load_package(package)), golden,
                 plot=False)
    made = package_sha256(package)
    assert json.loads((golden / "layout.json").read_text())["package"]["manifest_sha256"] == made
    GoldenData(package, golden).check()  # the package it was made from: no error

    other = tmp_path / "other"
    shutil.copytree(package, other)
    manifest = other / "manifest.json"
    manifest.write_text(json.dumps(json.loads(manifest.read_text()), indent=3) + "\n")
    got = package_sha256(other)
    assert got != made
    with pytest.raises(GoldenSelectionError) as e:
        GoldenData(other, golden).check()
    assert str(e.value) == (
        f"pre-run check: the golden folder ({golden / 'layout.json'}) was made from package "
        f"{made[:16]} ({package.resolve()}), COCOSIM_PACKAGE {other} is package {got[:16]} "
        "(manifest.json sha256)")
