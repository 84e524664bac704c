"""Where generated files go by default (the build folder).

$COSIM_BUILD when set; else, run from a source checkout, the checkout's build/;
else (an installed cosim used from a user's project) build/ in the working
directory. Nothing is ever written inside an installed distribution.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["build_root", "checkout_root"]


def checkout_root() -> Path | None:
    """The source checkout this code runs from (it has pyproject.toml and cosim/), or None
    when cosim is installed in site-packages."""
    root = Path(__file__).resolve().parents[1]
    if (root / "pyproject.toml").is_file() and (root / "cosim" / "__init__.py").is_file():
        return root
    return None


def build_root() -> Path:
    """The build folder (absolute): $COSIM_BUILD, the checkout's build/, or ./build."""
    env = os.environ.get("COSIM_BUILD", "").strip()
    if env:
        return Path(env).expanduser().resolve()
    root = checkout_root()
    return (root / "build") if root is not None else (Path.cwd() / "build").resolve()
