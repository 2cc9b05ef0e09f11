"""PDF text, page by page, with headings from the document's outline (bookmarks), through pypdfium2.

pypdfium2 (Google's PDFium) was measured against pypdf: the same text on our generated reports,
about three times faster (embeddings/README.md). PDFium is not thread-safe, and sync views run in
a thread pool: every call into it holds `_PDFIUM`.

A PDF carries no reliable "this line is a heading"; its outline does, with the page each entry
points at. A page's text is split where an outline title starts a line, so text after "2.3
Results" on page 7 has that heading; text before it keeps the heading of the previous entry.
"""

from __future__ import annotations

import threading

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from embeddings.extraction.base import Block, Extracted, ExtractionError, Reason, paragraphs

_PDFIUM = threading.Lock()
MAX_OUTLINE = 5000  # entries read from the outline; a hostile file may loop


def _outline(document: pdfium.PdfDocument) -> dict[int, list[str]]:
    """Outline titles by 0-based page index, in outline order."""
    by_page: dict[int, list[str]] = {}
    try:
        for n, bookmark in enumerate(document.get_toc(max_depth=8)):
            if n >= MAX_OUTLINE:
                break
            dest = bookmark.get_dest()
            title = " ".join((bookmark.get_title() or "").split())
            index = dest.get_index() if dest is not None else None
            if title and index is not None:
                by_page.setdefault(index, []).append(title)
    except pdfium.PdfiumError:
        return {}  # a broken outline costs the headings, not the text
    return by_page


def _split_at_headings(text: str, titles: list[str]) -> list[tuple[str | None, str]]:
    """(heading or None for 'the previous one', text) pieces of one page, cut where an outline title starts a line."""
    wanted = [t.casefold() for t in titles]
    pieces: list[tuple[str | None, list[str]]] = [(None, [])]
    for line in text.split("\n"):
        key = " ".join(line.split()).casefold()
        if key and key in wanted:
            title = titles[wanted.index(key)]
            pieces.append((title, [line]))
        else:
            pieces[-1][1].append(line)
    return [(heading, "\n".join(lines)) for heading, lines in pieces]


def extract(data: bytes, *, max_pages: int) -> Extracted:
    # PDFium repairs a cut-off file and reads what is left; a truncated upload would then be stored
    # half. Every complete PDF ends with %%EOF (writers may add a little after it).
    if b"%%EOF" not in data[-2048:]:
        raise ExtractionError("the PDF is truncated (it does not end with %%EOF) or damaged", Reason.CORRUPT)
    with _PDFIUM:
        try:
            document = pdfium.PdfDocument(data)
        except pdfium.PdfiumError as exc:
            if getattr(exc, "err_code", None) in (pdfium_c.FPDF_ERR_PASSWORD, pdfium_c.FPDF_ERR_SECURITY):
                raise ExtractionError(
                    "the PDF is encrypted with a password; upload a copy without one", Reason.ENCRYPTED
                ) from exc
            raise ExtractionError("the PDF is damaged or truncated and cannot be read", Reason.CORRUPT) from exc
        try:
            pages = len(document)
            if pages > max_pages:
                raise ExtractionError(
                    f"the PDF has {pages} pages; the limit is {max_pages} (EMBEDDINGS_MAX_FILE_PAGES)",
                    Reason.TOO_MANY_PAGES,
                )
            outline = _outline(document)
            blocks: list[Block] = []
            heading: str | None = None
            images_only = 0
            for index in range(pages):
                page = document[index]
                try:
                    textpage = page.get_textpage()
                    text = textpage.get_text_range().replace("\r\n", "\n").replace("\r", "\n")
                    textpage.close()
                    if not text.strip() and any(True for _ in page.get_objects(max_depth=2)):
                        images_only += 1
                finally:
                    page.close()
                for title, piece in _split_at_headings(text, outline.get(index, [])):
                    if title is not None:
                        heading = title
                    blocks.extend(Block(para, page=index + 1, heading=heading) for para in paragraphs(piece))
                # An outline entry whose title is not on its page still names the page's part of the text.
                for title in outline.get(index, []):
                    heading = title
        finally:
            document.close()
    if not blocks:
        if images_only:
            raise ExtractionError(
                "the PDF has no text layer (its pages are images, e.g. a scan); run OCR on it first",
                Reason.IMAGE_ONLY,
            )
        raise ExtractionError("the PDF contains no text", Reason.NO_TEXT)
    return Extracted(blocks=blocks, pages=pages)
