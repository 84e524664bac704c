"""pytest configuration of tb/: markers, sys.path, golden files, and what not to collect.

tb/ holds two kinds of Python files: pytest entry points (test_sim_*.py,
test_mutation.py, ...) that build and run the simulator through tb/sim.py, and
cocotb test modules (test_bare.py, ...) that run INSIDE the simulator and must
not be collected by pytest.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

TB_DIR = Path(__file__).resolve().parent
REPO = TB_DIR.parent
if str(REPO) not in sys.path:  # `import cosim` from the checkout (cosim/ is beside tb/)
    sys.path.insert(0, str(REPO))

# cocotb test modules: imported by the simulator, not by pytest
collect_ignore = ["test_bare.py"]


def pytest_configure(config: pytest.Config) -> None:
    # pyproject.toml uses --strict-markers; register the markers of tb/ here
    config.addinivalue_line("markers", "sim: runs an HDL simulator (Icarus or Verilator)")
    config.addinivalue_line("markers", "slow: whole-network work that takes more than a few "
                                       "seconds")
    config.addinivalue_line("markers", "matrix: an accelerator x network cell of "
                                       "tb/test_accel_matrix.py, or the compute engine on "
                                       "another accelerator (make matrix)")
    config.addinivalue_line("markers", "compute_mutation: the compute engine's datapath "
                                       "mutants, minutes (make mutation SIM=verilator)")


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    """build/golden/ with the stream and the expected image (made with the cosim CLI if
    missing)."""
    from cosim.tb.sim import ensure_golden

    return ensure_golden()


@pytest.fixture(scope="session")
def network():
    """The network the pyuvm tests stream: `Network(package_dir, golden_dir, layout,
    sources)` from COCOSIM_PACKAGE / COCOSIM_GOLDEN (tb.env.config.golden_selection;
    default: build/package and build/golden, made if missing). A selection that does
    not work (COCOSIM_GOLDEN without COCOSIM_PACKAGE, a golden directory of another
    package, a package that does not load) fails every test with one line."""
    from cosim.tb.env.config import GoldenSelectionError
    from cosim.tb.sim import select_network

    try:
        return select_network()
    except GoldenSelectionError as e:
        pytest.fail(str(e), pytrace=False)
