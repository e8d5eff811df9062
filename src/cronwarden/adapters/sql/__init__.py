"""The SQL store: one SQLAlchemy Core code path for SQLite and PostgreSQL."""

from __future__ import annotations
