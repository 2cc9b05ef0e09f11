"""How far an index has followed the database's change log, holes included (plain Python, no Django).

The change log (`embeddings.models.IndexChange`) is numbered by the database's sequence. A number
is taken when a row is inserted, but transactions commit in any order: on PostgreSQL a reader may
see change 12 while change 11 is still uncommitted, and see 11 appear later. A reader that only
kept "the highest id seen" would skip 11 for ever. So the cursor keeps the ids below its mark it
has not seen yet (gaps) and asks for them again on every poll until they appear, or until they
are older than `gap_timeout`: a rolled-back transaction leaves a hole that never fills, and a
change transaction here is short (the log rows are its last inserts; encoding happens before it),
so a hole still open after minutes is one of those.

Why not a lock that makes commits follow the sequence: it would serialise every writer of every
worker on one lock for the whole end of its transaction, on PostgreSQL only; tracking holes costs
the readers one `id IN (...)` per poll while holes are open, and works the same on SQLite (where a
single writer already commits in order).

Applying changes must be idempotent (the caller looks at the database's current state for each
document named, rather than replaying add/remove verbatim): a gap may be filled after newer
changes of other documents, and a snapshot's mark may be behind the vectors it holds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

# Holes older than this are taken for rolled-back transactions and no longer asked for.
GAP_TIMEOUT_SECONDS = 300.0
# Ids further below the newest one seen are not waited for: that many changes do not commit while
# one transaction stays open, and a cursor far behind (a reset, a log cut short) must not track millions.
GAP_SPAN = 10_000


class ChangeCursor:
    """The change ids an index has seen: every id up to `mark`, except `gaps`."""

    def __init__(
        self, mark: int = 0, *, gap_timeout: float = GAP_TIMEOUT_SECONDS, clock: Callable[[], float] = time.monotonic
    ):
        self.mark = int(mark)
        self.gaps: dict[int, float] = {}  # id -> when it was first found missing
        self.gap_timeout = gap_timeout
        self._clock = clock
        # One catch-up (or load, or reload) at a time per index: two would read the same changes
        # and race their adds, or a load could swap the index under a catch-up. Re-entrant: a load
        # holds it across its own catch-up.
        self.lock = threading.RLock()

    def wanted(self) -> tuple[int, list[int]]:
        """(ask for ids above this, and for these ids below it)."""
        return self.mark, sorted(self.gaps)

    def advance(self, seen: Iterable[int]) -> list[int]:
        """Record the ids just read (call after applying them); returns the holes given up on."""
        now = self._clock()
        seen_ids = sorted(set(int(i) for i in seen))
        for change_id in seen_ids:
            self.gaps.pop(change_id, None)
        new = [i for i in seen_ids if i > self.mark]
        if new:
            present = set(new)
            for missing in range(max(self.mark + 1, new[-1] - GAP_SPAN), new[-1]):
                if missing not in present:
                    self.gaps[missing] = now
            self.mark = new[-1]
        expired = [i for i, since in self.gaps.items() if now - since > self.gap_timeout]
        for change_id in expired:
            del self.gaps[change_id]
        return expired

    def safe_mark(self) -> int:
        """The highest id such that every change up to it has been seen: where a reload must resume."""
        return min(self.gaps) - 1 if self.gaps else self.mark

    def reset(self, mark: int) -> None:
        self.mark = int(mark)
        self.gaps.clear()
