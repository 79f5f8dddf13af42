"""The flow language: pydantic models that are the single source of the DSL, its lint and schema."""
