"""Markdown by its ATX headings ("#", "##") and blank-line paragraphs; code fences are kept whole."""

from __future__ import annotations

import re

from embeddings.extraction.base import Block, Extracted, ExtractionError, Reason, paragraphs
from embeddings.extraction.sniff import decode_text

ATX = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
FENCE = re.compile(r"^ {0,3}(```|~~~)")


def extract(data: bytes, *, max_pages: int) -> Extracted:
    text = decode_text(data)
    if text is None:
        raise ExtractionError("the file is not UTF-8 or UTF-16 text", Reason.UNSUPPORTED_TYPE)
    blocks: list[Block] = []
    heading: str | None = None
    pending: list[str] = []
    in_fence = False

    def flush() -> None:
        blocks.extend(Block(para, heading=heading) for para in paragraphs("\n".join(pending)))
        pending.clear()

    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if FENCE.match(line):
            in_fence = not in_fence
        match = None if in_fence else ATX.match(line)
        if match and match.group(2):
            flush()
            heading = match.group(2)
            blocks.append(Block(heading, heading=heading))
        else:
            pending.append(line)
    flush()
    return Extracted(blocks=blocks)
