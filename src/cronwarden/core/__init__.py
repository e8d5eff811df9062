"""Pure decisions: no I/O, no clock reads, no backends (STYLE.md)."""

from __future__ import annotations
