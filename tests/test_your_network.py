"""Your network: every built-in architecture and a user's own factory through the CLI.

The ResNet-18 runs (marker `networks`: 11.2M weights, minutes each) are `make
networks` (in .ci/run), the rest is `make test`.

For each shipped checkpoint other than the default (the small CNN and ResNet-18; the
default MobileNetV2 is tests/test_flow.py's): `cosim package` (rebuild from the txt
files identical to the reference, int8 top-1 within 1.0 point of float), `cosim
golden` and `cosim golden-verify` (every layer identical on at least 50 test images).
Then a torchvision ResNet-18 built by a user factory from a torchvision-style
checkpoint goes through the same commands, and the commands that only read a package
never import the factory's module. The figures asserted are this run's own.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from cosim.quant.choices import SHIPPED_CHECKPOINTS

REPO = Path(__file__).resolve().parents[1]
USER_MODELS = Path(__file__).resolve().parent / "user_models"
COSIM = [sys.executable, "-m", "cosim.cli"]
GOLDEN_VERIFY_IMAGES = 54

pytestmark = pytest.mark.slow


def cosim(args: list[str], cwd: Path = REPO, env: dict | None = None
          ) -> subprocess.CompletedProcess:
    """One cosim command in its own process (as a user types it)."""
    return subprocess.run([*COSIM, *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
                          timeout=1800)


def assert_ok(run: subprocess.CompletedProcess) -> None:
    assert run.returncode == 0, f"exit {run.returncode}\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"


def read(path: Path) -> dict:
    return json.loads(path.read_text())


def full_flow(checkpoint: Path, out: Path, options: tuple[str, ...] = (), cwd: Path = REPO,
              env: dict | None = None) -> tuple[dict, dict, dict]:
    """package -> golden -> golden-verify; returns (report.json, manifest, verify.json)."""
    package, golden = out / "package", out / "golden"
    assert_ok(cosim(["package", "--checkpoint", str(checkpoint), "--out", str(package),
                     "--images", "64", "-q", *options], cwd, env))
    assert_ok(cosim(["golden", "--package", str(package), "--out", str(golden), "-q"],
                    cwd, env))
    assert_ok(cosim(["golden-verify", "--package", str(package), "--out", str(golden),
                     "--images", str(GOLDEN_VERIFY_IMAGES), "--images-224", "0", "-q"],
                    cwd, env))
    return (read(package / "report.json"), read(package / "manifest.json"),
            read(golden / "verify.json"))


def assert_verified(report: dict, verify: dict) -> None:
    assert report["rebuild_identical_fraction"] == 1.0
    assert abs(report["float_top1"] - report["int8_top1"]) <= 1.0, report
    assert verify["images"] >= 50
    assert verify["identical"] and verify["reference_identical"]
    assert all(layer["identical_fraction"] == 1.0 for layer in verify["layers"])


@pytest.fixture(scope="module",
                params=["small_cnn", pytest.param("resnet18", marks=pytest.mark.networks)])
def builtin_run(request, tmp_path_factory):
    arch = request.param
    out = tmp_path_factory.mktemp(arch)
    return arch, out, full_flow(SHIPPED_CHECKPOINTS[arch], out)


def test_builtin_network_is_packaged_verified_and_golden_identical(builtin_run):
    arch, out, (report, manifest, verify) = builtin_run
    assert manifest["model"]["arch"] == arch
    assert_verified(report, verify)
    names = [layer["name"] for layer in manifest["layers"]]
    assert [layer["name"] for layer in verify["layers"]] == names
    weighted = [layer for layer in manifest["layers"] if layer["op"] in ("conv2d", "linear")]
    assert manifest["model"]["weighted_layers"] == len(weighted)
    golden_layout = read(out / "golden" / "layout.json")
    assert len(golden_layout["layers"]) == len(weighted)


def test_builtin_network_passes_cosim_check(builtin_run):
    """`cosim check` (every validation, no writes) accepts the package and its layout."""
    _, out, _ = builtin_run
    run = cosim(["check", "--package", str(out / "package"),
                 "--layout", str(out / "golden" / "layout.json")])
    assert_ok(run)


def test_a_changed_stride_is_refused_by_the_architecture_check(builtin_run, tmp_path):
    """The manifest of a built-in arch is compared with that architecture: an edited
    stride (consistent with nothing) is one line naming the layer and the key."""
    arch, out, _ = builtin_run
    manifest = read(out / "package" / "manifest.json")
    victim = next(layer for layer in manifest["layers"] if layer["op"] == "conv2d")
    victim["dilation"] = [2, 2]
    package = tmp_path / "package"
    shutil.copytree(out / "package", package)
    (package / "manifest.json").write_text(json.dumps(manifest, indent=1))
    run = cosim(["check", "--package", str(package)])
    assert run.returncode == 2, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and victim["name"] in lines[0] and "dilation" in lines[0], lines


# --- a user's own factory ----------------------------------------------------------------


@pytest.fixture(scope="module")
def torchvision_checkpoint(tmp_path_factory) -> Path:
    """The shipped ResNet-18 weights as torchvision's reference scripts save them."""
    from cosim.quant.train import load_checkpoint

    model, _ = load_checkpoint(SHIPPED_CHECKPOINTS["resnet18"])
    path = tmp_path_factory.mktemp("tv") / "resnet18_torchvision.pth"
    torch.save({"model": model.state_dict(), "epoch": 19}, path)
    return path


@pytest.mark.networks
def test_user_factory_resnet18_from_a_torchvision_checkpoint(torchvision_checkpoint,
                                                             tmp_path):
    marker = tmp_path / "imports.txt"
    env = {"COSIM_TEST_IMPORT_MARKER": str(marker)}
    factory = "my_nets:torchvision_resnet18"
    report, manifest, verify = full_flow(
        torchvision_checkpoint, tmp_path, ("--model", factory, "--model-arg",
                                           "num_classes=10", "--data", "digits",
                                           "--image-size", "32",
                                           "--calibration-images", "128"),
        cwd=USER_MODELS, env=env)
    assert manifest["model"]["arch"] == factory
    assert manifest["model"]["kwargs"] == {"num_classes": 10}
    assert_verified(report, verify)
    # `package` named the factory: it was imported. golden and golden-verify read the
    # package only: they did not import it (one line per import).
    assert marker.read_text().count("imported") == 1


def test_commands_that_read_a_package_never_import_a_factory_it_names(tmp_path):
    """A manifest naming a factory is verified without importing it, even with the
    module importable (cwd = its folder)."""
    marker = tmp_path / "imports.txt"
    env = {"COSIM_TEST_IMPORT_MARKER": str(marker)}
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(),
                                torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                torch.nn.Linear(4, 10))
    state = tmp_path / "tiny.pt"
    torch.save(model.state_dict(), state)
    (tmp_path / "tiny_nets.py").write_text(
        "import os\nimport torch.nn as nn\n"
        "if os.environ.get('COSIM_TEST_IMPORT_MARKER'):\n"
        "    open(os.environ['COSIM_TEST_IMPORT_MARKER'], 'a').write('imported\\n')\n"
        "def tiny(num_classes=10):\n"
        "    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1),\n"
        "                         nn.Flatten(), nn.Linear(4, num_classes))\n")
    package = tmp_path / "package"
    assert_ok(cosim(["package", "--checkpoint", str(state), "--model", "tiny_nets:tiny",
                     "--data", "digits", "--calibration-images", "32", "--images", "8",
                     "--out", str(package), "-q"], tmp_path, env))
    assert marker.read_text().count("imported") == 1
    for args in (["verify", "--package", str(package), "--images", "8", "-q"],
                 ["check", "--package", str(package)],
                 ["golden", "--package", str(package), "--out", str(tmp_path / "g"), "-q"],
                 ["golden-verify", "--package", str(package), "--out", str(tmp_path / "g"),
                  "--images", "4", "--images-224", "0", "-q"]):
        assert_ok(cosim(args, tmp_path, env))
    assert marker.read_text().count("imported") == 1
    checked = cosim(["check", "--package", str(package)], tmp_path, env)
    assert "note: model arch 'tiny_nets:tiny' is not a built-in architecture" in checked.stdout


def test_an_unsupported_op_is_one_line_naming_the_node(tmp_path):
    sys.path.insert(0, str(USER_MODELS))
    try:
        from my_nets import with_sigmoid
    finally:
        sys.path.remove(str(USER_MODELS))
    state = tmp_path / "sigmoid.pt"
    torch.save(with_sigmoid().state_dict(), state)
    run = cosim(["package", "--checkpoint", str(state), "--model", "my_nets:with_sigmoid",
                 "--data", "digits", "--out", str(tmp_path / "package"), "-q"], USER_MODELS)
    assert run.returncode == 2, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "'act'" in lines[0] and "Sigmoid" in lines[0], lines
    assert "Traceback" not in run.stderr
    assert not (tmp_path / "package").exists()


def test_a_factory_is_imported_only_when_named(tmp_path):
    """A plain state dict without --model is refused in one line (nothing to build)."""
    state = tmp_path / "plain.pt"
    torch.save({"conv.weight": torch.zeros(8, 3, 3, 3)}, state)
    run = cosim(["package", "--checkpoint", str(state), "--out", str(tmp_path / "p"), "-q"])
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "--model" in lines[0], lines


# --- the demo on another network -----------------------------------------------------------


DEMOS = {"small_cnn": ["--calibration-images", "64", "--images", "8", "--verify-images", "8"],
         "resnet18": ["--no-waves"]}


@pytest.mark.skipif(shutil.which("iverilog") is None, reason="needs Icarus")
@pytest.mark.parametrize("arch", ["small_cnn", pytest.param("resnet18",
                                                            marks=pytest.mark.networks)])
def test_demo_of_another_network_streams_it_through_the_rtl_and_reports_it(arch, tmp_path):
    """`cosim demo --checkpoint ... --model ...`: the whole run and its report for that
    network (ResNet-18's stays in build/networks/resnet18/ to be looked at)."""
    build = tmp_path / "build" if arch == "small_cnn" else REPO / "build" / "networks" / arch
    run = cosim(["demo", "--checkpoint", str(SHIPPED_CHECKPOINTS[arch]), "--model", arch,
                 "--build", str(build), "--verify-images-224", "0", "--force", *DEMOS[arch]])
    assert_ok(run)
    manifest = read(build / "package" / "manifest.json")
    simulation = read(build / "test-results" / "WholeNetworkTest-icarus.json")
    summary = read(build / "report" / "summary.json")
    layout = read(build / "golden" / "layout.json")
    assert manifest["model"]["arch"] == arch
    assert simulation["mismatches"] == 0
    assert simulation["words_checked"] == simulation["words_expected"] == layout["used_words"]
    assert summary["simulators"]["icarus"]["words_checked"] == simulation["words_checked"]
    page = (build / "report" / "index.html").read_text()
    last = [layer["name"] for layer in manifest["layers"] if layer["op"] == "linear"][-1]
    assert arch in page and last in page


def test_golden_verify_takes_the_data_options_over_the_manifest(builtin_run, tmp_path):
    """--data/--root override the manifest's dataset (e.g. after the data moved): a
    folder that is not there is named in one line, so the override reached the loader."""
    _, out, _ = builtin_run
    missing = tmp_path / "moved-away"
    run = cosim(["golden-verify", "--package", str(out / "package"), "--out",
                 str(tmp_path / "g"), "--data", "imagefolder", "--root", str(missing),
                 "--images", "4", "--images-224", "0", "-q"])
    assert run.returncode == 2, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and str(missing) in lines[0], lines
    run = cosim(["golden-verify", "--package", str(out / "package"), "--out",
                 str(tmp_path / "g"), "--data", "digits", "--images", "4",
                 "--images-224", "0", "-q"])
    assert_ok(run)
    assert read(tmp_path / "g" / "verify.json")["images"] == 4
