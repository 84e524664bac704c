"""The project file `cosim.toml`: what `cosim run` does for a user's own project.

One TOML file in the user's folder names the network, its data, the quantization
options, the accelerator file, the RTL sources and top, the stimulus path, the
simulators and the build folder (docs/your-repository.md, field by field)::

    format_version = 1
    name = "my-accel"

    [model]
    checkpoint = "small_cnn"          # a shipped checkpoint name, or a path
    [accelerator]
    file = "accel.toml"               # a path, or a shipped accelerator name
    [rtl]
    sources = ["rtl/*.sv", "cosim:param_loader.sv", "cosim:param_memory.sv"]
    top = "my_param_top"
    [simulation]
    simulators = ["icarus"]

`load_project(path)` parses it (tomllib), validates it against `SCHEMA` (JSON Schema
Draft 2020-12; unknown keys are errors) and resolves every path relative to the
project file's folder. Any mistake raises ProjectError, one line
`<file>: <dotted.key>: expected ..., got ...` (the CLI exits with status 2).
"""

from __future__ import annotations

import glob
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cosim.quant import tomlfile
from cosim.quant.choices import (
    BUILTIN_ARCH_NAMES,
    DATASETS,
    FACTORY_PATTERN,
    METHODS,
    SHIPPED_CHECKPOINTS,
    WEIGHT_RANGE_NAMES,
)

__all__ = ["PROJECT_FILE", "SCHEMA", "SIMULATORS", "STIMULI", "SIM_TESTS",
           "STIMULUS_TESTBENCH", "Project",
           "ProjectError", "load_project", "shipped_project", "shipped_rtl_dir",
           "shipped_accelerators", "available_stimuli"]

#: The project file `cosim run` looks for in the working directory.
PROJECT_FILE = "cosim.toml"
#: Largest project file read (bytes).
PROJECT_MAX_BYTES = 1 << 20
#: Simulators the testbench runs (cosim.tb.sim.SIMS).
SIMULATORS = ("icarus", "verilator")
#: Stimulus paths: the header stream; a host writing the image over AXI4 bursts or
#: AXI4-Lite; the DUT's own DMA fetching it from an AXI4 RAM model.
STIMULI = ("stream", "axi4", "axi4lite", "dma")
#: The testbench of each stimulus path: (cocotb module, its tests a project may run (the
#: first is the default), the shipped reference sources, the reference top).
STIMULUS_TESTBENCH: dict[str, tuple[str, tuple[str, ...], tuple[str, ...], str]] = {
    "stream": ("cosim.tb.tests_uvm", ("WholeNetworkTest", "RandomSubsetTest",
                                      "BackpressureTest"),
               ("param_loader.sv", "param_memory.sv", "cnn_param_top.sv"), "cnn_param_top"),
    "axi4": ("cosim.tb.tests_axi", ("AxiWholeNetworkTest", "AxiErrorsTest"),
             ("param_memory.sv", "axi_param_slave.sv", "axi_lite_param_slave.sv",
              "param_dma.sv", "cnn_param_axi_top.sv"), "cnn_param_axi_top"),
    "axi4lite": ("cosim.tb.tests_axi", ("AxiLiteWholeNetworkTest", "AxiLiteTest"),
                 ("param_memory.sv", "axi_param_slave.sv", "axi_lite_param_slave.sv",
                  "param_dma.sv", "cnn_param_axi_top.sv"), "cnn_param_axi_top"),
    "dma": ("cosim.tb.tests_axi", ("DmaWholeNetworkTest", "DmaErrorsTest"),
            ("param_memory.sv", "axi_param_slave.sv", "axi_lite_param_slave.sv",
             "param_dma.sv", "cnn_param_axi_top.sv"), "cnn_param_axi_top"),
}
#: Every test a project may name (simulation.test).
SIM_TESTS = tuple(dict.fromkeys(t for _, tests, _, _ in STIMULUS_TESTBENCH.values()
                                for t in tests))
#: Prefix of an RTL source shipped with cosim (cosim/rtl/): "cosim:param_loader.sv".
SHIPPED_RTL_PREFIX = "cosim:"
#: The layout package cosim run generates for the project's network and accelerator.
LAYOUT_PACKAGE = "cnn_layout_pkg.sv"

_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_MODULE = r"^[A-Za-z_][A-Za-z0-9_$]{0,127}$"
_ARG_VALUE = {"type": ["string", "integer", "number", "boolean"]}


def _table(properties: dict[str, Any]) -> dict[str, Any]:
    """A closed table of the schema: no keys but `properties`."""
    return {"type": "object", "additionalProperties": False, "properties": properties}


#: JSON Schema of the parsed cosim.toml (Draft 2020-12). Every table is closed.
SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "cosim.toml",
    "type": "object",
    "additionalProperties": False,
    "required": ["format_version"],
    "properties": {
        "format_version": {"const": 1, "description": "1"},
        "name": {"type": "string", "pattern": _NAME,
                 "description": "shown in the report (default: the project folder's name)"},
        "description": {"type": "string", "maxLength": 500},
        "model": _table({
            "checkpoint": {"type": "string", "minLength": 1,
                           "description": "a shipped checkpoint name ("
                           + ", ".join(SHIPPED_CHECKPOINTS) + ") or a checkpoint path"},
            "arch": {"type": "string", "minLength": 1,
                     "description": "a built-in arch (" + ", ".join(BUILTIN_ARCH_NAMES)
                     + ") or package.module:factory (cosim package --model)"},
            "args": {"type": "object",
                     "additionalProperties": {"anyOf": [
                         _ARG_VALUE, {"type": "array", "items": _ARG_VALUE}]},
                     "description": "keyword arguments of the model (--model-arg)"},
        }),
        "data": _table({
            "name": {"enum": list(DATASETS)},
            "root": {"type": "string", "minLength": 1},
            "image_size": {"type": "integer", "minimum": 8, "maximum": 1024},
            "download": {"type": "boolean"},
            "imagenette_size": {"enum": ["full", "320px", "160px"]},
        }),
        "quantization": _table({
            "method": {"enum": list(METHODS)},
            "per_channel": {"type": "boolean"},
            "weight_range": {"enum": sorted(WEIGHT_RANGE_NAMES)},
            "cle": {"type": "boolean"},
            "bias_correction": {"type": "boolean"},
            "calibration_images": {"type": "integer", "minimum": 1, "maximum": 1_000_000},
            "qat_epochs": {"type": "integer", "minimum": 0, "maximum": 10_000},
            "qat_lr": {"type": "number", "exclusiveMinimum": 0, "maximum": 10},
            "seed": {"type": "integer", "minimum": 0, "maximum": 2**31 - 1},
        }),
        "verify": _table({
            "images": {"type": "integer", "minimum": 1, "maximum": 100_000,
                       "description": "test images of the rebuild check (cosim verify)"},
            "golden_images": {"type": "integer", "minimum": 1, "maximum": 100_000,
                              "description": "golden-verify images"},
            "golden_images_224": {"type": "integer", "minimum": 0, "maximum": 1_000,
                                  "description": "golden-verify images at 224x224"},
        }),
        "accelerator": _table({
            "file": {"type": "string", "minLength": 1,
                     "description": "an accelerator file, or a shipped one's name"},
        }),
        "rtl": _table({
            "sources": {"type": "array", "minItems": 1, "maxItems": 1000,
                        "items": {"type": "string", "minLength": 1},
                        "description": "files or globs relative to the project; "
                                       "cosim:NAME is a file shipped in cosim/rtl/"},
            "top": {"type": "string", "pattern": _MODULE},
        }),
        "simulation": _table({
            "stimulus": {"enum": list(STIMULI)},
            "simulators": {"type": "array", "minItems": 1, "uniqueItems": True,
                           "items": {"enum": list(SIMULATORS)}},
            "test": {"enum": list(SIM_TESTS)},
            "waves": {"type": "boolean",
                      "description": "a short WAVES=1 run for the report's wave link"},
        }),
        "build": _table({
            "dir": {"type": "string", "minLength": 1,
                    "description": "the build folder (default: build next to cosim.toml)"},
        }),
    },
}


class ProjectError(tomlfile.TomlFileError):
    """A mistake in a project file: one line naming the file, the key and what was
    expected."""


@dataclass(frozen=True)
class Project:
    """A resolved project: every path absolute, every option with its value.

    checkpoint: the float checkpoint; arch/model_args: --model/--model-arg (None/{}:
    what the checkpoint records). data: DataConfig fields given (the rest: the
    checkpoint's). quant: the `cosim quantize` options. accelerator: an accelerator
    file, or None for the default layout; rounding its datapath rounding (half_even or
    half_up: golden-verify models it). sources: the RTL sources (the layout package
    is generated and compiled before them). stimulus: "stream", "axi4", "axi4lite" or
    "dma". build: where everything is written.
    """

    path: Path | None
    root: Path
    name: str
    checkpoint: Path
    build: Path
    sources: tuple[Path, ...]
    top: str
    arch: str | None = None
    model_args: Mapping[str, Any] = field(default_factory=dict)
    data: Mapping[str, Any] = field(default_factory=dict)
    quant: Mapping[str, Any] = field(default_factory=dict)
    accelerator: Path | None = None
    accelerator_name: str = "default"
    rounding: str = "half_even"
    stimulus: str = "stream"
    simulators: tuple[str, ...] = ("icarus",)
    test: str = "WholeNetworkTest"
    waves: bool = False
    images: int = 64
    golden_images: int = 54
    golden_images_224: int = 4
    description: str = ""

    def with_options(self, **changes: Any) -> Project:
        """A copy with some fields replaced (cosim demo's options over its project)."""
        return replace(self, **changes)

    @property
    def reference_rtl(self) -> bool:
        """Whether the RTL is exactly the shipped reference of the stream path (loader,
        memory, top)."""
        _, _, names, top = STIMULUS_TESTBENCH["stream"]
        shipped = shipped_rtl_dir()
        return (self.stimulus == "stream" and self.top == top
                and tuple(self.sources) == tuple(shipped / name for name in names))

    @property
    def test_module(self) -> str:
        """The cocotb module of the project's stimulus path."""
        return STIMULUS_TESTBENCH[self.stimulus][0]

    def describe(self) -> dict[str, Any]:
        """The project as the report and summary.json show it (plain JSON)."""
        return {"name": self.name, "file": str(self.path) if self.path else None,
                "checkpoint": str(self.checkpoint), "arch": self.arch,
                "accelerator": {"name": self.accelerator_name,
                                "file": str(self.accelerator) if self.accelerator else None},
                "rtl": {"top": self.top, "sources": [str(p) for p in self.sources]},
                "stimulus": self.stimulus, "simulators": list(self.simulators),
                "test": self.test, "build": str(self.build)}


# --------------------------------------------------------------------------- locations


def shipped_rtl_dir() -> Path:
    """The folder of the RTL shipped with cosim (cosim/rtl/ installed; rtl/ in a checkout)."""
    import cosim

    for folder in cosim.__path__:
        candidate = Path(folder) / "rtl"
        if (candidate / "param_loader.sv").is_file():
            return candidate.resolve()
    raise FileNotFoundError("cosim's RTL folder (rtl/ with param_loader.sv) is missing")


def _package_dir() -> Path:
    import cosim

    return Path(cosim.__file__).resolve().parent


def shipped_project(name: str = "demo") -> Path:
    """The project file shipped with cosim (cosim/projects/<name>.toml)."""
    return _package_dir() / "projects" / f"{name}.toml"


def shipped_accelerators() -> dict[str, Path]:
    """Shipped accelerator files by name (cosim.golden.accelerator.SHIPPED_ACCELERATORS)."""
    from cosim.golden.accelerator import SHIPPED_ACCELERATORS

    return {str(name): Path(path).resolve() for name, path in SHIPPED_ACCELERATORS.items()}


def available_stimuli() -> tuple[str, ...]:
    """The stimulus paths this installation can run: its testbench module and reference
    RTL are there."""
    import importlib.util

    rtl = shipped_rtl_dir()
    out = []
    for name, (module, _, sources, _) in STIMULUS_TESTBENCH.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except ImportError:
            found = False
        if found and all((rtl / source).is_file() for source in sources):
            out.append(name)
    return tuple(out)


# --------------------------------------------------------------------------- validation


def _got(value: Any) -> str:
    return tomlfile.shown(value)


def _schema_error(path: Path, document: Any) -> ProjectError | None:
    """The first (most relevant) schema violation as a ProjectError, or None."""
    found = tomlfile.schema_error(SCHEMA, document)
    return None if found is None else ProjectError(path, *found)


def _read_toml(path: Path) -> dict[str, Any]:
    def error(problem: tomlfile.TomlProblem) -> ProjectError:
        return ProjectError(path, "", tomlfile.problem_text(
            problem, missing="no such project file; expected a cosim.toml (cosim run "
            "--project FILE)", folder="is a folder; expected a project file (cosim.toml)",
            limit="1 MiB"))

    return tomlfile.read_toml(path, PROJECT_MAX_BYTES, error)


def _resolve_path(root: Path, text: str) -> Path:
    return (root / Path(text).expanduser()).resolve()


def _checkpoint(path: Path, root: Path, model: Mapping[str, Any]) -> Path:
    arch = model.get("arch")
    text = model.get("checkpoint")
    if text is None:
        if arch in SHIPPED_CHECKPOINTS:
            return SHIPPED_CHECKPOINTS[arch].resolve()
        if arch is not None:
            raise ProjectError(path, "model.checkpoint", f"expected a checkpoint for arch "
                               f"{_got(arch)} (only built-in archs have a shipped one), "
                               "got nothing")
        return SHIPPED_CHECKPOINTS["mobilenet_v2_relu"].resolve()
    if text in SHIPPED_CHECKPOINTS:
        return SHIPPED_CHECKPOINTS[text].resolve()
    by_stem = {p.stem: p for p in SHIPPED_CHECKPOINTS.values()}
    if text in by_stem:
        return by_stem[text].resolve()
    candidate = _resolve_path(root, text)
    if not candidate.is_file():
        raise ProjectError(path, "model.checkpoint",
                           f"expected a shipped checkpoint name ({', '.join(SHIPPED_CHECKPOINTS)})"
                           f" or an existing file, got {_got(text)} ({candidate} is not a file)")
    return candidate


def _model(path: Path, model: Mapping[str, Any]) -> tuple[str | None, dict[str, Any]]:
    arch, args = model.get("arch"), dict(model.get("args") or {})
    if arch is not None and arch not in BUILTIN_ARCH_NAMES and not re.match(FACTORY_PATTERN,
                                                                            arch):
        raise ProjectError(path, "model.arch", f"expected a built-in arch "
                           f"({', '.join(BUILTIN_ARCH_NAMES)}) or package.module:factory, "
                           f"got {_got(arch)}")
    if args and arch is None:
        raise ProjectError(path, "model.args", f"expected model.arch (the factory these are "
                           f"arguments of), got args {_got(args)} without it")
    for key, value in args.items():
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key):
            raise ProjectError(path, f"model.args.{key}", f"expected a Python identifier as "
                               f"the key, got {_got(key)}")
        if isinstance(value, list) and any(isinstance(v, str) and re.search(r"[,\[\]]", v)
                                           for v in value):
            raise ProjectError(path, f"model.args.{key}", "expected list strings without "
                               f"commas or brackets, got {_got(value)}")
    return arch, args


def _accelerator(path: Path, root: Path, text: str | None
                 ) -> tuple[Path | None, str, str]:
    """(accelerator file, or None for the default when the project names none; its name;
    its datapath rounding)."""
    from cosim.golden.accelerator import load_accelerator

    if text is None:
        return None, "default", "half_even"
    shipped = shipped_accelerators()
    if text in shipped:
        file = shipped[text]
    else:
        file = _resolve_path(root, text)
        if not file.is_file():
            raise ProjectError(path, "accelerator.file", f"expected an accelerator file or a "
                               f"shipped name ({', '.join(sorted(shipped))}), got "
                               f"{_got(text)} ({file} is not a file)")
    accel = load_accelerator(file)  # AcceleratorError: one line naming the file and key
    return file, str(accel.name), str(accel.rounding)


def _sources(path: Path, root: Path, items: list[str]) -> tuple[Path, ...]:
    shipped = shipped_rtl_dir()
    out: list[Path] = []
    for index, item in enumerate(items):
        key = f"rtl.sources[{index}]"
        if item.startswith(SHIPPED_RTL_PREFIX):
            name = item[len(SHIPPED_RTL_PREFIX):]
            matches = sorted(shipped.glob(name)) if name else []
            where = f"in {shipped}"
        else:
            pattern = str(Path(root, Path(item).expanduser()))
            matches = sorted(Path(p) for p in glob.glob(pattern, recursive=True))
            where = f"({pattern})"
        matches = [p.resolve() for p in matches if p.is_file()]
        if not matches:
            raise ProjectError(path, key, f"expected a file or glob matching files {where}, "
                               f"got {_got(item)} matching none")
        for match in matches:
            if match.name == LAYOUT_PACKAGE:
                raise ProjectError(path, key, f"expected your own sources: cosim run generates "
                                   f"{LAYOUT_PACKAGE} for the project's network and "
                                   f"accelerator, got {_got(item)} naming {match}")
            if match not in out:
                out.append(match)
    return tuple(out)


_MODULE_DECL = re.compile(r"^\s*module\s+(?:automatic\s+|static\s+)?([A-Za-z_][A-Za-z0-9_$]*)",
                          re.MULTILINE)


def declared_modules(sources: tuple[Path, ...]) -> set[str]:
    """Module names the sources declare (a plain `module NAME` scan)."""
    names: set[str] = set()
    for source in sources:
        text = re.sub(r"//[^\n]*|/\*.*?\*/", "", source.read_text(errors="replace"),
                      flags=re.DOTALL)
        names.update(_MODULE_DECL.findall(text))
    return names


def load_project(path: str | Path, *, build: str | Path | None = None) -> Project:
    """Parse, validate and resolve a project file (ProjectError: one line). `build`
    overrides the build folder (cosim run --build)."""
    path = Path(path).expanduser().absolute()
    document = _read_toml(path)
    error = _schema_error(path, document)
    if error is not None:
        raise error
    root = path.parent.resolve()
    model, data = document.get("model", {}), dict(document.get("data", {}))
    arch, args = _model(path, model)
    checkpoint = _checkpoint(path, root, model)
    if "root" in data:
        data["root"] = str(_resolve_path(root, data["root"]))
    accel, accel_name, rounding = _accelerator(path, root,
                                               document.get("accelerator", {}).get("file"))
    sim = document.get("simulation", {})
    stimulus = sim.get("stimulus", "stream")
    if stimulus not in available_stimuli():
        raise ProjectError(path, "simulation.stimulus", f"expected one of "
                           f"{', '.join(available_stimuli())} (the {stimulus} path is not "
                           f"available yet in this cosim), got {_got(stimulus)}")
    _, tests, reference, reference_top = STIMULUS_TESTBENCH[stimulus]
    test = sim.get("test", tests[0])
    if test not in tests:
        raise ProjectError(path, "simulation.test", f"expected a test of the {stimulus} path "
                           f"({', '.join(tests)}), got {_got(test)}")
    waves = sim.get("waves", False)
    if waves and stimulus != "stream":
        raise ProjectError(path, "simulation.waves", f"expected false with stimulus "
                           f"{_got(stimulus)} (the short waves run drives the stream top), "
                           "got true")
    rtl = document.get("rtl", {})
    shipped = shipped_rtl_dir()
    if "sources" in rtl:
        sources = _sources(path, root, rtl["sources"])
        top = rtl.get("top")
        if top is None:
            raise ProjectError(path, "rtl.top", "expected the top module of rtl.sources, "
                               "got nothing")
    else:
        if "top" in rtl:
            raise ProjectError(path, "rtl.sources", f"expected the sources of rtl.top "
                               f"{_got(rtl['top'])}, got nothing")
        sources = tuple(shipped / name for name in reference)
        top = reference_top
    modules = declared_modules(sources)
    if top not in modules:
        raise ProjectError(path, "rtl.top", f"expected a module declared in rtl.sources "
                           f"({', '.join(sorted(modules)) or 'none found'}), got {_got(top)}")
    if build is not None:
        build_dir = Path(build).expanduser().absolute()
    else:
        build_dir = _resolve_path(root, document.get("build", {}).get("dir", "build"))
    package = _package_dir()
    if build_dir == package or package in build_dir.parents:
        raise ProjectError(path, "build.dir", f"expected a folder outside the installed "
                           f"cosim package ({package}), got {build_dir}")
    verify = document.get("verify", {})
    return Project(
        path=path, root=root, name=document.get("name", root.name or "project"),
        description=document.get("description", ""), checkpoint=checkpoint, build=build_dir,
        sources=sources, top=top, arch=arch, model_args=args, data=data,
        quant=dict(document.get("quantization", {})), accelerator=accel,
        accelerator_name=accel_name, rounding=rounding, stimulus=stimulus,
        simulators=tuple(sim.get("simulators", ["icarus"])),
        test=test, waves=waves,
        images=verify.get("images", 64), golden_images=verify.get("golden_images", 54),
        golden_images_224=verify.get("golden_images_224", 4))


def schema_keys(schema: Mapping[str, Any] = SCHEMA, prefix: str = "") -> list[str]:
    """Every leaf key of the schema, dotted (`quantization.method`, ...)."""
    return tomlfile.schema_keys(schema, prefix)
