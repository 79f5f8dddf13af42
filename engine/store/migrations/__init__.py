"""The numbered SQL migrations of the PostgreSQL store (applied by engine/store/pg_migrations)."""
