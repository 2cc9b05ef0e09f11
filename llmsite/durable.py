"""Writes that survive a power cut, for the engines (plain Python: no Django).

A rename (os.replace) is atomic, but only fsync makes the renamed file's data and the folder's
new entry durable: written data sits in the page cache until then, and a power cut after the
rename can leave an empty file under the new name.
"""

from __future__ import annotations

import os
from pathlib import Path


def fsync_path(path: Path) -> None:
    """Flush a file's data, or a folder's entries (a rename into it), to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
