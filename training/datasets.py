"""Training datasets by name: the files shipped in training/data/, files dropped into a data folder, and feedback.

- `*.jsonl`: one chat conversation per line, `{"messages": [{"role", "content"}, ...]}`
  (roles system, user, assistant; at least one assistant turn, not first).
- `*.jsonl` of preference pairs (a file whose first line has "chosen"): one pair per line,
  `{"messages": [... ending with a user turn], "chosen": "...", "rejected": "...", "source": "..."}`;
  for DPO runs (`kind` "preference").
- `*.txt`, `*.md`: plain text; each paragraph (blank-line separated) is one example.
- `feedback`: `feedback.services.export_training_examples()`, chat dicts like the JSONL lines.
  It is imported when used: until the feedback app provides it, the dataset is listed as
  unavailable with the reason, and asking for it is a DatasetUnavailable error.
- `feedback-pairs`: `feedback.services.export_preference_pairs()`, answers to the same conversation
  rated up and down, as pairs; `arena`: `arena.services.preference_pairs()`, voted battles. Both
  imported when used, like `feedback`.

A bad line is a DatasetError that names the file and the line. Nothing here imports Django
at module level; the trainer gets plain `Example`s.
"""

from __future__ import annotations

import importlib
import itertools
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from llmsite.chat import ROLES
from training.preference import PreferencePair
from training.trainer import Example

SHIPPED_DIR = Path(__file__).resolve().parent / "data"
CHAT_SUFFIXES = (".jsonl",)
TEXT_SUFFIXES = (".txt", ".md")
FEEDBACK = "feedback"
FEEDBACK_PAIRS = "feedback-pairs"
ARENA = "arena"
# Datasets that come from another app's function, not a file: name -> (module, function, kind).
EXPORTS: dict[str, tuple[str, str, str]] = {
    FEEDBACK: ("feedback.services", "export_training_examples", "chat"),
    FEEDBACK_PAIRS: ("feedback.services", "export_preference_pairs", "preference"),
    ARENA: ("arena.services", "preference_pairs", "preference"),
}
PAIR_ROLES = ("system", "user", "assistant")
Kind = Literal["chat", "text", "preference"]
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
    kind: Kind
    origin: Literal["shipped", "data", "feedback", "arena"]
    path: Path | None
    available: bool
    detail: str = ""


def _files(folder: Path | None) -> list[Path]:
    if folder is None or not folder.is_dir():
        return []
    suffixes = CHAT_SUFFIXES + TEXT_SUFFIXES
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in suffixes and NAME_PATTERN.match(p.stem))


def _kind(path: Path) -> Kind:
    """text for .txt/.md; for .jsonl, preference when its first record has "chosen", else chat."""
    if path.suffix not in CHAT_SUFFIXES:
        return "text"
    try:
        with path.open("rb") as fh:
            for raw in fh:
                if raw.strip():
                    record = json.loads(raw)
                    return "preference" if isinstance(record, dict) and "chosen" in record else "chat"
    except (OSError, ValueError):
        pass  # a broken file is reported with its line when loaded
    return "chat"


def kind_of(name: str, data_dir: Path | None = None) -> Kind | None:
    """The kind of the dataset `name` (or of a file path); None when unknown."""
    if name in EXPORTS:
        return EXPORTS[name][2]  # type: ignore[return-value]
    info = file_datasets(data_dir).get(name)
    if info is not None:
        return info.kind
    path = Path(name)
    return _kind(path) if path.is_file() else None


def _export(name: str) -> tuple[Any, str]:
    """(the export function of dataset `name`, "") or (None, why it is not there)."""
    module_name, function, _ = EXPORTS[name]
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or Django not set up (the trainer run outside a project)
        return None, f"the {name} export is not available (cannot import {module_name}: {exc})"
    export = getattr(module, function, None)
    if not callable(export):
        return None, f"the {name} export is not available yet ({module_name}.{function} is missing)"
    return export, ""


def feedback_export() -> tuple[Any, str]:
    """(the export function, "") or (None, why it is not there)."""
    return _export(FEEDBACK)


def file_datasets(data_dir: Path | None = None) -> dict[str, DatasetInfo]:
    """The file datasets: shipped files, then files in `data_dir` (one of a shipped name is ignored)."""
    found: dict[str, DatasetInfo] = {}
    for origin, folder in (("shipped", SHIPPED_DIR), ("data", data_dir)):
        for path in _files(folder):
            if path.stem not in found and path.stem not in EXPORTS:
                found[path.stem] = DatasetInfo(path.stem, _kind(path), origin, path, True)  # type: ignore[arg-type]
    return found


def catalogue(data_dir: Path | None = None) -> dict[str, DatasetInfo]:
    """Every dataset name a run may ask for, with its availability: the file datasets, then the exports."""
    found = file_datasets(data_dir)
    for name, (module_name, _function, kind) in EXPORTS.items():
        export, reason = _export(name)
        origin = module_name.split(".")[0]
        found[name] = DatasetInfo(name, kind, origin, None, export is not None, reason)  # type: ignore[arg-type]
    return found


def load(name: str, *, data_dir: Path | None = None, max_examples: int, max_bytes: int) -> list[Example]:
    """The examples of the dataset `name`; DatasetUnavailable for unknown names, DatasetError for bad data."""
    if name == FEEDBACK:
        return load_feedback(max_examples=max_examples)
    if name in EXPORTS:
        raise DatasetError(f"{name!r} holds preference pairs: they train DPO runs (method dpo)", dataset=name)
    info = file_datasets(data_dir).get(name)
    if info is None or info.path is None:
        raise _unknown(name, data_dir)
    return load_file(info.path, max_examples=max_examples, max_bytes=max_bytes)


def _unknown(name: str, data_dir: Path | None) -> DatasetUnavailable:
    known = ", ".join([*sorted(file_datasets(data_dir)), *EXPORTS])
    return DatasetUnavailable(f"unknown dataset {name!r}; known: {known}", dataset=name)


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
    kind = _kind(path)
    if kind == "preference":
        raise DatasetError(f"{label} holds preference pairs: they train DPO runs (method dpo)", dataset=label)
    examples = read_chat_jsonl(path, label=label) if kind == "chat" else read_text(path, label=label)
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


def _read_jsonl(path: Path, label: str, convert: Callable[..., Any]) -> list[Any]:
    """`convert(record, where, dataset=label)` of each non-blank line; a bad line fails naming `label:line`."""
    items = []
    for number, line in _lines(path, label):
        if not line.strip():
            continue
        where = f"{label}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})", dataset=label) from exc
        items.append(convert(record, where, dataset=label))
    return items


def read_chat_jsonl(path: Path, *, label: str) -> list[Example]:
    return _read_jsonl(path, label, chat_example)


def _messages(messages: Any, fail: Callable[[str], DatasetError], roles: Sequence[str]) -> list[tuple[str, str]]:
    """A conversation's `messages` as (role, content) pairs, checked; `fail(why)` makes the error naming its place.

    Chat examples and preference pairs share these rules: a non-empty list of {role, content} with a
    known role and string content, no empty assistant turn, and a system or user turn first.
    """
    if not isinstance(messages, list) or not messages:
        raise fail('"messages" must be a non-empty list')
    pairs: list[tuple[str, str]] = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise fail(f"message {index} must be an object with role and content")
        role, content = message.get("role"), message.get("content")
        if role not in roles:
            raise fail(f"message {index}: role must be one of {', '.join(roles)} (got {role!r})")
        if not isinstance(content, str):
            raise fail(f"message {index}: content must be a string")
        if role == "assistant" and not content.strip():
            raise fail(f"message {index}: an assistant message must not be empty")
        pairs.append((role, content))
    if pairs[0][0] == "assistant":
        raise fail("the first message must be a system or user message, not the assistant's")
    return pairs


def chat_example(record: Any, where: str, *, dataset: str | None = None) -> Example:
    """A validated chat Example from `{"messages": [...]}`; DatasetError naming `where` otherwise."""

    def fail(why: str) -> DatasetError:
        return DatasetError(f"{where}: {why}", dataset=dataset)

    if not isinstance(record, dict) or "messages" not in record:
        raise fail('expected an object with "messages": [{"role": ..., "content": ...}, ...]')
    pairs = _messages(record["messages"], fail, ROLES)
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


# --- preference pairs -------------------------------------------------------------------------------
def preference_pair(record: Any, where: str, *, dataset: str | None = None) -> PreferencePair:
    """A validated PreferencePair from `{"messages", "chosen", "rejected", "source"?}`; DatasetError naming `where`."""

    def fail(why: str) -> DatasetError:
        return DatasetError(f"{where}: {why}", dataset=dataset)

    if not isinstance(record, dict) or not {"messages", "chosen", "rejected"} <= set(record):
        raise fail('expected an object with "messages", "chosen" and "rejected"')
    pairs = _messages(record["messages"], fail, PAIR_ROLES)
    if pairs[-1][0] != "user":
        raise fail("the last message must be the user's: chosen and rejected answer it")
    answers = []
    for key in ("chosen", "rejected"):
        value = record[key]
        if not isinstance(value, str) or not value.strip():
            raise fail(f'"{key}" must be a non-empty string')
        answers.append(value)
    if answers[0] == answers[1]:
        raise fail('"chosen" and "rejected" are the same answer: there is no preference to learn')
    source = record.get("source", "")
    if not isinstance(source, str):
        raise fail('"source" must be a string')
    return PreferencePair(tuple(pairs), answers[0], answers[1], source or where)


def read_pairs_jsonl(path: Path, *, label: str) -> list[PreferencePair]:
    return _read_jsonl(path, label, preference_pair)


def load_pairs_file(path: Path, *, max_examples: int, max_bytes: int, label: str | None = None) -> list[PreferencePair]:
    """Pairs from a .jsonl file of preference pairs."""
    label = label or path.name
    if not path.is_file():
        raise DatasetUnavailable(f"{path} does not exist", dataset=label)
    if path.suffix not in CHAT_SUFFIXES or _kind(path) != "preference":
        raise DatasetError(
            f'{label}: preference pairs come in a .jsonl file whose lines have "messages", "chosen" and "rejected"',
            dataset=label,
        )
    size = path.stat().st_size
    if size > max_bytes:
        raise DatasetError(f"{label} has {size:,} bytes; the limit is {max_bytes:,}", dataset=label)
    pairs = read_pairs_jsonl(path, label=label)
    if not pairs:
        raise DatasetUnavailable(f"{label} has no pairs", dataset=label)
    if len(pairs) > max_examples:
        raise DatasetError(f"{label} has {len(pairs):,} pairs; the limit is {max_examples:,}", dataset=label)
    return pairs


def load_pairs(name: str, *, data_dir: Path | None = None, max_examples: int, max_bytes: int) -> list[PreferencePair]:
    """The pairs of the preference dataset `name`; DatasetUnavailable for unknown names, DatasetError for bad data."""
    if name in (FEEDBACK_PAIRS, ARENA):
        return load_exported_pairs(name, max_examples=max_examples)
    if name == FEEDBACK:
        raise DatasetError(f"{name!r} is a chat dataset, not preference pairs: it trains SFT runs", dataset=name)
    info = file_datasets(data_dir).get(name)
    if info is None or info.path is None:
        raise _unknown(name, data_dir)
    return load_pairs_file(info.path, max_examples=max_examples, max_bytes=max_bytes)


def load_exported_pairs(name: str, *, max_examples: int) -> list[PreferencePair]:
    """The first `max_examples` pairs another app's export yields (arena, feedback-pairs), validated like lines."""
    export, reason = _export(name)
    if export is None:
        raise DatasetUnavailable(reason, dataset=name)
    pairs = []
    try:
        for index, record in enumerate(itertools.islice(iter(export()), max_examples), start=1):
            pairs.append(preference_pair(record, f"{name} pair {index}", dataset=name))
    except DatasetError:
        raise
    except Exception as exc:  # another app's code: report its failure as this dataset's, never crash the run
        raise DatasetError(f"the {name} export failed: {type(exc).__name__}: {exc}", dataset=name) from exc
    if not pairs:
        hint = "vote in some arena battles first" if name == ARENA else "rate answers to the same prompt up and down"
        raise DatasetUnavailable(f"the {name} export has no pairs yet: {hint}", dataset=name)
    return pairs
