"""The SQL store: tables, repositories and migrations (SQLite and PostgreSQL)."""
