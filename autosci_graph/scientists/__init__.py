"""scientists."""
