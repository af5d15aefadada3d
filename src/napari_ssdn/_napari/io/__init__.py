"""napari's reader, writers and sample data (no torch at import)."""
