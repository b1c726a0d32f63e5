"""Alembic environment: runs on the connection handed over by :func:`analysis.db.upgrade`."""

from alembic import context
from sqlalchemy import engine_from_config, pool

from analysis.schema import metadata

config = context.config
connection = config.attributes.get("connection")

if connection is None:  # plain `alembic upgrade head` with sqlalchemy.url set
    engine = engine_from_config(
        config.get_section(config.config_ini_section) or {}, poolclass=pool.NullPool
    )
    with engine.begin() as conn:
        context.configure(connection=conn, target_metadata=metadata, render_as_batch=True)
        context.run_migrations()
else:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
