"""`pip install` of this checkout into a fresh venv: one namespace, the package data, the
`cosim` command from a folder outside the repository.

The venv gets cnn-cosim only (`--no-deps`, no index); its dependencies (torch, cocotb,
...) come from the checkout's .venv through a folder of links named in a .pth file
(everything but the .venv's own editable cnn-cosim), so nothing is downloaded. The
wheel is built from a copy of the checkout's files (git ls-files, untracked included)
so the build writes nothing into the repository.

`installed_venv(tmp)` is shared with tests/test_example_project.py (one venv per
pytest process).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DIST = "cnn_cosim"
#: Generic names the installed distribution must not put at the top of site-packages.
FORBIDDEN = ("quant", "golden", "tb", "rtl", "tests", "bench", "scripts")

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


@dataclass(frozen=True)
class Venv:
    root: Path
    python: Path
    cosim: Path
    site: Path
    wheel: Path


def _run(argv: list[str | Path], **kwargs) -> subprocess.CompletedProcess:
    run = subprocess.run([str(a) for a in argv], capture_output=True, text=True,
                         timeout=kwargs.pop("timeout", 600), **kwargs)
    assert run.returncode == 0, f"{argv}: {run.stdout[-2000:]}\n{run.stderr[-3000:]}"
    return run


def source_copy(dest: Path) -> Path:
    """The checkout's files (tracked and untracked, not ignored) copied to `dest`."""
    files = _run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                 cwd=REPO).stdout.split("\0")
    for name in filter(None, files):
        source = REPO / name
        if source.is_file():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return dest


def deps_folder(dest: Path) -> Path:
    """Links to every entry of this interpreter's site-packages except cnn-cosim's own
    (the editable install), so a .pth naming `dest` gives a venv the dependencies."""
    site = Path(sysconfig.get_paths()["purelib"])
    dest.mkdir(parents=True)
    for entry in site.iterdir():
        name = entry.name
        if (name.startswith(("cnn_cosim", "__editable__", "_virtualenv", "cosim"))
                or name.endswith(".pth") or name == "__pycache__"):
            continue
        (dest / name).symlink_to(entry)
    return dest


#: Imported by every Python process of the test venvs (the .pth below): with
#: $COSIM_TEST_AUDIT set, an audit hook appends every path the process writes, creates,
#: renames or removes to that file ("<pid> <event> <absolute path>"), so a test can
#: prove where a run wrote (the simulator's embedded Python included).
AUDIT_MODULE = """\
import os, sys
_LOG = os.environ.get("COSIM_TEST_AUDIT")
if _LOG:
    _FD = os.open(_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    _WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
    _PATHS = {"os.mkdir": (0,), "os.remove": (0,), "os.rmdir": (0,), "os.rename": (0, 1),
              "os.symlink": (1,), "os.link": (1,), "shutil.rmtree": (0,),
              "shutil.copyfile": (1,), "os.truncate": (0,), "os.chmod": (0,),
              "os.utime": (0,)}

    def _hook(event, args):
        if event == "open":
            path, mode, flags = args
            writes = (any(c in mode for c in "wax+") if isinstance(mode, str)
                      else bool((flags or 0) & _WRITE))
            paths = [path] if writes else []
        elif event in _PATHS:
            paths = [args[i] for i in _PATHS[event] if i < len(args)]
        else:
            return
        for path in paths:
            if isinstance(path, (str, bytes, os.PathLike)):
                text = os.path.abspath(os.fsdecode(path))
                os.write(_FD, f"{os.getpid()} {event} {text}\\n".encode())

    sys.addaudithook(_hook)
"""


def make_venv(root: Path, deps: Path) -> tuple[Path, Path]:
    """A venv without pip whose .pth adds `deps` (and imports the audit hook kept
    there); (python, site-packages)."""
    base = getattr(sys, "_base_executable", sys.executable)
    _run([base, "-m", "venv", "--without-pip", root])
    python = root / "bin" / "python"
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]
                     ).stdout.strip())
    if not (deps / "_cosim_test_audit.py").is_file():
        (deps / "_cosim_test_audit.py").write_text(AUDIT_MODULE)
    (site / "_cosim_test_deps.pth").write_text(f"{deps}\nimport _cosim_test_audit\n")
    return python, site


def pip_into(python: Path, *args: str | Path) -> subprocess.CompletedProcess:
    """This interpreter's pip installing into the venv of `python` (no index, no deps)."""
    return _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps",
                 "--no-index", "--no-build-isolation", "--disable-pip-version-check",
                 *args])


_VENVS: dict[str, Venv] = {}


def installed_venv(tmp: Path) -> Venv:
    """A fresh venv with the checkout installed from a wheel, made in `tmp` by the first
    caller of this pytest process and shared by the later ones."""
    if "venv" in _VENVS:
        return _VENVS["venv"]
    src = source_copy(tmp / "src")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
          "--no-index", "--disable-pip-version-check", "-w", tmp / "dist", src])
    wheel = next((tmp / "dist").glob(f"{DIST}-*.whl"))
    python, site = make_venv(tmp / "venv", deps_folder(tmp / "deps"))
    pip_into(python, wheel)
    venv = Venv(tmp / "venv", python, tmp / "venv" / "bin" / "cosim", site, wheel)
    _VENVS["venv"] = venv
    return venv


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Venv:
    return installed_venv(tmp_path_factory.mktemp("install"))


def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "elsewhere"
    folder.mkdir(exist_ok=True)
    assert REPO not in folder.resolve().parents
    return folder


def clean_env() -> dict[str, str]:
    """The environment without this checkout's venv or a build folder override."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "COSIM_BUILD", "VIRTUAL_ENV")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if not p.startswith(str(REPO)))
    return env


def test_wheel_record_holds_one_namespace_and_the_package_data(venv):
    with zipfile.ZipFile(venv.wheel) as wheel:
        names = wheel.namelist()
        record = wheel.read(f"{DIST}-0.1.0.dist-info/RECORD").decode().splitlines()
        top_level = wheel.read(f"{DIST}-0.1.0.dist-info/top_level.txt").decode().split()
    recorded = [line.rsplit(",", 2)[0] for line in record if line]
    assert sorted(recorded) == sorted(names)
    tops = {name.split("/")[0] for name in recorded}
    assert tops == {"cosim", f"{DIST}-0.1.0.dist-info"}, tops
    assert top_level == ["cosim"]
    expected = {f"cosim/rtl/{p.name}" for p in (REPO / "rtl").glob("*.sv")}
    expected |= {f"cosim/quant/checkpoints/{p.name}"
                 for p in (REPO / "quant" / "checkpoints").glob("*.pt")}
    expected |= {f"cosim/golden/accelerators/{p.name}"
                 for p in (REPO / "golden" / "accelerators").glob("*.toml")}
    expected |= {f"cosim/projects/{p.name}" for p in (REPO / "cosim" / "projects").glob("*.toml")}
    expected |= {"cosim/tb/cnn_param.gtkw"}
    assert expected <= set(recorded), sorted(expected - set(recorded))
    assert len([n for n in expected if n.startswith("cosim/rtl/")]) >= 4


def test_site_packages_has_no_generic_top_level_module(venv):
    entries = {p.name for p in venv.site.iterdir()}
    for name in FORBIDDEN:
        assert name not in entries and f"{name}.py" not in entries, name
    ours = {e for e in entries if e.startswith(("cosim", DIST))}
    assert ours == {"cosim", f"{DIST}-0.1.0.dist-info"}, ours
    installed = (venv.site / f"{DIST}-0.1.0.dist-info" / "RECORD").read_text().splitlines()
    for line in installed:
        path = line.rsplit(",", 2)[0]
        assert path.split("/")[0] in ("cosim", f"{DIST}-0.1.0.dist-info", "..", "__pycache__"), \
            path
    for pattern in ("cosim/rtl/*.sv", "cosim/quant/checkpoints/*.pt",
                    "cosim/tb/cnn_param.gtkw"):
        assert list(venv.site.glob(pattern)), pattern
    shipped = sorted(p.name for p in (REPO / "golden" / "accelerators").glob("*.toml"))
    assert sorted(p.name for p in venv.site.glob("cosim/golden/accelerators/*.toml")) == shipped


def test_cosim_help_runs_outside_the_repository(venv, tmp_path):
    where = outside(tmp_path)
    run = _run([venv.cosim, "--help"], cwd=where, env=clean_env(), timeout=120)
    for command in ("run", "demo", "package", "golden", "golden-verify", "svpkg"):
        assert command in run.stdout
    run = _run([venv.cosim, "run", "--help"], cwd=where, env=clean_env(), timeout=120)
    assert "--project" in run.stdout
    assert list(where.iterdir()) == []  # --help writes nothing


def test_the_installed_namespace_is_the_venvs(venv, tmp_path):
    code = "\n".join([
        "import importlib.util, json, cosim",
        "from cosim.quant import workdir",
        "from cosim.tb import sim",
        "from cosim.project import shipped_rtl_dir, shipped_project",
        "from cosim.tb.env import CnnParamEnv, EnvConfig, WholeNetworkSeq",
        "from cosim.tb.env.scoreboard import Scoreboard",
        "from cosim.tb.env.coverage import CoverageCollector",
        "from cosim.tb.env.agent import StreamAgent, WriteAgent",
        "print(json.dumps({",
        "  'cosim': cosim.__file__, 'path': list(cosim.__path__),",
        "  'quant': importlib.util.find_spec('quant') is not None,",
        "  'golden': importlib.util.find_spec('golden') is not None,",
        "  'tb': importlib.util.find_spec('tb') is not None,",
        "  'checkout': str(workdir.checkout_root()), 'build': str(workdir.build_root()),",
        "  'rtl': str(sim.RTL_DIR), 'shipped_rtl': str(shipped_rtl_dir()),",
        "  'demo': shipped_project().is_file()}))",
    ])
    where = outside(tmp_path)
    import json

    out = json.loads(_run([venv.python, "-c", code], cwd=where, env=clean_env(),
                          timeout=300).stdout.strip().splitlines()[-1])
    site = str(venv.site.resolve())
    assert out["cosim"].startswith(site) and out["path"] == [str(venv.site / "cosim")]
    assert not out["quant"] and not out["golden"] and not out["tb"]
    assert out["checkout"] == "None"
    assert out["build"] == str(where.resolve() / "build")
    assert out["rtl"].startswith(site) and out["shipped_rtl"].startswith(site)
    assert out["demo"], "cosim/projects/demo.toml is not installed (package data)"


@pytest.mark.slow
def test_pip_install_from_a_git_url(tmp_path):
    """`pip install git+file://<checkout>`: the committed tree installs the same way."""
    deps = deps_folder(tmp_path / "deps")
    python, site = make_venv(tmp_path / "venv", deps)
    pip_into(python, f"git+file://{REPO}")
    entries = {p.name for p in site.iterdir()}
    assert "cosim" in entries and not any(name in entries for name in FORBIDDEN)
    run = _run([tmp_path / "venv" / "bin" / "cosim", "--help"], cwd=outside(tmp_path),
               env=clean_env(), timeout=120)
    assert "golden-verify" in run.stdout
