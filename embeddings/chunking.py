"""Structural chunking: blocks (paragraphs under a page and heading) packed into chunks of encoder tokens.

Plain Python: the caller passes `count_tokens` (the encoder's tokenizer, without special
tokens). A chunk never spans two pages or two headings, so each one has a single page and
heading to cite. Whole paragraphs are packed together up to `max_tokens`; a paragraph longer
than that is cut at sentence ends (at word boundaries inside an overlong sentence), each piece
after the first repeating about `overlap_tokens` of the text before it so a fact cut in two
still has its context.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import groupby

from embeddings.extraction import Block

TokenCounter = Callable[[str], int]

_SENTENCE_END = re.compile(r"(?<=[.!?。])\s+|\n+")


@dataclass(frozen=True)
class Chunk:
    text: str
    page: int | None
    heading: str | None


def _units(text: str, *, max_tokens: int, count_tokens: TokenCounter) -> list[tuple[str, int]]:
    """Sentences of `text` (words of any sentence longer than `max_tokens`), each with its token count."""
    units: list[tuple[str, int]] = []
    for sentence in _SENTENCE_END.split(text):
        sentence = sentence.strip()
        if not sentence:
            continue
        tokens = count_tokens(sentence)
        if tokens <= max_tokens:
            units.append((sentence, tokens))
            continue
        for word in sentence.split():
            word_tokens = count_tokens(word)
            while word_tokens > max_tokens:  # a "word" of thousands of characters (a hash, a base64 blob)
                cut = max(1, len(word) * max_tokens // word_tokens)
                units.append((word[:cut], count_tokens(word[:cut])))
                word = word[cut:]
                word_tokens = count_tokens(word)
            if word:
                units.append((word, word_tokens))
    return units


def _pack(units: Sequence[tuple[str, int]], *, max_tokens: int, overlap_tokens: int, joiner: str) -> list[str]:
    """Consecutive units joined into pieces of at most `max_tokens`; each new piece starts with the last units
    of the previous one that fit in `overlap_tokens`."""
    pieces: list[str] = []
    current: list[tuple[str, int]] = []
    used = 0
    for unit in units:
        if current and used + unit[1] > max_tokens:
            pieces.append(joiner.join(text for text, _ in current))
            carry: list[tuple[str, int]] = []
            carried = 0
            for previous in reversed(current):
                if carried + previous[1] > overlap_tokens or carried + previous[1] + unit[1] > max_tokens:
                    break
                carry.insert(0, previous)
                carried += previous[1]
            current, used = carry, carried
        current.append(unit)
        used += unit[1]
    if current:
        pieces.append(joiner.join(text for text, _ in current))
    return pieces


def chunk_blocks(
    blocks: Iterable[Block], *, max_tokens: int, overlap_tokens: int, count_tokens: TokenCounter
) -> list[Chunk]:
    """Chunks of at most `max_tokens` tokens (as `count_tokens` counts), in document order, each within one
    page and heading."""
    if max_tokens < 8 or not 0 <= overlap_tokens < max_tokens:
        raise ValueError("max_tokens must be at least 8 and overlap_tokens from 0 to less than max_tokens")
    # Joining two texts can make a token or two more than their sum (a blank line, a space): keep a margin.
    budget = max_tokens - 2
    chunks: list[Chunk] = []
    for (page, heading), group in groupby(blocks, key=lambda b: (b.page, b.heading)):
        paragraphs: list[tuple[str, int]] = []
        for block in group:
            text = block.text.strip()
            if not text:
                continue
            tokens = count_tokens(text)
            if tokens <= budget:
                paragraphs.append((text, tokens))
                continue
            # Too long for one chunk: its own pieces, never packed with neighbours, so overlap stays inside it.
            units = _units(text, max_tokens=budget, count_tokens=count_tokens)
            for piece in _pack(units, max_tokens=budget, overlap_tokens=overlap_tokens, joiner=" "):
                paragraphs.append((piece, budget + 1))  # full: stands alone below
        for text in _pack(paragraphs, max_tokens=budget, overlap_tokens=0, joiner="\n\n"):
            chunks.append(Chunk(text=text, page=page, heading=heading))
    return chunks
