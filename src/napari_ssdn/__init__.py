"""napari-ssdn: self-supervised blind-spot denoising (Laine et al. 2019) for napari.

Kept tiny on purpose: napari imports it at start-up, so nothing heavy (no torch) here.
"""

try:
    from importlib.metadata import PackageNotFoundError, version

    __version__ = version("napari-ssdn")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
