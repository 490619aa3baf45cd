"""Placeholder so the editable install works before the server branch is merged (untracked)."""
