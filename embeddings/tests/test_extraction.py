"""Files to blocks with provenance, and blocks to chunks in encoder tokens: the engines, without the database."""

from __future__ import annotations

import io
import itertools
import zipfile

import pytest

from embeddings.chunking import chunk_blocks
from embeddings.extraction import Block, ExtractionError, Reason, extract, sniff
from embeddings.tests.files import (
    FILLER,
    make_docx,
    make_html,
    make_image_pdf,
    make_markdown,
    make_pdf,
    sample_outline,
)


def read(data: bytes, filename: str, *, max_pages: int = 100):
    return extract(data, kind=sniff(data, filename=filename), max_pages=max_pages)


def refusal(data: bytes, filename: str, **kwargs) -> ExtractionError:
    with pytest.raises(ExtractionError) as caught:
        read(data, filename, **kwargs)
    return caught.value


def test_it_reads_each_pdf_page_with_its_number_and_outline_heading():
    extracted = read(make_pdf(sample_outline(3)), "report.pdf")
    assert extracted.pages == 3
    for n in (1, 2, 3):
        fact = next(b for b in extracted.blocks if f"vault {n} is {7000 + n * 13}" in " ".join(b.text.split()))
        assert fact.page == n
        assert fact.heading == f"Chapter {n}: Section about topic {n}"


def test_it_cuts_a_page_at_a_heading_that_starts_midway():
    outline = [
        [("h1", "Intro"), ("p", "Opening words of the report.")],
        [("p", "Still the intro."), ("h1", "Results"), ("p", "The yield rose by 12 percent.")],
    ]
    extracted = read(make_pdf(outline), "r.pdf")
    by_text = {" ".join(b.text.split()): b for b in extracted.blocks}
    still = next(b for t, b in by_text.items() if "Still the intro." in t)
    result = next(b for t, b in by_text.items() if "yield rose" in t)
    assert (still.page, still.heading) == (2, "Intro")
    assert (result.page, result.heading) == (2, "Results")


def test_it_reads_docx_paragraphs_and_tables_under_their_headings():
    import docx

    document = docx.Document()
    document.add_heading("Budget", level=1)
    document.add_paragraph("The storage budget is 4,200 euros.")
    table = document.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text = "Owner"
    table.rows[0].cells[1].text = "Dana Whitfield"
    document.add_heading("Risks", level=1)
    document.add_paragraph("Flooding of the basement archive.")
    out = io.BytesIO()
    document.save(out)
    extracted = read(out.getvalue(), "plan.docx")
    assert [(b.text, b.heading) for b in extracted.blocks] == [
        ("Budget", "Budget"),
        ("The storage budget is 4,200 euros.", "Budget"),
        ("Owner | Dana Whitfield", "Budget"),
        ("Risks", "Risks"),
        ("Flooding of the basement archive.", "Risks"),
    ]
    assert extracted.pages is None


def test_it_reads_html_text_under_headings_without_scripts_styles_or_navigation():
    extracted = read(make_html(sample_outline(2), title="Quarterly report"), "page.html")
    assert extracted.title == "Quarterly report"
    text = extracted.text
    assert "tracking" not in text and "color:red" not in text and "Home" not in text
    fact = next(b for b in extracted.blocks if "vault 2 is 7026" in b.text)
    assert fact.heading == "Chapter 2: Section about topic 2"


def test_it_reads_markdown_headings_and_plain_text_paragraphs():
    extracted = read(make_markdown(sample_outline(2)), "notes.md")
    fact = next(b for b in extracted.blocks if "vault 1 is 7013" in b.text)
    assert fact.heading == "Chapter 1: Section about topic 1"
    plain = read(b"First paragraph.\n\nSecond one,\non two lines.\n", "notes.txt")
    assert [b.text for b in plain.blocks] == ["First paragraph.", "Second one,\non two lines."]


def test_the_content_decides_the_type_not_the_name():
    assert sniff(make_pdf(sample_outline(1)), filename="no-extension") == "pdf"
    assert sniff(make_docx(sample_outline(1)), filename="upload.bin") == "docx"
    assert sniff(b"<!DOCTYPE html><html><body><p>x</p></body></html>", filename="page") == "html"
    assert sniff(b"just words", filename="readme") == "text"


@pytest.mark.parametrize(
    ("data", "filename", "reason", "words"),
    [
        (b"", "empty.pdf", Reason.EMPTY, "empty"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, "photo.pdf", Reason.TYPE_MISMATCH, "PNG image"),
        (b"plain words, not a PDF", "report.pdf", Reason.TYPE_MISMATCH, "named .pdf"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, "photo.png", Reason.UNSUPPORTED_TYPE, "PNG image"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, "old.doc", Reason.UNSUPPORTED_TYPE, "legacy Office"),
        (b"\x00\x01\x02\x03binary", "data.txt", Reason.TYPE_MISMATCH, "binary"),
        (b"%PDF-1.7\n" + b"garbage " * 200, "broken.pdf", Reason.CORRUPT, "truncated"),
        (b"%PDF-1.7\n" + b"garbage " * 200 + b"\n%%EOF\n", "broken.pdf", Reason.CORRUPT, "cannot be read"),
    ],
)
def test_it_refuses_bad_files_saying_why(data, filename, reason, words):
    error = refusal(data, filename)
    assert error.reason == reason
    assert words in error.message


def test_it_refuses_a_zip_that_is_not_a_word_document():
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("notes.txt", "hello")
    error = refusal(out.getvalue(), "notes.docx")
    assert error.reason == Reason.TYPE_MISMATCH and "ZIP archive" in error.message


def test_it_refuses_a_truncated_pdf_and_a_damaged_docx():
    pdf = make_pdf(sample_outline(3))
    assert refusal(pdf[: len(pdf) * 2 // 3], "cut.pdf").reason == Reason.CORRUPT
    docx_bytes = make_docx(sample_outline(1))
    assert refusal(docx_bytes[: len(docx_bytes) // 2], "cut.docx").reason in (Reason.CORRUPT, Reason.TYPE_MISMATCH)


def test_it_refuses_an_encrypted_pdf():
    error = refusal(make_pdf(sample_outline(1), password="secret"), "locked.pdf")
    assert error.reason == Reason.ENCRYPTED and "password" in error.message


def test_it_refuses_an_image_only_pdf_as_needing_ocr():
    error = refusal(make_image_pdf(2), "scan.pdf")
    assert error.reason == Reason.IMAGE_ONLY and "OCR" in error.message


def test_it_refuses_a_pdf_over_the_page_limit():
    error = refusal(make_pdf(sample_outline(4)), "long.pdf", max_pages=3)
    assert error.reason == Reason.TOO_MANY_PAGES and "4 pages" in error.message and "3" in error.message


# --- chunking ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tokens(encoder):
    return encoder.count_text_tokens


def test_chunks_fit_the_token_budget_as_the_encoder_counts_them(encoder, tokens):
    long_paragraph = FILLER * 12  # far more than one chunk
    blocks = [Block("Short intro.", page=1, heading="A"), Block(long_paragraph, page=1, heading="A")]
    chunks = chunk_blocks(blocks, max_tokens=64, overlap_tokens=16, count_tokens=tokens)
    assert len(chunks) > 5
    for chunk in chunks:
        with_specials = len(encoder.model.tokenizer(chunk.text)["input_ids"])
        assert with_specials <= 64
    # Nothing is lost: every sentence of the long paragraph is in some chunk.
    joined = " ".join(c.text for c in chunks)
    for sentence in FILLER.split(". "):
        assert sentence.strip(". ") in joined


def test_consecutive_pieces_of_a_long_paragraph_overlap(tokens):
    sentences = [f"Sentence number {n} mentions the code {1000 + n}." for n in range(40)]
    chunks = chunk_blocks([Block(" ".join(sentences))], max_tokens=48, overlap_tokens=16, count_tokens=tokens)
    assert len(chunks) > 3
    for before, after in itertools.pairwise(chunks):
        last_sentence = before.text.rsplit(". ", 1)[-1]
        assert last_sentence in after.text


def test_chunks_never_span_two_pages_or_headings_and_keep_them(tokens):
    blocks = [
        Block("One.", page=1, heading="Intro"),
        Block("Two.", page=1, heading="Intro"),
        Block("Three.", page=2, heading="Intro"),
        Block("Four.", page=2, heading="Method"),
    ]
    chunks = chunk_blocks(blocks, max_tokens=200, overlap_tokens=0, count_tokens=tokens)
    assert [(c.text, c.page, c.heading) for c in chunks] == [
        ("One.\n\nTwo.", 1, "Intro"),
        ("Three.", 2, "Intro"),
        ("Four.", 2, "Method"),
    ]


def test_a_word_longer_than_a_chunk_is_cut_not_dropped(tokens):
    blob = "x" * 3000
    chunks = chunk_blocks([Block(f"Key: {blob} end.")], max_tokens=32, overlap_tokens=0, count_tokens=tokens)
    assert "".join(c.text for c in chunks).count("x") == 3000
    assert all(tokens(c.text) <= 30 for c in chunks)
