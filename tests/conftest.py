"""Fixtures shared by the tests/ modules."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture()
def package_copy(package_dir, tmp_path) -> Path:
    """A writable copy of the requesting module's `package_dir` fixture (a package to
    corrupt without touching the module's shared one)."""
    copy = tmp_path / "package"
    shutil.copytree(package_dir, copy)
    return copy
