"""Real-looking files made on the fly (PDF with fpdf2, DOCX with python-docx, HTML by hand) for the ingestion tests.

Each maker takes the same outline: a list of pages, each a list of (kind, text) where kind is
"h1", "h2" or "p". A PDF puts each page on its own page and records headings in its outline
(bookmarks), as word processors do when they export; DOCX and HTML ignore the page breaks.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

Outline = Sequence[Sequence[tuple[str, str]]]

FILLER = (
    "The committee reviewed the quarterly figures and agreed that the storage budget should follow the "
    "growth of the archive rather than the calendar. Several members asked for a clearer record of who "
    "approved each change, and the secretary promised a shorter summary for the next meeting. "
)


def sample_outline(pages: int = 3, *, paragraphs: int = 3) -> list[list[tuple[str, str]]]:
    """A report of `pages` pages: a chapter heading per page, filler paragraphs, one distinct fact per page."""
    outline = []
    for n in range(1, pages + 1):
        page = [("h1", f"Chapter {n}: Section about topic {n}")]
        for i in range(paragraphs):
            page.append(("p", f"{FILLER}Paragraph {i + 1} of chapter {n}."))
        page.append(("p", f"The access code for vault {n} is {7000 + n * 13}, kept by warden number {n}."))
        outline.append(page)
    return outline


def make_pdf(outline: Outline, *, password: str | None = None, bookmarks: bool = True) -> bytes:
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(auto=True, margin=15)
    for page in outline:
        pdf.add_page()
        for kind, text in page:
            if kind in ("h1", "h2"):
                size = 18 if kind == "h1" else 14
                if bookmarks:
                    pdf.start_section(text, level=0 if kind == "h1" else 1)
                pdf.set_font("Helvetica", "B", size)
                pdf.multi_cell(0, 10, text, new_x="LMARGIN", new_y="NEXT")
            else:
                pdf.set_font("Helvetica", "", 11)
                pdf.multi_cell(0, 6, text, new_x="LMARGIN", new_y="NEXT")
                pdf.ln(3)
    if password is not None:
        from fpdf.enums import EncryptionMethod

        pdf.set_encryption(
            owner_password="owner-" + password, user_password=password, encryption_method=EncryptionMethod.AES_256
        )
    return bytes(pdf.output())


def make_image_pdf(pages: int = 2) -> bytes:
    """A 'scanned' PDF: every page is a picture, none has a text layer."""
    from fpdf import FPDF
    from PIL import Image, ImageDraw

    pdf = FPDF(format="A4")
    for n in range(pages):
        image = Image.new("RGB", (600, 800), "white")
        ImageDraw.Draw(image).text((50, 50), f"Scanned page {n + 1}: the code is 4242", fill="black")
        pdf.add_page()
        pdf.image(image, x=10, y=10, w=180)
    return bytes(pdf.output())


def make_docx(outline: Outline) -> bytes:
    import docx

    document = docx.Document()
    for page in outline:
        for kind, text in page:
            if kind == "h1":
                document.add_heading(text, level=1)
            elif kind == "h2":
                document.add_heading(text, level=2)
            else:
                document.add_paragraph(text)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def make_html(outline: Outline, *, title: str = "Report") -> bytes:
    from html import escape

    parts = [
        f"<!DOCTYPE html><html><head><title>{escape(title)}</title><style>p{{color:red}}</style>"
        "<script>var tracking = 'not text';</script></head><body><nav><a href='/'>Home</a></nav><main>"
    ]
    for page in outline:
        for kind, text in page:
            tag = {"h1": "h1", "h2": "h2"}.get(kind, "p")
            parts.append(f"<{tag}>{escape(text)}</{tag}>")
    parts.append("</main></body></html>")
    return "\n".join(parts).encode()


def make_markdown(outline: Outline) -> bytes:
    lines = []
    for page in outline:
        for kind, text in page:
            lines.append({"h1": "# ", "h2": "## "}.get(kind, "") + text)
            lines.append("")
    return "\n".join(lines).encode()
