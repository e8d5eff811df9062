"""The manifest: which tasks run when, and how (ARCHITECTURE §3)."""

from __future__ import annotations

from cronwarden.manifest.load import LoadResult, load_manifest, validate_document
from cronwarden.manifest.model import Manifest, QuietHours, Settings, TaskClass, TaskSpec
from cronwarden.manifest.problems import Level, Problem

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
