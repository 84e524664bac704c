"""One bounded TOML reader and the one-line JSON Schema errors of the TOML files.

The TOML counterpart of `cosim.quant.schema.read_json`, shared by the accelerator file
(golden.accelerator), the project file (cosim.project) and the mutants file
(cosim.mutate). Each caller keeps its own error class and words: the reader and the
validator report a problem as data (`TomlProblem`, a dotted key and an
"expected ..., got ..." text) and the caller turns it into its one-line error.

- `read_toml_bytes(path, max_bytes, fail)`: the bytes of a regular file of at most
  `max_bytes` (directories, FIFOs, devices and sockets are refused on the opened
  descriptor, opened with O_NONBLOCK so nothing can block);
- `parse_toml(data, fail)`: tomllib on UTF-8 text (no user code runs: tomllib builds
  plain dicts, lists and scalars);
- `read_toml(path, max_bytes, fail)`: both; `problem_text` words a problem plainly;
- `schema_error(schema, document, style=...)`: the first violation as
  (dotted key, "expected ..., got ..."), or None;
- `dotted`, `shown`, `schema_keys`: the pieces the messages are made of.

jsonschema is imported on first validation (the CLI starts without it).
"""

from __future__ import annotations

import json
import os
import stat
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from cosim.quant.errors import UserError

if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError

__all__ = [
    "Describe",
    "ErrorFactory",
    "TomlFileError",
    "TomlProblem",
    "dotted",
    "parse_toml",
    "problem_text",
    "read_toml",
    "read_toml_bytes",
    "schema_error",
    "schema_keys",
    "shown",
]


class TomlFileError(UserError):
    """A mistake in a TOML file: one line `<path>: <key>: <message>` (`<path>: <message>`
    without a key). The base of the project and mutants files' own error classes."""

    def __init__(self, path: os.PathLike[str] | str, key: str, message: str) -> None:
        self.path, self.key = str(path), key
        super().__init__(f"{path}: {key}: {message}" if key else f"{path}: {message}")


#: The kinds of TomlProblem.
PROBLEM_KINDS = ("missing", "unreadable", "directory", "not_regular", "too_big",
                 "not_utf8", "syntax")


@dataclass(frozen=True)
class TomlProblem:
    """Why a TOML file could not be read. kind: one of PROBLEM_KINDS; detail: the OS
    error text ("unreadable") or the one-line tomllib message ("syntax"); size: the
    file's size in bytes, or None when it grew past max_bytes while being read
    ("too_big"); offset and byte: the first byte that is not UTF-8 ("not_utf8")."""

    kind: str
    detail: str = ""
    size: int | None = None
    offset: int | None = None
    byte: int | None = None


#: The caller's error for a problem (raised by the readers).
ErrorFactory = Callable[[TomlProblem], BaseException]


def _check_regular(st: os.stat_result, max_bytes: int, fail: ErrorFactory) -> None:
    if stat.S_ISDIR(st.st_mode):
        raise fail(TomlProblem("directory"))
    if not stat.S_ISREG(st.st_mode):
        raise fail(TomlProblem("not_regular"))
    if st.st_size > max_bytes:
        raise fail(TomlProblem("too_big", size=st.st_size))


def read_toml_bytes(path: str | os.PathLike[str], max_bytes: int,
                    fail: ErrorFactory) -> bytes:
    """The bytes of the regular file `path` (at most `max_bytes`); `fail(problem)` is
    raised when it is missing, unreadable, not a regular file or larger. Checked on
    the path before opening and again on the opened descriptor (O_NONBLOCK: a FIFO
    swapped in between cannot block)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise fail(TomlProblem("missing")) from None
    except OSError as e:
        raise fail(TomlProblem("unreadable", str(e.strerror))) from None
    _check_regular(st, max_bytes, fail)
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise fail(TomlProblem("missing")) from None
    except OSError as e:
        raise fail(TomlProblem("unreadable", str(e.strerror))) from None
    with os.fdopen(fd, "rb") as f:
        _check_regular(os.fstat(f.fileno()), max_bytes, fail)  # a file swapped in between
        os.set_blocking(f.fileno(), True)
        try:
            data = f.read(max_bytes + 1)
        except OSError as e:
            raise fail(TomlProblem("unreadable", str(e.strerror))) from None
    if len(data) > max_bytes:  # grew after the size check
        raise fail(TomlProblem("too_big"))
    return data


def parse_toml(data: bytes, fail: ErrorFactory) -> dict[str, Any]:
    """tomllib's document of UTF-8 TOML bytes; `fail(problem)` is raised for bytes that
    are not UTF-8 and for a syntax error."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise fail(TomlProblem("not_utf8", offset=e.start, byte=data[e.start])) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise fail(TomlProblem("syntax", " ".join(str(e).split()))) from None


def read_toml(path: str | os.PathLike[str], max_bytes: int,
              fail: ErrorFactory) -> dict[str, Any]:
    """`parse_toml(read_toml_bytes(path, max_bytes, fail), fail)`."""
    return parse_toml(read_toml_bytes(path, max_bytes, fail), fail)


def problem_text(problem: TomlProblem, *, missing: str, folder: str, limit: str) -> str:
    """The plain words of a problem (the project and mutants files): `missing` for a
    missing file, `folder` for a directory, `limit` names max_bytes ("1 MiB")."""
    kind = problem.kind
    if kind == "missing":
        return missing
    if kind == "directory":
        return folder
    if kind == "unreadable":
        return f"cannot be read ({problem.detail})"
    if kind == "not_regular":
        return "cannot be read (not a regular file)"
    if kind == "too_big":
        size = "more" if problem.size is None else f"{problem.size:,} bytes"
        return f"expected at most {limit}, got {size}"
    if kind == "not_utf8":
        return f"expected UTF-8 text, got a byte that is not (offset {problem.offset})"
    return f"expected TOML, got a syntax error: {problem.detail}"


# ---------------------------------------------------------------- message pieces


def shown(value: Any, *, sort_keys: bool = True, squeeze: bool = True, limit: int = 80) -> str:
    """`value` as JSON for a message, at most `limit` characters ("..." when cut);
    squeeze: runs of whitespace become one space (before cutting)."""
    try:
        text = json.dumps(value, sort_keys=sort_keys, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    if squeeze:
        text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def dotted(parts: Iterable[Any]) -> str:
    """A document path as a key: `mutant[2].name`, `quantization.method`."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + str(part)
    return out


def schema_keys(schema: Mapping[str, Any], prefix: str = "", *,
                tables: bool = False) -> list[str]:
    """Every dotted key of `schema`'s properties, in schema order: the leaves, and the
    tables (objects with properties) too when `tables`."""
    keys: list[str] = []
    for name, sub in schema.get("properties", {}).items():
        key = f"{prefix}{name}"
        table = sub.get("type") == "object" and "properties" in sub
        if tables or not table:
            keys.append(key)
        if table:
            keys += schema_keys(sub, key + ".", tables=tables)
    return keys


# ---------------------------------------------------------------- validation

_VALIDATORS: dict[int, tuple[Mapping[str, Any], Any]] = {}


def _errors(schema: Mapping[str, Any], document: Any) -> Iterable[ValidationError]:
    entry = _VALIDATORS.get(id(schema))
    if entry is None or entry[0] is not schema:
        from jsonschema import Draft202012Validator

        entry = _VALIDATORS[id(schema)] = (schema, Draft202012Validator(schema))
    return entry[1].iter_errors(document)


#: A caller's words for a keyword violation: (expected, got) or None for the default.
Describe = Callable[["ValidationError"], "tuple[str, str] | None"]

_TYPE_NAMES = {"integer": "an integer", "number": "a number", "string": "a string",
               "object": "a table", "array": "a list", "boolean": "true or false"}


def _expected(error: ValidationError) -> str:
    """What the failing keyword asks for, in words."""
    v, value, schema = error.validator, error.validator_value, error.schema
    if v == "type":
        kinds = value if isinstance(value, list) else [value]
        return " or ".join(_TYPE_NAMES.get(k, k) for k in kinds)
    if v == "const":
        return shown(value)
    if v == "enum":
        return "one of " + ", ".join(shown(x) for x in value)
    if v in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        lo = schema.get("minimum", schema.get("exclusiveMinimum"))
        hi = schema.get("maximum", schema.get("exclusiveMaximum"))
        low = ">" if "exclusiveMinimum" in schema else ">="
        return (f"a value {low} {lo} and <= {hi}" if lo is not None and hi is not None
                else f"a value {'>=' if v == 'minimum' else '<='} {value}")
    if v in ("minItems", "maxItems"):
        return (f"at least {value} item{'s' if value != 1 else ''}" if v == "minItems"
                else f"at most {value} items")
    if v == "uniqueItems":
        return "no repeated items"
    if v == "pattern":
        return f"a name matching {value}"
    if v in ("minLength", "maxLength"):
        return ("a non-empty string" if v == "minLength" and value == 1
                else f"at {'least' if v == 'minLength' else 'most'} {value} characters")
    if v == "anyOf":
        return "a string, number, true/false or a list of them"
    return " ".join(error.message.split())[:200]


def _by_keyword(schema: Mapping[str, Any], document: Any,
                describe: Describe | None) -> tuple[str, str] | None:
    from jsonschema.exceptions import best_match

    error = best_match(_errors(schema, document))
    if error is None:
        return None
    path = list(error.absolute_path)
    key = dotted(path) or "(top level)"
    v, value, sub = error.validator, error.validator_value, error.schema
    if v == "additionalProperties":
        known = sorted(sub.get("properties", {}))
        extra = sorted(k for k in error.instance if k not in known)
        if extra:
            key = dotted([*path, extra[0]])
        return key, (f"expected no such key (a table here takes {', '.join(known)}), got "
                     f"unknown key {shown(extra[0] if extra else None)}")
    if v == "required":
        missing = [k for k in value if k not in error.instance][0]
        want = sub["properties"][missing].get("description", "a value")
        return dotted([*path, missing]), f"expected {want}, got nothing"
    words = describe(error) if describe is not None else None
    want, got = words if words is not None else (_expected(error), shown(error.instance))
    return key, f"expected {want}, got {got}"


def _by_description(schema: Mapping[str, Any], document: Any) -> tuple[str, str] | None:
    errors = list(_errors(schema, document))
    if not errors:
        return None
    errors.sort(key=lambda e: ([str(p) for p in e.absolute_path], e.validator != "required"))
    error = errors[0]
    node, sub = document, schema
    keys: list[str] = []
    for part in error.absolute_path:  # stop at an array: the array is the key
        if isinstance(part, int):
            break
        keys.append(str(part))
        node = node[part]
        sub = sub["properties"][part]
    if error.validator == "additionalProperties":
        allowed = list(sub.get("properties", {}))
        extra = sorted(set(node) - set(allowed))[0]
        return (".".join([*keys, extra]), f"expected one of the keys {', '.join(allowed)}, "
                f"got an unknown key {json.dumps(extra)}")
    if error.validator == "required":
        missing = [r for r in sub["required"] if r not in node][0]
        return (".".join([*keys, missing]), f"expected "
                f"{sub['properties'][missing]['description']}, got nothing (a required key)")
    return (".".join(keys) or "(top level)",
            f"expected {sub['description']}, got {shown(node, sort_keys=False, squeeze=False)}")


def schema_error(schema: Mapping[str, Any], document: Any, *,
                 style: Literal["keyword", "description"] = "keyword",
                 describe: Describe | None = None) -> tuple[str, str] | None:
    """The first violation of `schema` (JSON Schema Draft 2020-12) by `document` as
    (dotted key, "expected ..., got ..."), or None when it is valid.

    style "keyword": jsonschema's best match, worded from the failing keyword
    (`describe(error)` may give its own (expected, got) words, None: the default).
    style "description": the first error in key order (a missing key before the other
    errors of its table), worded from the "description" every schema node has; a
    value inside a list is shown as the whole list. An unknown key and a missing
    key name that key in both styles."""
    if style == "description":
        return _by_description(schema, document)
    return _by_keyword(schema, document, describe)
