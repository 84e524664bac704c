"""quant/package_writer.py: the package of integer layers it writes is one the package
reader accepts, holding exactly the integers it was given (int16 clip and its count,
shifts, per-tensor and per-channel scales), and every scale must be a power of two."""

from __future__ import annotations

import numpy as np
import pytest
from cosim.quant.formats import atomic_directory
from cosim.quant.package import load_package
from cosim.quant.package_writer import BIAS_MAX, BIAS_MIN, PackageWriter

X = {"scale": 2.0 ** -5, "zero_point": 64}
Y = {"scale": 2.0 ** -4, "zero_point": 3}
Z = {"scale": 2.0 ** -3, "zero_point": 128}


def _write(root, conv_bias: np.ndarray, w_scale=(2.0 ** -6, 2.0 ** -8, 2.0 ** 3)):
    weight = np.arange(-40, 41, 1)[:3 * 3 * 3 * 3].reshape(3, 3, 3, 3)
    fc = np.array([[-128, 0, 127], [5, -6, 7]])
    with atomic_directory(root) as tmp:
        w = PackageWriter(tmp)
        w.quantize_input(X)
        w.weighted({"name": "c", "op": "conv2d", "inputs": ["input"], "input": X, "output": Y,
                    "relu": True, "stride": [1, 1], "padding": [1, 1], "dilation": [1, 1],
                    "groups": 1}, weight, conv_bias, list(w_scale))
        w.add({"name": "a", "op": "add", "inputs": ["c", "c"], "input": [Y, Y], "output": Z,
               "relu": False})
        w.node({"name": "pool", "op": "adaptive_avg_pool2d", "inputs": ["a"],
                "output_size": [1, 1], "input": Z, "output": Z})
        w.node({"name": "flat", "op": "flatten", "inputs": ["pool"]})
        w.weighted({"name": "fc", "op": "linear", "inputs": ["flat"], "input": Z,
                    "output": X, "relu": False}, fc, np.array([100, -100]), 2.0 ** -7,
                   weight_range=(-128, 127))
        w.node({"name": "output", "op": "dequantize", "inputs": ["fc"], "input": X})
        w.finish({"arch": "writer-test"})
    return weight, fc


def test_the_package_holds_the_integers_it_was_given(tmp_path):
    bias = np.array([BIAS_MAX + 5, -7, BIAS_MIN - 1])
    weight, fc = _write(tmp_path / "pkg", bias)
    package = load_package(tmp_path / "pkg")
    package.check_consistency()
    assert np.array_equal(package.weight_int8("c"), weight)
    assert np.array_equal(package.weight_int8("fc"), fc)
    assert np.array_equal(package.bias_int16("c"), [BIAS_MAX, -7, BIAS_MIN])
    assert np.array_equal(package.bias_int16("fc"), [100, -100])
    c = package.layer("c")
    assert c["bias_saturated"] == 2 and c["kind"] == "regular"
    # n = log2(y / (x * w)) = y_exp - x_exp - w_exp
    assert c["shift"] == [7, 9, -2] and package.layer("fc")["shift"] == 5
    assert c["weight"]["qscheme"] == "per_channel_symmetric"
    assert package.layer("fc")["weight"]["range"] == [-128, 127]
    assert package.shifts() == {"c": [7, 9, -2], "fc": [5]}
    assert [layer["name"] for layer in package.layers] == [
        "input", "c", "a", "pool", "flat", "fc", "output"]


def test_the_same_layers_write_the_same_bytes(tmp_path):
    bias = np.array([1, 2, 3])
    _write(tmp_path / "one", bias)
    _write(tmp_path / "two", bias)
    files = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*")
                   if p.is_file())
    assert files
    for rel in files:
        assert (tmp_path / "one" / rel).read_bytes() == (tmp_path / "two" / rel).read_bytes()


def test_a_scale_that_is_not_a_power_of_two_is_refused_and_nothing_is_left(tmp_path):
    with pytest.raises(ValueError):
        _write(tmp_path / "pkg", np.array([0, 0, 0]), w_scale=(2.0 ** -6, 0.3, 2.0 ** 3))
    assert not (tmp_path / "pkg").exists()
