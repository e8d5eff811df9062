"""Long-running services: they read the Clock, call the core, and talk only to ports."""

from __future__ import annotations
