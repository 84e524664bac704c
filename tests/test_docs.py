"""The documentation stays true to the repository: links, make targets, cosim commands.

Checked in README.md and every docs/*.md:

- every relative link (inline `[text](target)`, images, reference definitions) points
  to a file or folder that exists; anchors and queries are ignored; a target under
  build/ (a run's output) may be missing, nothing else may;
- every `make <target>` written in code (inline code or a fenced block) is a target
  of the Makefile;
- every `cosim <subcommand>` written in code is a subcommand of
  `cosim.cli.build_parser()`, and every `--option` on that command line is one of
  that subcommand's options;
- in docs/cli.md, every `--option` in a section whose heading names subcommands
  (`## cosim train`, `## Data options (train, quantize, ...)`) is an option of each.

Each checker is a plain function of the text, and `test_checkers_catch_mistakes`
feeds them a page full of mistakes: a check of the checker.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BUILD = REPO / "build"
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

FENCE = re.compile(r"^ {0,3}(```|~~~)")
INLINE_CODE = re.compile(r"(`+)(.+?)\1", re.DOTALL)
INLINE_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_LINK = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
EXTERNAL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")          # http:, https:, mailto:, ...
MAKE_CALL = re.compile(r"(?<![\w./-])make\s+(?:[A-Za-z_]\w*=\S*\s+)*([a-z][\w.-]*)")
# `cosim <subcommand>`; "from cosim import ..." (Python) is not one
COSIM_CALL = re.compile(r"(?<![\w.-])cosim\s+(?!import\b)([a-z][a-z0-9-]*)\b")
OPTION = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*)")
COMMAND_END = re.compile(r"\s(?:#|&&|\|\||;|\|)\s|(?<![\w.-])cosim\s|$")
HEADING = re.compile(r"^(#{1,6})\s+(.*)$")
MAKE_RULE = re.compile(r"^([A-Za-z0-9_][\w.-]*(?:\s+[A-Za-z0-9_][\w.-]*)*)\s*:(?![:=])")


def _rel(page: Path) -> str:
    return str(page.relative_to(REPO)) if page.is_relative_to(REPO) else str(page)


# ---------------------------------------------------------------- markdown parsing


def split_code(text: str) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """(prose lines, code pieces) of a markdown text, each with its 1-based line number.

    Code pieces are fenced blocks (one piece per command: lines joined at a trailing
    backslash) and inline code spans (which may run over a line break inside a
    paragraph); prose lines have their code spans blanked.
    """
    prose: list[tuple[int, str]] = []
    code: list[tuple[int, str]] = []
    fence: str | None = None
    pending: tuple[int, str] | None = None
    paragraph: list[tuple[int, str]] = []

    def flush() -> None:
        if not paragraph:
            return
        first = paragraph[0][0]
        block = "\n".join(line for _, line in paragraph)
        for span in INLINE_CODE.finditer(block):
            code.append((first + block.count("\n", 0, span.start()),
                         span.group(2).replace("\n", " ")))
        blanked = INLINE_CODE.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), block)
        prose.extend(zip(range(first, first + len(paragraph)), blanked.split("\n"),
                         strict=True))
        paragraph.clear()

    for number, line in enumerate(text.splitlines(), 1):
        marker = FENCE.match(line)
        if fence is not None:
            if marker and marker.group(1) == fence:
                fence = None
                if pending:
                    code.append(pending)
                    pending = None
                continue
            start, head = pending if pending else (number, "")
            joined = head + line
            if joined.rstrip().endswith("\\"):
                pending = (start, joined.rstrip()[:-1] + " ")
            else:
                code.append((start, joined))
                pending = None
            continue
        if marker:
            flush()
            fence = marker.group(1)
        elif line.strip():
            paragraph.append((number, line))
        else:
            flush()
    flush()
    if pending:
        code.append(pending)
    return prose, code


def links(text: str) -> Iterator[tuple[int, str]]:
    """(line, target) of every link of the page (not those written inside code)."""
    prose, _ = split_code(text)
    for number, line in prose:
        for match in INLINE_LINK.finditer(line):
            yield number, match.group(1)
        ref = REFERENCE_LINK.match(line)
        if ref:
            yield number, ref.group(1)


def broken_links(page: Path, text: str, repo: Path = REPO) -> list[str]:
    """Relative links of `page` whose target does not exist (build/ outputs excepted)."""
    problems = []
    for number, target in links(text):
        if EXTERNAL.match(target) or target.startswith("#"):
            continue
        path = target.split("#", 1)[0].split("?", 1)[0]
        if not path:
            continue
        resolved = (page.parent / path).resolve()
        where = f"{_rel(page)}:{number}: link {target!r}"
        if not resolved.is_relative_to(repo):
            problems.append(f"{where} leaves the repository")
        elif not resolved.exists() and not resolved.is_relative_to(repo / "build"):
            problems.append(f"{where}: {resolved.relative_to(repo)} does not exist")
    return problems


def make_targets(makefile: Path) -> set[str]:
    """Targets of the rules of a Makefile (special targets such as .PHONY excluded)."""
    targets: set[str] = set()
    for line in makefile.read_text().splitlines():
        if line.startswith(("\t", "#", " ")):
            continue
        rule = MAKE_RULE.match(line)
        if rule:
            targets.update(rule.group(1).split())
    return targets


def unknown_make_targets(page: Path, text: str, targets: set[str]) -> list[str]:
    _, code = split_code(text)
    return [f"{_rel(page)}:{number}: `make {m.group(1)}` is not a Makefile target"
            for number, piece in code for m in MAKE_CALL.finditer(piece)
            if m.group(1) not in targets]


def subcommand_options(parser: argparse.ArgumentParser) -> dict[str, set[str]]:
    """{subcommand: its option strings} of a parser with subparsers."""
    subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert subparsers, "the parser has no subcommands"
    return {name: {s for action in sub._actions for s in action.option_strings}
            for name, sub in subparsers[0].choices.items()}


def cosim_calls(piece: str) -> Iterator[tuple[str, list[str]]]:
    """(subcommand, --options on its command line) of each `cosim <sub>` in a code piece."""
    for call in COSIM_CALL.finditer(piece):
        rest = piece[call.end():]
        end = COMMAND_END.search(rest)
        yield call.group(1), OPTION.findall(rest[: end.start() if end else len(rest)])


def bad_cosim_calls(page: Path, text: str, options: dict[str, set[str]]) -> list[str]:
    problems = []
    _, code = split_code(text)
    for number, piece in code:
        for sub, used in cosim_calls(piece):
            where = f"{_rel(page)}:{number}: `cosim {sub}`"
            if sub not in options:
                problems.append(f"{where} is not a subcommand ({', '.join(sorted(options))})")
                continue
            problems += [f"{where}: no option {opt}" for opt in used if opt not in options[sub]]
    return problems


def section_subcommands(heading: str, known: set[str]) -> list[str]:
    """Subcommands a heading is about: `cosim X` in it, or a parenthesized list of them."""
    named = COSIM_CALL.findall(heading.replace("`", " "))
    if named:
        return named
    listed = re.search(r"\(([^)]*)\)", heading)
    if listed:
        names = [n.strip() for n in listed.group(1).split(",")]
        if names and all(n in known for n in names):
            return names
    return []


def bad_section_options(page: Path, text: str, options: dict[str, set[str]]) -> list[str]:
    """Every --option in a section about subcommands is an option of each of them."""
    problems = []
    subs: list[str] = []
    in_fence = False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            in_fence = not in_fence
        heading = None if in_fence else HEADING.match(line)
        if heading:
            subs = section_subcommands(heading.group(2), set(options))
            problems += [f"{_rel(page)}:{number}: heading names `cosim {s}`, not a subcommand"
                         for s in subs if s not in options]
            continue
        for opt in OPTION.findall(line):
            problems += [f"{_rel(page)}:{number}: {opt} is not an option of `cosim {s}`"
                         for s in subs if s in options and opt not in options[s]]
    return problems


# ---------------------------------------------------------------- the checks


@pytest.fixture(scope="module")
def cosim_options() -> dict[str, set[str]]:
    from cosim.cli import build_parser

    return subcommand_options(build_parser())


def test_pages_exist():
    names = {p.name for p in PAGES}
    assert {"README.md", "index.md", "cli.md", "troubleshooting.md"} <= names


@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_relative_links_point_to_files(page):
    problems = broken_links(page, page.read_text())
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_make_targets_exist(page):
    problems = unknown_make_targets(page, page.read_text(), make_targets(REPO / "Makefile"))
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_cosim_commands_and_their_options_exist(page, cosim_options):
    problems = bad_cosim_calls(page, page.read_text(), cosim_options)
    assert not problems, "\n".join(problems)


def test_cli_reference_sections_name_real_options(cosim_options):
    page = REPO / "docs" / "cli.md"
    text = page.read_text()
    problems = bad_section_options(page, text, cosim_options)
    assert not problems, "\n".join(problems)
    documented = {s for line in text.splitlines() if HEADING.match(line)
                  for s in section_subcommands(line, set(cosim_options))}
    assert documented, "docs/cli.md has no `cosim <subcommand>` sections"


def test_index_lists_every_doc():
    index = REPO / "docs" / "index.md"
    listed = {(index.parent / target.split("#", 1)[0]).resolve()
              for _, target in links(index.read_text()) if not EXTERNAL.match(target)}
    missing = [p.name for p in PAGES[1:] if p != index and p.resolve() not in listed]
    assert not missing, f"docs/index.md does not link {missing}"


def test_checkers_catch_mistakes(tmp_path, cosim_options):
    """Check of the checker: a page with one mistake of each kind, and correct uses."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "there.md").write_text("# here\n")
    (tmp_path / "Makefile").write_text(".PHONY: a b\nVAR := x\na b: c\n\tmake nothing\n")
    page = tmp_path / "docs" / "page.md"
    text = "\n".join([
        "# Mistakes",                                              # 1
        "[ok](there.md#here) [gone](missing.md) [out](../../x.md)",
        "[run](../build/never/made.txt) [web](https://example.org) [a](#anchor)",
        "![img](pic.png) `[not a link](nowhere.md)`",              # 4
        "Run `make a`, `WAVES=1 make b SIM=x`, `make zzz`; make sure of prose.",
        "```sh",                                                   # 6
        "cosim train --epochs 3 --out x \\",
        "    --bogus-flag 1   # --not-checked in a comment",       # 8
        "cosim nosuch --x",
        ".venv/bin/cosim golden --tile-oc 16 && cosim export --quantized q.pt",
        "```",                                                     # 11
        "[ref]: there.md",
        "[ref2]: gone.md",                                         # 13
        "",
        "A span `cosim train --epochs 1",                          # 15
        "--bogus-two 2` over a line break.",
    ]) + "\n"
    problems = broken_links(page, text, repo=tmp_path)
    assert [p.split(": link ")[1].split("'")[1] for p in problems] == [
        "missing.md", "../../x.md", "pic.png", "gone.md"]
    assert "leaves the repository" in problems[1]
    targets = make_targets(tmp_path / "Makefile")
    assert targets == {"a", "b"}
    assert unknown_make_targets(page, text, targets) == [
        f"{_rel(page)}:5: `make zzz` is not a Makefile target"]
    bad = bad_cosim_calls(page, text, cosim_options)
    assert [b.split(": ", 1)[1] for b in bad] == [
        "`cosim train`: no option --bogus-flag",
        f"`cosim nosuch` is not a subcommand ({', '.join(sorted(cosim_options))})",
        "`cosim train`: no option --bogus-two"]
    assert [b.split(":")[1] for b in bad] == ["7", "9", "15"]
    sections = "\n".join([
        "# `cosim train`",                                         # 1
        "Use `--epochs` and `--no-such-train-option`.",
        "```sh",                                                   # 3
        "# a shell comment, not a heading",
        "cosim train --bogus-flag",                                # 5
        "```",
        "## Data options (train, quantize)",                       # 7
        "`--data`, `--root` and `--weight-range`",
        "## Pipeline (how it works)",                              # 9
        "`--anything`",
    ]) + "\n"
    found = bad_section_options(page, sections, cosim_options)
    assert [f.split(": ", 1)[1] for f in found] == [
        "--no-such-train-option is not an option of `cosim train`",
        "--bogus-flag is not an option of `cosim train`",
        "--weight-range is not an option of `cosim train`"]
    assert [f.split(":")[1] for f in found] == ["2", "5", "8"]
