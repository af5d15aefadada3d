"""Inference: denoising whole images in tiles, and the outputs computed from the network."""
