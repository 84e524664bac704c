"""Tests of quant.data: digits split, folder datasets on synthetic trees, DataError cases."""

from __future__ import annotations

import urllib.error
from pathlib import Path

import pytest
import torch
from cosim.quant import data
from cosim.quant.data import (
    DataConfig,
    DataError,
    build_dataset,
    calibration_subset,
    class_names,
    make_loader,
    normalization,
    num_classes,
)
from PIL import Image
from torchvision.datasets import Imagenette

WNIDS = ("n01440764", "n02102040")  # tench, English springer (real Imagenette ids)


# --------------------------------------------------------------------------- helpers


def _jpeg(path: Path, color: tuple[int, int, int], size: tuple[int, int] = (20, 14)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path, format="JPEG")


def _fake_imagenette(root: Path, folder: str = "imagenette2-160") -> Path:
    """2 classes x 2 JPEGs per split, named and laid out like the extracted archive."""
    base = root / folder
    for k, wnid in enumerate(WNIDS):
        for j in range(2):
            _jpeg(base / "train" / wnid / f"{wnid}_{1000 + j}.JPEG", (200 * k, 50, 30 * j))
            _jpeg(base / "val" / wnid / f"ILSVRC2012_val_0000{k}{j}00.JPEG", (200 * k, 90, 0))
    (base / "noisy_imagenette.csv").write_text("path,noisy_labels_0\n")
    return root


def _fake_imagefolder(root: Path, eval_split: str = "val",
                      classes: tuple[str, ...] = ("cat", "dog")) -> Path:
    for split in ("train", eval_split):
        for k, name in enumerate(classes):
            for j in range(2):
                _jpeg(root / split / name / f"img{j}.jpg", (100 * k, 20 * j, 0))
    return root


def _one_line_error(cfg: DataConfig, split: str = "train") -> str:
    with pytest.raises(DataError) as info:
        build_dataset(cfg, split)
    msg = str(info.value)
    assert "\n" not in msg and msg
    return msg


# --------------------------------------------------------------------------- digits


@pytest.fixture(scope="module")
def digits() -> dict[str, data.DigitsDataset]:
    cfg = DataConfig()
    return {"train": build_dataset(cfg, "train"), "test": build_dataset(cfg, "test")}


def test_digits_items(digits):
    x, y = digits["train"][0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32
    assert isinstance(y, int) and 0 <= y < 10
    assert torch.equal(x[0], x[1]) and torch.equal(x[0], x[2])  # grey replicated to RGB
    # normalized with mean = std = 0.5 on [0, 1] pixels: values in [-1, 1], background -1
    imgs = digits["train"].images
    assert imgs.min().item() == -1.0 and imgs.max().item() <= 1.0
    assert normalization(DataConfig()) == ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    assert num_classes(DataConfig()) == 10
    assert class_names(DataConfig()) == [str(d) for d in range(10)]


def test_digits_split_sizes_and_disjoint(digits):
    train, test = digits["train"], digits["test"]
    assert (len(train), len(test)) == (1437, 360)
    tr, te = set(train.indices.tolist()), set(test.indices.tolist())
    assert not tr & te and len(tr | te) == 1797
    # stratified: every class in both splits, test has 35..37 of each
    counts = torch.bincount(test.labels, minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37
    assert set(train.labels.tolist()) == set(range(10))


def test_digits_deterministic(digits):
    again = build_dataset(DataConfig(), "train")
    assert torch.equal(again.indices, digits["train"].indices)
    assert torch.equal(again.images, digits["train"].images)
    assert torch.equal(again.labels, digits["train"].labels)


def test_digits_image_size_and_upscale():
    ds = build_dataset(DataConfig(image_size=16), "test")
    x, _ = ds[3]
    assert x.shape == (3, 16, 16)
    # bilinear, align_corners=False: the mean over an integer upscale matches the 8x8 source
    from sklearn.datasets import load_digits

    src = torch.tensor(load_digits().images[int(ds.indices[3])] / 16.0, dtype=torch.float32)
    up = torch.nn.functional.interpolate(src[None, None], size=(16, 16), mode="bilinear",
                                         align_corners=False)[0, 0]
    torch.testing.assert_close(x[0], (up - 0.5) / 0.5)


def test_digits_augmentation_train_only(digits):
    cfg = DataConfig()
    aug = build_dataset(cfg, "train", augment=True)
    torch.manual_seed(0)
    a1 = torch.stack([aug[i][0] for i in range(8)])
    a2 = torch.stack([aug[i][0] for i in range(8)])
    plain = torch.stack([digits["train"][i][0] for i in range(8)])
    assert a1.shape == plain.shape
    assert not torch.equal(a1, plain) and not torch.equal(a1, a2)
    assert [aug[i][1] for i in range(8)] == [digits["train"][i][1] for i in range(8)]
    assert a1.min() >= -1.0 and a1.max() <= 1.0
    torch.manual_seed(0)
    assert torch.equal(torch.stack([aug[i][0] for i in range(8)]), a1)  # global-RNG repeatable
    test_aug = build_dataset(cfg, "test", augment=True)
    for i in range(8):
        assert torch.equal(test_aug[i][0], digits["test"][i][0])


def test_calibration_subset_and_loader(digits):
    train = digits["train"]
    s1 = calibration_subset(train, 100, seed=3)
    s2 = calibration_subset(train, 100, seed=3)
    s3 = calibration_subset(train, 100, seed=4)
    assert len(s1) == 100 and list(s1.indices) == list(s2.indices)
    assert list(s1.indices) != list(s3.indices)
    assert len(set(s1.indices)) == 100
    assert len(calibration_subset(train, 10_000, seed=0)) == len(train)
    with pytest.raises(ValueError):
        calibration_subset(train, 0, seed=0)

    def labels(seed: int, shuffle: bool) -> list[int]:
        return torch.cat([y for _, y in make_loader(s1, 32, shuffle, seed)]).tolist()

    assert labels(1, True) == labels(1, True)
    assert labels(1, True) != labels(2, True)
    assert labels(1, False) == [train[i][1] for i in s1.indices]
    xb, yb = next(iter(make_loader(s1, 32, True, 0)))
    assert xb.shape == (32, 3, 32, 32) and yb.dtype == torch.int64


# --------------------------------------------------------------------------- imagenette


def test_imagenette_folder_names_match_torchvision():
    archives = Imagenette._ARCHIVES  # private: guards against an upstream layout change
    for size, folder in data.IMAGENETTE_FOLDERS.items():
        assert Path(archives[size][0]).stem == folder


def test_imagenette_fake_tree(tmp_path):
    root = _fake_imagenette(tmp_path)
    cfg = DataConfig(name="imagenette", root=str(root), image_size=24)
    assert class_names(cfg) == ["tench", "English springer"]
    assert num_classes(cfg) == 2
    assert normalization(cfg) == (data.IMAGENET_MEAN, data.IMAGENET_STD)
    for split in ("train", "test"):
        ds = build_dataset(cfg, split)
        assert len(ds) == 4
        items = [ds[i] for i in range(len(ds))]
        assert [y for _, y in items] == [0, 0, 1, 1]
        for x, _ in items:
            assert type(x) is torch.Tensor and x.shape == (3, 24, 24) and x.dtype == torch.float32
    # eval transform is deterministic; the augmented train transform still yields 24x24
    ds = build_dataset(cfg, "test")
    assert torch.equal(ds[0][0], ds[0][0])
    aug = build_dataset(cfg, "train", augment=True)
    assert aug[0][0].shape == (3, 24, 24)
    # class 0 is red-free (R=0), class 1 has R=200: check the pixels went through Normalize
    r_mean, r_std = data.IMAGENET_MEAN[0], data.IMAGENET_STD[0]
    assert ds[0][0][0].mean().item() == pytest.approx((0 - r_mean) / r_std, abs=0.1)
    assert ds[2][0][0].mean().item() == pytest.approx((200 / 255 - r_mean) / r_std, abs=0.1)


def test_imagenette_root_may_be_the_extracted_folder(tmp_path):
    root = _fake_imagenette(tmp_path) / "imagenette2-160"
    ds = build_dataset(DataConfig(name="imagenette", root=str(root)), "test")
    assert len(ds) == 4


def test_imagenette_errors(tmp_path):
    msg = _one_line_error(DataConfig(name="imagenette"))
    assert "root" in msg and "imagenette2-160" in msg

    msg = _one_line_error(DataConfig(name="imagenette", root=str(tmp_path)))
    assert str(tmp_path / "imagenette2-160") in msg
    assert "--download" in msg and "internet" in msg

    _fake_imagenette(tmp_path, folder="imagenette2-320")
    msg = _one_line_error(DataConfig(name="imagenette", root=str(tmp_path)))
    assert "imagenette2-320" in msg and "320px" in msg

    (tmp_path / "imagenette2-160" / "train").mkdir(parents=True)
    msg = _one_line_error(DataConfig(name="imagenette", root=str(tmp_path)))
    assert str(tmp_path / "imagenette2-160" / "val") in msg


def test_imagenette_unknown_wnid_and_extension(tmp_path):
    root = _fake_imagenette(tmp_path)
    for split in ("train", "val"):
        _jpeg(root / "imagenette2-160" / split / "n99999999" / "x.JPEG", (1, 2, 3))
    msg = _one_line_error(DataConfig(name="imagenette", root=str(root)))
    assert "n99999999" in msg and str(root / "imagenette2-160" / "train") in msg

    root2 = _fake_imagenette(tmp_path / "b")
    for split in ("train", "val"):  # torchvision's Imagenette only reads *.jpeg
        _jpeg(root2 / "imagenette2-160" / split / "n02979186" / "x.jpg", (1, 2, 3))
    msg = _one_line_error(DataConfig(name="imagenette", root=str(root2)))
    assert "n02979186" in msg and ".jpeg" in msg


def test_imagenette_mismatched_classes(tmp_path):
    root = _fake_imagenette(tmp_path)
    _jpeg(root / "imagenette2-160" / "train" / "n02979186" / "n02979186_1.JPEG", (1, 2, 3))
    msg = _one_line_error(DataConfig(name="imagenette", root=str(root)), split="test")
    assert "n02979186" in msg and str(root / "imagenette2-160" / "val") in msg


def test_imagenette_download_failure(tmp_path, monkeypatch):
    import torchvision.datasets.imagenette as tv_imagenette

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure\nin name resolution")

    monkeypatch.setattr(tv_imagenette, "download_and_extract_archive", offline)
    msg = _one_line_error(DataConfig(name="imagenette", root=str(tmp_path), download=True))
    assert str(tmp_path) in msg and "internet" in msg


def test_imagenette_download_skipped_when_present(tmp_path, monkeypatch):
    import torchvision.datasets.imagenette as tv_imagenette

    def must_not_download(*args, **kwargs):
        raise AssertionError("download attempted")

    monkeypatch.setattr(tv_imagenette, "download_and_extract_archive", must_not_download)
    root = _fake_imagenette(tmp_path)
    assert len(build_dataset(DataConfig(name="imagenette", root=str(root), download=True),
                             "train")) == 4


# --------------------------------------------------------------------------- imagefolder


def test_imagefolder_fake_tree(tmp_path):
    root = _fake_imagefolder(tmp_path)
    cfg = DataConfig(name="imagefolder", root=str(root), image_size=16)
    assert class_names(cfg) == ["cat", "dog"] and num_classes(cfg) == 2
    for split in ("train", "test"):
        ds = build_dataset(cfg, split, augment=True)
        assert len(ds) == 4 and [ds[i][1] for i in range(4)] == [0, 0, 1, 1]
        assert ds[0][0].shape == (3, 16, 16) and ds[0][0].dtype == torch.float32


def test_imagefolder_uses_test_when_no_val(tmp_path):
    root = _fake_imagefolder(tmp_path, eval_split="test", classes=("a", "b", "c"))
    ds = build_dataset(DataConfig(name="imagefolder", root=str(root)), "test")
    assert len(ds) == 6 and ds.root == str(root / "test")


def test_imagefolder_errors(tmp_path):
    msg = _one_line_error(DataConfig(name="imagefolder"))
    assert "root" in msg

    missing = tmp_path / "nope"
    assert str(missing) in _one_line_error(DataConfig(name="imagefolder", root=str(missing)))

    only_val = tmp_path / "only_val"
    (only_val / "val" / "a").mkdir(parents=True)
    msg = _one_line_error(DataConfig(name="imagefolder", root=str(only_val)))
    assert str(only_val) in msg and "train/" in msg

    only_train = tmp_path / "only_train"
    _jpeg(only_train / "train" / "a" / "x.jpg", (0, 0, 0))
    msg = _one_line_error(DataConfig(name="imagefolder", root=str(only_train)))
    assert str(only_train) in msg and "val/" in msg and "test/" in msg

    no_classes = tmp_path / "no_classes"
    _jpeg(no_classes / "train" / "x.jpg", (0, 0, 0))
    (no_classes / "val").mkdir()
    msg = _one_line_error(DataConfig(name="imagefolder", root=str(no_classes)))
    assert str(no_classes / "train") in msg and "class" in msg

    no_images = _fake_imagefolder(tmp_path / "no_images")
    (no_images / "val" / "cat" / "img0.jpg").unlink()
    (no_images / "val" / "cat" / "img1.jpg").unlink()
    (no_images / "val" / "cat" / "notes.txt").write_text("not an image")
    msg = _one_line_error(DataConfig(name="imagefolder", root=str(no_images)))
    assert str(no_images / "val") in msg and "cat" in msg and "no images" in msg


def test_imagefolder_mismatched_classes(tmp_path):
    root = _fake_imagefolder(tmp_path)
    _jpeg(root / "val" / "eel" / "x.jpg", (0, 0, 0))
    msg = _one_line_error(DataConfig(name="imagefolder", root=str(root)))
    assert "eel" in msg and str(root / "train") in msg and str(root / "val") in msg
    with pytest.raises(DataError):
        class_names(DataConfig(name="imagefolder", root=str(root)))


# --------------------------------------------------------------------------- config errors


def test_config_errors():
    msg = _one_line_error(DataConfig(name="cifar"))
    assert "cifar" in msg and "digits" in msg
    with pytest.raises(DataError):
        normalization(DataConfig(name="cifar"))
    with pytest.raises(DataError):
        num_classes(DataConfig(name="cifar"))
    assert "image_size" in _one_line_error(DataConfig(image_size=0))
    msg = _one_line_error(DataConfig(name="imagenette", imagenette_size="80px"))
    assert "80px" in msg and "160px" in msg
    with pytest.raises(ValueError):
        build_dataset(DataConfig(), "val")
