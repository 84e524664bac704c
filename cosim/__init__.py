"""cosim: the one namespace of cnn-cosim.

The application layer (command line, demo, report) lives here; the libraries are
its subpackages: cosim.quant (training, PTQ, package format), cosim.golden
(layout, image, integer model) and cosim.tb (testbench); cosim.rtl holds the
SystemVerilog sources. Nothing below the application layer imports it.

In an installed distribution those subpackages are folders of this package. In
a source checkout they are this repository's top-level folders quant/, golden/,
tb/ and rtl/, beside cosim/: the checkout's root then joins this package's
search path, so `cosim.golden` is golden/ there.
"""

from pathlib import Path as _Path

_checkout = _Path(__file__).resolve().parent.parent
if not (_Path(__file__).resolve().parent / "golden").is_dir() and all(
        (_checkout / name).is_dir() for name in ("quant", "golden", "tb", "rtl")):
    __path__.append(str(_checkout))  # noqa: F821 (a package's own __path__)
del _Path, _checkout
