"""How Alembic runs cronwarden's migrations: on the connection that
:mod:`cronwarden.adapters.sql.migrate` opened (online), or as SQL text for a
database administrator to apply (offline, ``cronwarden db upgrade --sql``)."""

from __future__ import annotations

from alembic import context

from cronwarden.adapters.sql.schema import metadata

config = context.config

if context.is_offline_mode():
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    connection = config.attributes["connection"]
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite alters a table by copying it: Alembic's batch mode does that
        render_as_batch=connection.dialect.name == "sqlite",
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()
