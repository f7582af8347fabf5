"""Alembic migrations: the only source of the database schema (env.py and versions/ run by path)."""
