"""The store: SQLModel tables on SQLite (default) or PostgreSQL, with Alembic migrations."""
