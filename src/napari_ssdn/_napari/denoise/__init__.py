"""The Denoise widget and its batch panel (no torch at import)."""
