"""Adapters: one module per technology, each fulfilling ports of ``cronwarden.ports``."""

from __future__ import annotations
