"""HTML text by its block elements, with the heading (h1-h6) each falls under, through BeautifulSoup and lxml.

Scripts, styles, navigation, headers, footers and forms are dropped: they are page chrome, not
the document. The encoding comes from the bytes (BOM, <meta charset>), as a browser would read it.
"""

from __future__ import annotations

from bs4 import BeautifulSoup, Tag

from embeddings.extraction.base import Block, Extracted

DROP = (
    "script",
    "style",
    "noscript",
    "template",
    "svg",
    "canvas",
    "iframe",
    "nav",
    "header",
    "footer",
    "form",
    "aside",
)
HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")
BLOCKS = ("p", "li", "pre", "blockquote", "dt", "dd", "figcaption", "caption", "tr", "address")


def extract(data: bytes, *, max_pages: int) -> Extracted:
    soup = BeautifulSoup(data, "lxml")
    title_tag = soup.find("title")
    title = " ".join(title_tag.get_text().split()) if title_tag else None
    for tag in soup.find_all(DROP):
        tag.decompose()
    body = soup.body or soup
    blocks: list[Block] = []
    heading: str | None = None
    for element in body.find_all([*HEADINGS, *BLOCKS, "div"]):
        if not isinstance(element, Tag):
            continue
        # Text is taken at the innermost block that holds it: skip an element with a block inside.
        if element.name in ("div", "li", "blockquote", "tr", "dd") and element.find([*HEADINGS, *BLOCKS, "div"]):
            continue
        separator = " | " if element.name == "tr" else " "
        text = " ".join(element.get_text(separator).split())
        if not text:
            continue
        if element.name in HEADINGS:
            heading = text
        blocks.append(Block(text, heading=heading))
    return Extracted(blocks=blocks, title=title or None)
