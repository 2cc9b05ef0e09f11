"""Files to text with provenance: a file's kind (by its bytes), and its text as blocks that know page and heading.

Plain Python, no Django: the service passes the limits in. One module per format, each a
function `extract(data, *, max_pages) -> Extracted`; every failure a user can act on is an
`ExtractionError` whose `reason` is stable (the API returns it) and whose message says what to do.
"""

from __future__ import annotations

from embeddings.extraction.base import Block, Extracted, ExtractionError, Reason
from embeddings.extraction.sniff import KINDS, FileKind, sniff


def extract(data: bytes, *, kind: FileKind, max_pages: int) -> Extracted:
    """The text of a file already sniffed as `kind`; ExtractionError when it has none or cannot be read."""
    if kind == "pdf":
        from embeddings.extraction import pdf as module
    elif kind == "docx":
        from embeddings.extraction import docx as module
    elif kind == "html":
        from embeddings.extraction import html as module
    elif kind == "markdown":
        from embeddings.extraction import markdown as module
    else:
        from embeddings.extraction import text as module
    extracted = module.extract(data, max_pages=max_pages)
    if not any(block.text.strip() for block in extracted.blocks):
        raise ExtractionError("the file contains no text", Reason.NO_TEXT)
    return extracted


__all__ = ["KINDS", "Block", "Extracted", "ExtractionError", "FileKind", "Reason", "extract", "sniff"]
