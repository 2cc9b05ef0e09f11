"""What every extractor returns and raises."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Reason(StrEnum):
    """Why a file was refused; stable, so clients may switch on it (the API's `reason`)."""

    EMPTY = "empty"
    TOO_LARGE = "too_large"
    TOO_MANY_PAGES = "too_many_pages"
    UNSUPPORTED_TYPE = "unsupported_type"
    TYPE_MISMATCH = "type_mismatch"
    CORRUPT = "corrupt"
    ENCRYPTED = "encrypted"
    NO_TEXT = "no_text"
    IMAGE_ONLY = "image_only"


class ExtractionError(Exception):
    def __init__(self, message: str, reason: Reason):
        super().__init__(message)
        self.message = message
        self.reason = reason


@dataclass(frozen=True)
class Block:
    """A paragraph-like run of text; `page` counts from 1 (None where the format has no pages)."""

    text: str
    page: int | None = None
    heading: str | None = None


@dataclass
class Extracted:
    blocks: list[Block]
    pages: int | None = None  # pages in the file, for formats that have them
    title: str | None = None  # the file's own title (HTML <title>, DOCX core property), if any
    warnings: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        """The whole text, blocks separated by blank lines: what the source document stores."""
        return "\n\n".join(block.text for block in self.blocks)


def paragraphs(text: str) -> list[str]:
    """Non-empty paragraphs of `text` (split at blank lines), each with its lines' whitespace normalised."""
    out = []
    for raw in text.replace("\r\n", "\n").replace("\r", "\n").split("\n\n"):
        lines = [" ".join(line.split()) for line in raw.split("\n")]
        para = "\n".join(line for line in lines if line)
        if para:
            out.append(para)
    return out
