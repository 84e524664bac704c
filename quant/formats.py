"""Text and hex codecs of the parameter-package files (see docs/file-formats.md).

Every file is ASCII, one record per line, LF line endings, an optional trailing
newline and nothing else: no comments, no blank lines. Readers are strict so
that every error names a file and a 1-based line; they raise `PackageError`.
Writers raise `ValueError` for values the format cannot hold and write
atomically (temp file in the same directory, then `os.replace`).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import hashlib
import math
import os
import re
import shutil
import stat
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
from cosim.quant.errors import UserError

__all__ = [
    "MARKER_NAME",
    "PackageError",
    "atomic_directory",
    "atomic_write_bytes",
    "check_path",
    "int_range_name",
    "read_float_txt",
    "read_hex",
    "read_int_txt",
    "read_qparams_txt",
    "read_regular_file",
    "read_scaling_factor_hex",
    "read_scaling_factor_txt",
    "remove_leftovers",
    "sha256_file",
    "show_path",
    "write_float_txt",
    "write_hex",
    "write_int_txt",
    "write_qparams_txt",
    "write_scaling_factor_hex",
    "write_scaling_factor_txt",
]

PathLike = str | os.PathLike[str]

INT8 = (-128, 127)
SHIFT_RANGE = INT8  # scaling_factor.hex holds n as 8-bit two's complement

_INT_RE = re.compile(rb"-?[0-9]+")
_FLOAT_RE = re.compile(rb"[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?")
_HEX_DIGITS = b"0123456789abcdefABCDEF"
_INT_CHARS = b"0123456789-\n"
_FLOAT_CHARS = b"0123456789+-.eE\n"
_SHAPE_RE = re.compile(rb"shape:(( [0-9]+)*)")

#: Bounds checked before any parsing: characters of one integer / float token, of one
#: shape dimension, the size of any file read whole, and the length of a path component.
MAX_INT_CHARS = 24
MAX_FLOAT_CHARS = 64
MAX_DIM_DIGITS = 9
MAX_FILE_BYTES = 1 << 30
MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 4096


def show_path(path: PathLike | bytes) -> str:
    """A path as one printable line (control characters such as NUL or LF escaped)."""
    text = os.fsdecode(path) if isinstance(path, bytes | os.PathLike) else str(path)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class PackageError(UserError):
    """A user error about a package file: one line, `<path>:<line>: <message>`."""

    def __init__(self, path: PathLike, message: str, line: int | None = None) -> None:
        self.path = show_path(path)
        self.line = line
        self.message = message.replace("\r", " ").replace("\n", " ")  # always one line
        where = self.path if line is None else f"{self.path}:{line}"
        super().__init__(f"{where}: {self.message}")

    def __reduce__(self) -> tuple:  # picklable (multiprocessing, pytest-xdist)
        return (PackageError, (self.path, self.message, self.line))


# ---------------------------------------------------------------- helpers


def sha256_file(path: PathLike, max_bytes: int = MAX_FILE_BYTES,
                what: str = "a regular file") -> str:
    """Hex SHA-256 of a regular file's bytes (PackageError for anything else, see
    `read_regular_file`; `what` names the expected file in messages)."""
    h = hashlib.sha256()
    fd = _open_regular(path, what, max_bytes)
    with os.fdopen(fd, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


_FILE_KINDS = (
    (stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _kind_of(mode: int) -> str:
    for test, name in _FILE_KINDS:
        if test(mode):
            return name
    return "not a regular file"


def check_path(path: PathLike, what: str) -> str:
    """`path` as a str after the checks that need no file system: no NUL byte, at most
    MAX_PATH_BYTES bytes, no component longer than MAX_NAME_BYTES. PackageError otherwise."""
    text = os.fspath(path)
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    if "\0" in text:
        raise PackageError(text, f"path contains a NUL byte; expected a path to {what}")
    raw = os.fsencode(text)
    if len(raw) > MAX_PATH_BYTES:
        raise PackageError(text[:80] + "...", f"path is {len(raw)} bytes long; expected at most "
                           f"{MAX_PATH_BYTES}")
    for part in raw.split(b"/"):
        if len(part) > MAX_NAME_BYTES:
            raise PackageError(text, f"path component of {len(part)} bytes "
                               f"('{os.fsdecode(part[:20])}...'); expected at most "
                               f"{MAX_NAME_BYTES} bytes per name")
    return text


def _open_regular(path: PathLike, what: str, max_bytes: int) -> int:
    """A read-only descriptor of the regular file `path` whose size is at most
    `max_bytes`. Directories, FIFOs, devices and sockets (also behind symlinks) are
    refused before anything is opened, and again on the opened descriptor (O_NONBLOCK:
    a FIFO swapped in between cannot block)."""
    text = check_path(path, what)
    try:
        st = os.stat(text)
    except FileNotFoundError:
        raise PackageError(text, f"missing; expected {what}") from None
    except NotADirectoryError:
        raise PackageError(text, f"a parent of this path is not a directory; expected {what}"
                           ) from None
    except OSError as e:
        raise PackageError(text, f"cannot be read ({e.strerror}); expected {what}") from None
    if not stat.S_ISREG(st.st_mode):
        raise PackageError(text, f"is {_kind_of(st.st_mode)}; expected {what}")
    if st.st_size > max_bytes:
        raise PackageError(text, f"is {st.st_size:,} bytes; expected at most {max_bytes:,} "
                           f"bytes for {what}")
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(text, flags)
    except OSError as e:
        raise PackageError(text, f"cannot be opened ({e.strerror}); expected {what}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise PackageError(text, f"is {_kind_of(st.st_mode)}; expected "
                               f"{what}")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_regular_file(path: PathLike, what: str, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of the regular file `path`, at most `max_bytes` of them.

    PackageError (one line naming the file and `what` was expected) if the path has a
    NUL byte or an over-long component, is missing, is a directory, FIFO, device or
    socket (directly or through a symlink), cannot be read, or is larger than
    `max_bytes` (checked before reading, and again while reading).
    """
    fd = _open_regular(path, what, max_bytes)
    chunks, total = [], 0
    with os.fdopen(fd, "rb", buffering=0) as f:
        size = os.fstat(f.fileno()).st_size
        try:
            # the size stat gave, plus one byte to see growth; then bounded chunks
            while total <= max_bytes:
                chunk = f.read(min(max(size - total, 0), max_bytes - total) + 1 if not chunks
                               else min(1 << 20, max_bytes + 1 - total))
                if not chunk:
                    break
                chunks.append(chunk)
                total += len(chunk)
        except OSError as e:
            raise PackageError(path, f"cannot be read ({e.strerror}); expected {what}") from None
    data = b"".join(chunks)
    if len(data) > max_bytes:
        raise PackageError(path, f"is larger than {max_bytes:,} bytes; expected {what}")
    return data


def int_range_name(lo: int, hi: int) -> str:
    """'int8 range [-128, 127]', 'uint8 range [0, 255]' or 'range [lo, hi]'."""
    for bits in (8, 16, 32, 64):
        if (lo, hi) == (-(1 << (bits - 1)), (1 << (bits - 1)) - 1):
            return f"int{bits} range [{lo}, {hi}]"
        if (lo, hi) == (0, (1 << bits) - 1):
            return f"uint{bits} range [{lo}, {hi}]"
    return f"range [{lo}, {hi}]"


def _signed_range(bits: int) -> tuple[int, int]:
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def _check_bits(bits: int) -> None:
    if not isinstance(bits, int) or bits % 4 or not 4 <= bits <= 64:
        raise ValueError(f"bits must be a multiple of 4 in [4, 64], got {bits!r}")


def _show(token: bytes) -> str:
    """Quote a token for a message (ASCII, bounded length)."""
    text = token.decode("ascii", "backslashreplace")
    if len(text) > 40:
        text = text[:37] + "..."
    return repr(text)


def _dims(shape: Sequence[int]) -> str:
    return "x".join(str(d) for d in shape) if len(shape) else "() (a scalar)"


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Write `data` to `path` via a uniquely named temp file in the same directory
    (`.<name>.tmp-XXXXXXXX`, created with O_EXCL by mkstemp) and os.replace.

    Creates missing parent directories. The file gets mode 0644. A symbolic link at
    `path` is replaced, never followed; a folder at `path` is a PackageError.
    """
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        raise PackageError(path, "is a folder; expected a file to write")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _write_lines(path: PathLike, lines: Sequence[str]) -> None:
    text = "\n".join(lines) + "\n" if lines else ""
    atomic_write_bytes(path, text.encode("ascii"))


#: The file that marks a folder written by this tool (see quant/outdir.py).
MARKER_NAME = ".cosim-output"

_RENAME_NOREPLACE = 1
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100
_UNSUPPORTED = {errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP}


def _renameat2(src: PathLike, dst: PathLike, flags: int) -> bool:
    """Linux renameat2(2) through libc; False when the OS, libc or filesystem does not
    support it (then the caller falls back), OSError for any other failure."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        function = libc.renameat2
    except (OSError, AttributeError):
        return False
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                         ctypes.c_uint]
    function.restype = ctypes.c_int
    if function(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), flags) == 0:
        return True
    code = ctypes.get_errno()
    if code in _UNSUPPORTED:
        return False
    raise OSError(code, os.strerror(code), os.fspath(src), None, os.fspath(dst))


def _leftover_pattern(name: str) -> re.Pattern[str]:
    return re.compile(rf"\.{re.escape(name)}\.(tmp|old)-[A-Za-z0-9_]{{8}}")


def _remove_entry(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def remove_leftovers(final: PathLike) -> list[Path]:
    """Remove what killed runs of atomic_directory(final, marker=...) left next to
    `final`: folders named `.<name>.tmp-XXXXXXXX` or `.<name>.old-XXXXXXXX` that are
    empty or carry the marker file and that no running process holds (flock).
    Nothing else is touched. Returns what was removed."""
    final = Path(final)
    pattern = _leftover_pattern(final.name)
    removed = []
    try:
        entries = list(os.scandir(final.parent))
    except FileNotFoundError:
        return removed
    for entry in entries:
        if not pattern.fullmatch(entry.name) or not entry.is_dir(follow_symlinks=False):
            continue
        path = Path(entry.path)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # a running export holds it
            names = os.listdir(path)
            marked = MARKER_NAME in names and os.path.isfile(path / MARKER_NAME) and \
                not os.path.islink(path / MARKER_NAME)
            if names and not marked:
                continue
            shutil.rmtree(path)
            removed.append(path)
        finally:
            os.close(fd)
    return removed


def _exchange(tmp: Path, final: Path) -> Path:
    """Put `tmp` at `final` and return where the old `final` now is: one atomic
    renameat2(RENAME_EXCHANGE) on Linux (the old content ends at `tmp`); where that is
    not supported, two renames (old -> `.<name>.old-XXXXXXXX`, tmp -> final), with a
    moment in between when `final` does not exist."""
    if _renameat2(tmp, final, _RENAME_EXCHANGE):
        return tmp
    old = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.old-"))
    os.rmdir(old)  # only the unique name is wanted
    os.rename(final, old)
    try:
        os.rename(tmp, final)
    except BaseException:
        os.rename(old, final)
        raise
    return old


@contextlib.contextmanager
def atomic_directory(final: PathLike, marker: bytes | None = None) -> Iterator[Path]:
    """Yield a fresh temp directory next to `final`; on success it becomes `final`.

    The temp directory is `<parent>/.<name>.tmp-XXXXXXXX` (mkdtemp), locked with flock
    while in use. With `marker`, the marker file (MARKER_NAME, these bytes) is written
    into it first, and leftovers of killed earlier runs are removed (remove_leftovers).
    On normal exit the temp directory and an existing `final` are exchanged in one
    atomic step (see _exchange) and the old one is deleted; a new `final` is renamed
    into place. On an exception the temp directory is deleted and any existing
    `final` is left untouched. A symbolic link at `final` is replaced, never followed.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    if marker is not None:
        remove_leftovers(final)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.tmp-"))
    lock = os.open(tmp, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker is not None:
            with open(tmp / MARKER_NAME, "xb") as f:
                f.write(marker)
        try:
            yield tmp
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        try:
            os.chmod(tmp, 0o755)
            if os.path.lexists(final):
                old: Path | None = _exchange(tmp, final)
            else:
                old = None
                if not _renameat2(tmp, final, _RENAME_NOREPLACE):
                    os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if old is not None:
            _remove_entry(old)
    finally:
        os.close(lock)


def _read_bytes(path: PathLike, what: str, allow_empty: bool = False,
                max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """The file's bytes; PackageError if missing, not a regular file, larger than
    `max_bytes`, unreadable, empty or CRLF."""
    data = read_regular_file(path, what, max_bytes)
    if not data and not allow_empty:
        raise PackageError(path, f"empty file; expected {what}")
    cr = data.find(b"\r")
    if cr >= 0:
        raise PackageError(
            path, "carriage return (CRLF line ending); expected LF line endings",
            data.count(b"\n", 0, cr) + 1,
        )
    return data


def _split_lines(data: bytes) -> list[bytes]:
    """Lines of the file without their newlines; one trailing newline is optional."""
    if not data:
        return []
    if data.endswith(b"\n"):
        data = data[:-1]
    return data.split(b"\n")


def _decode_values(
    path: PathLike,
    body: bytes,
    first_line: int,
    count: int,
    fast: Callable[[bytes, int], np.ndarray | None],
    check: Callable[[bytes], str | None],
) -> np.ndarray:
    """Decode the `count` value lines of `body`, which starts at file line `first_line`.

    `fast(body, count)` decodes everything at once and returns None if anything
    is wrong; only then are the lines split and `check` (token -> error message
    or None) locates the first bad line.
    """
    values = fast(body, count)
    if values is not None:
        return values
    lines = _split_lines(body)
    for i, token in enumerate(lines[:count]):
        message = check(token)
        if message is not None:
            raise PackageError(path, message, first_line + i)
    if len(lines) != count:
        line = first_line + (count if len(lines) > count else len(lines) - 1)
        raise PackageError(path, f"expected {count} values, found {len(lines)}", line)
    raise AssertionError("fast decoder rejected input that every check accepts")


def _split_header(path: PathLike, data: bytes, shape: tuple[int, ...]) -> bytes:
    """Check the shape header (line 1) against `shape`; return the rest of the file."""
    end = data.find(b"\n")
    header, body = (data, b"") if end < 0 else (data[:end], data[end + 1 :])
    m = _SHAPE_RE.fullmatch(header)
    if m is None:
        raise PackageError(
            path,
            f"{_show(header)} is not a shape header; expected 'shape: {' '.join(map(str, shape))}'",
            1,
        )
    tokens = m.group(1).split()
    if any(len(t) > MAX_DIM_DIGITS for t in tokens) or len(tokens) > 8:
        raise PackageError(
            path, f"shape header {_show(header)} has too many or too long dimensions; "
            f"expected {_dims(shape)}", 1,
        )
    found = tuple(int(t) for t in tokens)
    if found != tuple(shape):
        raise PackageError(
            path, f"shape header says {_dims(found)}, expected {_dims(shape)}", 1
        )
    return body


def _header_bytes(shape: Sequence[int]) -> int:
    """An upper bound of the shape header line's size, newline included."""
    return 8 + len(shape) * (MAX_DIM_DIGITS + 1)


def _shape_header(shape: Sequence[int]) -> str:
    return "shape:" + "".join(f" {int(d)}" for d in shape)


# ---------------------------------------------------------------- int / float txt


def write_int_txt(path: PathLike, values: np.ndarray) -> None:
    """Shape header, then one decimal integer per line in row-major (C) order."""
    arr = np.asarray(values)
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{path}: write_int_txt needs integers, got dtype {arr.dtype}")
    lines = [_shape_header(arr.shape)]
    lines.extend(map(str, arr.astype(np.int64).ravel().tolist()))
    _write_lines(path, lines)


def _int_token_error(lo: int, hi: int) -> Callable[[bytes], str | None]:
    def check(token: bytes) -> str | None:
        if not token:
            return "blank line; expected a decimal integer"
        if _INT_RE.fullmatch(token) is None:
            return f"{_show(token)} is not a decimal integer"
        if len(token) > MAX_INT_CHARS:
            return (f"{_show(token)} has {len(token)} characters; expected an integer in "
                    f"{int_range_name(lo, hi)}")
        v = int(token)
        if not lo <= v <= hi:
            return f"{v} is out of {int_range_name(lo, hi)}"
        return None

    return check


def _parse_ints(body: bytes, count: int, lo: int, hi: int) -> np.ndarray | None:
    """`count` lines of `-?[0-9]+` in [lo, hi] as int64, else None (vectorized checks)."""
    if count == 0:
        return np.zeros(0, dtype=np.int64) if not body else None
    if not body.endswith(b"\n"):
        body += b"\n"
    if (
        body.translate(None, _INT_CHARS)
        or body.startswith(b"\n")
        or b"\n\n" in body
        or b"-\n" in body
        or b"--" in body
        or body.count(b"-") != body.count(b"\n-") + body.startswith(b"-")
    ):
        return None
    ends = np.flatnonzero(np.frombuffer(body, dtype=np.uint8) == ord("\n"))
    if ends.size != count:
        return None
    # every line is now -?[0-9]+; up to 18 digits cannot overflow int64
    longest = int(np.diff(ends, prepend=-1).max()) - 1
    if longest > MAX_INT_CHARS:
        return None  # the line-by-line check names it, before any int()
    if longest > 18:
        big = [int(t) for t in body.split()]
        if min(big) < lo or max(big) > hi:
            return None
        return np.array(big, dtype=np.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            values = np.fromstring(body, dtype=np.int64, sep="\n")
        except (ValueError, DeprecationWarning):
            return None
    if values.size != count or values.min() < lo or values.max() > hi:
        return None
    return values


def read_int_txt(path: PathLike, shape: Sequence[int], lo: int, hi: int) -> np.ndarray:
    """Read an int txt file; int64 array of `shape`, every value in [lo, hi]."""
    shape = tuple(int(d) for d in shape)
    count = math.prod(shape)
    what = f"a shape header and {count} decimal integers"
    limit = _header_bytes(shape) + count * (MAX_INT_CHARS + 1)
    body = _split_header(path, _read_bytes(path, what, max_bytes=limit), shape)
    values = _decode_values(
        path, body, 2, count,
        lambda b, n: _parse_ints(b, n, lo, hi), _int_token_error(lo, hi),
    )
    return values.reshape(shape)


def write_float_txt(path: PathLike, values: np.ndarray) -> None:
    """Shape header, then one float32 per line written with '%.9g' (exact round trip)."""
    arr = np.asarray(values, dtype=np.float32)
    if not np.isfinite(arr).all():
        raise ValueError(f"{path}: write_float_txt needs finite values")
    lines = [_shape_header(arr.shape)]
    lines.extend(map("%.9g".__mod__, arr.ravel().tolist()))
    _write_lines(path, lines)


def _float_token_error(token: bytes) -> str | None:
    if not token:
        return "blank line; expected a float"
    if _FLOAT_RE.fullmatch(token) is None:
        return f"{_show(token)} is not a decimal float"
    if len(token) > MAX_FLOAT_CHARS:
        return (f"{_show(token)} has {len(token)} characters; expected a float32 of at most "
                f"{MAX_FLOAT_CHARS}")
    with np.errstate(over="ignore"):
        if not np.isfinite(np.float32(float(token))):
            return f"{_show(token)} is out of float32 range"
    return None


def _parse_floats(body: bytes, count: int) -> np.ndarray | None:
    if body.translate(None, _FLOAT_CHARS):
        return None
    lines = _split_lines(body)
    if len(lines) != count or max(map(len, lines), default=0) > MAX_FLOAT_CHARS:
        return None
    try:
        values64 = np.array([float(t) for t in lines], dtype=np.float64)
    except ValueError:
        return None
    with np.errstate(over="ignore"):
        values = values64.astype(np.float32)
    if not np.isfinite(values).all():
        return None
    return values


def read_float_txt(path: PathLike, shape: Sequence[int]) -> np.ndarray:
    """Read a float txt file; float32 array of `shape` (finite values only)."""
    shape = tuple(int(d) for d in shape)
    count = math.prod(shape)
    limit = _header_bytes(shape) + count * (MAX_FLOAT_CHARS + 1)
    body = _split_header(path, _read_bytes(path, f"a shape header and {count} floats",
                                           max_bytes=limit), shape)
    values = _decode_values(path, body, 2, count, _parse_floats, _float_token_error)
    return values.reshape(shape)


# ---------------------------------------------------------------- hex

_NIBBLE = np.full(256, 255, dtype=np.uint8)
for _i, _c in enumerate(b"0123456789abcdef"):
    _NIBBLE[_c] = _i
for _i, _c in enumerate(b"ABCDEF"):
    _NIBBLE[_c] = 10 + _i
_HEX_CHARS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def write_hex(path: PathLike, values: np.ndarray, bits: int) -> None:
    """$readmemh words: one per line, bits/4 lowercase digits, two's complement.

    Row-major order of the flattened array; no header, no address markers.
    Values must lie in the signed range of `bits` (ValueError otherwise).
    """
    _check_bits(bits)
    arr = np.asarray(values)
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{path}: write_hex needs integers, got dtype {arr.dtype}")
    lo, hi = _signed_range(bits)
    flat = arr.ravel()
    if flat.size and (int(flat.min()) < lo or int(flat.max()) > hi):
        raise ValueError(f"{path}: values outside {int_range_name(lo, hi)}")
    words = flat.astype(np.int64).view(np.uint64)
    digits = bits // 4
    shifts = np.arange(digits - 1, -1, -1, dtype=np.uint64) * np.uint64(4)
    nibbles = (words[:, None] >> shifts[None, :]) & np.uint64(0xF)
    out = np.empty((flat.size, digits + 1), dtype=np.uint8)
    out[:, :digits] = _HEX_CHARS[nibbles.astype(np.intp)]
    out[:, digits] = ord("\n")
    atomic_write_bytes(path, out.tobytes())


def _hex_token_error(digits: int) -> Callable[[bytes], str | None]:
    def check(token: bytes) -> str | None:
        if not token:
            return f"blank line; expected a {digits}-digit hex value"
        if token.translate(None, _HEX_DIGITS):
            return f"{_show(token)} is not a {digits}-digit hex value"
        if len(token) != digits:
            return f"{_show(token)} has {len(token)} hex digits, expected {digits}"
        return None

    return check


def _decode_hex_words(body: bytes, count: int, bits: int) -> np.ndarray | None:
    digits = bits // 4
    if count == 0:
        return np.zeros(0, dtype=np.int64) if not body else None
    if not body.endswith(b"\n"):
        body += b"\n"
    if len(body) != count * (digits + 1):
        return None
    rows = np.frombuffer(body, dtype=np.uint8).reshape(count, digits + 1)
    if not (rows[:, digits] == ord("\n")).all():
        return None
    nibbles = _NIBBLE[rows[:, :digits]]
    if (nibbles == 255).any():
        return None
    words = np.zeros(count, dtype=np.uint64)
    for k in range(digits):
        words = (words << np.uint64(4)) | nibbles[:, k].astype(np.uint64)
    if bits == 64:
        return words.view(np.int64)
    values = words.astype(np.int64)
    values[values >= (1 << (bits - 1))] -= 1 << bits
    return values


def read_hex(path: PathLike, count: int, bits: int) -> np.ndarray:
    """Read `count` words of `bits` bits (either case); signed int64 array, flat."""
    _check_bits(bits)
    digits = bits // 4
    what = f"{count} {digits}-digit hex values"
    data = _read_bytes(path, what, allow_empty=count == 0,
                       max_bytes=(count + 16) * 2 * (digits + 1))
    return _decode_values(
        path, data, 1, count,
        lambda b, n: _decode_hex_words(b, n, bits), _hex_token_error(digits),
    )


# ---------------------------------------------------------------- qparams


def _fmt_number(v: object) -> str:
    if isinstance(v, bool):
        raise ValueError(f"{v!r} is not a number")
    if isinstance(v, int | np.integer):
        return str(int(v))
    if isinstance(v, float | np.floating):
        if not math.isfinite(float(v)):
            raise ValueError(f"{v!r} is not finite")
        return f"{float(np.float32(v)):.9g}"  # float32, same as '%.9g'
    raise ValueError(f"{v!r} is not a number")


def write_qparams_txt(
    path: PathLike, entries: Mapping[str, Sequence[float] | Sequence[int]]
) -> None:
    """One line per role: `<role> <v> [<v> ...]`; ints as decimal, floats as float32 '%.9g'.

    Used for scale.txt (floats) and zero_point.txt (ints), in the given role order.
    """
    lines = []
    for role, values in entries.items():
        if not role or role.split() != [role]:
            raise ValueError(f"{path}: bad role name {role!r}")
        values = np.atleast_1d(np.asarray(values)).ravel().tolist()
        if not values:
            raise ValueError(f"{path}: role {role!r} has no values")
        lines.append(" ".join([role, *map(_fmt_number, values)]))
    _write_lines(path, lines)


def _split_fields(path: PathLike, line: bytes, lineno: int) -> list[bytes]:
    if not line:
        raise PackageError(path, "blank line; expected '<name> <value> [<value> ...]'", lineno)
    fields = line.split(b" ")
    if b"" in fields:
        raise PackageError(
            path, "empty field (leading, trailing or double space); "
            "expected fields separated by single spaces", lineno,
        )
    return fields


def _scale_value(path: PathLike, token: bytes, lineno: int) -> float:
    if _FLOAT_RE.fullmatch(token) is None or len(token) > MAX_FLOAT_CHARS:
        raise PackageError(path, f"{_show(token)} is not a positive finite float32 scale", lineno)
    with np.errstate(over="ignore", under="ignore"):
        v = float(np.float32(float(token)))
    if not (v > 0 and math.isfinite(v)):
        raise PackageError(path, f"{_show(token)} is not a positive finite float32 scale", lineno)
    return v


def _int_value(path: PathLike, token: bytes, lineno: int, what: str, lo: int, hi: int) -> int:
    if _INT_RE.fullmatch(token) is None:
        raise PackageError(path, f"{_show(token)} is not an integer {what}", lineno)
    if len(token) > MAX_INT_CHARS:
        raise PackageError(path, f"{_show(token)} has {len(token)} characters; expected an "
                           f"integer {what} in {int_range_name(lo, hi)}", lineno)
    v = int(token)
    if not lo <= v <= hi:
        raise PackageError(path, f"{what} {v} is out of {int_range_name(lo, hi)}", lineno)
    return v


def read_qparams_txt(
    path: PathLike, roles: Mapping[str, int | None], kind: str
) -> dict[str, list[float] | list[int]]:
    """Read scale.txt (`kind='scale'`) or zero_point.txt (`kind='zero_point'`).

    `roles` maps each expected role to its value count (None: any count >= 1).
    Every role must appear exactly once (any order); returns them in `roles` order.
    Scales are positive finite float32 values (returned as Python floats, snapped
    to float32, so a po2 scale comes back exact); zero points are int32 integers.
    """
    if kind not in ("scale", "zero_point"):
        raise ValueError(f"kind must be 'scale' or 'zero_point', got {kind!r}")
    expected = ", ".join(roles)
    limit = sum(len(r) + 1 + (MAX_FLOAT_CHARS + 1) * (n or (1 << 16)) for r, n in roles.items())
    lines = _split_lines(_read_bytes(path, f"one '{kind}' line per role ({expected})",
                                     max_bytes=limit))
    found: dict[str, list[float] | list[int]] = {}
    first_seen: dict[str, int] = {}
    lo, hi = _signed_range(32)
    for lineno, line in enumerate(lines, 1):
        role_b, *tokens = _split_fields(path, line, lineno)
        role = role_b.decode("ascii", "backslashreplace")
        if role not in roles:
            raise PackageError(path, f"unknown role {role!r}; expected one of {expected}", lineno)
        if role in first_seen:
            raise PackageError(
                path, f"role {role!r} repeats (first on line {first_seen[role]})", lineno
            )
        want = roles[role]
        if not tokens or (want is not None and len(tokens) != want):
            raise PackageError(
                path,
                f"role {role!r} has {len(tokens)} values, expected "
                f"{'at least 1' if want is None else want}",
                lineno,
            )
        if kind == "scale":
            found[role] = [_scale_value(path, t, lineno) for t in tokens]
        else:
            found[role] = [_int_value(path, t, lineno, "zero point", lo, hi) for t in tokens]
        first_seen[role] = lineno
    missing = [r for r in roles if r not in found]
    if missing:
        raise PackageError(
            path, f"missing role(s) {', '.join(map(repr, missing))}; expected lines for {expected}"
        )
    return {r: found[r] for r in roles}


# ---------------------------------------------------------------- scaling factors


def _check_shifts(path: PathLike, shifts: Sequence[int]) -> list[int]:
    out = []
    lo, hi = SHIFT_RANGE
    for n in shifts:
        if isinstance(n, bool) or not isinstance(n, int | np.integer):
            raise ValueError(f"{path}: shift {n!r} is not an integer")
        if not lo <= int(n) <= hi:
            raise ValueError(f"{path}: shift {int(n)} is out of {int_range_name(lo, hi)}")
        out.append(int(n))
    return out


def write_scaling_factor_txt(path: PathLike, entries: Sequence[tuple[str, Sequence[int]]]) -> None:
    """One line per weighted layer in execution order: `<layer> <n> [<n> ...]`.

    n = log2(y_scale / (x_scale * w_scale)), an int8 integer; n <= 0 is a left shift.
    """
    lines = []
    for name, shifts in entries:
        if not name or name.split() != [name]:
            raise ValueError(f"{path}: bad layer name {name!r}")
        values = _check_shifts(path, list(shifts))
        if not values:
            raise ValueError(f"{path}: layer {name!r} has no shifts")
        lines.append(" ".join([name, *map(str, values)]))
    _write_lines(path, lines)


def read_scaling_factor_txt(
    path: PathLike,
    known_layers: Sequence[str],
    counts: Mapping[str, int] | None = None,
) -> dict[str, list[int]]:
    """Read scaling_factor.txt: exactly one line per name of `known_layers`, in that order.

    `counts` optionally gives each layer's number of shifts (1 or out_channels).
    """
    known = list(known_layers)
    known_set = set(known)
    limit = sum(MAX_NAME_BYTES + 1 + (MAX_INT_CHARS + 1) * ((counts or {}).get(n) or (1 << 16))
                for n in known)
    lines = _split_lines(_read_bytes(path, f"one line per weighted layer ({len(known)} lines)",
                                     max_bytes=limit))
    result: dict[str, list[int]] = {}
    first_seen: dict[str, int] = {}
    lo, hi = SHIFT_RANGE
    for lineno, line in enumerate(lines, 1):
        name_b, *tokens = _split_fields(path, line, lineno)
        name = name_b.decode("ascii", "backslashreplace")
        want_name = known[len(result)] if len(result) < len(known) else None
        if name not in known_set:
            hint = f"expected {want_name!r}" if want_name else "expected no more lines"
            raise PackageError(path, f"unknown layer {name!r}; {hint}", lineno)
        if name in first_seen:
            raise PackageError(
                path, f"duplicate layer {name!r} (first on line {first_seen[name]})", lineno
            )
        if name != want_name:
            raise PackageError(
                path, f"layer {name!r} is out of order; expected {want_name!r} here "
                "(one line per weighted layer, in execution order)", lineno,
            )
        want = None if counts is None else counts.get(name)
        if not tokens or (want is not None and len(tokens) != want):
            raise PackageError(
                path,
                f"layer {name!r} has {len(tokens)} shifts, expected "
                f"{'at least 1' if want is None else want}",
                lineno,
            )
        result[name] = [_int_value(path, t, lineno, "shift", lo, hi) for t in tokens]
        first_seen[name] = lineno
    if len(result) < len(known):
        missing = ", ".join(map(repr, known[len(result):]))
        raise PackageError(
            path, f"missing layer(s) {missing} after the last line; "
            "expected one line per weighted layer", len(lines),
        )
    return result


def write_scaling_factor_hex(path: PathLike, shifts: Sequence[int]) -> None:
    """One shift per line as 8-bit two's complement (2 hex digits); range -128..127."""
    write_hex(path, np.array(_check_shifts(path, list(shifts)), dtype=np.int64), 8)


def read_scaling_factor_hex(path: PathLike, count: int) -> np.ndarray:
    """Read `count` 8-bit two's-complement shifts; signed int64 array."""
    return read_hex(path, count, 8)
