"""Local-link checks of a generated HTML page (the run report), shared by its tests."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.targets: list[str] = []

    def handle_starttag(self, tag, attrs):
        for key, value in attrs:
            if key in ("href", "src") and value:
                self.targets.append(value)


def local_targets(index: Path) -> list[Path]:
    """Every href/src of the page that is a local file (anchors and URLs skipped)."""
    parser = _Links()
    parser.feed(index.read_text(encoding="utf-8"))
    out = []
    for target in parser.targets:
        assert not re.match(r"^(https?:)?//", target), f"external link {target}"
        if target.startswith("#"):
            continue
        out.append((index.parent / unquote(target)).resolve())
    return out


def assert_links_exist(index: Path) -> None:
    targets = local_targets(index)
    assert targets, "no local links"
    missing = [str(t) for t in targets if not t.exists()]
    assert not missing, f"linked but missing: {missing}"
