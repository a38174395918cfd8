"""alembic's environment: migrations run on the connection :func:`nbhosting_core.db.engine.upgrade` gives."""

from alembic import context

from nbhosting_core.db.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
