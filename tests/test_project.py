"""The project file cosim.toml (cosim/project.py): every key of the schema takes a bad
value and an unknown key next to it, and each gives one line `<file>: <key>: expected
..., got ...`; the CLI exits 2 on them; paths are relative to the project file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cosim.quant.choices import SHIPPED_CHECKPOINTS

from cosim import cli
from cosim.project import (
    SCHEMA,
    STIMULUS_TESTBENCH,
    ProjectError,
    available_stimuli,
    load_project,
    schema_keys,
    shipped_project,
    shipped_rtl_dir,
)

REPO_ACCELERATORS = Path(__file__).resolve().parents[1] / "golden" / "accelerators"

TOP = """module my_top (input logic clk);
endmodule
"""


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    return repr(value)


def toml_text(document: dict[str, Any]) -> str:
    """A tiny TOML writer: top-level scalars, then one [table] per dict."""
    lines = [f"{k} = {toml_value(v)}" for k, v in document.items() if not isinstance(v, dict)]
    for key, table in document.items():
        if isinstance(table, dict):
            lines.append(f"\n[{key}]")
            lines += [f"{k} = {toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def full_document() -> dict[str, Any]:
    """A valid project that sets every key of the schema."""
    return {
        "format_version": 1, "name": "full", "description": "every key",
        "model": {"checkpoint": "small_cnn", "arch": "small_cnn",
                  "args": {"num_classes": 10}},
        "data": {"name": "digits", "root": "data", "image_size": 32, "download": False,
                 "imagenette_size": "160px"},
        "quantization": {"method": "mse", "per_channel": False, "weight_range": "guarded",
                         "cle": True, "bias_correction": False, "calibration_images": 32,
                         "qat_epochs": 0, "qat_lr": 0.001, "seed": 0},
        "verify": {"images": 8, "golden_images": 4, "golden_images_224": 0},
        "accelerator": {"file": "default"},
        "rtl": {"sources": ["rtl/*.sv", "cosim:param_loader.sv"], "top": "my_top"},
        "simulation": {"stimulus": "stream", "simulators": ["icarus"],
                       "test": "WholeNetworkTest", "waves": False},
        "build": {"dir": "out"},
    }


def write(folder: Path, document: dict[str, Any]) -> Path:
    (folder / "rtl").mkdir(parents=True, exist_ok=True)
    (folder / "rtl" / "my_top.sv").write_text(TOP)
    path = folder / "cosim.toml"
    path.write_text(toml_text(document))
    return path


def one_line_error(path: Path, key: str) -> str:
    with pytest.raises(ProjectError) as caught:
        load_project(path)
    text = str(caught.value)
    assert "\n" not in text, text
    assert text.startswith(f"{path}: {key}: expected "), text
    assert ", got " in text, text
    return text


def get(document: dict[str, Any], dotted: str) -> tuple[dict[str, Any], str]:
    *tables, leaf = dotted.split(".")
    node = document
    for table in tables:
        node = node[table]
    return node, leaf


def bad_value(schema: dict[str, Any]) -> Any:
    """A value the schema entry rejects by type or range."""
    if "const" in schema:
        return schema["const"] + 1
    if "enum" in schema:
        return "no-such-choice"
    kind = schema.get("type")
    return {"string": 12, "integer": "many", "number": "fast", "boolean": "yes",
            "array": "not-a-list", "object": "not-a-table"}[kind]


def leaf_schema(dotted: str) -> dict[str, Any]:
    node = SCHEMA
    for part in dotted.split("."):
        node = node["properties"][part]
    return node


def test_the_full_document_is_valid_and_paths_are_relative_to_the_file(tmp_path):
    path = write(tmp_path / "proj", full_document())
    project = load_project(path)
    root = (tmp_path / "proj").resolve()
    assert project.root == root and project.name == "full"
    assert project.build == root / "out"
    assert project.data["root"] == str(root / "data")
    assert project.checkpoint == SHIPPED_CHECKPOINTS["small_cnn"].resolve()
    assert project.sources == (root / "rtl" / "my_top.sv", shipped_rtl_dir() / "param_loader.sv")
    assert project.top == "my_top" and project.model_args == {"num_classes": 10}
    # every leaf key of the schema is set by the full document (so the loop below is all)
    document = full_document()
    for key in schema_keys():
        node, leaf = get(document, key)
        assert leaf in node, key


@pytest.mark.parametrize("key", schema_keys())
def test_every_key_rejects_a_bad_value_in_one_line(key, tmp_path):
    document = full_document()
    node, leaf = get(document, key)
    value = bad_value(leaf_schema(key))
    node[leaf] = value
    text = one_line_error(write(tmp_path, document), key)
    assert json.dumps(value) in text


@pytest.mark.parametrize("table", [""] + [k for k, v in SCHEMA["properties"].items()
                                          if v.get("type") == "object"
                                          and v.get("additionalProperties") is False])
def test_every_table_rejects_an_unknown_key(table, tmp_path):
    document = full_document()
    (document[table] if table else document)["colour"] = "red"
    key = f"{table}.colour" if table else "colour"
    text = one_line_error(write(tmp_path, document), key)
    assert "unknown key" in text


@pytest.mark.parametrize("key,value,needle", [
    ("quantization.calibration_images", 0, ">= 1"),
    ("quantization.seed", -1, ">= 0"),
    ("verify.golden_images_224", -1, ">= 0"),
    ("data.image_size", 4096, "<= 1024"),
    ("quantization.qat_lr", 0, "> 0"),
    ("name", "has space", "matching"),
    ("rtl.top", "9lives", "matching"),
    ("rtl.sources", [], "at least 1"),
    ("simulation.simulators", ["icarus", "icarus"], "no repeated"),
    ("simulation.simulators", ["modelsim"], "one of"),
    ("model.args", {"k": {"x": 1}}, "a string, number"),
])
def test_ranges_and_shapes(key, value, needle, tmp_path):
    document = full_document()
    node, leaf = get(document, key)
    node[leaf] = value
    where = {"simulation.simulators": "simulation.simulators[0]",
             "model.args": "model.args.k"}.get(key, key) if needle in ("one of",
                                                                       "a string, number") \
        else key
    assert needle in one_line_error(write(tmp_path, document), where)


def test_format_version_is_required(tmp_path):
    document = full_document()
    del document["format_version"]
    assert "got nothing" in one_line_error(write(tmp_path, document), "format_version")


@pytest.mark.parametrize("edit,key,needle", [
    (lambda d: d["model"].update(checkpoint="missing.pt"), "model.checkpoint", "missing.pt"),
    (lambda d: d["model"].update(arch="not a factory"), "model.arch", "factory"),
    (lambda d: d["model"].pop("arch"), "model.args", "without it"),
    (lambda d: (d["model"].pop("checkpoint"), d["model"].update(arch="pkg.mod:make")),
     "model.checkpoint", "pkg.mod:make"),
    (lambda d: d["model"].update(args={"n": ["a,b"]}), "model.args.n", "commas"),
    (lambda d: d["accelerator"].update(file="nowhere.toml"), "accelerator.file",
     "nowhere.toml"),
    (lambda d: d["rtl"].update(sources=["rtl/*.v"]), "rtl.sources[0]", "matching none"),
    (lambda d: d["rtl"].update(sources=["rtl/my_top.sv", "cosim:nothing.sv"]),
     "rtl.sources[1]", "matching none"),
    (lambda d: d["rtl"].update(sources=["cosim:cnn_layout_pkg.sv", "rtl/my_top.sv"]),
     "rtl.sources[0]", "generates"),
    (lambda d: d["rtl"].update(top="other_top"), "rtl.top", "my_top"),
    (lambda d: d["rtl"].pop("top"), "rtl.top", "got nothing"),
    (lambda d: d["rtl"].pop("sources"), "rtl.sources", "got nothing"),
])
def test_meaning_errors_name_their_key(edit, key, needle, tmp_path):
    document = full_document()
    edit(document)
    assert needle in one_line_error(write(tmp_path, document), key)


@pytest.mark.parametrize("stimulus", ["axi4", "axi4lite", "dma"])
def test_other_stimulus_paths_are_accepted_or_not_available_yet(stimulus, tmp_path):
    document = full_document()
    document["simulation"]["stimulus"] = stimulus
    del document["simulation"]["test"], document["rtl"]
    path = write(tmp_path, document)
    if stimulus not in available_stimuli():
        assert "not available yet" in one_line_error(path, "simulation.stimulus")
        return
    module, tests, sources, top = STIMULUS_TESTBENCH[stimulus]
    project = load_project(path)
    assert project.stimulus == stimulus and project.test == tests[0]
    assert project.test_module == module and not project.reference_rtl
    assert project.top == top
    assert project.sources == tuple(shipped_rtl_dir() / name for name in sources)
    # a test of another path, and the stream-only waves run, are one-line errors
    document["simulation"]["test"] = "WholeNetworkTest"
    assert tests[0] in one_line_error(write(tmp_path, document), "simulation.test")
    document["simulation"].update(test=tests[0], waves=True)
    assert "stream top" in one_line_error(write(tmp_path, document), "simulation.waves")


def test_a_build_folder_inside_the_installed_package_is_refused(tmp_path):
    import cosim

    document = full_document()
    document["build"]["dir"] = str(Path(cosim.__file__).parent / "build")
    one_line_error(write(tmp_path, document), "build.dir")


def test_file_level_errors(tmp_path):
    missing = tmp_path / "nothing" / "cosim.toml"
    with pytest.raises(ProjectError, match="no such project file"):
        load_project(missing)
    with pytest.raises(ProjectError, match="is a folder"):
        load_project(tmp_path)
    bad = tmp_path / "bad.toml"
    bad.write_text("format_version = = 1\n")
    with pytest.raises(ProjectError, match=r"bad.toml: expected TOML"):
        load_project(bad)
    bad.write_bytes(b"name = \"\xff\"\n")
    with pytest.raises(ProjectError, match="expected UTF-8"):
        load_project(bad)


def test_defaults_of_a_minimal_project(tmp_path):
    path = tmp_path / "cosim.toml"
    path.write_text("format_version = 1\n")
    project = load_project(path)
    assert project.name == tmp_path.name
    assert project.reference_rtl and project.top == "cnn_param_top"
    assert project.simulators == ("icarus",) and project.stimulus == "stream"
    assert project.build == tmp_path.resolve() / "build"
    assert project.checkpoint == SHIPPED_CHECKPOINTS["mobilenet_v2_relu"].resolve()
    # arch alone: the built-in's shipped checkpoint
    path.write_text('format_version = 1\n[model]\narch = "resnet18"\n')
    assert load_project(path).checkpoint == SHIPPED_CHECKPOINTS["resnet18"].resolve()


def test_the_shipped_demo_project_is_valid(tmp_path):
    project = load_project(shipped_project("demo"), build=tmp_path / "b")
    assert project.reference_rtl and project.waves
    assert project.checkpoint == SHIPPED_CHECKPOINTS["mobilenet_v2_relu"].resolve()


def test_cosim_run_exits_2_with_the_one_line(tmp_path, capsys):
    document = full_document()
    document["quantization"]["method"] = "guess"
    path = write(tmp_path, document)
    assert cli.main(["run", "--project", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"cosim: error: {path}: quantization.method: ")
    assert not (tmp_path / "out").exists()  # nothing written before the checks pass


def test_cosim_run_finds_cosim_toml_in_the_working_directory(tmp_path):
    (tmp_path / "cosim.toml").write_text("format_version = 2\n")
    run = subprocess.run([sys.executable, "-m", "cosim.cli", "run"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "cosim.toml: format_version: expected 1, got 2" in lines[0]


def test_a_broken_accelerator_file_is_named_in_one_line(tmp_path, capsys):
    """The accelerator file is validated when the project loads (cosim.golden.accelerator):
    its own one-line error, naming that file and its key; exit 2 before any step."""
    from cosim.golden.accelerator import AcceleratorError

    accel = (REPO_ACCELERATORS / "acc32_16x16.toml").read_text()
    (tmp_path / "accel.toml").write_text(accel.replace("bits = 32", "bits = 12", 1))
    document = full_document()
    document["accelerator"]["file"] = "accel.toml"
    path = write(tmp_path, document)
    with pytest.raises(AcceleratorError) as caught:
        load_project(path)
    text = str(caught.value)
    assert "\n" not in text and text.startswith(f"{tmp_path / 'accel.toml'}: word.bits: ")
    assert cli.main(["run", "--project", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "accel.toml: word.bits" in err[0]
    assert not (tmp_path / "out").exists()
    # a shipped name resolves to the shipped file, with its name and rounding
    document["accelerator"]["file"] = "acc32_16x16"
    project = load_project(write(tmp_path, document))
    assert project.accelerator == (REPO_ACCELERATORS / "acc32_16x16.toml").resolve()
    assert project.accelerator_name == "acc32_16x16" and project.rounding == "half_even"


def test_cosim_run_refuses_a_foreign_folder_in_its_build_folder(tmp_path, capsys):
    """The build folder's package/, golden/, report/ and logs/ follow the --out rules
    (quant/outdir.py) before the first step: a folder cosim did not write is refused in
    one line naming it and --force; nothing is written."""
    path = write(tmp_path, full_document())
    foreign = tmp_path / "out" / "golden"
    foreign.mkdir(parents=True)
    (foreign / "mine.txt").write_text("not cosim's")
    assert cli.main(["run", "--project", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(foreign) in err[0] and "--force" in err[0], err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["golden"]
    assert [p.name for p in foreign.iterdir()] == ["mine.txt"]
