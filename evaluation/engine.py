"""What an evaluation measures, in plain Python (no Django): held-out loss, answer checking, the pairwise judge.

- `heldout_loss(folder, examples, ...)`: the mean loss per target token of a local model folder on
  the held-out split the trainer draws (`training.trainer.split`, same fraction and seed), computed
  by the trainer's own `Trainer.evaluate` on the same batches, so the figure is the trainer's
  "eval loss" of that model; plus each held-out example's own loss.
- `load_questions(path)`, `normalise(text)`, `is_correct(answer, accepted)`: the question set and
  how an answer is checked (an accepted answer, normalised, appears in the normalised answer as
  whole words).
- `judge_messages(...)`, `parse_verdict(text)`, `combine(first, swapped)`: the pairwise judge. It
  sees both answers in both orders; a side wins only when both orders agree, anything else is a tie
  (a judge that always prefers the first answer shown wins nobody anything).
- `accuracy(...)`, `judge_summary(...)`: the figures stored per model.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from training.trainer import (
    Example,
    Trainer,
    TrainingCancelled,
    TrainingConfig,
    TrainingError,
    split,
)

MAX_QUESTION_CHARS = 1000
MAX_ANSWERS = 20


class EvaluationError(Exception):
    """The evaluation cannot go on: bad questions, an unusable model folder, nothing held out."""


class EvaluationCancelled(Exception):
    """`should_stop()` returned True."""


# --- questions and answers ----------------------------------------------------------------------
@dataclass(frozen=True)
class Question:
    id: str
    question: str
    answers: tuple[str, ...]  # accepted answers; any one of them makes an answer correct


def load_questions(path: Path) -> list[Question]:
    """The question set: JSONL, one `{"id", "question", "answers": [...]}` per line.

    Raises EvaluationError naming the line of the first bad record.
    """
    questions: list[Question] = []
    seen: set[str] = set()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise EvaluationError(f"cannot read the question set {path}: {exc.strerror or exc}") from exc
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path.name}:{number}"
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise EvaluationError(f"{where}: not valid JSON ({exc})") from exc
        if not isinstance(record, dict):
            raise EvaluationError(f"{where}: each line is an object")
        qid, question, answers = record.get("id"), record.get("question"), record.get("answers")
        if not isinstance(qid, str) or not qid or qid in seen:
            raise EvaluationError(f"{where}: `id` must be a unique non-empty string")
        if not isinstance(question, str) or not 0 < len(question) <= MAX_QUESTION_CHARS:
            raise EvaluationError(f"{where}: `question` must be 1 to {MAX_QUESTION_CHARS} characters")
        if (
            not isinstance(answers, list)
            or not 0 < len(answers) <= MAX_ANSWERS
            or not all(isinstance(a, str) and normalise(a) for a in answers)
        ):
            raise EvaluationError(f"{where}: `answers` must be 1 to {MAX_ANSWERS} non-empty strings")
        seen.add(qid)
        questions.append(Question(qid, question, tuple(answers)))
    if not questions:
        raise EvaluationError(f"the question set {path} has no questions")
    return questions


_NOT_WORD = re.compile(r"[^0-9a-z]+")


def normalise(text: str) -> str:
    """Lower case, compatibility forms folded, every run of punctuation and space one space."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return _NOT_WORD.sub(" ", text).strip()


def is_correct(answer: str, accepted: Iterable[str]) -> bool:
    """True when one accepted answer, normalised, appears in the normalised answer as whole words."""
    said = f" {normalise(answer)} "
    return any(f" {normalise(option)} " in said for option in accepted if normalise(option))


def accuracy(correct: Sequence[bool], errors: int = 0) -> dict[str, Any]:
    return {
        "questions": len(correct),
        "correct": sum(correct),
        "accuracy": sum(correct) / len(correct) if correct else None,
        "qa_errors": errors,
    }


# --- the pairwise judge -------------------------------------------------------------------------
Verdict = Literal["A", "B", "tie", "unclear"]
Outcome = Literal["model", "baseline", "tie"]

JUDGE_SYSTEM = (
    "You compare two answers to a question about llmsite. Reply with one letter only: "
    "A if answer A is better, B if answer B is better, T if they are equally good."
)


def judge_messages(question: Question, first: str, second: str) -> list[dict[str, str]]:
    """What the judge reads: the question, a reference answer, then answer A and answer B."""
    reference = " / ".join(question.answers)
    prompt = (
        f"Question: {question.question}\nReference answer: {reference}\n\n"
        f"Answer A: {first.strip() or '(no answer)'}\n\nAnswer B: {second.strip() or '(no answer)'}\n\n"
        "Which answer is better? Reply A, B or T."
    )
    return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": prompt}]


_VERDICT = re.compile(r"^\W*(?:answer\s+)?(A|B|T|TIE)\b", re.IGNORECASE)


def parse_verdict(text: str) -> Verdict:
    """The judge's choice from its reply's first word: A, B, tie (T or tie), else unclear."""
    found = _VERDICT.match(text or "")
    if not found:
        return "unclear"
    letter = found.group(1).upper()
    return "tie" if letter in ("T", "TIE") else letter  # type: ignore[return-value]


def combine(first: Verdict, swapped: Verdict) -> Outcome:
    """The outcome of one question: `first` saw (model, baseline), `swapped` saw (baseline, model)."""
    if first == "A" and swapped == "B":
        return "model"
    if first == "B" and swapped == "A":
        return "baseline"
    return "tie"


def judge_summary(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    """Wins, losses and ties of the model against the baseline; win rate = wins / judged questions."""
    wins, losses = outcomes.count("model"), outcomes.count("baseline")
    ties = len(outcomes) - wins - losses
    judged = len(outcomes)
    return {
        "judged": judged,
        "wins": wins,
        "losses": losses,
        "ties": ties,
        "win_rate": wins / judged if judged else None,
        "loss_rate": losses / judged if judged else None,
    }


# --- held-out loss ------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExampleLoss:
    source: str
    prompt: str  # the example's first user turn (or the text's beginning), for people reading the table
    loss: float  # mean loss per target token of this example
    targets: int


@dataclass(frozen=True)
class LossResult:
    loss: float
    perplexity: float
    examples: int
    sequences: int
    targets: int
    skipped: int  # held-out examples with no target token left after truncation
    max_length: int
    per_example: tuple[ExampleLoss, ...]

    def metrics(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data.pop("per_example")
        data["eval_loss"] = data.pop("loss")
        data["eval_examples"] = data.pop("examples")
        return data


def perplexity(loss: float) -> float:
    return math.exp(min(loss, 50.0))  # capped like the trainer's: a diverged model's figure stays finite


def _prompt_of(example: Example) -> str:
    if example.kind == "chat":
        user = next((content for role, content in example.messages if role == "user"), "")
        return user[:500]
    return example.text[:500]


def _context_window(model: Any) -> int | None:
    window = getattr(model.config, "max_position_embeddings", None) or getattr(model.config, "n_positions", None)
    return window if isinstance(window, int) else None


def heldout_loss(
    folder: Path,
    examples: Sequence[Example],
    *,
    eval_fraction: float,
    seed: int,
    max_length: int,
    batch_size: int,
    device: str = "cpu",
    threads: int | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> LossResult:
    """The trainer's eval loss of the model in `folder` on the held-out part of `examples`.

    The split, encoding, batching and loss are the trainer's own (`split`, `Trainer._encode_all`,
    `_collate`, `evaluate`), so evaluating a run's model with the run's datasets, fraction, seed,
    length and batch size gives the run's "eval loss after". `max_length` is cut to the model's
    context window. Raises EvaluationError (no held-out example, unusable folder) or
    EvaluationCancelled.
    """
    import torch

    _, held = split(examples, eval_fraction, seed)
    if not held:
        raise EvaluationError(
            f"nothing is held out: {len(examples)} examples with eval_fraction {eval_fraction:g} leave no eval split"
        )
    if threads:
        torch.set_num_threads(threads)  # process-wide: the caller runs in a worker or a command of its own
    config = TrainingConfig(
        base_folder=folder,
        output_folder=folder.parent / f".{folder.name}.evaluation-unused",  # nothing is ever saved
        max_length=max_length,
        batch_size=batch_size,
        eval_fraction=eval_fraction,
        seed=seed,
        device=device,
    )
    trainer = Trainer(config, should_stop=should_stop)
    try:
        trainer._load()
        window = _context_window(trainer.model)
        if window is not None and max_length > window:
            trainer.config = config = dataclasses.replace(config, max_length=window)
        sequences, skipped = trainer._encode_all(held)
        if not sequences:
            raise EvaluationError(f"no held-out example has a target token left within {config.max_length} tokens")
        batches = [
            trainer._collate(sequences[i : i + config.batch_size]) for i in range(0, len(sequences), config.batch_size)
        ]
        loss = trainer.evaluate(batches)
        per_example = []
        trainer.model.eval()
        with torch.no_grad():
            for example in held:
                own, _ = trainer._encode_all([example])
                if not own:
                    continue
                trainer._check_stop(0)
                batch = trainer._collate(own)
                total = float(trainer._loss_sum(batch))
                per_example.append(
                    ExampleLoss(example.source, _prompt_of(example), total / batch.targets, batch.targets)
                )
    except TrainingCancelled as exc:
        raise EvaluationCancelled("cancelled while measuring the held-out loss") from exc
    except TrainingError as exc:
        raise EvaluationError(str(exc)) from exc
    finally:
        trainer.model = None  # the weights go as soon as the figure is known
    return LossResult(
        loss=loss,
        perplexity=perplexity(loss),
        examples=len(held),
        sequences=len(sequences),
        targets=sum(s.targets for s in sequences),
        skipped=skipped,
        max_length=config.max_length,
        per_example=tuple(per_example),
    )
