"""Word (.docx) text in reading order, paragraphs and table rows, under their headings, through python-docx.

A .docx has no pages until a word processor lays it out, so blocks carry no page. Headings are
the paragraphs styled "Heading n" or "Title" (what Word's navigation pane shows).
"""

from __future__ import annotations

import io
import zipfile

import docx
from docx.table import Table
from docx.text.paragraph import Paragraph
from lxml import etree

from embeddings.extraction.base import Block, Extracted, ExtractionError, Reason

MAX_UNCOMPRESSED = 200 * 1024 * 1024  # a ZIP that inflates past this is refused (a "zip bomb")


def _is_heading(paragraph: Paragraph) -> bool:
    try:
        name = (paragraph.style.name or "") if paragraph.style is not None else ""
    except (KeyError, ValueError):
        return False
    return name.startswith("Heading") or name == "Title"


def extract(data: bytes, *, max_pages: int) -> Extracted:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            if sum(info.file_size for info in archive.infolist()) > MAX_UNCOMPRESSED:
                raise ExtractionError("the document unpacks to more than 200 MB", Reason.TOO_LARGE)
        document = docx.Document(io.BytesIO(data))
    except ExtractionError:
        raise
    except (zipfile.BadZipFile, KeyError, ValueError, etree.XMLSyntaxError, OSError) as exc:
        raise ExtractionError("the Word document is damaged and cannot be read", Reason.CORRUPT) from exc
    except Exception as exc:  # python-docx raises assorted errors on malformed parts; all mean "cannot read"
        raise ExtractionError("the Word document is damaged and cannot be read", Reason.CORRUPT) from exc
    blocks: list[Block] = []
    heading: str | None = None
    for item in document.iter_inner_content():
        if isinstance(item, Paragraph):
            text = " ".join(item.text.split())
            if not text:
                continue
            if _is_heading(item):
                heading = text
            blocks.append(Block(text, heading=heading))
        elif isinstance(item, Table):
            for row in item.rows:
                cells = []
                for cell in row.cells:
                    value = " ".join(cell.text.split())
                    if value and (not cells or cells[-1] != value):  # merged cells repeat their text
                        cells.append(value)
                if cells:
                    blocks.append(Block(" | ".join(cells), heading=heading))
    title = (document.core_properties.title or "").strip() or None
    return Extracted(blocks=blocks, title=title)
