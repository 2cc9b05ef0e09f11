"""Which kind a file is, decided by its bytes; the name's extension may only agree.

A file whose extension names one supported kind and whose content is another ("report.pdf" that
is a PNG, or a ZIP) is refused rather than guessed at: it is usually a mistake the user wants to hear about.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import PurePath
from typing import Literal

from embeddings.extraction.base import ExtractionError, Reason

FileKind = Literal["pdf", "docx", "html", "markdown", "text"]

KINDS: dict[str, str] = {
    "pdf": "a PDF",
    "docx": "a Word document (.docx)",
    "html": "an HTML page",
    "markdown": "Markdown",
    "text": "plain text",
}
SUPPORTED = "PDF, Word (.docx), HTML, Markdown and plain text"

EXTENSIONS: dict[str, FileKind] = {
    ".pdf": "pdf",
    ".docx": "docx",
    ".html": "html",
    ".htm": "html",
    ".xhtml": "html",
    ".md": "markdown",
    ".markdown": "markdown",
    ".txt": "text",
    ".text": "text",
    ".rst": "text",
}

# Formats people upload by mistake, so the refusal can say what the file really is.
SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    # Compound File Binary: legacy .doc/.xls/.ppt, and also every password-protected .docx.
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "a legacy Office file (.doc, .xls) or a password-protected Office document"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!", "a RAR archive"),
    (b"{\\rtf", "an RTF document"),
    (b"%!PS", "a PostScript file"),
    (b"MZ", "a Windows program"),
    (b"\x7fELF", "a program"),
)

_HTML_START = re.compile(rb"^\s*(<\?xml[^>]*>\s*)?(<!--.*?-->\s*)*<(!doctype\s+html|html|head|body)[\s>]", re.I | re.S)


def decode_text(data: bytes) -> str | None:
    """`data` as text (UTF-8, or UTF-16 with a byte-order mark), or None when it is not text."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError:
            return None
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            return None
    if "\x00" in text:
        return None
    return text


def _zip_kind(data: bytes) -> tuple[FileKind | None, str]:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, ValueError, OSError):
        return None, "a damaged ZIP archive"
    if "word/document.xml" in names:
        return "docx", KINDS["docx"]
    if "xl/workbook.xml" in names:
        return None, "an Excel workbook"
    if "ppt/presentation.xml" in names:
        return None, "a PowerPoint presentation"
    if "mimetype" in names:
        return None, "an OpenDocument file"
    return None, "a ZIP archive"


def content_kind(data: bytes) -> tuple[FileKind | None, str]:
    """The supported kind `data` is (None when it is none of them) and a description for messages."""
    # The PDF header may follow up to 1 KiB of junk (PDF 1.7, annex H); readers accept that too.
    if b"%PDF-" in data[:1024]:
        return "pdf", KINDS["pdf"]
    if data.startswith(b"PK\x03\x04"):
        return _zip_kind(data)
    for signature, description in SIGNATURES:
        if data.startswith(signature):
            return None, description
    text = decode_text(data[: 64 * 1024]) if len(data) > 64 * 1024 else decode_text(data)
    if text is None and len(data) > 64 * 1024:
        # The cut may have split a multi-byte character: judge a few bytes shorter.
        text = next((t for cut in (1, 2, 3) if (t := decode_text(data[: 64 * 1024 - cut])) is not None), None)
    if text is None:
        return None, "binary data that is not a supported format"
    if _HTML_START.match(data[:4096].lstrip(b"\xef\xbb\xbf")):
        return "html", KINDS["html"]
    return "text", KINDS["text"]


def sniff(data: bytes, *, filename: str) -> FileKind:
    """The kind to read `data` as; ExtractionError (empty, unsupported_type, type_mismatch) when none fits."""
    if not data:
        raise ExtractionError("the file is empty", Reason.EMPTY)
    found, description = content_kind(data)
    suffix = PurePath(filename).suffix.lower()
    claimed = EXTENSIONS.get(suffix)
    if found is None and claimed is None:
        raise ExtractionError(f"the file is {description}; supported are {SUPPORTED}", Reason.UNSUPPORTED_TYPE)
    if claimed is None:
        return found
    textual = found in ("text", "html")
    if claimed in ("text", "markdown", "html") and textual:
        return claimed  # the extension picks how to read text: Markdown headings, HTML tags
    if claimed == found:
        return found
    raise ExtractionError(
        f"the file is named {suffix} but its content is {description}; rename it or upload the right file",
        Reason.TYPE_MISMATCH,
    )
