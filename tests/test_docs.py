"""The README and docs/ point at things that exist: relative links name files of the repository, and
``#anchors`` name headings of the page they point into (GitHub's rule: lower case, punctuation dropped,
spaces to hyphens)."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _anchors(page: Path) -> set[str]:
    out = set()
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            title = re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower())
            out.add(title.replace(" ", "-"))
    return out


def _broken_links(page: Path) -> list[str]:
    bad = []
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+://", target):
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            bad.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            bad.append(f"{target}: no heading #{anchor} in {dest.name}")
    return bad


def test_the_checker_finds_broken_links(tmp_path):
    page = tmp_path / "page.md"
    (tmp_path / "other.md").write_text("# Other\n\n## Installing: extras\n", encoding="utf-8")
    page.write_text("# Page\n[a](other.md#installing-extras) [b](#page) [c](https://example.org/x)\n"
                    "[d](missing.md) [e](other.md#nope) [f](#nowhere)\n", encoding="utf-8")
    assert _broken_links(page) == ["missing.md: no such file", "other.md#nope: no heading #nope in other.md",
                                   "#nowhere: no heading #nowhere in page.md"]


def test_the_readme_links_the_docs():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "(docs/design.md)" in text and "(docs/real_speech.md)" in text


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_links_resolve(page):
    assert not _broken_links(page), f"{page.name}: " + "; ".join(_broken_links(page))
