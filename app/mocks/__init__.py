"""The step mocks panel."""
