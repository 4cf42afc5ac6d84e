"""The top README cites every bundle's paper and announces nothing as planned that is already done (issue 18)."""

from __future__ import annotations

import json
import re

import pytest

from tests.conftest import REPO

README = (REPO / "README.md").read_text()
METADATA = sorted((REPO / "bundles").glob("*/configs/metadata.json"))


def _section(text: str, heading: str) -> str:
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, flags=re.S | re.M)
    assert match, f"no '## {heading}' section"
    return " ".join(match.group(1).split())


@pytest.mark.parametrize("path", METADATA, ids=lambda p: p.parent.parent.name)
def test_citing_the_papers_names_each_bundles_paper(path):
    """A bundle's paper is the first of its metadata ``references``: its authors and title are cited."""
    paper = json.loads(path.read_text())["references"][0]
    authors, title = paper.split(". ")[:2]
    citing = _section(README, "Citing the papers")
    assert authors.split(",")[0].removesuffix(" et al") in citing and title in citing, paper


def test_no_readme_calls_something_planned():
    readmes = [REPO / "README.md", *sorted((REPO / "bundles").glob("*/docs/README.md")), *sorted(
        (REPO / "docs").glob("*.md"))]
    found = [f"{p.relative_to(REPO)}: {line.strip()}" for p in readmes for line in p.read_text().splitlines()
             if re.search(r"\bplanned\b", line, flags=re.I)]
    assert not found, found
