"""Connection profiles (embedded engine or a hosted server), their secrets, and the live link."""
