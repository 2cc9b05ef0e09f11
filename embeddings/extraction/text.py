"""Plain text: paragraphs at blank lines, no headings."""

from __future__ import annotations

from embeddings.extraction.base import Block, Extracted, ExtractionError, Reason, paragraphs
from embeddings.extraction.sniff import decode_text


def extract(data: bytes, *, max_pages: int) -> Extracted:
    text = decode_text(data)
    if text is None:
        raise ExtractionError("the file is not UTF-8 or UTF-16 text", Reason.UNSUPPORTED_TYPE)
    return Extracted(blocks=[Block(para) for para in paragraphs(text)])
