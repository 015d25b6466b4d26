"""custody's benchmark: python -m bench."""
