"""How the extractors were chosen (embeddings/README.md): speed and text quality on a generated 60-page report.

Run: `python -m embeddings.tests.measure_extractors` (pypdf, the PDF alternative, only if installed:
`pip install pypdf`). Quality is "each page's fact is found on its own page, whole" and "a sentence
comes out intact"; speed is the best of three runs, so a busy machine mostly adds noise, not bias.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

from embeddings.tests.files import make_docx, make_html, make_pdf, sample_outline

PAGES = 60
PHRASE = "storage budget should follow the growth of the archive"


def best_of(run: Callable[[], Any], times: int = 3) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(times):
        start = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - start)
    return best, result


def pdf_quality(pages: list[str]) -> str:
    facts = sum(1 for n, page in enumerate(pages, 1) if f"vault {n} is {7000 + n * 13}" in " ".join(page.split()))
    intact = PHRASE in " ".join(" ".join(page.split()) for page in pages)
    return f"facts on their page {facts}/{len(pages)}, sentence intact {intact}"


def main() -> None:
    outline = sample_outline(PAGES, paragraphs=6)
    pdf = make_pdf(outline)
    print(f"PDF: {PAGES} pages, {len(pdf):,} bytes")
    import pypdfium2

    def pdfium_pages() -> list[str]:
        document = pypdfium2.PdfDocument(pdf)
        try:
            return [document[i].get_textpage().get_text_range() for i in range(len(document))]
        finally:
            document.close()

    seconds, pages = best_of(pdfium_pages)
    print(f"  pypdfium2 {version('pypdfium2')}: {seconds * 1000:.0f} ms; {pdf_quality(pages)}")
    try:
        import pypdf
    except ImportError:
        print("  pypdf: not installed (pip install pypdf to compare)")
    else:
        seconds, pages = best_of(lambda: [p.extract_text() for p in pypdf.PdfReader(io.BytesIO(pdf)).pages])
        print(f"  pypdf {version('pypdf')}: {seconds * 1000:.0f} ms; {pdf_quality(pages)}")

    import docx

    data = make_docx(outline)
    seconds, paragraphs = best_of(lambda: docx.Document(io.BytesIO(data)).paragraphs)
    headings = sum(1 for p in paragraphs if p.style.name.startswith("Heading"))
    print(f"DOCX: python-docx {seconds * 1000:.0f} ms, {len(paragraphs)} paragraphs, {headings} headings")

    from bs4 import BeautifulSoup

    html = make_html(outline)
    for parser in ("lxml", "html.parser"):
        seconds, soup = best_of(lambda parser=parser: BeautifulSoup(html, parser))
        print(f"HTML: BeautifulSoup+{parser} {seconds * 1000:.0f} ms, {len(soup.find_all('h1'))} headings")


if __name__ == "__main__":
    main()
