"""Placeholder until the server branch lands (untracked)."""
