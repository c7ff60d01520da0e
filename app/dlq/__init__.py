"""The dead-letter queue panel."""
