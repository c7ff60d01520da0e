"""Module types: named services (databases, caches, brokers, HTTP clients, flags) that steps use."""
