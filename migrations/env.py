"""Alembic environment: runs migrations against the URL given by astroloc's settings."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from service.config import get_settings
from service.models import Base

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    # `astroloc db upgrade` passes the URL explicitly; plain `alembic upgrade` uses the settings.
    return config.attributes.get("database_url") or get_settings().resolved_database_url


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connectable = config.attributes.get("connection")
    if connectable is not None:
        context.configure(connection=connectable, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(_url())
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
