"""The README's and the docs' code blocks, as CommonMark (and so GitHub and MyST) reads them.

Tests that run a block find it by a marker line right above it, such as
``<!-- tests/test_act.py runs the next block ... -->``, wherever the page is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from markdown_it import MarkdownIt

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"


def doc_files() -> list[Path]:
    """The README and every Markdown page of the docs (the built site left out)."""
    pages = sorted(p for p in DOCS.rglob("*.md") if "_build" not in p.relative_to(DOCS).parts)
    return [README, *pages]


@dataclass(frozen=True)
class Block:
    """One fenced code block: where it is, its language, its text and the marker above it."""

    path: Path
    line: int  # 1-based line of the opening fence
    lang: str
    text: str
    marker: str | None  # the HTML comment right above the fence, if any

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def blocks(path: Path) -> list[Block]:
    """Every fenced code block of ``path``, nested ones (in list items) included."""
    text = path.read_text()
    lines = text.splitlines()
    found = []
    for token in MarkdownIt("commonmark").parse(text):
        if token.type != "fence" or token.map is None:
            continue
        first = token.map[0]
        above = lines[first - 1].strip() if first > 0 else ""
        marker = above if above.startswith("<!--") else None
        lang = token.info.split()[0] if token.info.strip() else ""
        found.append(Block(path, first + 1, lang, token.content, marker))
    return found


def all_blocks() -> list[Block]:
    """The blocks of every page of :func:`doc_files`."""
    return [block for path in doc_files() for block in blocks(path)]


def marked_block(marker: str, lang: str) -> Block:
    """The one block, in any page, whose marker line starts with ``marker``."""
    found = [b for b in all_blocks() if b.marker is not None and b.marker.startswith(marker)]
    assert len(found) == 1, f"{marker!r} must mark exactly one block, marks {len(found)}"
    assert found[0].lang == lang, f"{found[0].where}: the marker must be above a {lang} block"
    return found[0]


def marked_blocks(marker: str) -> list[Block]:
    """Every block, in any page, whose marker line starts with ``marker``."""
    return [b for b in all_blocks() if b.marker is not None and b.marker.startswith(marker)]


def docs_text() -> str:
    """The README and the docs pages, one after another."""
    return "\n".join(path.read_text() for path in doc_files())
