"""quant.formats: round trips (hypothesis) and every bad-input case with its file:line."""

from __future__ import annotations

import math
import pickle
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from cosim.quant.formats import (
    PackageError,
    atomic_directory,
    int_range_name,
    read_float_txt,
    read_hex,
    read_int_txt,
    read_qparams_txt,
    read_scaling_factor_hex,
    read_scaling_factor_txt,
    sha256_file,
    write_float_txt,
    write_hex,
    write_int_txt,
    write_qparams_txt,
    write_scaling_factor_hex,
    write_scaling_factor_txt,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

INT8 = (-128, 127)
INT16 = (-32768, 32767)
SHAPES = hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=5)


def raises_at(path: Path, line: int | None, message: str, fn, *args) -> PackageError:
    """Call fn(*args); assert a one-line PackageError '<path>:<line>: <message>'."""
    with pytest.raises(PackageError) as info:
        fn(*args)
    err = info.value
    text = str(err)
    assert "\n" not in text
    where = str(path) if line is None else f"{path}:{line}"
    assert text == f"{where}: {message}"
    assert (err.path, err.line) == (str(path), line)
    return err


def write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode("ascii"))
    return path


# ---------------------------------------------------------------- exact text


def test_int_txt_exact_text(tmp_path: Path) -> None:
    p = tmp_path / "w.txt"
    write_int_txt(p, np.array([[1, -2, 3]], dtype=np.int8))
    assert p.read_text() == "shape: 1 3\n1\n-2\n3\n"
    assert read_int_txt(p, (1, 3), *INT8).tolist() == [[1, -2, 3]]
    assert read_int_txt(p, (1, 3), *INT8).dtype == np.int64


def test_int_txt_row_major_order(tmp_path: Path) -> None:
    w = np.arange(24).reshape(2, 3, 2, 2)
    p = tmp_path / "w.txt"
    write_int_txt(p, w)
    lines = p.read_text().splitlines()
    assert lines[0] == "shape: 2 3 2 2"
    assert [int(v) for v in lines[1:]] == list(range(24))  # line 2 is w[0,0,0,0]


def test_hex_exact_text(tmp_path: Path) -> None:
    p = tmp_path / "w.hex"
    write_hex(p, np.array([-3, 100, -128, 127, 0, -1]), 8)
    assert p.read_text() == "fd\n64\n80\n7f\n00\nff\n"
    q = tmp_path / "b.hex"
    write_hex(q, np.array([-1, 32767, -32768, 4096]), 16)
    assert q.read_text() == "ffff\n7fff\n8000\n1000\n"


def test_float_txt_exact_text(tmp_path: Path) -> None:
    p = tmp_path / "f.txt"
    write_float_txt(p, np.array([0.1, -2.5, 1e-8], dtype=np.float32))
    assert p.read_text() == "shape: 3\n0.100000001\n-2.5\n9.99999994e-09\n"


def test_qparams_exact_text(tmp_path: Path) -> None:
    p = tmp_path / "scale.txt"
    write_qparams_txt(p, {"input": [2.0**-7], "weight": [2.0**-8, 0.5], "output": [0.03125]})
    assert p.read_text() == "input 0.0078125\nweight 0.00390625 0.5\noutput 0.03125\n"
    z = tmp_path / "zero_point.txt"
    write_qparams_txt(z, {"input": [64], "weight": [0, 0], "output": [0]})
    assert z.read_text() == "input 64\nweight 0 0\noutput 0\n"


def test_scaling_factor_exact_text(tmp_path: Path) -> None:
    t, h = tmp_path / "scaling_factor.txt", tmp_path / "scaling_factor.hex"
    write_scaling_factor_txt(t, [("features.0.0", [7]), ("features.1.conv.0.0", [5, -3])])
    assert t.read_text() == "features.0.0 7\nfeatures.1.conv.0.0 5 -3\n"
    write_scaling_factor_hex(h, [7, 5, -3])
    assert h.read_text() == "07\n05\nfd\n"


def test_po2_scales_survive_9_digits(tmp_path: Path) -> None:
    # 2^-13 needs 10 significant digits; '%.9g' is float32-exact and the reader snaps.
    p = tmp_path / "scale.txt"
    scales = [2.0**-e for e in range(0, 40)]
    write_qparams_txt(p, {"weight": scales})
    assert read_qparams_txt(p, {"weight": 40}, "scale")["weight"] == scales


def test_worked_example_of_the_docs(tmp_path: Path) -> None:
    w_float = np.array([-0.0236, 0.391], dtype=np.float32).reshape(2, 1, 1, 1)
    w_int8 = np.rint(w_float.astype(np.float64) / 2.0**-7).astype(np.int64)
    write_float_txt(tmp_path / "weight_float.txt", w_float)
    write_int_txt(tmp_path / "weight.txt", w_int8)
    write_hex(tmp_path / "weight.hex", w_int8, 8)
    assert (tmp_path / "weight_float.txt").read_text() == (
        "shape: 2 1 1 1\n-0.0236000009\n0.391000003\n")
    assert (tmp_path / "weight.txt").read_text() == "shape: 2 1 1 1\n-3\n50\n"
    assert (tmp_path / "weight.hex").read_text() == "fd\n32\n"
    assert np.abs(w_int8).max() <= 64  # inside the default (guarded) weight range
    bias = np.array([0.3, -0.0006103515625, 9.0], dtype=np.float32)
    exact = np.rint(bias.astype(np.float64) / (2.0**-5 * 2.0**-7))
    assert exact.tolist() == [1229, -2, 36864]
    bias_int16 = np.clip(exact, -32768, 32767).astype(np.int64)
    write_hex(tmp_path / "b.hex", bias_int16, 16)
    write_float_txt(tmp_path / "bias.txt", bias[:2])
    assert (tmp_path / "b.hex").read_text() == "04cd\nfffe\n7fff\n"
    assert (tmp_path / "bias.txt").read_text() == "shape: 2\n0.300000012\n-0.000610351562\n"
    assert math.log2(2.0**-4 / (2.0**-5 * 2.0**-7)) == 8
    write_scaling_factor_hex(tmp_path / "s.hex", [8, -2])
    assert (tmp_path / "s.hex").read_text() == "08\nfe\n"
    acc = np.array([-3 * 32, 50 * 32]) + bias_int16[:2]
    assert acc.tolist() == [1133, 1598]
    assert np.rint(acc / 2**8).tolist() == [4, 6]
    doc = (Path(__file__).parents[1] / "docs" / "file-formats.md").read_text()
    for text in ("-0.0236000009         -3                32", "0.391000003           50",
                 "`1598 / 2^8 = 6.24 -> 6`", "`1133 / 2^8 = 4.43 -> 4`"):
        assert text in doc, text


# ---------------------------------------------------------------- round trips


@settings(max_examples=60, deadline=None)
@given(st.data(), SHAPES, st.sampled_from([INT8, INT16]))
def test_int_txt_round_trip(data, shape, rng) -> None:
    lo, hi = rng
    values = data.draw(hnp.arrays(np.int64, shape, elements=st.integers(lo, hi)))
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "v.txt"
        write_int_txt(p, values)
        np.testing.assert_array_equal(read_int_txt(p, shape, lo, hi), values)


@settings(max_examples=60, deadline=None)
@given(st.data(), SHAPES)
def test_float_txt_round_trip_is_bit_exact(data, shape) -> None:
    elements = st.floats(width=32, allow_nan=False, allow_infinity=False)
    values = data.draw(hnp.arrays(np.float32, shape, elements=elements))
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "v.txt"
        write_float_txt(p, values)
        back = read_float_txt(p, shape)
        assert back.dtype == np.float32
        np.testing.assert_array_equal(back.view(np.uint32), values.view(np.uint32))


@settings(max_examples=60, deadline=None)
@given(st.data(), st.sampled_from([4, 8, 12, 16, 32, 64]), st.integers(0, 50), st.booleans())
def test_hex_round_trip(data, bits, count, upper) -> None:
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    values = np.array(data.draw(st.lists(st.integers(lo, hi), min_size=count, max_size=count)),
                      dtype=np.int64)
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "v.hex"
        write_hex(p, values, bits)
        lines = p.read_text().splitlines()
        assert all(len(x) == bits // 4 and x == x.lower() for x in lines)
        if upper:
            p.write_text(p.read_text().upper())
        np.testing.assert_array_equal(read_hex(p, count, bits), values)


positive_f32 = st.floats(min_value=2.0**-126, max_value=2.0**100, width=32)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True),
                       st.lists(positive_f32, min_size=1, max_size=6), min_size=1, max_size=4),
       st.lists(st.integers(-(2**31), 2**31 - 1), min_size=1, max_size=6))
def test_qparams_round_trip(scales, zero_points) -> None:
    with tempfile.TemporaryDirectory() as d:
        s, z = Path(d) / "scale.txt", Path(d) / "zero_point.txt"
        write_qparams_txt(s, scales)
        roles = {r: len(v) for r, v in scales.items()}
        assert read_qparams_txt(s, roles, "scale") == scales
        assert read_qparams_txt(s, dict.fromkeys(scales), "scale") == scales
        write_qparams_txt(z, {"output": zero_points})
        assert read_qparams_txt(z, {"output": None}, "zero_point") == {"output": zero_points}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.integers(-128, 127), min_size=1, max_size=5), min_size=1,
                max_size=6))
def test_scaling_factor_round_trip(shifts) -> None:
    names = [f"features.{i}.0" for i in range(len(shifts))]
    entries = list(zip(names, shifts, strict=True))
    flat = [n for ns in shifts for n in ns]
    with tempfile.TemporaryDirectory() as d:
        t, h = Path(d) / "scaling_factor.txt", Path(d) / "scaling_factor.hex"
        write_scaling_factor_txt(t, entries)
        write_scaling_factor_hex(h, flat)
        counts = {n: len(s) for n, s in entries}
        assert read_scaling_factor_txt(t, names, counts) == dict(entries)
        assert read_scaling_factor_hex(h, len(flat)).tolist() == flat


def test_trailing_newline_is_optional(tmp_path: Path) -> None:
    assert read_int_txt(write(tmp_path / "a.txt", "shape: 2\n1\n2"), (2,), *INT8).tolist() == [1, 2]
    assert read_hex(write(tmp_path / "a.hex", "01\nff"), 2, 8).tolist() == [1, -1]
    assert read_float_txt(write(tmp_path / "f.txt", "shape: 1\n1.5"), (1,)).tolist() == [1.5]


def test_empty_tensor_and_empty_hex(tmp_path: Path) -> None:
    write_int_txt(tmp_path / "e.txt", np.zeros((0,), dtype=np.int64))
    assert read_int_txt(tmp_path / "e.txt", (0,), *INT8).shape == (0,)
    write_hex(tmp_path / "e.hex", np.zeros(0, dtype=np.int64), 8)
    assert read_hex(tmp_path / "e.hex", 0, 8).shape == (0,)


def test_package_error_is_one_line() -> None:
    err = PackageError("a/b.txt", "bad\nthing", 3)
    assert str(err) == "a/b.txt:3: bad thing"
    assert (err.path, err.line, err.message) == ("a/b.txt", 3, "bad thing")
    assert str(PackageError(Path("x.hex"), "missing")) == "x.hex: missing"
    again = pickle.loads(pickle.dumps(err))
    assert (str(again), again.line) == (str(err), 3)


def test_sha256_file(tmp_path: Path) -> None:
    p = write(tmp_path / "x", "abc")
    assert sha256_file(p) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_int_range_name() -> None:
    assert int_range_name(-128, 127) == "int8 range [-128, 127]"
    assert int_range_name(-32768, 32767) == "int16 range [-32768, 32767]"
    assert int_range_name(0, 255) == "uint8 range [0, 255]"
    assert int_range_name(-5, 5) == "range [-5, 5]"


# ---------------------------------------------------------------- int txt errors


def test_int_txt_missing(tmp_path: Path) -> None:
    p = tmp_path / "weight.txt"
    raises_at(p, None, "missing; expected a shape header and 6 decimal integers",
              read_int_txt, p, (2, 3), *INT8)


def test_int_txt_empty(tmp_path: Path) -> None:
    p = write(tmp_path / "weight.txt", "")
    raises_at(p, None, "empty file; expected a shape header and 6 decimal integers",
              read_int_txt, p, (2, 3), *INT8)


def test_int_txt_truncated_names_last_line(tmp_path: Path) -> None:
    p = write(tmp_path / "weight.txt", "shape: 2 3\n1\n2\n3\n4\n5\n")
    raises_at(p, 6, "expected 6 values, found 5", read_int_txt, p, (2, 3), *INT8)


def test_int_txt_header_only(tmp_path: Path) -> None:
    p = write(tmp_path / "weight.txt", "shape: 2\n")
    raises_at(p, 1, "expected 2 values, found 0", read_int_txt, p, (2,), *INT8)


def test_int_txt_too_many_names_first_extra_line(tmp_path: Path) -> None:
    p = write(tmp_path / "weight.txt", "shape: 2\n1\n2\n3\n4\n")
    raises_at(p, 4, "expected 2 values, found 4", read_int_txt, p, (2,), *INT8)


def test_int_txt_non_numeric(tmp_path: Path) -> None:
    p = write(tmp_path / "weight.txt", "shape: 4\n1\n2\nzz\n4\n")
    raises_at(p, 4, "'zz' is not a decimal integer", read_int_txt, p, (4,), *INT8)


@pytest.mark.parametrize("token", ["1.5", " 3", "3 ", "+3", "1_0", "--1", "1-2", "-", "0x1f"])
def test_int_txt_rejects_loose_integers(tmp_path: Path, token: str) -> None:
    p = write(tmp_path / "weight.txt", f"shape: 3\n1\n{token}\n3\n")
    raises_at(p, 3, f"{token!r} is not a decimal integer", read_int_txt, p, (3,), *INT8)


def test_int_txt_blank_line(tmp_path: Path) -> None:
    p = write(tmp_path / "weight.txt", "shape: 3\n1\n\n3\n")
    raises_at(p, 3, "blank line; expected a decimal integer", read_int_txt, p, (3,), *INT8)


def test_int_txt_extra_trailing_blank_line(tmp_path: Path) -> None:
    p = write(tmp_path / "weight.txt", "shape: 2\n1\n2\n\n")
    raises_at(p, 4, "expected 2 values, found 3", read_int_txt, p, (2,), *INT8)


def test_int_txt_out_of_range(tmp_path: Path) -> None:
    p = write(tmp_path / "weight.txt", "shape: 3\n1\n300\n3\n")
    raises_at(p, 3, "300 is out of int8 range [-128, 127]", read_int_txt, p, (3,), *INT8)
    q = write(tmp_path / "bias_int16.txt", "shape: 2\n-32769\n0\n")
    raises_at(q, 2, "-32769 is out of int16 range [-32768, 32767]",
              read_int_txt, q, (2,), *INT16)


def test_int_txt_wrong_shape(tmp_path: Path) -> None:
    p = tmp_path / "weight.txt"
    write_int_txt(p, np.zeros((32, 3, 3, 3), dtype=np.int64))
    raises_at(p, 1, "shape header says 32x3x3x3, expected 32x3x3x4",
              read_int_txt, p, (32, 3, 3, 4), *INT8)


@pytest.mark.parametrize("header", ["32 3 3 3", "shape 32 3", "shape: 32, 3", "shape:  32",
                                    "shape: -1", "Shape: 32", "shape: 32 "])
def test_int_txt_malformed_header(tmp_path: Path, header: str) -> None:
    p = write(tmp_path / "weight.txt", f"{header}\n1\n")
    raises_at(p, 1, f"{header!r} is not a shape header; expected 'shape: 32 3'",
              read_int_txt, p, (32, 3), *INT8)


def test_crlf_is_rejected_with_line(tmp_path: Path) -> None:
    p = write(tmp_path / "weight.txt", "shape: 2\n1\r\n2\r\n")
    raises_at(p, 2, "carriage return (CRLF line ending); expected LF line endings",
              read_int_txt, p, (2,), *INT8)


def test_first_bad_line_wins_over_count(tmp_path: Path) -> None:
    p = write(tmp_path / "weight.txt", "shape: 4\n1\nq\n3\n")
    raises_at(p, 3, "'q' is not a decimal integer", read_int_txt, p, (4,), *INT8)


def test_directory_instead_of_file(tmp_path: Path) -> None:
    d = tmp_path / "weight.txt"
    d.mkdir()
    raises_at(d, None, "is a directory; expected a shape header and 1 decimal integers",
              read_int_txt, d, (1,), *INT8)


# ---------------------------------------------------------------- float txt errors


@pytest.mark.parametrize("token", ["nan", "inf", "-inf", "abc", "1e", "1,5", "0x1p3", "1.5f"])
def test_float_txt_rejects_non_decimal(tmp_path: Path, token: str) -> None:
    p = write(tmp_path / "bias.txt", f"shape: 2\n0.5\n{token}\n")
    raises_at(p, 3, f"{token!r} is not a decimal float", read_float_txt, p, (2,))


def test_float_txt_out_of_float32_range(tmp_path: Path) -> None:
    p = write(tmp_path / "bias.txt", "shape: 2\n0.5\n1e39\n")
    raises_at(p, 3, "'1e39' is out of float32 range", read_float_txt, p, (2,))


def test_float_txt_truncated_and_shape(tmp_path: Path) -> None:
    p = write(tmp_path / "bias.txt", "shape: 3\n0.5\n1\n")
    raises_at(p, 3, "expected 3 values, found 2", read_float_txt, p, (3,))
    raises_at(p, 1, "shape header says 3, expected 4", read_float_txt, p, (4,))


def test_float_txt_missing_and_empty(tmp_path: Path) -> None:
    p = tmp_path / "bias.txt"
    raises_at(p, None, "missing; expected a shape header and 3 floats", read_float_txt, p, (3,))
    write(p, "")
    raises_at(p, None, "empty file; expected a shape header and 3 floats",
              read_float_txt, p, (3,))


# ---------------------------------------------------------------- hex errors


def test_hex_missing(tmp_path: Path) -> None:
    p = tmp_path / "weight.hex"
    raises_at(p, None, "missing; expected 4 2-digit hex values", read_hex, p, 4, 8)


def test_hex_empty(tmp_path: Path) -> None:
    p = write(tmp_path / "weight.hex", "")
    raises_at(p, None, "empty file; expected 4 2-digit hex values", read_hex, p, 4, 8)


def test_hex_truncated_names_last_line(tmp_path: Path) -> None:
    p = write(tmp_path / "weight.hex", "01\n02\n03\n")
    raises_at(p, 3, "expected 864 values, found 3", read_hex, p, 864, 8)


def test_hex_too_many(tmp_path: Path) -> None:
    p = write(tmp_path / "weight.hex", "01\n02\n03\n")
    raises_at(p, 3, "expected 2 values, found 3", read_hex, p, 2, 8)


def test_hex_non_hex_digit(tmp_path: Path) -> None:
    p = write(tmp_path / "weight.hex", "01\n02\nzz\n04\n")
    raises_at(p, 3, "'zz' is not a 2-digit hex value", read_hex, p, 4, 8)


@pytest.mark.parametrize("token", ["0x1f", "1 ", " 1", "-1", "g0"])
def test_hex_rejects_decorations(tmp_path: Path, token: str) -> None:
    p = write(tmp_path / "weight.hex", f"00\n{token}\n")
    raises_at(p, 2, f"{token!r} is not a 2-digit hex value", read_hex, p, 2, 8)


def test_hex_wrong_digit_count(tmp_path: Path) -> None:
    p = write(tmp_path / "weight.hex", "01\nfff\n03\n")
    raises_at(p, 2, "'fff' has 3 hex digits, expected 2", read_hex, p, 3, 8)
    q = write(tmp_path / "bias_int16.hex", "0001\nff\n")
    raises_at(q, 2, "'ff' has 2 hex digits, expected 4", read_hex, q, 2, 16)


def test_hex_blank_line(tmp_path: Path) -> None:
    p = write(tmp_path / "weight.hex", "01\n\n03\n")
    raises_at(p, 2, "blank line; expected a 2-digit hex value", read_hex, p, 3, 8)


def test_hex_upper_case_accepted(tmp_path: Path) -> None:
    p = write(tmp_path / "b.hex", "FFFF\n7FfF\n8000\n")
    assert read_hex(p, 3, 16).tolist() == [-1, 32767, -32768]


def test_hex_bits_validated(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="multiple of 4"):
        write_hex(tmp_path / "x.hex", np.array([1]), 6)
    with pytest.raises(ValueError, match="multiple of 4"):
        read_hex(tmp_path / "x.hex", 1, 72)


# ---------------------------------------------------------------- writers refuse bad values


def test_writers_refuse_bad_values(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"int8 range \[-128, 127\]"):
        write_hex(tmp_path / "w.hex", np.array([1, 128]), 8)
    with pytest.raises(ValueError, match="int16 range"):
        write_hex(tmp_path / "b.hex", np.array([-32769]), 16)
    with pytest.raises(ValueError, match="needs integers"):
        write_hex(tmp_path / "w.hex", np.array([1.5]), 8)
    with pytest.raises(ValueError, match="needs integers"):
        write_int_txt(tmp_path / "w.txt", np.array([1.5]))
    with pytest.raises(ValueError, match="finite"):
        write_float_txt(tmp_path / "f.txt", np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="int8 range"):
        write_scaling_factor_hex(tmp_path / "s.hex", [3, 128])
    with pytest.raises(ValueError, match="int8 range"):
        write_scaling_factor_txt(tmp_path / "s.txt", [("a", [-129])])
    with pytest.raises(ValueError, match="bad layer name"):
        write_scaling_factor_txt(tmp_path / "s.txt", [("a b", [1])])
    with pytest.raises(ValueError, match="not finite"):
        write_qparams_txt(tmp_path / "q.txt", {"input": [math.inf]})
    assert list(tmp_path.iterdir()) == []  # nothing half-written


# ---------------------------------------------------------------- qparams errors

ROLES = {"input": 1, "weight": 2, "output": 1}


def test_qparams_missing_and_empty(tmp_path: Path) -> None:
    p = tmp_path / "scale.txt"
    raises_at(p, None, "missing; expected one 'scale' line per role (input, weight, output)",
              read_qparams_txt, p, ROLES, "scale")
    write(p, "")
    raises_at(p, None, "empty file; expected one 'scale' line per role (input, weight, output)",
              read_qparams_txt, p, ROLES, "scale")


def test_qparams_unknown_role(tmp_path: Path) -> None:
    p = write(tmp_path / "scale.txt", "input 0.5\nbias 0.5\n")
    raises_at(p, 2, "unknown role 'bias'; expected one of input, weight, output",
              read_qparams_txt, p, ROLES, "scale")


def test_qparams_duplicate_role(tmp_path: Path) -> None:
    p = write(tmp_path / "scale.txt", "input 0.5\nweight 1 2\ninput 0.5\n")
    raises_at(p, 3, "role 'input' repeats (first on line 1)", read_qparams_txt, p, ROLES, "scale")


def test_qparams_wrong_count(tmp_path: Path) -> None:
    p = write(tmp_path / "scale.txt", "input 0.5\nweight 1 2 4\noutput 1\n")
    raises_at(p, 2, "role 'weight' has 3 values, expected 2", read_qparams_txt, p, ROLES, "scale")
    q = write(tmp_path / "zero_point.txt", "input\n")
    raises_at(q, 1, "role 'input' has 0 values, expected at least 1",
              read_qparams_txt, q, {"input": None}, "zero_point")


def test_qparams_missing_role(tmp_path: Path) -> None:
    p = write(tmp_path / "scale.txt", "input 0.5\nweight 1 2\n")
    raises_at(p, None, "missing role(s) 'output'; expected lines for input, weight, output",
              read_qparams_txt, p, ROLES, "scale")


@pytest.mark.parametrize("token", ["0", "-0.5", "nan", "inf", "x", "1e-50"])
def test_qparams_bad_scale(tmp_path: Path, token: str) -> None:
    p = write(tmp_path / "scale.txt", f"input 0.5\nweight 1 {token}\noutput 1\n")
    raises_at(p, 2, f"{token!r} is not a positive finite float32 scale",
              read_qparams_txt, p, ROLES, "scale")


def test_qparams_bad_zero_point(tmp_path: Path) -> None:
    p = write(tmp_path / "zero_point.txt", "input 64\nweight 0 0.5\noutput 0\n")
    raises_at(p, 2, "'0.5' is not an integer zero point", read_qparams_txt, p, ROLES,
              "zero_point")
    q = write(tmp_path / "zero_point2.txt", "input 4294967296\nweight 0 0\noutput 0\n")
    raises_at(q, 1, "zero point 4294967296 is out of int32 range [-2147483648, 2147483647]",
              read_qparams_txt, q, ROLES, "zero_point")


def test_qparams_double_space(tmp_path: Path) -> None:
    p = write(tmp_path / "scale.txt", "input 0.5\nweight  1 2\noutput 1\n")
    raises_at(p, 2, "empty field (leading, trailing or double space); expected fields "
              "separated by single spaces", read_qparams_txt, p, ROLES, "scale")


def test_qparams_any_order(tmp_path: Path) -> None:
    p = write(tmp_path / "scale.txt", "output 1\ninput 0.5\nweight 1 2\n")
    got = read_qparams_txt(p, ROLES, "scale")
    assert list(got) == ["input", "weight", "output"]


# ---------------------------------------------------------------- scaling factor errors

LAYERS = ["features.0.0", "features.1.conv.0.0", "classifier.1"]


def test_scaling_factor_unknown_layer(tmp_path: Path) -> None:
    p = write(tmp_path / "scaling_factor.txt", "features.0.0 7\nfeatures.9.0 3\n")
    raises_at(p, 2, "unknown layer 'features.9.0'; expected 'features.1.conv.0.0'",
              read_scaling_factor_txt, p, LAYERS)


def test_scaling_factor_extra_line(tmp_path: Path) -> None:
    p = write(tmp_path / "scaling_factor.txt", "a 1\nb 2\n")
    raises_at(p, 2, "unknown layer 'b'; expected no more lines", read_scaling_factor_txt, p, ["a"])


def test_scaling_factor_duplicate(tmp_path: Path) -> None:
    p = write(tmp_path / "scaling_factor.txt", "features.0.0 7\nfeatures.0.0 7\n")
    raises_at(p, 2, "duplicate layer 'features.0.0' (first on line 1)",
              read_scaling_factor_txt, p, LAYERS)


def test_scaling_factor_out_of_order(tmp_path: Path) -> None:
    p = write(tmp_path / "scaling_factor.txt", "features.0.0 7\nclassifier.1 3\n")
    raises_at(p, 2, "layer 'classifier.1' is out of order; expected 'features.1.conv.0.0' here "
              "(one line per weighted layer, in execution order)",
              read_scaling_factor_txt, p, LAYERS)


def test_scaling_factor_missing_layers(tmp_path: Path) -> None:
    p = write(tmp_path / "scaling_factor.txt", "features.0.0 7\n")
    raises_at(p, 1, "missing layer(s) 'features.1.conv.0.0', 'classifier.1' after the last line; "
              "expected one line per weighted layer", read_scaling_factor_txt, p, LAYERS)


def test_scaling_factor_counts_and_values(tmp_path: Path) -> None:
    p = write(tmp_path / "scaling_factor.txt", "a 1 2\n")
    raises_at(p, 1, "layer 'a' has 2 shifts, expected 3", read_scaling_factor_txt, p, ["a"],
              {"a": 3})
    q = write(tmp_path / "s2.txt", "a 1 x\n")
    raises_at(q, 1, "'x' is not an integer shift", read_scaling_factor_txt, q, ["a"])
    r = write(tmp_path / "s3.txt", "a 200\n")
    raises_at(r, 1, "shift 200 is out of int8 range [-128, 127]", read_scaling_factor_txt, r,
              ["a"])
    s = write(tmp_path / "s4.txt", "a\n")
    raises_at(s, 1, "layer 'a' has 0 shifts, expected at least 1", read_scaling_factor_txt, s,
              ["a"])


def test_scaling_factor_hex_errors(tmp_path: Path) -> None:
    p = write(tmp_path / "scaling_factor.hex", "07\nfd\n")
    assert read_scaling_factor_hex(p, 2).tolist() == [7, -3]
    raises_at(p, 2, "expected 3 values, found 2", read_scaling_factor_hex, p, 3)
    q = write(tmp_path / "s.hex", "07\n1fd\n")
    raises_at(q, 2, "'1fd' has 3 hex digits, expected 2", read_scaling_factor_hex, q, 2)


# ---------------------------------------------------------------- atomicity


def test_atomic_directory_success_replaces(tmp_path: Path) -> None:
    final = tmp_path / "pkg"
    final.mkdir()
    (final / "old.txt").write_text("old")
    with atomic_directory(final) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".pkg.tmp-")
        (tmp / "new.txt").write_text("new")
        assert (final / "old.txt").exists()  # untouched until the end
    assert sorted(p.name for p in final.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pkg"]


def test_atomic_directory_creates_new(tmp_path: Path) -> None:
    final = tmp_path / "a" / "pkg"
    with atomic_directory(final) as tmp:
        (tmp / "x").write_text("1")
    assert (final / "x").read_text() == "1"
    assert sorted(p.name for p in final.parent.iterdir()) == ["pkg"]


def test_atomic_directory_exception_leaves_old(tmp_path: Path) -> None:
    final = tmp_path / "pkg"
    final.mkdir()
    (final / "old.txt").write_text("old")
    with pytest.raises(RuntimeError, match="boom"), atomic_directory(final) as tmp:
        (tmp / "new.txt").write_text("new")
        raise RuntimeError("boom")
    assert sorted(p.name for p in final.iterdir()) == ["old.txt"]
    assert (final / "old.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pkg"]


def test_atomic_directory_exception_without_old(tmp_path: Path) -> None:
    final = tmp_path / "pkg"
    with pytest.raises(KeyError), atomic_directory(final):
        raise KeyError("x")
    assert list(tmp_path.iterdir()) == []


def test_atomic_file_write_leaves_no_temp(tmp_path: Path) -> None:
    p = tmp_path / "w.txt"
    write_int_txt(p, np.array([1, 2]))
    write_int_txt(p, np.array([3]))
    assert [x.name for x in tmp_path.iterdir()] == ["w.txt"]
    assert p.read_text() == "shape: 1\n3\n"


# ---------------------------------------------------------------- speed


@pytest.mark.slow
def test_readers_handle_mobilenet_sized_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    w = rng.integers(-128, 128, 2_200_000)
    write_int_txt(tmp_path / "w.txt", w)
    write_hex(tmp_path / "w.hex", w, 8)
    start = time.perf_counter()
    np.testing.assert_array_equal(read_int_txt(tmp_path / "w.txt", w.shape, *INT8), w)
    np.testing.assert_array_equal(read_hex(tmp_path / "w.hex", w.size, 8), w)
    assert time.perf_counter() - start < 10
