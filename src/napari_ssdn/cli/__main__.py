"""``python -m napari_ssdn.cli`` (and ``torchrun -m napari_ssdn.cli``): the ``ssdn`` command."""

import sys

from .entry import main

if __name__ == "__main__":
    sys.exit(main())
