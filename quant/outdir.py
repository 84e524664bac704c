"""Where the tool may write: the policy of every `--out` (and `cosim demo --build`).

A folder the tool writes carries a marker file, `.cosim-output` (JSON: tool name,
what kind of folder, marker format). An output path is accepted when it

- does not exist (its first existing ancestor must be a folder), or
- is an empty folder, or a folder carrying the marker (replaced or written into), or
- for a file output: a regular file that `recognize` says the tool wrote.

Anything else (a non-empty folder without the marker, a file where a folder is
wanted, a symbolic link, a FIFO or device) is refused with one line naming the
path and `--force`. With `force=True` it is replaced; a symbolic link is then
replaced as a link, never followed. Never accepted, even with `force`: `/`, the
home folder, the working directory, any folder that holds one of them, and any
path equal to or holding an input of the command (`cosim export --quantized
build/x/q.safetensors --out build/x`).

Errors are `quant.formats.PackageError` (one line, exit status 2).
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable, Iterable
from pathlib import Path

from cosim.quant.formats import MARKER_NAME, PackageError, PathLike, atomic_write_bytes

__all__ = ["MARKER_NAME", "TOOL", "check_output", "is_tool_folder", "marker_bytes",
           "prepare_output_dir"]

TOOL = "cnn-cosim"
MARKER_FORMAT = 1
_MARKER_MAX_BYTES = 4096


def marker_bytes(kind: str) -> bytes:
    """The marker file's content for a folder of `kind` ('package', 'golden', ...)."""
    return (json.dumps({"tool": TOOL, "kind": kind, "format": MARKER_FORMAT}) + "\n").encode()


def is_tool_folder(path: PathLike) -> bool:
    """True if `path` is a real folder (not a link) holding a regular marker file of ours."""
    path = Path(path)
    try:
        if not stat.S_ISDIR(os.lstat(path).st_mode):
            return False
        marker = path / MARKER_NAME
        info = os.lstat(marker)
        if not stat.S_ISREG(info.st_mode) or info.st_size > _MARKER_MAX_BYTES:
            return False
        content = json.loads(marker.read_bytes())
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(content, dict) and content.get("tool") == TOOL


def _absolute(path: PathLike) -> Path:
    """Absolute path with every component but the last resolved (the last one is what
    is written, so a link there is seen as a link, not followed)."""
    path = Path(os.path.abspath(os.fspath(path)))
    if path.name in ("", ".", ".."):
        return path.resolve()
    return path.parent.resolve() / path.name


def _holds(outer: Path, inner: Path) -> bool:
    """True if `outer` is `inner` or one of its ancestors."""
    return outer == inner or outer in inner.parents


def _protected(inputs: Iterable[PathLike]) -> list[tuple[Path, str]]:
    places = [(Path("/"), "the root folder"), (Path.home().resolve(), "your home folder"),
              (Path.cwd().resolve(), "the working directory")]
    for item in inputs:
        if item is None:
            continue
        absolute = Path(os.path.abspath(os.fspath(item)))
        places.append((absolute, f"the input {item}"))
        places.append((absolute.resolve(), f"the input {item}"))
    return places


def _refuse(path: PathLike, what: str, force: bool) -> None:
    if not force:
        raise PackageError(path, f"{what}; refusing to replace it (pass --force to replace "
                                 "it anyway)")


def check_output(out: PathLike, *, folder: bool, force: bool = False,
                 inputs: Iterable[PathLike] = (),
                 recognize: Callable[[Path], bool] | None = None,
                 any_folder: bool = False) -> Path:
    """Check that `out` may be written (see the module docstring); return its absolute path.

    `folder`: the output is a folder (else a file). `inputs`: paths the command reads
    (files or folders); `out` may not be or hold any of them. `recognize(path)`: for a
    file output, whether an existing regular file is one the tool wrote. `any_folder`:
    the folder is only added to, never emptied (`cosim demo --build`: its subfolders
    are checked one by one), so any real folder is accepted. Raises PackageError.
    """
    target = _absolute(out)
    try:
        resolved = target.resolve()
    except (OSError, RuntimeError):
        resolved = target
    for place, name in _protected(inputs):
        for candidate in (target, resolved):
            if _holds(candidate, place):
                raise PackageError(out, f"is or holds {name}; refusing to write there "
                                        "(even with --force); choose another output path")
    for ancestor in target.parents:
        try:
            mode = os.stat(ancestor).st_mode
        except FileNotFoundError:
            continue
        except OSError as error:
            raise PackageError(out, f"its folder {ancestor} cannot be used "
                                    f"({error.strerror})") from None
        if not stat.S_ISDIR(mode):
            raise PackageError(out, f"{ancestor} is not a folder; expected a folder to "
                                    "write into")
        break
    try:
        mode = os.lstat(target).st_mode
    except FileNotFoundError:
        return target
    except OSError as error:
        raise PackageError(out, f"cannot be examined ({error.strerror})") from None
    if stat.S_ISLNK(mode):
        _refuse(out, "is a symbolic link (it is never followed)", force)
    elif folder and stat.S_ISDIR(mode):
        if not any_folder and any(os.scandir(target)) and not is_tool_folder(target):
            _refuse(out, f"is a non-empty folder that {TOOL} did not write (no "
                         f"{MARKER_NAME} marker in it)", force)
    elif folder:
        _refuse(out, "is not a folder; expected a folder", force)
    elif stat.S_ISDIR(mode):
        raise PackageError(out, "is a folder; expected a file (even with --force)")
    elif not stat.S_ISREG(mode):
        _refuse(out, "is not a regular file (a FIFO, socket or device)", force)
    elif recognize is not None and not recognize(target):
        _refuse(out, f"is a file that {TOOL} did not write", force)
    return target


def prepare_output_dir(out: PathLike, kind: str, *, force: bool = False,
                       inputs: Iterable[PathLike] = (), any_folder: bool = False) -> Path:
    """For a folder that files are written into (not replaced as a whole): check it,
    replace a link or file in its place when `force`, create it and mark it as ours
    when it is new or empty; return its absolute path. A forced foreign folder is
    written into but not marked."""
    target = check_output(out, folder=True, force=force, inputs=inputs, any_folder=any_folder)
    if os.path.islink(target) or (os.path.lexists(target) and not os.path.isdir(target)):
        os.unlink(target)  # only reached with force: the link itself, never its target
    target.mkdir(parents=True, exist_ok=True)
    if not any(os.scandir(target)):
        atomic_write_bytes(target / MARKER_NAME, marker_bytes(kind))
    return target
