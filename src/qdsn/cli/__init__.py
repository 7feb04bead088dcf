"""The `qdsn` command."""
