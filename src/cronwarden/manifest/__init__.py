"""The manifest: which tasks run when, and how (ARCHITECTURE §3)."""

from __future__ import annotations

from cronwarden.manifest.load import Level, LoadResult, Problem, load_manifest, validate_document
from cronwarden.manifest.model import Manifest, QuietHours, Settings, TaskClass, TaskSpec

__all__ = [
    "Level",
    "LoadResult",
    "Manifest",
    "Problem",
    "QuietHours",
    "Settings",
    "TaskClass",
    "TaskSpec",
    "load_manifest",
    "validate_document",
]
