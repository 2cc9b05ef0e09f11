"""Training datasets by name: the files shipped in training/data/, files dropped into a data folder, and feedback.

- `*.jsonl`: one chat conversation per line, `{"messages": [{"role", "content"}, ...]}`
  (roles system, user, assistant; at least one assistant turn, not first).
- `*.txt`, `*.md`: plain text; each paragraph (blank-line separated) is one example.
- `feedback`: `feedback.services.export_training_examples()`, chat dicts like the JSONL lines.
  It is imported when used: until the feedback app provides it, the dataset is listed as
  unavailable with the reason, and asking for it is a DatasetUnavailable error.

A bad line is a DatasetError that names the file and the line. Nothing here imports Django
at module level; the trainer gets plain `Example`s.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from llmsite.chat import ROLES
from training.trainer import Example

SHIPPED_DIR = Path(__file__).resolve().parent / "data"
CHAT_SUFFIXES = (".jsonl",)
TEXT_SUFFIXES = (".txt", ".md")
FEEDBACK = "feedback"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class DatasetError(Exception):
    """A dataset cannot be used as it is; the message says where and why."""

    def __init__(self, message: str, *, dataset: str | None = None):
        super().__init__(message)
        self.message = message
        self.dataset = dataset


class DatasetUnavailable(DatasetError):
    """The dataset does not exist or has nothing to offer yet."""


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    kind: Literal["chat", "text"]
    origin: Literal["shipped", "data", "feedback"]
    path: Path | None
    available: bool
    detail: str = ""


def _files(folder: Path | None) -> list[Path]:
    if folder is None or not folder.is_dir():
        return []
    suffixes = CHAT_SUFFIXES + TEXT_SUFFIXES
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in suffixes and NAME_PATTERN.match(p.stem))


def _kind(path: Path) -> Literal["chat", "text"]:
    return "chat" if path.suffix in CHAT_SUFFIXES else "text"


def feedback_export() -> tuple[Any, str]:
    """(the export function, "") or (None, why it is not there)."""
    try:
        from feedback import services
    except Exception as exc:  # ImportError, or Django not set up (the trainer run outside a project)
        return None, f"the feedback export is not available (cannot import feedback.services: {exc})"
    export = getattr(services, "export_training_examples", None)
    if not callable(export):
        return None, "the feedback export is not available yet (feedback.services.export_training_examples is missing)"
    return export, ""


def file_datasets(data_dir: Path | None = None) -> dict[str, DatasetInfo]:
    """The file datasets: shipped files, then files in `data_dir` (one of a shipped name is ignored)."""
    found: dict[str, DatasetInfo] = {}
    for origin, folder in (("shipped", SHIPPED_DIR), ("data", data_dir)):
        for path in _files(folder):
            if path.stem not in found and path.stem != FEEDBACK:
                found[path.stem] = DatasetInfo(path.stem, _kind(path), origin, path, True)  # type: ignore[arg-type]
    return found


def catalogue(data_dir: Path | None = None) -> dict[str, DatasetInfo]:
    """Every dataset name a run may ask for, with its availability: the file datasets, then feedback."""
    found = file_datasets(data_dir)
    export, reason = feedback_export()
    found[FEEDBACK] = DatasetInfo(FEEDBACK, "chat", "feedback", None, export is not None, reason)
    return found


def load(name: str, *, data_dir: Path | None = None, max_examples: int, max_bytes: int) -> list[Example]:
    """The examples of the dataset `name`; DatasetUnavailable for unknown names, DatasetError for bad data."""
    if name == FEEDBACK:
        return load_feedback(max_examples=max_examples)
    info = file_datasets(data_dir).get(name)
    if info is None or info.path is None:
        known = ", ".join([*sorted(file_datasets(data_dir)), FEEDBACK])
        raise DatasetUnavailable(f"unknown dataset {name!r}; known: {known}", dataset=name)
    return load_file(info.path, max_examples=max_examples, max_bytes=max_bytes)


def load_file(path: Path, *, max_examples: int, max_bytes: int, label: str | None = None) -> list[Example]:
    """Examples from a .jsonl (chat) or .txt/.md (text) file."""
    label = label or path.name
    if not path.is_file():
        raise DatasetUnavailable(f"{path} does not exist", dataset=label)
    if path.suffix not in CHAT_SUFFIXES + TEXT_SUFFIXES:
        raise DatasetError(f"{label}: use a .jsonl file (chat) or a .txt/.md file (plain text)", dataset=label)
    size = path.stat().st_size
    if size > max_bytes:
        raise DatasetError(f"{label} has {size:,} bytes; the limit is {max_bytes:,}", dataset=label)
    examples = read_chat_jsonl(path, label=label) if _kind(path) == "chat" else read_text(path, label=label)
    if not examples:
        raise DatasetUnavailable(f"{label} has no examples", dataset=label)
    if len(examples) > max_examples:
        raise DatasetError(f"{label} has {len(examples):,} examples; the limit is {max_examples:,}", dataset=label)
    return examples


def _lines(path: Path, label: str) -> Iterable[tuple[int, str]]:
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            try:
                yield number, raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DatasetError(f"{label}:{number}: not UTF-8 text ({exc.reason})", dataset=label) from exc


def read_chat_jsonl(path: Path, *, label: str) -> list[Example]:
    examples = []
    for number, line in _lines(path, label):
        if not line.strip():
            continue
        where = f"{label}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})", dataset=label) from exc
        examples.append(chat_example(record, where, dataset=label))
    return examples


def chat_example(record: Any, where: str, *, dataset: str | None = None) -> Example:
    """A validated chat Example from `{"messages": [...]}`; DatasetError naming `where` otherwise."""

    def fail(why: str) -> DatasetError:
        return DatasetError(f"{where}: {why}", dataset=dataset)

    if not isinstance(record, dict) or "messages" not in record:
        raise fail('expected an object with "messages": [{"role": ..., "content": ...}, ...]')
    messages = record["messages"]
    if not isinstance(messages, list) or not messages:
        raise fail('"messages" must be a non-empty list')
    pairs: list[tuple[str, str]] = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise fail(f"message {index} must be an object with role and content")
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise fail(f"message {index}: role must be one of {', '.join(ROLES)} (got {role!r})")
        if not isinstance(content, str):
            raise fail(f"message {index}: content must be a string")
        if role == "assistant" and not content.strip():
            raise fail(f"message {index}: an assistant message must not be empty")
        pairs.append((role, content))
    if pairs[0][0] == "assistant":
        raise fail("the first message must be a system or user message, not the assistant's")
    if not any(role == "assistant" for role, _ in pairs):
        raise fail("no assistant message: there is nothing to learn")
    return Example("chat", messages=tuple(pairs), source=where)


def read_text(path: Path, *, label: str) -> list[Example]:
    """One example per paragraph; `source` names the paragraph's first line."""
    examples: list[Example] = []
    paragraph: list[str] = []
    first = 0
    for number, line in itertools.chain(_lines(path, label), [(0, "")]):
        if line.strip():
            if not paragraph:
                first = number
            paragraph.append(line.rstrip("\n"))
        elif paragraph:
            examples.append(Example("text", text="\n".join(paragraph), source=f"{label}:{first}"))
            paragraph = []
    return examples


def load_feedback(*, max_examples: int) -> list[Example]:
    """The first `max_examples` examples the feedback export yields, validated like JSONL lines."""
    export, reason = feedback_export()
    if export is None:
        raise DatasetUnavailable(reason, dataset=FEEDBACK)
    examples = []
    try:
        for index, record in enumerate(itertools.islice(export(), max_examples), start=1):
            examples.append(chat_example(record, f"feedback example {index}", dataset=FEEDBACK))
    except DatasetError:
        raise
    except Exception as exc:  # another app's code: report its failure as this dataset's, never crash the run
        raise DatasetError(f"the feedback export failed: {type(exc).__name__}: {exc}", dataset=FEEDBACK) from exc
    if not examples:
        raise DatasetUnavailable("the feedback export has no examples yet: rate some answers first", dataset=FEEDBACK)
    return examples
