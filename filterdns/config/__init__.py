"""Configuration: the YAML schema, loading with file/line errors, and the embedded default."""
