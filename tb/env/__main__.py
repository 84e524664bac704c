"""`python -m cosim.tb.env coverage [files...]`: merge coverage reports (default: every
build/test-results/coverage-*.json) and print the merged report with its holes."""

from __future__ import annotations

import sys
from pathlib import Path

from cosim.tb.env.config import REPO
from cosim.tb.env.coverage import CoverageModel, merge


def main(argv: list[str]) -> int:
    if not argv or argv[0] != "coverage":
        print(__doc__.strip(), file=sys.stderr)
        return 2
    files = [Path(a) for a in argv[1:]] or sorted(
        (REPO / "build" / "test-results").glob("coverage-*.json"))
    if not files:
        print("no coverage-*.json given or found under build/test-results/", file=sys.stderr)
        return 1
    print(CoverageModel.text(merge(files), f"merged coverage of {len(files)} report(s)",
                             max_holes=200))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
