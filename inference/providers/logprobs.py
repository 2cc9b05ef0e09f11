"""Log-probabilities of tokens under a local model, shared by both engines and both generation paths.

Plain Python (torch, no Django). What is reported is the natural log of the model's own next-token
distribution: `log_softmax` of the raw logits, before temperature, top_p or a structured-output
mask change them — what the model thinks, not what the sampler was allowed to pick from.

- `LogprobCollector` gathers one entry per generated token: the engine hands it each step's raw
  logits (`see`, from the batching scheduler's row or a logits processor in `model.generate`),
  then the token chosen from them (`add`); `take()` drains what came since the last delta, so
  a streamed delta carries the log-probabilities of the tokens it is made of.
- `score_rows(logprob_rows, ids, k)` turns a scoring pass's per-position rows into the entries of
  `ids[1:]` (the first token of a text has nothing before it: None, as OpenAI's `echo`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from inference.providers.base import TokenLogprob

TokenText = Callable[[int], str]


def token_namer(tokenizer: Any) -> TokenText:
    """A token id's text (special tokens spelled out), decoded once per id."""
    cache: dict[int, str] = {}

    def name(token: int) -> str:
        text = cache.get(token)
        if text is None:
            text = tokenizer.decode([token], skip_special_tokens=False, clean_up_tokenization_spaces=False)
            cache[token] = text
        return text

    return name


def entry(row: Any, token: int, k: int, name: TokenText) -> TokenLogprob:
    """`token`'s log-probability in `row` (a [vocab] log-softmax), with the `k` likeliest alternatives."""
    import torch

    top: tuple[tuple[str, float], ...] = ()
    if k:
        values, ids = torch.topk(row, k)
        top = tuple((name(int(i)), float(v)) for i, v in zip(ids.tolist(), values.tolist(), strict=True))
    return TokenLogprob(name(token), float(row[token]), top)


def log_softmax(logits: Any) -> Any:
    """The natural-log distribution over the vocabulary, in float32, of logits shaped [..., vocab]."""
    return logits.float().log_softmax(dim=-1)


class LogprobCollector:
    """One generation's token log-probabilities; see the module docstring. Tokens in `skip` (end of sequence)
    are not reported, as OpenAI reports none for the end of an answer."""

    def __init__(self, k: int, name: TokenText, *, skip: Iterable[int] = ()):
        self.k = k
        self.name = name
        self.skip = frozenset(skip)
        self.entries: list[TokenLogprob] = []
        self._sent = 0
        self._row: Any = None

    def see(self, logits: Any) -> None:
        """The raw logits ([vocab] or [1, vocab]) the next token is chosen from; called before any mask."""
        self._row = log_softmax(logits.reshape(-1))

    def add(self, token: int) -> None:
        """The token chosen from the last logits `see` was given (nothing when the engine gave none)."""
        row, self._row = self._row, None
        if row is not None and token not in self.skip:
            self.entries.append(entry(row, token, self.k, self.name))

    def take(self) -> tuple[TokenLogprob, ...]:
        """The entries added since the last `take`."""
        fresh = tuple(self.entries[self._sent :])
        self._sent = len(self.entries)
        return fresh

    @property
    def pending(self) -> bool:
        return self._sent < len(self.entries)


def score_rows(rows: Any, ids: Sequence[int], k: int, name: TokenText) -> list[TokenLogprob | None]:
    """Entries of `ids` from a scoring pass: `rows[i]` (log-softmax) is the distribution of the token after
    position i, so `ids[i]` is scored by `rows[i - 1]`; the first id has no entry (None)."""
    scored: list[TokenLogprob | None] = [None]
    for position in range(1, len(ids)):
        scored.append(entry(rows[position - 1], ids[position], k, name))
    return scored
