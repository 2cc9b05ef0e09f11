"""Chat roles: the one list every app and engine shares (plain Python, no Django imports)."""

from __future__ import annotations

from typing import Literal

Role = Literal["system", "user", "assistant"]
ROLES: tuple[str, ...] = ("system", "user", "assistant")
SYSTEM, USER, ASSISTANT = ROLES
