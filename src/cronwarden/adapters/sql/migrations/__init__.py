"""Alembic migrations of the state database (SQLite and PostgreSQL alike); run by
:mod:`cronwarden.adapters.sql.migrate`, never by an ``alembic.ini``."""
