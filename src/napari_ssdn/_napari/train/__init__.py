"""The Train widget and its parts (no torch at import)."""
