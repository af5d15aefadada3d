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


def test_an_output_kind_given_as_the_output_path_is_refused(files, tmp_path):
    """`--output prior-mean` (the option's old meaning) and -o given twice end in one line
    pointing to --kind; nothing is written in the working folder."""
    noisy, model = files
    r = ssdn("denoise", noisy, "-m", model, "--output", "prior-mean", cwd=tmp_path)
    _one_line_failure(r, "--output prior-mean is an output kind", "--kind prior-mean", "-o prior-mean.tif")
    r = ssdn("denoise", noisy, "-m", model, "-o", "residual/", cwd=tmp_path)
    _one_line_failure(r, "-o residual/ is an output kind", "--kind residual")
    r = ssdn("denoise", noisy, "-m", model, "-o", "a.tif", "--output", "b.tif", cwd=tmp_path)
    _one_line_failure(r, "-o/--output is given twice ('a.tif' and 'b.tif')", "--kind")
    assert list(tmp_path.iterdir()) == []
    r = ssdn("denoise", noisy, "-m", model, "-o", "prior-mean.tif", "--kind", "prior-mean", "--quiet", cwd=tmp_path)
    assert r.returncode == 0 and [p.name for p in tmp_path.iterdir()] == ["prior-mean.tif"], r.stderr


def test_threads_option_sets_the_count_and_says_so(files, tmp_path):
    """--threads overrides the free-cores default; ssdn train's first line names the count and
    why, the default's too."""
    noisy, model = files
    verbose = [a for a in FAST if a != "--quiet"]
    r = ssdn("train", noisy, "-o", tmp_path / "m.ssdn", *verbose, "--threads", "1")
    assert r.returncode == 0 and " on CPU (1 thread, as set) " in r.stderr, r.stderr
    r = ssdn("train", noisy, "-o", tmp_path / "m.ssdn", *verbose)
    assert r.returncode == 0 and "cores, load" in r.stderr.splitlines()[0], r.stderr
    r = ssdn("denoise", noisy, "-m", model, "-o", tmp_path / "o.tif", "--threads", "1", "--quiet")
    assert r.returncode == 0 and (tmp_path / "o.tif").is_file(), r.stderr
    _one_line_failure(ssdn("denoise", noisy, "-m", model, "-o", tmp_path / "p.tif", "--threads", "0"), "--threads")
