"""Step types: the registry and the built-in types."""
