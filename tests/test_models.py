"""Built-in architectures, user factories (quant.model.build_model) and --model-arg parsing."""

from __future__ import annotations

import sys
import textwrap
import uuid

import pytest
import torch
import torch.nn as nn
from cosim.quant.choices import BUILTIN_ARCH_NAMES, DEFAULT_ARCH
from cosim.quant.errors import UserError
from cosim.quant.model import (
    ARCH,
    BUILTIN_ARCHS,
    ModelError,
    ModelSpec,
    build_model,
    check_arch,
    mobilenet_v2_relu,
    output_classes,
    parse_model_args,
    parse_model_value,
)


def one_line(error: pytest.ExceptionInfo) -> str:
    text = str(error.value)
    assert "\n" not in text and text, repr(text)
    assert isinstance(error.value, UserError)
    return text


# ---------------------------------------------------------------- built-ins


def test_registry_names_match_the_torch_free_list():
    assert tuple(BUILTIN_ARCHS) == BUILTIN_ARCH_NAMES
    assert ARCH == DEFAULT_ARCH == "mobilenet_v2_relu"
    assert ModelSpec().arch == ARCH and ModelSpec().kwargs == {}


@pytest.mark.parametrize("arch", BUILTIN_ARCH_NAMES)
@pytest.mark.parametrize("classes", [10, 3])
def test_every_builtin_builds_and_runs_32x32(arch, classes):
    torch.manual_seed(0)
    model = build_model(ModelSpec(arch, {"num_classes": classes})).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, classes)
    assert torch.isfinite(out).all()
    assert output_classes(model) == classes


def test_resnet18_keeps_torchvision_layer_names():
    from torchvision.models import resnet18

    ours = build_model(ModelSpec("resnet18", {"num_classes": 10}))
    theirs = resnet18(weights=None, num_classes=10)
    assert [(k, v.shape) for k, v in ours.state_dict().items()] == \
        [(k, v.shape) for k, v in theirs.state_dict().items()]


def test_small_cnn_layers_as_documented():
    model = build_model(ModelSpec("small_cnn", {"num_classes": 10}))
    kinds = [(name, type(module).__name__) for name, module in model.named_children()]
    assert [k for _, k in kinds] == ["Conv2d", "BatchNorm2d", "ReLU"] * 2 + ["MaxPool2d"] \
        + ["Conv2d", "BatchNorm2d", "ReLU"] * 2 + ["MaxPool2d", "AdaptiveAvgPool2d",
                                                  "Flatten", "Linear"]
    weights = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("bn"))
    assert weights < 300_000
    wide = build_model(ModelSpec("small_cnn", {"num_classes": 4, "channels": 8}))
    assert wide.conv4.weight.shape == (16, 16, 3, 3) and wide.fc.weight.shape == (4, 16)


def test_mobilenet_has_no_relu6():
    model = build_model(ModelSpec(ARCH, {"num_classes": 10, "width_mult": 0.5}))
    assert not any(isinstance(m, nn.ReLU6) for m in model.modules())
    assert [k for k in model.state_dict()] == [k for k in mobilenet_v2_relu(10, 0.5).state_dict()]


@pytest.mark.parametrize("spec", [
    ModelSpec("resnet18", {"num_classes": 0}),
    ModelSpec("small_cnn", {"channels": -1}),
    ModelSpec("small_cnn", {"depth": 3}),
    ModelSpec(ARCH, {"width_mult": 0}),
    ModelSpec(ARCH, {"num_classes": "ten"}),
])
def test_bad_builtin_kwargs_are_one_line(spec):
    with pytest.raises(ModelError) as error:
        build_model(spec)
    assert spec.arch in one_line(error)


# ---------------------------------------------------------------- the description


@pytest.mark.parametrize("arch", [
    "", "resnet", "ResNet18", "a:b:c", "pkg.:fn", ":fn", "pkg:", "1pkg:fn", "pkg mod:fn",
    "pkg/mod:fn", "pkg..mod:fn", "pkg.mod:fn()", "pkg.mod:fn.", " pkg.mod:fn",
])
def test_bad_arch_strings_are_one_line(arch):
    with pytest.raises(ModelError) as error:
        ModelSpec(arch, {})
    one_line(error)
    with pytest.raises(ModelError):
        check_arch(arch)


@pytest.mark.parametrize("arch", ["pkg.mod:fn", "a:b", "torchvision.models:resnet18",
                                  "my_pkg.sub_2:Factory.create"])
def test_factory_strings_are_accepted(arch):
    assert ModelSpec(arch, {}).arch == arch and not ModelSpec(arch, {}).is_builtin


@pytest.mark.parametrize("kwargs", [
    {"x": object()}, {"x": float("nan")}, {"x": float("inf")}, {"x": {"a": 1}},
    {"1x": 1}, {"a-b": 1}, {3: 1}, {"x": [1, [2]]}, {"x": b"bytes"}, {"x": 1 << 70},
    {"x": "s" * 2000}, {f"k{i}": i for i in range(65)},
])
def test_kwargs_must_be_json_plain(kwargs):
    with pytest.raises(ModelError) as error:
        ModelSpec("small_cnn", kwargs)
    one_line(error)


def test_kwargs_are_copied_and_tuples_become_lists():
    given = {"num_classes": 10, "sizes": (1, 2)}
    spec = ModelSpec("small_cnn", given)
    given["num_classes"] = 3
    assert spec.kwargs == {"num_classes": 10, "sizes": [1, 2]}
    assert spec.to_dict() == {"arch": "small_cnn", "kwargs": {"num_classes": 10,
                                                              "sizes": [1, 2]}}
    assert spec == ModelSpec("small_cnn", {"sizes": [1, 2], "num_classes": 10})
    assert spec.with_defaults(num_classes=5, channels=8).kwargs == {
        "num_classes": 10, "channels": 8, "sizes": [1, 2]}


# ---------------------------------------------------------------- user factories

FACTORIES = '''
import torch.nn as nn

def good(num_classes=10, width=4):
    return nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes))

class Holder:
    @staticmethod
    def create(num_classes=10):
        return good(num_classes)

def raises(**kwargs):
    raise RuntimeError("boom\\nsecond line of the message")

def not_a_module(**kwargs):
    return [nn.Linear(1, 1)]

value = 3
'''


@pytest.fixture
def user_modules(tmp_path, monkeypatch):
    """Unique module names on sys.path: (good module, module whose import fails,
    module with a syntax error); removed from sys.modules afterwards."""
    tag = uuid.uuid4().hex[:8]
    names = (f"h4_user_models_{tag}", f"h4_broken_import_{tag}", f"h4_syntax_{tag}")
    (tmp_path / f"{names[0]}.py").write_text(textwrap.dedent(FACTORIES))
    (tmp_path / f"{names[1]}.py").write_text("import h4_this_module_does_not_exist\n")
    (tmp_path / f"{names[2]}.py").write_text("def broken(:\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield names
    for name in names:
        sys.modules.pop(name, None)


def test_user_factory_builds_with_kwargs(user_modules):
    good = user_modules[0]
    model = build_model(ModelSpec(f"{good}:good", {"num_classes": 7, "width": 5}),
                        allow_import=True)
    assert output_classes(model) == 7 and model[0].out_channels == 5
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 7)
    nested = build_model(ModelSpec(f"{good}:Holder.create", {"num_classes": 3}),
                         allow_import=True)
    assert output_classes(nested) == 3


def test_a_factory_is_not_imported_without_allow_import(user_modules):
    good = user_modules[0]
    with pytest.raises(ModelError, match="--model") as error:
        build_model(ModelSpec(f"{good}:good", {}))
    assert good in one_line(error)
    assert good not in sys.modules, "the module was imported without allow_import"


@pytest.mark.parametrize("which, attr, expected", [
    (None, "good", "does not import (ModuleNotFoundError"),
    (1, "anything", "does not import (ModuleNotFoundError"),
    (2, "broken", "does not import (SyntaxError"),
    (0, "missing", "has no attribute 'missing'"),
    (0, "Holder.missing", "has no attribute 'Holder.missing'"),
    (0, "value", "is not callable (it is of type int)"),
    (0, "raises", "the factory raised RuntimeError: boom"),
    (0, "not_a_module", "returned a list; expected a torch.nn.Module"),
    (0, "good", "the factory raised TypeError"),  # with an unknown kwarg, below
])
def test_each_bad_factory_is_one_line(user_modules, which, attr, expected):
    module = "h4_no_such_package_anywhere.sub" if which is None else user_modules[which]
    kwargs = {"colour": "red"} if expected.endswith("TypeError") else {}
    with pytest.raises(ModelError) as error:
        build_model(ModelSpec(f"{module}:{attr}", kwargs), allow_import=True)
    text = one_line(error)
    assert expected in text and module in text, text


# ---------------------------------------------------------------- --model-arg


@pytest.mark.parametrize("text, value", [
    ("10", 10), ("-3", -3), ("+4", 4), ("0.5", 0.5), ("1e-3", 1e-3), (".5", 0.5),
    ("2.", 2.0), ("true", True), ("False", False), ("TRUE", True), ("none", None),
    ("null", None), ("relu", "relu"), ("'10'", "10"), ('"true"', "true"), ("", ""),
    ("nan", "nan"), ("inf", "inf"), ("[1,2]", [1, 2]), ("[0.5, x]", [0.5, "x"]),
    ("[]", []), ("a=b", "a=b"),
])
def test_model_arg_values(text, value):
    parsed = parse_model_value(text)
    assert parsed == value and type(parsed) is type(value)


def test_model_args_to_kwargs():
    assert parse_model_args(["num_classes=10", "width_mult=0.5", "pretrained=false",
                             "name=my net", "expr=a=b"]) == {
        "num_classes": 10, "width_mult": 0.5, "pretrained": False, "name": "my net",
        "expr": "a=b"}
    assert parse_model_args([]) == {}


@pytest.mark.parametrize("items, expected", [
    (["num_classes"], "expected key=value"),
    (["=3"], "is not a Python identifier"),
    (["1x=3"], "is not a Python identifier"),
    (["a-b=3"], "is not a Python identifier"),
    (["a=1", "a=2"], "a is given twice"),
    (["a=[1,[2]]"], "a[1]"),
])
def test_bad_model_args_are_one_line(items, expected):
    with pytest.raises(ModelError) as error:
        parse_model_args(items)
    assert expected in one_line(error)
