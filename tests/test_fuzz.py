"""Fuzz every file `cosim` reads: each case ends in success with the original output, or
in one line on stderr and exit status 2. Zero tracebacks, zero hangs.

A seeded mutator (pinned seeds: the same cases every run) edits the tiny package's
manifest.json, every txt/hex file, report.json and golden's layout.json: byte flips
and writes, truncation, deleted, duplicated and swapped lines, numbers replaced by
other, huge (5,000 digits), long (400 digits), negative or non-finite ones, bad
encodings (invalid UTF-8, CR, NUL, BOM), JSON values of the wrong type, missing and
unknown keys, deep nesting, and special files in place of a file (FIFO, directory,
symlink to /dev/zero or /dev/null, dangling symlink, empty file). Data-file mutations
mostly update the manifest's sha256 too, so they reach the parsers and the
cross-checks instead of stopping at the hash.

Every in-process case runs `cosim.cli.main(["check", ...])` (the entry point of the
`cosim` command; `check` validates like every command that reads a package, without
the rebuild) under a 10 s SIGALRM deadline. A few dozen cases go through the real
`.venv/bin/cosim` in a subprocess. Checkpoint metadata is fuzzed through
quant.train.check_checkpoint_info, which load_checkpoint runs after torch.load.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cosim.quant.formats import PackageError, sha256_file
from cosim.quant.package import MANIFEST_NAME, load_package
from tiny_package import make_tiny_package

from cosim import cli

REPO = Path(__file__).resolve().parents[1]
COSIM = REPO / ".venv" / "bin" / "cosim"
SEED = 20_240_808
CASES = 2200
SUBPROCESS_CASES = 24
DEADLINE_S = 10

REPORT = {"float_top1": 99.0, "int8_top1": 98.5, "top1_drop": 0.5, "top1_agreement": 99.0,
          "logit_sqnr_db": 25.0, "test_split": "digits test", "quantize_seconds": 1.0,
          "export_seconds": 0.5, "weighted_layers": 3, "weights": 72, "bias_saturated": 1,
          "rebuild": {"images": 4, "elements": 12, "identical_elements": 12,
                      "identical_fraction": 1.0, "top1_reference": 75.0,
                      "top1_rebuilt": 75.0, "top1_agreement": 100.0},
          "rebuild_identical_fraction": 1.0}


class Hang(Exception):
    pass


def _alarm(signum, frame):  # noqa: ARG001
    raise Hang


# ---------------------------------------------------------------- the mutator

NUMBERS = [b"0", b"-1", b"1", b"9", b"10", b"127", b"128", b"255", b"256", b"-129", b"32768",
           b"9" * 5000, b"1" * 400, b"1e999", b"-0", b"0.5", b"1e-999", b"NaN", b"inf",
           b"2147483648", b"18446744073709551616", b"0x10", b"1_0"]
JSON_VALUES: list[Any] = [None, True, False, 0, -1, 1, 2, 3, 10**9, -(10**9), 0.5, 1.5, -0.5,
                          2.0**-200, 2.0**200, "", "x", "regular", [], [1], [1, 2], {},
                          {"scale": 0.5, "zero_point": 0}, 10**30, 7.0]


def _lines(data: bytes) -> list[bytes]:
    return data.split(b"\n")


def mutate_bytes(rng: random.Random, data: bytes) -> tuple[str, bytes]:
    """One byte-level edit of `data`: (its name, the new bytes)."""
    ops: list[tuple[str, Callable[[], bytes]]] = []
    n = len(data)
    if n:
        def flip() -> bytes:
            i = rng.randrange(n)
            return data[:i] + bytes([data[i] ^ (1 << rng.randrange(8))]) + data[i + 1:]

        def setbyte() -> bytes:
            i = rng.randrange(n)
            return data[:i] + bytes([rng.randrange(256)]) + data[i + 1:]

        def truncate() -> bytes:
            return data[:rng.randrange(n)]

        ops += [("flip", flip), ("set byte", setbyte), ("truncate", truncate)]
    lines = _lines(data)
    if len(lines) > 1:
        def delete() -> bytes:
            i = rng.randrange(len(lines))
            return b"\n".join(lines[:i] + lines[i + 1:])

        def duplicate() -> bytes:
            i = rng.randrange(len(lines))
            return b"\n".join(lines[:i + 1] + lines[i:])

        def swap() -> bytes:
            i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
            out = list(lines)
            out[i], out[j] = out[j], out[i]
            return b"\n".join(out)

        ops += [("delete line", delete), ("duplicate line", duplicate), ("swap lines", swap)]

    def number() -> bytes:
        import re
        runs = [m.span() for m in re.finditer(rb"-?[0-9]+(\.[0-9]+)?(e-?[0-9]+)?", data)]
        if not runs:
            return data + rng.choice(NUMBERS)
        a, b = rng.choice(runs)
        return data[:a] + rng.choice(NUMBERS) + data[b:]

    def near() -> bytes:  # a plausible edit: one integer changed by a little
        import re
        runs = [m.span() for m in re.finditer(rb"-?[0-9]+", data)]
        if not runs:
            return data
        a, b = rng.choice(runs)
        value = int(data[a:b]) + rng.choice((-2, -1, 1, 2))
        return data[:a] + str(value).encode() + data[b:]

    def encoding() -> bytes:
        i = rng.randrange(n + 1) if n else 0
        junk = rng.choice([b"\xff", b"\xc3", b"\xe2\x82", b"\r\n", b"\r", b"\x00", b"\xef\xbb\xbf",
                           b"\t", b" ", b"\xed\xa0\x80", "é".encode()])
        return data[:i] + junk + data[i:]

    def huge() -> bytes:  # the digit bounds: a number far beyond any range or float
        import re
        runs = [m.span() for m in re.finditer(rb"[0-9]+", data)]
        big = rng.choice([b"9" * 5000, b"1" * 400, b"-" + b"7" * 4400, b"1" * 30 + b".5"])
        if not runs:
            return data + big
        a, b = rng.choice(runs)
        return data[:a] + big + data[b:]

    ops += [("number", number), ("number", number), ("near", near), ("near", near),
            ("huge", huge), ("encoding", encoding)]
    name, op = rng.choice(ops)
    return name, op()


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


def mutate_json(rng: random.Random, data: bytes) -> tuple[str, bytes]:
    """One structural edit of a JSON document (falls back to bytes if it does not parse)."""
    try:
        doc = json.loads(data)
    except ValueError:
        return mutate_bytes(rng, data)
    paths = [p for p in _paths(doc) if p]
    if not paths:
        return mutate_bytes(rng, data)
    path = rng.choice(paths)
    parent = doc
    for part in path[:-1]:
        parent = parent[part]
    key = path[-1]
    kind = rng.choice(["value", "value", "value", "delete", "unknown key", "deep", "duplicate"])
    if kind == "value":
        parent[key] = rng.choice(JSON_VALUES)
    elif kind == "delete":
        del parent[key]
    elif kind == "unknown key" and isinstance(parent, dict):
        parent[f"extra_{rng.randrange(100)}"] = rng.choice(JSON_VALUES)
    elif kind == "deep":
        text = json.dumps(doc)
        depth = rng.choice([65, 1000, 100_000])
        return kind, ("[" * depth + text + "]" * depth).encode()
    elif kind == "duplicate" and isinstance(parent, list):
        parent.insert(key, parent[key])
    else:
        parent[key] = rng.choice(JSON_VALUES)
    return f"json {kind}", json.dumps(doc, indent=rng.choice([None, 1])).encode()


SPECIAL = ("fifo", "directory", "dev_zero", "dev_null", "dangling", "empty")


def make_special(path: Path, kind: str) -> None:
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    elif kind == "dev_zero":
        path.symlink_to("/dev/zero")
    elif kind == "dev_null":
        path.symlink_to("/dev/null")
    elif kind == "dangling":
        path.symlink_to(path.parent / "does-not-exist")
    else:
        path.write_bytes(b"")


def _remove(path: Path) -> None:
    if path.is_symlink() or not path.is_dir():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path)


class Workspace:
    """A package, its report.json and a layout.json in one folder; cases edit files in
    place and `restore` puts the original bytes back (much cheaper than a copy)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.package = make_tiny_package(root / "pkg")
        (self.package / "report.json").write_text(json.dumps(REPORT, indent=1))
        status = cli.main(["golden", "--package", str(self.package), "--out",
                           str(root / "golden"), "--no-plot"])
        assert status == 0
        self.layout = root / "golden" / "layout.json"
        self.files = sorted(p for p in [*self.package.rglob("*"), self.layout]
                            if p.is_file() and not p.name.startswith("."))
        self.original = {p: p.read_bytes() for p in self.files}
        self.argv = ["check", "--package", str(self.package), "--layout", str(self.layout)]
        self.touched: set[Path] = set()

    def write(self, path: Path, data: bytes) -> None:
        self.touched.add(path)
        _remove(path)
        path.write_bytes(data)

    def special(self, path: Path, kind: str) -> None:
        self.touched.add(path)
        _remove(path)
        make_special(path, kind)

    def rehash(self, path: Path) -> None:
        """Update the manifest's sha256 of `path` (so the mutation reaches the parser)."""
        manifest_path = self.package / MANIFEST_NAME
        manifest = json.loads(manifest_path.read_bytes())
        rel = path.relative_to(self.package).as_posix()
        entries = list(manifest["files"].values())
        for layer in manifest["layers"]:
            entries += list(layer["files"].values())
        for entry in entries:
            if entry["path"] == rel:
                entry["sha256"] = sha256_file(path)
        self.write(manifest_path, json.dumps(manifest, indent=1, sort_keys=True).encode())

    def restore(self) -> None:
        for path in self.touched:
            _remove(path)
            path.write_bytes(self.original[path])
        self.touched.clear()

    def case(self, rng: random.Random) -> str:
        """Apply one random mutation; returns its description."""
        path = rng.choice(self.files)
        rel = path.relative_to(self.root).as_posix()
        if rng.random() < 0.06:
            kind = rng.choice(SPECIAL)
            self.special(path, kind)
            return f"{rel}: {kind}"
        data = self.original[path]
        is_json = path.suffix == ".json"
        name, new = (mutate_json if is_json and rng.random() < 0.6 else mutate_bytes)(rng, data)
        self.write(path, new)
        in_manifest = path.parent != self.root / "golden" and path.name not in (
            MANIFEST_NAME, "report.json")
        if in_manifest and rng.random() < 0.8:
            self.rehash(path)
            name += " (sha256 updated)"
        return f"{rel}: {name}"


def run_case(argv: list[str], capsys) -> tuple[Any, str, str, bool]:
    """(status, stdout, stderr, hung) of cosim.cli.main(argv) under the deadline."""
    capsys.readouterr()
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(DEADLINE_S)
    hung = False
    try:
        status = cli.main(argv)
    except SystemExit as exit_:
        status = exit_.code
    except Hang:
        status, hung = None, True
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    out, err = capsys.readouterr()
    return status, out, err, hung


def classify(status: Any, out: str, err: str, hung: bool, reference: str) -> str:
    """'accepted', 'rejected', or what went wrong."""
    if hung:
        return "hang"
    if "Traceback" in err or "internal error" in err or status == 1:
        return "traceback"
    if status == 0:
        return "accepted" if out == reference and err == "" else "accepted with other output"
    lines = err.splitlines()
    if status == 2 and len(lines) == 1 and lines[0].startswith("cosim: error: "):
        return "rejected"
    return f"bad rejection (status {status}, {len(lines)} lines)"


# ---------------------------------------------------------------- the tests


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Workspace:
    return Workspace(tmp_path_factory.mktemp("fuzz"))


def test_fuzz_in_process(workspace: Workspace, capsys, monkeypatch, tmp_path) -> None:
    monkeypatch.chdir(tmp_path)  # a saved traceback (a failure) lands here, not in build/
    status, reference, err, _ = run_case(workspace.argv, capsys)
    assert status == 0 and err == "", err
    rng = random.Random(SEED)
    tally: Counter[str] = Counter()
    failures: list[str] = []
    slowest = (0.0, "")
    start = time.perf_counter()
    for n in range(CASES):
        what = workspace.case(rng)
        t0 = time.perf_counter()
        status, out, err, hung = run_case(workspace.argv, capsys)
        took = time.perf_counter() - t0
        slowest = max(slowest, (took, what))
        workspace.restore()
        verdict = classify(status, out, err, hung, reference)
        tally[verdict] += 1
        if verdict not in ("accepted", "rejected"):
            failures.append(f"case {n} [{what}]: {verdict}: {(err or out)[-300:]!r}")
    wall = time.perf_counter() - start
    status, out, err, _ = run_case(workspace.argv, capsys)
    assert (status, out) == (0, reference), "the workspace was not restored"
    with capsys.disabled():
        print(f"\nfuzz: {CASES} cases in {wall:.1f} s: {tally['rejected']} rejected (one line, "
              f"exit 2), {tally['accepted']} accepted (same output), "
              f"{tally['traceback']} tracebacks, {tally['hang']} hangs; slowest case "
              f"{slowest[0]:.2f} s ({slowest[1]})")
    assert not failures, "\n".join(failures[:20])
    assert tally["rejected"] > CASES // 2  # the mutator really breaks things
    assert tally["accepted"] > 0  # and some edits are harmless (informational floats)


@pytest.mark.slow  # 24 cosim starts (about 0.5 s each: the parser and check import no torch)
def test_fuzz_through_the_cosim_command(workspace: Workspace, tmp_path: Path) -> None:
    """A few dozen cases through the installed `cosim` command, each in its own copy."""
    if not COSIM.exists():
        pytest.skip(f"{COSIM} is not installed (make setup)")
    rng = random.Random(SEED + 1)
    cases = []
    for n in range(SUBPROCESS_CASES):
        what = workspace.case(rng)
        folder = tmp_path / f"case{n}"
        shutil.copytree(workspace.root / "pkg", folder / "pkg", symlinks=True)
        shutil.copytree(workspace.root / "golden", folder / "golden", symlinks=True)
        workspace.restore()
        cases.append((n, what, folder))
    reference = subprocess.run(
        [str(COSIM), *workspace.argv], capture_output=True, text=True, timeout=120,
        cwd=tmp_path, check=False)
    assert reference.returncode == 0, reference.stderr

    def one(case: tuple[int, str, Path]) -> str:
        n, what, folder = case
        argv = ["check", "--package", str(folder / "pkg"), "--layout",
                str(folder / "golden" / "layout.json")]
        try:
            proc = subprocess.run([str(COSIM), *argv], capture_output=True, text=True,
                                  timeout=120, cwd=folder, check=False)
        except subprocess.TimeoutExpired:
            return f"case {n} [{what}]: hang"
        want = reference.stdout.replace(str(workspace.root), str(folder))
        verdict = classify(proc.returncode, proc.stdout, proc.stderr, False, want)
        return verdict if verdict in ("accepted", "rejected") else \
            f"case {n} [{what}]: {verdict}: {proc.stderr[-300:]!r}"

    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        verdicts = list(pool.map(one, cases))
    bad = [v for v in verdicts if v not in ("accepted", "rejected")]
    print(f"\nfuzz via {COSIM.name}: {len(verdicts)} cases, "
          f"{verdicts.count('rejected')} rejected, {verdicts.count('accepted')} accepted",
          file=sys.stderr)
    assert not bad, "\n".join(bad)


def test_fuzz_checkpoint_metadata() -> None:
    """Checkpoint metadata (what load_checkpoint validates after torch.load): every
    mutation is accepted unchanged-valid or refused with one CheckpointError line."""
    from cosim.quant.train import (
        CHECKPOINT_FORMAT,
        CHECKPOINT_VERSION,
        CheckpointError,
        check_checkpoint_info,
    )

    good = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
            "arch": "mobilenet_v2_relu", "num_classes": 10, "width_mult": 1.0,
            "data": {"name": "digits", "root": None, "image_size": 32, "download": False,
                     "imagenette_size": "160px"},
            "train": {"epochs": 30, "batch_size": 64, "lr": 0.05, "momentum": 0.9,
                      "weight_decay": 4e-5, "label_smoothing": 0.0, "width_mult": 1.0,
                      "seed": 0},
            "test_top1": 99.0, "torch_version": "2.14.1", "state_dict": {}}
    check_checkpoint_info(good, Path("good.pt"))
    rng = random.Random(SEED + 2)
    tally: Counter[str] = Counter()
    for _ in range(300):
        _, data = mutate_json(rng, json.dumps(good).encode())
        try:
            doc = json.loads(data)
        except (ValueError, RecursionError):
            continue
        if isinstance(doc, dict):
            doc["state_dict"] = {}
        try:
            check_checkpoint_info(doc, Path("c.pt"))
            tally["accepted"] += 1
        except CheckpointError as error:
            assert "\n" not in str(error) and "c.pt" in str(error)
            tally["rejected"] += 1
    assert tally["rejected"] > 100 and sum(tally.values()) > 250


def test_mutated_package_never_loads_half_checked(workspace: Workspace) -> None:
    """Check of the checker: a flipped weight with its hash updated passes load_package
    (hashes only) but is caught by the cross-checks that every command runs."""
    path = next(p for p in workspace.files if p.name == "weight.hex")
    data = bytearray(workspace.original[path])
    data[0:2] = b"7f" if data[0:2] != b"7f" else b"00"
    workspace.write(path, bytes(data))
    workspace.rehash(path)
    try:
        package = load_package(workspace.package)
        with pytest.raises(PackageError, match="disagrees"):
            package.check_consistency()
    finally:
        workspace.restore()
