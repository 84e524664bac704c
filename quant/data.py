"""Datasets of the flow: bundled handwritten digits, Imagenette and any ImageFolder tree.

Every dataset yields ``(image, label)``: ``image`` a float32 tensor ``[3, H, W]`` with
``H = W = cfg.image_size`` pixels, normalized as ``(pixel - mean) / std`` on pixels in
[0, 1] (see :func:`normalization`); ``label`` a Python int in ``[0, num_classes(cfg))``.

Splits are ``"train"`` and ``"test"`` (Imagenette's and ImageFolder's ``val/``).
User mistakes (bad dataset name, missing or malformed folders) raise :class:`DataError`
with a one-line message naming the path and what was expected.

Augmentation draws from torch's global RNG: call ``torch.manual_seed`` for repeatable
augmented epochs. Loader order and calibration subsets use their own seeded generators.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from cosim.quant.choices import DATASETS
from cosim.quant.errors import UserError, one_line
from torch.utils.data import DataLoader, Dataset, Subset
from torchvision import datasets
from torchvision.datasets.folder import IMG_EXTENSIONS
from torchvision.transforms import InterpolationMode, v2

SPLITS = ("train", "test")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DIGITS_MEAN = (0.5, 0.5, 0.5)
DIGITS_STD = (0.5, 0.5, 0.5)

#: Folder that torchvision's Imagenette expects under ``root`` for each ``size``
#: (the stem of the archive's URL; the archive extracts to ``<folder>/{train,val}/<wnid>/``).
IMAGENETTE_FOLDERS = {"full": "imagenette2", "320px": "imagenette2-320", "160px": "imagenette2-160"}
#: Imagenette only picks up files ending in ".jpeg" (any case); others are ignored.
IMAGENETTE_EXTENSIONS = (".jpeg",)

DIGITS_CLASSES = [str(d) for d in range(10)]
DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0


class DataError(UserError):
    """A user mistake in the data configuration or on disk (one-line message)."""


@dataclass(frozen=True)
class DataConfig:
    """Which dataset to use and how to size it.

    name: one of :data:`DATASETS`. root: dataset folder (imagenette: the folder that holds
    ``imagenette2-160/`` etc.; imagefolder: the folder that holds ``train/`` and ``val/`` or
    ``test/``); unused by digits. image_size: output height = width in pixels.
    download: let torchvision fetch Imagenette (needs internet). imagenette_size: which
    Imagenette archive, ``"full"``, ``"320px"`` or ``"160px"``.
    """

    name: str = "digits"
    root: str | None = None
    image_size: int = 32
    download: bool = False
    imagenette_size: str = "160px"


# --------------------------------------------------------------------------- public API


def normalization(cfg: DataConfig) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """(mean, std) per RGB channel, applied to pixels in [0, 1]: x = (pixel - mean) / std."""
    _check_config(cfg)
    if cfg.name == "digits":
        return DIGITS_MEAN, DIGITS_STD
    return IMAGENET_MEAN, IMAGENET_STD


def class_names(cfg: DataConfig) -> list[str]:
    """Class names in label order (label i is ``class_names(cfg)[i]``).

    digits: "0".."9". imagenette: the first English name of each WordNet id found on disk,
    in sorted-wnid order. imagefolder: the class folder names of ``train/``, sorted.
    The folder datasets read (and check) the tree on disk.
    """
    _check_config(cfg)
    if cfg.name == "digits":
        return list(DIGITS_CLASSES)
    if cfg.name == "imagenette":
        ds = _build_imagenette(cfg, "train", transform=None)
        return [names[0] for names in ds.classes]
    ds = _build_imagefolder(cfg, "train", transform=None)
    return list(ds.classes)


def num_classes(cfg: DataConfig) -> int:
    """Number of classes (= width of the classifier output)."""
    return len(class_names(cfg))


def build_dataset(cfg: DataConfig, split: str, augment: bool = False) -> Dataset:
    """The ``split`` ("train" or "test") of the configured dataset.

    Items are (float32 ``[3, image_size, image_size]`` normalized, int label). ``augment``
    adds random training augmentation; it is ignored for the test split.
    """
    _check_config(cfg)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    augment = augment and split == "train"
    if cfg.name == "digits":
        return _build_digits(cfg, split, augment)
    transform = _folder_transform(cfg, augment)
    if cfg.name == "imagenette":
        return _build_imagenette(cfg, split, transform)
    return _build_imagefolder(cfg, split, transform)


def calibration_subset(dataset: Dataset, count: int, seed: int) -> Subset:
    """``count`` items of ``dataset`` drawn without replacement, repeatable for a given seed.

    ``count`` larger than the dataset gives all of it (in a seeded random order).
    Pass a split built with ``augment=False`` so calibration sees what inference sees.
    """
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    n = len(dataset)  # type: ignore[arg-type]
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(n, generator=gen)[: min(count, n)]
    return Subset(dataset, order.tolist())


def make_loader(dataset: Dataset, batch_size: int, shuffle: bool, seed: int) -> DataLoader:
    """Single-process DataLoader whose shuffling order depends only on ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=gen,
                      num_workers=0, drop_last=False)


# --------------------------------------------------------------------------- digits


class DigitsDataset(Dataset):
    """scikit-learn's 8x8 digits, upscaled, as one precomputed tensor.

    Attributes: ``images`` float32 ``[N, 3, S, S]`` normalized (a channel-expanded view;
    do not write to it), ``labels`` int64 ``[N]``, ``indices`` int64 ``[N]`` (row numbers in
    ``sklearn.datasets.load_digits()``), ``classes`` ["0".."9"].
    """

    def __init__(self, pixels: torch.Tensor, labels: torch.Tensor, indices: torch.Tensor,
                 mean: float, std: float, augment: bool) -> None:
        # pixels: float32 [N, 1, S, S] in [0, 1]
        self._pixels = pixels
        self._mean = mean
        self._std = std
        self.images = ((pixels - mean) / std).expand(-1, 3, -1, -1)
        self.labels = labels
        self.indices = indices
        self.classes = list(DIGITS_CLASSES)
        self.augment = augment
        self._affine = v2.RandomAffine(degrees=10, translate=(0.1, 0.1), scale=(0.9, 1.1),
                                       interpolation=InterpolationMode.BILINEAR, fill=0.0)

    def __len__(self) -> int:
        return self.labels.shape[0]

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, int]:
        label = int(self.labels[idx])
        if not self.augment:
            return self.images[idx].contiguous(), label
        pix = self._affine(self._pixels[idx])  # [1, S, S], un-normalized, zero background
        return ((pix - self._mean) / self._std).expand(3, -1, -1).contiguous(), label


@functools.lru_cache(maxsize=1)
def _digits_raw() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.images.astype(np.float32), bunch.target.astype(np.int64)


def _digits_split_indices(split: str) -> np.ndarray:
    from sklearn.model_selection import train_test_split

    _, y = _digits_raw()
    train_idx, test_idx = train_test_split(np.arange(len(y)), test_size=DIGITS_TEST_FRACTION,
                                           random_state=DIGITS_SPLIT_SEED, stratify=y)
    return train_idx if split == "train" else test_idx


def _build_digits(cfg: DataConfig, split: str, augment: bool) -> DigitsDataset:
    images, targets = _digits_raw()
    idx = _digits_split_indices(split)
    pix = torch.from_numpy(images[idx] / 16.0).unsqueeze(1)  # [N, 1, 8, 8] in [0, 1]
    pix = F.interpolate(pix, size=(cfg.image_size, cfg.image_size), mode="bilinear",
                        align_corners=False)
    (mean, _, _), (std, _, _) = normalization(cfg)
    return DigitsDataset(pix.contiguous(), torch.from_numpy(targets[idx]),
                         torch.from_numpy(idx.astype(np.int64)), mean, std, augment)


# --------------------------------------------------------------------------- folder datasets


def _folder_transform(cfg: DataConfig, augment: bool) -> v2.Compose:
    """PIL image -> normalized float32 tensor [3, S, S] (ImageNet-style pre-processing)."""
    mean, std = normalization(cfg)
    size = cfg.image_size
    if augment:
        geometry: list[Any] = [v2.RandomResizedCrop(size, antialias=True),
                               v2.RandomHorizontalFlip()]
    else:
        geometry = [v2.Resize(round(size * 256 / 224), antialias=True), v2.CenterCrop(size)]
    return v2.Compose([*geometry, v2.ToImage(), v2.ToDtype(torch.float32, scale=True),
                       v2.Normalize(list(mean), list(std)), v2.ToPureTensor()])


def _imagenette_root(cfg: DataConfig) -> Path:
    """The folder holding ``imagenette2-*``; downloads into it if asked and needed."""
    if not cfg.root:
        raise DataError("imagenette needs a root: the folder that holds "
                        f"{IMAGENETTE_FOLDERS[cfg.imagenette_size]}/ (pass --root)")
    root = Path(cfg.root).expanduser()
    folder = IMAGENETTE_FOLDERS[cfg.imagenette_size]
    # Accept the extracted folder itself as root, too.
    if root.name == folder and (root / "train").is_dir() and not (root / folder).exists():
        root = root.parent
    size_dir = root / folder
    if size_dir.exists():
        return root
    if cfg.download:
        try:
            datasets.Imagenette(str(root), split="train", size=cfg.imagenette_size, download=True)
        except Exception as exc:  # network, md5 and archive errors alike
            raise DataError(f"downloading Imagenette {cfg.imagenette_size} into {root} failed "
                            f"({one_line(exc)}); --download needs internet access") from exc
        return root
    others = [f"{name}/ (imagenette_size={s!r})" for s, name in IMAGENETTE_FOLDERS.items()
              if s != cfg.imagenette_size and (root / name).is_dir()]
    hint = f"; found {', '.join(others)}" if others else ""
    raise DataError(f"Imagenette {cfg.imagenette_size} not found: expected folder {size_dir} "
                    f"with train/ and val/ inside{hint}; --download fetches it (needs internet)")


def _build_imagenette(cfg: DataConfig, split: str, transform: Any) -> datasets.Imagenette:
    root = _imagenette_root(cfg)
    size_dir = root / IMAGENETTE_FOLDERS[cfg.imagenette_size]
    train_dir, val_dir = size_dir / "train", size_dir / "val"
    for d in (train_dir, val_dir):
        if not d.is_dir():
            raise DataError(f"{d}: missing; expected the extracted Imagenette archive "
                            f"({size_dir.name}/train/ and {size_dir.name}/val/, one folder per "
                            "WordNet id)")
    _check_split_dirs(train_dir, val_dir, IMAGENETTE_EXTENSIONS)
    split_dir = train_dir if split == "train" else val_dir
    try:
        return datasets.Imagenette(str(root), split="train" if split == "train" else "val",
                                   size=cfg.imagenette_size, download=False, transform=transform)
    except KeyError as exc:
        raise DataError(f"{split_dir}: class folder {exc.args[0]!r} is not an Imagenette "
                        "WordNet id (expected e.g. n01440764)") from exc
    except (FileNotFoundError, RuntimeError) as exc:
        raise DataError(f"{split_dir}: {one_line(exc)}") from exc


def _build_imagefolder(cfg: DataConfig, split: str, transform: Any) -> datasets.ImageFolder:
    if not cfg.root:
        raise DataError("imagefolder needs a root: a folder with train/ and val/ (or test/) "
                        "holding one sub-folder per class (pass --root)")
    root = Path(cfg.root).expanduser()
    if not root.is_dir():
        raise DataError(f"{root}: not a folder; expected a folder with train/ and val/ (or test/)")
    train_dir = root / "train"
    if not train_dir.is_dir():
        raise DataError(f"{root}: no train/ sub-folder; expected train/ and val/ (or test/), "
                        "each with one sub-folder per class")
    eval_dir = next((root / n for n in ("val", "test") if (root / n).is_dir()), None)
    if eval_dir is None:
        raise DataError(f"{root}: no val/ or test/ sub-folder; expected train/ and val/ "
                        "(or test/), each with one sub-folder per class")
    _check_split_dirs(train_dir, eval_dir, IMG_EXTENSIONS)
    split_dir = train_dir if split == "train" else eval_dir
    try:
        return datasets.ImageFolder(str(split_dir), transform=transform)
    except FileNotFoundError as exc:
        raise DataError(f"{split_dir}: {one_line(exc)}") from exc


def _class_dirs(split_dir: Path) -> list[str]:
    """Class folder names as torchvision's find_classes sees them (every sub-folder, sorted)."""
    return sorted(e.name for e in os.scandir(split_dir) if e.is_dir())


def _has_image(class_dir: Path, extensions: tuple[str, ...]) -> bool:
    for _, _, files in os.walk(class_dir, followlinks=True):
        if any(f.lower().endswith(extensions) for f in files):
            return True
    return False


def _check_split_dirs(train_dir: Path, eval_dir: Path, extensions: tuple[str, ...]) -> None:
    """Both splits have the same non-empty set of class folders, each holding an image."""
    classes = {}
    for d in (train_dir, eval_dir):
        names = _class_dirs(d)
        if not names:
            raise DataError(f"{d}: no class sub-folders; expected one sub-folder per class "
                            f"holding images ({', '.join(extensions)})")
        empty = [n for n in names if not _has_image(d / n, extensions)]
        if empty:
            raise DataError(f"{d}: no images ({', '.join(extensions)}) in class folder(s) "
                            f"{', '.join(empty)}")
        classes[d] = names
    a, b = classes[train_dir], classes[eval_dir]
    if a != b:
        only_a = ", ".join(sorted(set(a) - set(b))) or "-"
        only_b = ", ".join(sorted(set(b) - set(a))) or "-"
        raise DataError(f"class folders differ between {train_dir} and {eval_dir}: "
                        f"only in {train_dir.name}/: {only_a}; only in {eval_dir.name}/: {only_b}; "
                        "expected the same classes")


def _check_config(cfg: DataConfig) -> None:
    if cfg.name not in DATASETS:
        raise DataError(f"unknown dataset {cfg.name!r}; expected one of {', '.join(DATASETS)}")
    if not isinstance(cfg.image_size, int) or cfg.image_size < 1:
        raise DataError(f"image_size must be a positive number of pixels, got {cfg.image_size!r}")
    if cfg.imagenette_size not in IMAGENETTE_FOLDERS:
        raise DataError(f"unknown imagenette_size {cfg.imagenette_size!r}; expected one of "
                        f"{', '.join(IMAGENETTE_FOLDERS)}")
