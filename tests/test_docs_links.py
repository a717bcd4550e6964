"""The documentation links only to files in the repository, and they exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DOCS = ["README.md", "engine/README.md", "docs/design.md", "packaging/README.md"]
LINK = re.compile(r"\]\(([^)\s]+)\)")


@pytest.mark.parametrize("doc", DOCS)
def test_every_link_is_a_file_of_the_repository(doc):
    page = REPO / doc
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        assert "://" not in target, f"{doc} links outside the repository: {target}"
        path = (page.parent / target.split("#", 1)[0]).resolve()
        assert path.is_relative_to(REPO) and path.exists(), f"{doc}: {target}"
