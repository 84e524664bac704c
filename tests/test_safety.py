"""Safety: no user file is unpickled or executed, `--out` replaces only what the tool
wrote, temp names are unique, and a killed export leaves the old or the new package.

One quantize result and one package are made per session (about 20 s); the SIGKILL
loop forks exports from a helper that loaded the result once (tests/export_worker.py).
"""

from __future__ import annotations

import collections
import json
import os
import pickle
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from cosim.quant import formats
from cosim.quant.choices import SHIPPED_CHECKPOINT
from cosim.quant.export import REFERENCE_MODEL, ExportCheckError, check_skeleton
from cosim.quant.formats import MARKER_NAME, PackageError, atomic_directory, remove_leftovers
from cosim.quant.graph import describe
from cosim.quant.outdir import check_output, marker_bytes, prepare_output_dir
from cosim.quant.package import load_package
from cosim.quant.pipeline import load_quant_result, run_quantize, save_quant_result, write_report
from cosim.quant.ptq import QuantConfig
from cosim.quant.tensorfile import write_tensor_file
from cosim.quant.train import save_checkpoint
from cosim.quant.verify import RebuildCheck
from tiny_package import make_tiny_package, rewrite_file

from cosim import cli

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
COSIM = REPO / ".venv" / "bin" / "cosim"
CALIBRATION = "16"


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def quantized(tmp_path_factory):
    """(in-memory quantize result, its saved file) of the shipped checkpoint."""
    result = run_quantize(SHIPPED_CHECKPOINT, QuantConfig(calibration_images=int(CALIBRATION)),
                          quiet=True)
    path = tmp_path_factory.mktemp("quantized") / "q.safetensors"
    save_quant_result(result, path)
    return result, path


@pytest.fixture(scope="session")
def package_dir(quantized, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("safety") / "package"
    assert cli.main(["export", "--quantized", str(quantized[1]), "--out", str(out)]) == 0
    return out


def run(argv: list[str], capsys) -> tuple[int, str]:
    status = cli.main(argv)
    return status, capsys.readouterr().err


def assert_one_line(status: int, err: str, *fragments: str) -> None:
    assert status == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cosim"), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def tree(path: Path) -> dict:
    """Every entry under `path` (links as their target text, files as bytes)."""
    out = {}
    for p in sorted(path.rglob("*")):
        rel = p.relative_to(path).as_posix()
        out[rel] = (f"-> {os.readlink(p)}" if p.is_symlink() else
                    p.read_bytes() if p.is_file() else "dir")
    return out


# ----------------------------------------------------------------------------- quantize result


def int8_outputs(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The output layer's integer codes (exact: po2 scale)."""
    output = [node for node in describe(model) if node["op"] == "dequantize"][-1]
    with torch.no_grad():
        logits = model(images)
    return torch.round(logits.double() / output["input"]["scale"]).long() + \
        output["input"]["zero_point"]


def test_quantize_result_round_trip_is_bit_exact(quantized):
    """quantize -> save -> load: the reference's int8 outputs are equal (integers), the
    float model and the float biases too; the file holds no pickle."""
    result, path = quantized
    loaded = load_quant_result(path)
    images = torch.randn(16, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    from cosim.quant.data import build_dataset

    test = build_dataset(result.data, "test")
    images = torch.cat([images, torch.stack([test[i][0] for i in range(16)])])
    expected, got = int8_outputs(result.reference, images), int8_outputs(loaded.reference,
                                                                         images)
    assert torch.equal(expected, got)
    assert expected.unique().numel() > 10, "outputs should not be constant"
    float_modules = dict(result.folded.named_modules())
    loaded_modules = dict(loaded.folded.named_modules())
    weighted_names = [node["name"] for node in describe(result.reference)
                      if node["op"] in ("conv2d", "linear")]
    assert weighted_names
    for name in weighted_names:
        assert torch.equal(float_modules[name].weight, loaded_modules[name].weight), name
        assert torch.equal(float_modules[name].bias, loaded_modules[name].bias), name
    for name, bias in result.details["bias_float"].items():
        assert torch.equal(bias, loaded.details["bias_float"][name]), name
    assert loaded.int8_top1 == result.int8_top1 and loaded.config == result.config
    data = path.read_bytes()
    assert data[:2] != b"PK" and b"\x80\x02" not in data[:64]  # not a zip, not a pickle


def test_quantize_result_with_a_changed_integer_changes_the_output(quantized, tmp_path):
    """Check of the checker: the round trip compares real integers (one weight flipped
    in the file changes the loaded model's outputs)."""
    import safetensors.torch

    result, path = quantized
    tensors = safetensors.torch.load(path.read_bytes())
    name = "reference/classifier.1._packed_params._packed_params::0::int_repr"
    tensors[name] = -tensors[name]
    meta = json.loads(json.loads(path.read_bytes()[8:8 + int.from_bytes(
        path.read_bytes()[:8], "little")])["__metadata__"]["cosim"])
    changed = tmp_path / "changed.safetensors"
    write_tensor_file(changed, tensors, meta)
    images = torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    assert not torch.equal(int8_outputs(result.reference, images),
                           int8_outputs(load_quant_result(changed).reference, images))


# ----------------------------------------------------------------------------- malicious files


class Evil:
    """Unpickling this runs code: it creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


def evil_files(folder: Path, marker: Path) -> dict[str, Path]:
    """A raw pickle, a torch zip file (torch.save) and a TorchScript archive, each
    carrying code; the first two would create `marker` when unpickled."""
    folder.mkdir(parents=True, exist_ok=True)
    raw = folder / "evil.pkl"
    raw.write_bytes(pickle.dumps({"format": "cnn-cosim-checkpoint", "x": Evil(marker)}))
    zipped = folder / "evil.pt"
    torch.save({"format": "cnn-cosim-checkpoint", "version": 1, "x": Evil(marker)}, zipped)
    scripted = folder / "script.pt"
    torch.jit.save(torch.jit.script(torch.nn.ReLU()), str(scripted))
    return {"pickle": raw, "torch-zip": zipped, "torchscript": scripted}


def test_the_malicious_files_are_live(tmp_path):
    """Check of the checker: loading them the unsafe way does run the code."""
    for kind in ("pickle", "torch-zip"):
        marker = tmp_path / f"marker-{kind}"
        files = evil_files(tmp_path / kind, marker)
        if kind == "pickle":
            pickle.loads(files[kind].read_bytes())
        else:
            torch.load(files[kind], weights_only=False)
        assert marker.read_text() == "pwned"


@pytest.fixture()
def evil(tmp_path):
    marker = tmp_path / "marker"
    yield evil_files(tmp_path / "evil", marker), marker
    assert not marker.exists(), "a user file was unpickled: the marker exists"


@pytest.mark.parametrize("kind", ["pickle", "torch-zip", "torchscript"])
@pytest.mark.parametrize("command", ["quantize", "package", "export"])
def test_no_command_unpickles_a_file_it_is_given(evil, command, kind, tmp_path, capsys):
    files, marker = evil
    out = tmp_path / "out"
    if command == "export":
        argv = ["export", "--quantized", str(files[kind]), "--out", str(out)]
    else:
        argv = [command, "--checkpoint", str(files[kind]), "--out",
                str(out if command == "package" else tmp_path / "q.safetensors"), "-q"]
    status, err = run(argv, capsys)
    assert_one_line(status, err, files[kind].name)
    assert not out.exists() and not (tmp_path / "q.safetensors").exists()


PACKAGE_FILES = [REFERENCE_MODEL, "params_quant_linear/features.0.0/weight.txt",
                 "manifest.json"]


@pytest.mark.parametrize("kind", ["torch-zip", "torchscript"])
@pytest.mark.parametrize("rel", PACKAGE_FILES)
@pytest.mark.parametrize("command", ["verify", "golden", "golden-verify"])
def test_no_command_runs_a_file_of_a_package(evil, package_copy, command, rel, kind,
                                             tmp_path, capsys):
    """A package file replaced by code (sha256 updated, so only parsing stops it)."""
    if command == "golden" and rel == REFERENCE_MODEL:
        pytest.skip("cosim golden does not read the reference model")
    files, _ = evil
    if rel == "manifest.json":
        shutil.copyfile(files[kind], package_copy / rel)
    else:
        rewrite_file(package_copy, rel, files[kind].read_bytes())
    out = ["--out", str(tmp_path / "golden")] if command != "verify" else []
    extra = {"verify": ["--images", "2"], "golden": [],
             "golden-verify": ["--images", "1", "--images-224", "0"]}[command]
    status, err = run([command, "--package", str(package_copy), *out, *extra, "-q"], capsys)
    assert_one_line(status, err, rel)


def test_the_real_cosim_command_refuses_malicious_files(evil, package_copy, tmp_path):
    files, _ = evil
    rewrite_file(package_copy, REFERENCE_MODEL, files["torch-zip"].read_bytes())
    for argv in (["export", "--quantized", str(files["torch-zip"]), "--out",
                  str(tmp_path / "p")],
                 ["quantize", "--checkpoint", str(files["pickle"]), "-q", "--out",
                  str(tmp_path / "q.safetensors")],
                 ["verify", "--package", str(package_copy), "--images", "2", "-q"]):
        done = subprocess.run([str(COSIM), *argv], capture_output=True, text=True,
                              timeout=120, cwd=tmp_path)
        assert_one_line(done.returncode, done.stderr)


# ----------------------------------------------------------------------------- bounded reads


def special_inputs(tmp_path: Path, quantized_file: Path) -> dict[str, Path]:
    folder = tmp_path / "inputs"
    folder.mkdir()
    fifo = folder / "fifo"
    os.mkfifo(fifo)
    zero = folder / "zero"
    zero.symlink_to("/dev/zero")
    big = folder / "big"
    with open(big, "wb") as f:  # sparse: no disk used
        f.truncate((1 << 30) + 1)
    random_bytes = folder / "random"
    random_bytes.write_bytes(np.random.default_rng(5).bytes(4096))
    truncated = folder / "truncated"
    truncated.write_bytes(quantized_file.read_bytes()[:100_000])
    empty = folder / "empty"
    empty.write_bytes(b"")
    directory = folder / "dir"
    directory.mkdir()
    return {"fifo": fifo, "dev-zero": zero, "too-big": big, "random": random_bytes,
            "truncated": truncated, "empty": empty, "directory": directory}


def test_export_and_quantize_refuse_special_and_oversized_files(quantized, tmp_path, capsys):
    inputs = special_inputs(tmp_path, quantized[1])
    for kind, path in inputs.items():
        start = time.perf_counter()
        status, err = run(["export", "--quantized", str(path), "--out",
                           str(tmp_path / "p")], capsys)
        assert_one_line(status, err, str(path))
        assert time.perf_counter() - start < 10, kind
        if kind in ("fifo", "dev-zero", "too-big", "directory"):
            status, err = run(["quantize", "--checkpoint", str(path), "-q", "--out",
                               str(tmp_path / "q.safetensors")], capsys)
            assert_one_line(status, err, str(path))
    assert not (tmp_path / "p").exists()


# ----------------------------------------------------------------------------- --out policy


def foreign_folder(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "precious.txt").write_text("keep me")
    return path


def test_export_refuses_what_it_did_not_write(quantized, tmp_path, capsys):
    q = str(quantized[1])
    foreign = foreign_folder(tmp_path / "foreign")
    regular = tmp_path / "file"
    regular.write_text("a file")
    link = tmp_path / "link"
    link.symlink_to(foreign)
    before = tree(tmp_path)
    for out in (foreign, regular, link, regular / "under"):
        status, err = run(["export", "--quantized", q, "--out", str(out)], capsys)
        assert_one_line(status, err, str(out))
        if out != regular / "under":
            assert "--force" in err
    assert tree(tmp_path) == before


def test_never_the_folder_of_an_input_home_or_root_even_with_force(quantized, tmp_path,
                                                                   monkeypatch, capsys):
    holder = tmp_path / "x"
    holder.mkdir()
    (holder / MARKER_NAME).write_bytes(marker_bytes("package"))  # even a marked one
    q = holder / "q.safetensors"
    shutil.copyfile(quantized[1], q)
    home = foreign_folder(tmp_path / "home")
    monkeypatch.setenv("HOME", str(home))
    before = tree(tmp_path)
    for out in (holder, tmp_path, home, home.parent):
        status, err = run(["export", "--quantized", str(q), "--out", str(out), "--force"],
                          capsys)
        assert_one_line(status, err, str(out), "even with --force")
    status, err = run(["quantize", "--checkpoint", str(q), "--out", str(q), "--force", "-q"],
                      capsys)
    assert_one_line(status, err, "even with --force")
    assert tree(tmp_path) == before
    for place in (Path("/"), Path.cwd(), Path.cwd().parent):
        with pytest.raises(PackageError, match="even with --force"):
            check_output(place, folder=True, force=True)


def test_force_replaces_a_link_itself_never_its_target(quantized, tmp_path, capsys):
    foreign = foreign_folder(tmp_path / "foreign")
    link = tmp_path / "link"
    link.symlink_to(foreign)
    assert cli.main(["export", "--quantized", str(quantized[1]), "--out", str(link),
                     "--force"]) == 0
    assert not link.is_symlink() and (link / "manifest.json").is_file()
    assert tree(foreign) == {"precious.txt": b"keep me"}
    load_package(link).check_consistency()


def test_file_outputs_and_the_other_commands_follow_the_policy(package_dir, tmp_path,
                                                                capsys):
    foreign_file = tmp_path / "notes.txt"
    foreign_file.write_text("mine")
    foreign = foreign_folder(tmp_path / "foreign")
    link = tmp_path / "link"
    link.symlink_to(foreign)
    before = tree(tmp_path)
    pkg = str(package_dir)
    cases = [
        ["quantize", "-q", "--out", str(foreign_file)],
        ["quantize", "-q", "--out", str(foreign)],
        ["train", "-q", "--epochs", "1", "--out", str(foreign_file)],
        ["train", "-q", "--epochs", "1", "--out", str(link)],
        ["golden", "--package", pkg, "--out", str(foreign)],
        ["golden", "--package", pkg, "--out", str(link)],
        ["golden-verify", "--package", pkg, "--out", str(foreign), "-q"],
        ["golden-verify", "--package", pkg, "--out", str(foreign_file), "-q"],
        ["package", "-q", "--out", str(foreign)],
        ["demo", "--build", str(link)],
    ]
    for argv in cases:
        status, err = run(argv, capsys)
        assert_one_line(status, err, argv[argv.index("--out" if "--out" in argv
                                                     else "--build") + 1])
    build = tmp_path / "build"
    foreign_folder(build / "golden")
    status, err = run(["demo", "--build", str(build)], capsys)
    assert_one_line(status, err, str(build / "golden"), "--force")
    assert not (build / "package").exists()
    assert tree(tmp_path) == {**before, **tree_prefixed(build, "build")}


def tree_prefixed(path: Path, prefix: str) -> dict:
    return {prefix: "dir", **{f"{prefix}/{k}": v for k, v in tree(path).items()}}


def test_golden_writes_its_marker_and_accepts_its_own_folder(package_dir, tmp_path, capsys):
    out = tmp_path / "golden"
    for _ in range(2):  # the second run finds its own marked folder
        assert cli.main(["golden", "--package", str(package_dir), "--out", str(out),
                         "--no-plot"]) == 0
    assert json.loads((out / MARKER_NAME).read_text())["tool"] == "cnn-cosim"
    forced = foreign_folder(tmp_path / "forced")
    assert cli.main(["golden", "--package", str(package_dir), "--out", str(forced),
                     "--no-plot", "--force"]) == 0
    assert (forced / "precious.txt").read_text() == "keep me"
    assert not (forced / MARKER_NAME).exists(), "a forced foreign folder is not marked"


def test_prepare_output_dir_marks_only_new_or_empty_folders(tmp_path):
    assert (prepare_output_dir(tmp_path / "new", "x") / MARKER_NAME).is_file()
    (tmp_path / "empty").mkdir()
    assert (prepare_output_dir(tmp_path / "empty", "x") / MARKER_NAME).is_file()
    with pytest.raises(PackageError, match="--force"):
        prepare_output_dir(foreign_folder(tmp_path / "f"), "x")


# ----------------------------------------------------------------------------- temp names


def plant(folder: Path, names: list[str], victim: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).symlink_to(victim)


def test_planted_symlinks_at_old_temp_names_are_never_written_through(quantized, tmp_path):
    """The old fixed temp names (`.report.json.tmp`, `.<name>.tmp`, index.html.tmp) are
    links to a file outside; every writer leaves that file alone."""
    victim = tmp_path / "outside" / "victim.txt"
    victim.parent.mkdir()
    victim.write_text("untouched")
    out = tmp_path / "out"
    plant(out, [".q.safetensors.tmp", ".ckpt.pt.tmp", ".report.json.tmp"], victim)
    save_quant_result(quantized[0], out / "q.safetensors")
    assert load_quant_result(out / "q.safetensors").int8_top1 == quantized[0].int8_top1
    model = torch.nn.Linear(2, 2)
    save_checkpoint({"format": "x", "state_dict": model.state_dict()}, out / "ckpt.pt")
    assert set(torch.load(out / "ckpt.pt", weights_only=True)) == {"format", "state_dict"}
    check = RebuildCheck(images=1, elements=10, identical_elements=10, top1_reference=1.0,
                         top1_rebuilt=1.0, top1_agreement=1.0)
    write_report(out, None, check)
    assert json.loads((out / "report.json").read_text())["rebuild_identical_fraction"] == 1.0
    from cosim.report import build_report

    build = tmp_path / "build"
    plant(build / "report", ["index.html.tmp", ".index.html.tmp", "summary.json"], victim)
    index = build_report(build, sqnr=[])
    assert index.read_text().startswith("<!DOCTYPE html>")
    assert not (build / "report" / "summary.json").is_symlink()
    assert victim.read_text() == "untouched"
    assert sorted(victim.parent.iterdir()) == [victim]


def test_save_checkpoint_writes_only_what_weights_only_loads(tmp_path):
    with pytest.raises(ValueError, match="weights_only"):
        save_checkpoint({"format": "x", "bad": Path("/")}, tmp_path / "c.pt")
    assert not (tmp_path / "c.pt").exists()


def test_no_fixed_temp_name_is_left_in_the_sources():
    pattern = re.compile(r"""["'][^"'\n]*\.tmp["']|with_name\(f?["']\.""")
    hits = []
    for folder in ("quant", "golden", "tb", "bench", "scripts"):
        for path in (REPO / folder).rglob("*.py"):
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if pattern.search(line):
                    hits.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert hits == []


# ----------------------------------------------------------------------------- atomic exchange


def test_atomic_directory_exchanges_in_one_step_or_falls_back(tmp_path, monkeypatch):
    calls = []
    real = formats._renameat2

    def spy(src, dst, flags):
        calls.append(flags)
        return real(src, dst, flags)

    monkeypatch.setattr(formats, "_renameat2", spy)
    final = tmp_path / "pkg"
    for version in ("1", "2"):
        with atomic_directory(final, marker=marker_bytes("test")) as tmp:
            (tmp / "v").write_text(version)
        assert (final / "v").read_text() == version
    assert calls == [formats._RENAME_NOREPLACE, formats._RENAME_EXCHANGE]
    monkeypatch.setattr(formats, "_renameat2", lambda *args: False)  # no renameat2
    with atomic_directory(final, marker=marker_bytes("test")) as tmp:
        (tmp / "v").write_text("3")
    assert (final / "v").read_text() == "3"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pkg"]


def test_leftovers_of_killed_runs_are_removed_and_nothing_else(tmp_path):
    import fcntl

    final = tmp_path / "pkg"
    ours = [tmp_path / ".pkg.tmp-abcd1234", tmp_path / ".pkg.old-zz_9ZZ99"]
    for folder in ours:
        folder.mkdir()
        (folder / MARKER_NAME).write_bytes(marker_bytes("package"))
        (folder / "weight.txt").write_text("1")
    empty = tmp_path / ".pkg.tmp-emptyemp"
    empty.mkdir()
    keep = [foreign_folder(tmp_path / ".pkg.tmp-foreign1"), tmp_path / ".pkg.tmp-short",
            tmp_path / ".other.tmp-abcd1234", tmp_path / ".pkg.old-lockedxx"]
    for folder in keep[1:]:
        folder.mkdir()
        (folder / MARKER_NAME).write_bytes(marker_bytes("package"))
    (tmp_path / ".pkg.tmp-filefile").write_text("a file, not a folder")
    keep.append(tmp_path / ".pkg.tmp-filefile")
    locked = os.open(keep[3], os.O_RDONLY)
    fcntl.flock(locked, fcntl.LOCK_EX)  # a running export holds it
    try:
        assert sorted(remove_leftovers(final)) == sorted([*ours, empty])
    finally:
        os.close(locked)
    assert all(path.exists() for path in keep)


def test_a_skeleton_that_differs_fails_the_export_check(quantized, tmp_path):
    """Check of the checker for the export-time skeleton check."""
    from cosim.quant import qgraph
    from cosim.quant.export import reference_state
    from cosim.quant.graph import structure

    result = quantized[0]
    layers = [structure(node) for node in describe(result.reference)]
    path = tmp_path / REFERENCE_MODEL
    write_tensor_file(path, reference_state(result.reference, layers), {})
    check_skeleton(result.reference, path, layers, result.data)
    real = qgraph.build

    def faulty(*a, **k):
        model = real(*a, **k)
        forward = model.forward
        model.forward = lambda x: forward(x) + 0.25
        return model

    qgraph.build = faulty
    try:
        with pytest.raises(ExportCheckError, match="differs"):
            check_skeleton(result.reference, path, layers, result.data)
    finally:
        qgraph.build = real


# ----------------------------------------------------------------------------- SIGKILL loop

KILLS = 20
LEFTOVER = re.compile(r"\.package\.(tmp|old)-")


def _mark_tiny(out: Path) -> bytes:
    make_tiny_package(out)
    (out / MARKER_NAME).write_bytes(marker_bytes("package"))
    return (out / "manifest.json").read_bytes()


def test_sigkill_during_export_leaves_the_old_or_the_new_package(quantized, tmp_path):
    parent = tmp_path / "work"
    out = parent / "package"
    outside = foreign_folder(tmp_path / "outside")
    plant(parent, [".package.tmp", ".package.old"], outside)  # the old fixed names
    old_manifest = _mark_tiny(out)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    worker = subprocess.Popen([sys.executable, str(REPO / "tests" / "export_worker.py"),
                               str(quantized[1]), str(out)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=env, cwd=REPO)

    def export(kill_after: float | None) -> int:
        worker.stdin.write("go\n" if kill_after is None else f"go {kill_after:.4f}\n")
        worker.stdin.flush()
        return int(worker.stdout.readline())

    try:
        assert worker.stdout.readline().strip() == "ready"
        durations = []
        for _ in range(2):  # the first run warms caches: the shorter one is the duration
            start = time.perf_counter()
            assert export(None) == 0
            durations.append(time.perf_counter() - start)
        duration = min(durations)
        new_manifest = (out / "manifest.json").read_bytes()
        assert new_manifest != old_manifest
        rng = random.Random(20)
        outcomes = {"old": 0, "new": 0}
        statuses: collections.Counter = collections.Counter()
        leftovers_seen = runs = 0
        while statuses[signal.SIGKILL] < KILLS:
            runs += 1
            assert runs <= 2 * KILLS, statuses
            _mark_tiny(out)
            status = export(rng.uniform(0.0, 1.1 * duration))
            statuses[os.WTERMSIG(status) if os.WIFSIGNALED(status) else -status] += 1
            manifest = (out / "manifest.json").read_bytes()
            assert manifest in (old_manifest, new_manifest), "neither the old nor the new"
            outcomes["old" if manifest == old_manifest else "new"] += 1
            package = load_package(out)
            package.check_consistency()
            leftovers_seen += sum(bool(LEFTOVER.match(p.name)) for p in parent.iterdir())
        assert set(statuses) <= {signal.SIGKILL, 0}, statuses  # killed or succeeded
        assert export(None) == 0
        assert (out / "manifest.json").read_bytes() == new_manifest
        load_package(out).check_consistency()
        left = [p.name for p in parent.iterdir() if LEFTOVER.match(p.name)]
        assert left == [], left
        assert tree(outside) == {"precious.txt": b"keep me"}
        print(f"export {duration:.2f} s (first {durations[0]:.2f} s); {runs} runs, "
              f"{statuses[signal.SIGKILL]} killed: {outcomes}; leftovers seen "
              f"{leftovers_seen}")
    finally:
        worker.stdin.close()
        worker.wait(timeout=60)
