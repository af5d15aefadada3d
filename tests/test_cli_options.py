"""ssdn's answers to denoising options and inputs it cannot use: one line on stderr naming
the option and the remedy, exit code 2, nothing written (subprocesses, as a user runs it)."""

import numpy as np
import pytest
import tifffile
from test_cli import FAST, ssdn

from napari_ssdn.io import write_image


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A noisy image and a model trained on it for a few steps."""
    d = tmp_path_factory.mktemp("cli")
    noisy = d / "noisy.tif"
    write_image(noisy, (np.random.default_rng(0).random((48, 64)) * 100).astype(np.float32), "YX")
    r = ssdn("train", noisy, "-o", d / "model.ssdn", *FAST)
    assert r.returncode == 0, r.stderr
    return noisy, d / "model.ssdn"


def _one_line_failure(r, *needles):
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert lines[0].startswith("ssdn: error: ") and "Traceback" not in r.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_an_image_smaller_than_the_network_and_an_impossible_tile_are_refused(files, tmp_path):
    """The core refuses both before anything is written; a fitting tile still denoises."""
    noisy, model = files
    dot = tmp_path / "dot.tif"
    tifffile.imwrite(dot, np.ones((1, 1), np.float32))
    _one_line_failure(ssdn("denoise", dot, "-m", model, "-o", tmp_path / "o.tif"), "1 x 1 pixels", "at least 8 x 8")
    _one_line_failure(
        ssdn("denoise", noisy, "-m", model, "-o", tmp_path / "o.tif", "--tile", "100000"),
        "--tile 100000 needs about",
        "use a tile of at most",
        "leave it unset",
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dot.tif"]
    r = ssdn("denoise", noisy, "-m", model, "-o", tmp_path / "o.tif", "--tile", "32", "--quiet")
    assert r.returncode == 0 and (tmp_path / "o.tif").is_file(), r.stderr
