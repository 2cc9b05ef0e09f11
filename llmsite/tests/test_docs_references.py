"""Every reference to a Markdown file in the repository points at a file (and a heading) that exists.

Comments and docs cite pages like `docs/api.md` or `docs/performance.md#float32-vs-bfloat16-on-cpus`;
a page that is renamed, or one that only ever lived outside the repository, leaves readers
stranded. The repository must stand alone.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# A path-like token ending in `.md`, with an optional `#anchor`: `docs/api.md`, `../README.md`,
# an upper-case page name, `/abs/path/page#part` with the suffix. Never the tail of a URL or of a longer path.
REFERENCE = re.compile(r"(?<![\w/.:-])(/?(?:\.{1,2}/)*(?:[\w.-]+/)*[\w-]+\.md)(?:#([\w-]+))?(?![\w])")
# Third-party files are not ours to fix.
SKIPPED_PREFIXES = ("static/vendor/",)


def _repository_files() -> list[str]:
    """Tracked files, and new ones git does not ignore (what the next commit may hold)."""
    listing = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return sorted({name for name in listing.split("\0") if name and (ROOT / name).is_file()})


def _text(path: Path) -> str | None:
    data = path.read_bytes()
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _is_reference(token: str, line: str, start: int) -> bool:
    """A path (it has a folder), an upper-case page name (README.md), or a Markdown link target.

    Bare lower-case names (`notes.md`) are example file names in tests and help texts.
    """
    stem = token.rsplit("/", 1)[-1].removesuffix(".md")
    return "/" in token or stem == stem.upper() or line[max(0, start - 2) : start] == "]("


def _resolve(token: str, referrer: Path) -> Path | None:
    """The repository file `token` names: relative to the repository root, to the referring file,
    or (for static assets) to `static/`; None when there is none inside the repository."""
    relative = token.lstrip("/")
    candidates = [ROOT / relative, ROOT / "static" / relative.removeprefix("static/")]
    if not token.startswith("/"):
        candidates.insert(1, referrer.parent / token)
    for candidate in candidates:
        resolved = candidate.resolve()
        if resolved.is_file() and resolved.is_relative_to(ROOT):
            return resolved
    return None


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@cache
def _anchors(page: Path) -> frozenset[str]:
    headings = re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", page.read_text(encoding="utf-8"), flags=re.MULTILINE)
    return frozenset(_slug(heading) for heading in headings)


def _broken_references() -> list[str]:
    broken = []
    for name in _repository_files():
        if name.startswith(SKIPPED_PREFIXES):
            continue
        path = ROOT / name
        text = _text(path)
        if text is None:
            continue
        for number, line in enumerate(text.splitlines(), start=1):
            for match in REFERENCE.finditer(line):
                token, anchor = match.group(1), match.group(2)
                if not _is_reference(token, line, match.start(1)):
                    continue
                target = _resolve(token, path)
                if target is None:
                    broken.append(f"{name}:{number}: {token} does not exist in the repository")
                elif anchor and anchor not in _anchors(target):
                    broken.append(f"{name}:{number}: {token} has no heading for #{anchor}")
    return broken


@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(), reason="needs a git checkout")
def test_every_markdown_reference_points_at_a_file_in_the_repository():
    broken = _broken_references()
    assert not broken, "references to Markdown files that are not in the repository:\n" + "\n".join(broken)


# The missing pages these tests name are spelled with MD, so the file itself names no page that is not here.
MD = ".md"


def test_it_tells_references_from_example_file_names(tmp_path):
    line = f"see docs/api.md#errors, GHOST{MD}, [x](notes{MD}) and https://example.org/README.md; write a{MD}"
    found = [m.group(1) for m in REFERENCE.finditer(line) if _is_reference(m.group(1), line, m.start(1))]
    assert found == ["docs/api.md", f"GHOST{MD}", f"notes{MD}"]


def test_it_resolves_paths_from_the_root_and_from_the_referring_file():
    docs_readme = ROOT / "docs" / "README.md"
    assert _resolve("docs/api.md", ROOT / "inference" / "apis.py") == ROOT / "docs" / "api.md"
    assert _resolve("../README.md", docs_readme) == ROOT / "README.md"
    assert _resolve("api.md", docs_readme) == ROOT / "docs" / "api.md"
    assert _resolve(f"/elsewhere/GHOST{MD}", docs_readme) is None
    assert _resolve(f"../../../etc/GHOST{MD}", docs_readme) is None
    assert "float32-vs-bfloat16-on-cpus" in _anchors(ROOT / "docs" / "performance.md")
