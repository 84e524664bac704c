"""quant/tomlfile.py: the one bounded TOML reader and one-line schema errors shared by
the accelerator file, the project file and the mutants file.

(a) The reader: a missing file, a directory, a FIFO (it must not block), a too-big
    file, a file that grows past the limit while being read, a non-UTF-8 file and a
    TOML syntax error each give one TomlProblem; the callers' words make one line.
(b) The validator in both styles: a schema violation, an unknown key and a missing
    key each give (dotted key, "expected ..., got ...") on one line.
(c) The message pieces: dotted, shown, schema_keys.
(d) The three callers use it: each problem of (a) is one line of their own error
    class naming the file.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cosim.quant import tomlfile
from cosim.quant.errors import UserError
from cosim.quant.tomlfile import TomlProblem


class _Error(UserError):
    pass


def _fail(path: Path):
    def error(problem: TomlProblem) -> _Error:
        return _Error(f"{path}: " + tomlfile.problem_text(
            problem, missing="no such file", folder="is a folder", limit="64 bytes"))
    return error


def _problem(path: Path, max_bytes: int = 64) -> TomlProblem:
    seen: list[TomlProblem] = []

    def error(problem: TomlProblem) -> _Error:
        seen.append(problem)
        return _Error(problem.kind)

    with pytest.raises(_Error):
        tomlfile.read_toml(path, max_bytes, error)
    return seen[0]


def _one_line(path: Path, max_bytes: int = 64) -> str:
    with pytest.raises(_Error) as info:
        tomlfile.read_toml(path, max_bytes, _fail(path))
    text = str(info.value)
    assert "\n" not in text and text.startswith(f"{path}: "), text
    return text


# ---------------------------------------------------------------- (a) the reader


def test_a_good_file_is_read(tmp_path):
    path = tmp_path / "a.toml"
    path.write_text('name = "x"\n[t]\nn = 3\n')
    assert tomlfile.read_toml(path, 64, _fail(path)) == {"name": "x", "t": {"n": 3}}
    assert tomlfile.read_toml_bytes(path, 64, _fail(path)) == path.read_bytes()


def test_each_read_problem_is_one_problem_and_one_line(tmp_path):
    missing = tmp_path / "missing.toml"
    assert _problem(missing) == TomlProblem("missing")
    assert _one_line(missing) == f"{missing}: no such file"

    assert _problem(tmp_path) == TomlProblem("directory")
    assert _one_line(tmp_path) == f"{tmp_path}: is a folder"

    big = tmp_path / "big.toml"
    big.write_text("a = 1\n" + "#" * 59 + "\n")  # 66 bytes
    assert _problem(big) == TomlProblem("too_big", size=66)
    assert _one_line(big) == f"{big}: expected at most 64 bytes, got 66 bytes"
    assert tomlfile.read_toml(big, 66, _fail(big)) == {"a": 1}  # the limit itself is fine

    latin = tmp_path / "latin.toml"
    latin.write_bytes(b'name = "caf\xe9"\n')
    assert _problem(latin) == TomlProblem("not_utf8", offset=11, byte=0xE9)
    assert _one_line(latin) == f"{latin}: expected UTF-8 text, got a byte that is not " \
                               "(offset 11)"

    syntax = tmp_path / "syntax.toml"
    syntax.write_text("a = 1\na = 2\n")  # a key defined twice
    problem = _problem(syntax)
    assert problem.kind == "syntax" and "\n" not in problem.detail and problem.detail
    assert _one_line(syntax).startswith(f"{syntax}: expected TOML, got a syntax error: ")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)
    assert _problem(fifo) == TomlProblem("not_regular")
    assert _one_line(fifo) == f"{fifo}: cannot be read (not a regular file)"


def test_a_file_that_grows_past_the_limit_while_read_is_refused(tmp_path, monkeypatch):
    # fault injection: the size os.stat/os.fstat report is the size before it grew
    path = tmp_path / "grows.toml"
    path.write_text("a = 1\n" * 20)  # 120 bytes
    real_stat, real_fstat = os.stat, os.fstat

    def small(result: os.stat_result) -> os.stat_result:
        fields = list(result)
        fields[6] = 10  # st_size
        return os.stat_result(fields)

    monkeypatch.setattr(os, "stat", lambda p, *a, **k: small(real_stat(p, *a, **k)))
    monkeypatch.setattr(os, "fstat", lambda fd: small(real_fstat(fd)))
    assert _problem(path) == TomlProblem("too_big")
    monkeypatch.undo()
    assert _one_line(path).endswith("got 120 bytes")


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root reads any file")
def test_an_unreadable_file_names_the_os_error(tmp_path):
    path = tmp_path / "secret.toml"
    path.write_text("a = 1\n")
    path.chmod(0)
    try:
        assert _problem(path) == TomlProblem("unreadable", "Permission denied")
        assert _one_line(path) == f"{path}: cannot be read (Permission denied)"
    finally:
        path.chmod(0o600)


def test_a_parent_that_is_a_file_is_unreadable(tmp_path):
    parent = tmp_path / "file"
    parent.write_text("")
    problem = _problem(parent / "a.toml")
    assert problem.kind == "unreadable" and problem.detail == "Not a directory"


# ---------------------------------------------------------------- (b) the validator

SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object", "additionalProperties": False, "required": ["name"],
    "description": "a test table",
    "properties": {
        "name": {"type": "string", "pattern": "^[a-z]+$", "description": "a lower-case name"},
        "size": {"type": "integer", "minimum": 1, "maximum": 8,
                 "description": "an integer in [1, 8]"},
        "tile": {"type": "object", "additionalProperties": False, "required": ["oc"],
                 "description": "a tile table",
                 "properties": {"oc": {"type": "integer", "minimum": 1, "maximum": 4,
                                       "description": "an integer in [1, 4]"},
                                "order": {"type": "array", "items": {"enum": ["a", "b"]},
                                          "description": "a list of a, b"}}},
    },
}


@pytest.mark.parametrize("document, keyword, description", [
    ({"name": "ok", "size": 9},
     ("size", "expected a value >= 1 and <= 8, got 9"),
     ("size", "expected an integer in [1, 8], got 9")),
    ({"name": "ok", "tile": {"oc": 1, "width": 2}},
     ("tile.width", "expected no such key (a table here takes oc, order), got unknown key "
      '"width"'),
     ("tile.width", 'expected one of the keys oc, order, got an unknown key "width"')),
    ({"name": "ok", "tile": {}},
     ("tile.oc", "expected an integer in [1, 4], got nothing"),
     ("tile.oc", "expected an integer in [1, 4], got nothing (a required key)")),
    ({"name": "ok", "tile": {"oc": 1, "order": ["a", "c"]}},
     ("tile.order[1]", 'expected one of "a", "b", got "c"'),
     ("tile.order", 'expected a list of a, b, got ["a", "c"]')),
    ({"name": "Bad"},
     ("name", 'expected a name matching ^[a-z]+$, got "Bad"'),
     ("name", 'expected a lower-case name, got "Bad"')),
    ({"name": "ok", "size": "x" * 100},
     ("size", 'expected an integer, got "' + "x" * 76 + "..."),
     ("size", 'expected an integer in [1, 8], got "' + "x" * 76 + "...")),
    ({"name": "ok", "tile": 3},
     ("tile", "expected a table, got 3"),
     ("tile", "expected a tile table, got 3")),
])
def test_a_violation_is_one_key_and_one_line_in_both_styles(document, keyword, description):
    assert tomlfile.schema_error(SCHEMA, document) == keyword
    assert tomlfile.schema_error(SCHEMA, document, style="description") == description
    for _, text in (keyword, description):
        assert "\n" not in text and text.startswith("expected ")


def test_a_valid_document_has_no_error_and_describe_overrides_the_words():
    assert tomlfile.schema_error(SCHEMA, {"name": "ok", "tile": {"oc": 2}}) is None
    assert tomlfile.schema_error(SCHEMA, {"name": "ok"}, style="description") is None
    words = tomlfile.schema_error(SCHEMA, {"name": "ok", "size": 0},
                                  describe=lambda e: ("one to eight", "zero"))
    assert words == ("size", "expected one to eight, got zero")
    # describe is not asked about unknown or missing keys
    assert tomlfile.schema_error(SCHEMA, {}, describe=lambda e: ("x", "y")) == (
        "name", "expected a lower-case name, got nothing")


def test_the_description_style_reports_the_first_key_in_order():
    # a missing key comes before the other errors of its table
    document = {"size": 0, "tile": {"oc": 9}}
    assert tomlfile.schema_error(SCHEMA, document, style="description") == (
        "name", "expected a lower-case name, got nothing (a required key)")
    document = {"name": "ok", "size": 0, "tile": {"oc": 9}}
    assert tomlfile.schema_error(SCHEMA, document, style="description") == (
        "size", "expected an integer in [1, 8], got 0")


# ---------------------------------------------------------------- (c) message pieces


def test_dotted_shown_and_schema_keys():
    assert tomlfile.dotted(["mutant", 2, "name"]) == "mutant[2].name"
    assert tomlfile.dotted([3]) == "[3]" and tomlfile.dotted([]) == ""
    assert tomlfile.shown({"b": 1, "a": "x  y"}) == '{"a": "x y", "b": 1}'
    assert tomlfile.shown({"b": 1, "a": "x  y"}, sort_keys=False, squeeze=False) == \
        '{"b": 1, "a": "x  y"}'
    assert len(tomlfile.shown("z" * 200)) == 80 and tomlfile.shown("z" * 200).endswith("...")
    assert tomlfile.shown(Path("p")) == '"p"'  # default=str
    assert tomlfile.schema_keys(SCHEMA) == ["name", "size", "tile.oc", "tile.order"]
    assert tomlfile.schema_keys(SCHEMA, tables=True) == [
        "name", "size", "tile", "tile.oc", "tile.order"]
    assert tomlfile.schema_keys(SCHEMA["properties"]["tile"], "t.") == ["t.oc", "t.order"]


# ---------------------------------------------------------------- (d) the three callers


ACCELERATOR = (Path(__file__).resolve().parents[1] / "golden" / "accelerators"
               / "default.toml").read_text()
MUTANT = ('[[mutant]]\nname = "m"\nfile = "a.sv"\npattern = "x"\nreplacement = "y"\n'
          'description = "d"\n')


def _load_mutants(path: Path) -> None:
    from cosim.mutate import _read, _schema_error

    error = _schema_error(path, _read(path))  # what load_mutants does before the sources
    if error is not None:
        raise error


def _callers():
    from cosim.golden.accelerator import AcceleratorError, load_accelerator

    from cosim.mutate import MutantsError
    from cosim.project import ProjectError, load_project

    return [(load_accelerator, AcceleratorError, 64 << 10, ACCELERATOR),
            (load_project, ProjectError, 1 << 20, "format_version = 1\n"),
            (_load_mutants, MutantsError, 4 << 20, MUTANT)]


@pytest.mark.parametrize("case", ["schema", "unknown_key", "not_utf8", "syntax", "too_big",
                                  "directory", "missing"])
@pytest.mark.parametrize("caller", [0, 1, 2], ids=["accelerator", "project", "mutants"])
def test_each_caller_gives_one_line_of_its_own_error_class(case, caller, tmp_path):
    load, error_class, max_bytes, valid = _callers()[caller]
    path = tmp_path / "file.toml"
    if case == "schema":
        path.write_text(valid.replace("format_version = 1", "format_version = 2")
                        if "format_version" in valid else valid.replace('"m"', '"M M"'))
    elif case == "unknown_key":
        path.write_text("nope = 1\n" + valid)
    elif case == "not_utf8":
        path.write_bytes(b'format_version = 1\nname = "\xff"\n')
    elif case == "syntax":
        path.write_text("format_version = = 1\n")
    elif case == "too_big":
        path.write_bytes(b"#" * (max_bytes + 1))
    elif case == "directory":
        path.mkdir()
    with pytest.raises(error_class) as info:
        load(path)
    text = str(info.value)
    assert "\n" not in text and text.startswith(f"{path}: "), text
    if case == "schema":
        assert "format_version" in text or "mutant[0].name" in text, text
    if case == "unknown_key":
        assert "nope" in text and "unknown key" in text, text
    if case == "too_big":
        assert f"{max_bytes + 1:,}" in text or f"{max_bytes + 1}" in text, text
