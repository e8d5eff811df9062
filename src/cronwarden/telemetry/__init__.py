"""Telemetry: Prometheus metrics (and, later, structured logs)."""

from __future__ import annotations
