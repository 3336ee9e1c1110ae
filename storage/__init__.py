"""Persistence: SQLAlchemy models, queries, the outbox and Alembic migrations.

This package imports neither `flows` nor `bot`.
"""
