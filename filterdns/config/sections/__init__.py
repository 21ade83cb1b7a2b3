"""One reader per config section. Each takes a ``Reader`` over its section's mapping and
returns the model's dataclass, with defaults from ``model.py`` for every key left out."""
