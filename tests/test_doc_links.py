"""Every relative link and image in the Markdown docs points at a file of the repository, and every ``#anchor`` at a
heading of its target page (GitHub's heading slugs). External links are not followed (CI runs offline)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import REPO

DOCS = sorted({REPO / "README.md", *(REPO / "docs").glob("*.md"), *(REPO / "bundles").glob("*/docs/*.md"),
               *(REPO / "bundles").glob("*/sample/README.md")})
LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", flags=re.S | re.M)


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, markup and punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", lambda m: m.group(1) or "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text())
    return {_slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.*?)\s*#*$", text, flags=re.M)}


def broken_links(path: Path) -> list[str]:
    """``"target: why"`` for each relative link of the Markdown file ``path`` that leads nowhere."""
    broken = []
    for target in LINK.findall(FENCE.sub("", path.read_text())):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.exists():
            broken.append(f"{target}: no file {linked}")
        elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
            broken.append(f"{target}: no heading '#{anchor}' in {linked.name}")
    return broken


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_links_lead_to_files_and_headings(path):
    assert not broken_links(path)


def test_the_checker_finds_a_missing_file_and_a_missing_heading(tmp_path):
    (tmp_path / "other.md").write_text("# Other page\n\n## Real CT: two scans\n")
    page = tmp_path / "page.md"
    page.write_text("# Page\n\n[ok](other.md#real-ct-two-scans) [ok](#page) ![img](missing.png) "
                    "[bad](other.md#nowhere) [web](https://example.org/x)\n\n```bash\n[not a link](gone.md)\n```\n")
    assert [b.split(":")[0] for b in broken_links(page)] == ["missing.png", "other.md#nowhere"]
