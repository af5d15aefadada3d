"""The folder plan and the file path shared by ``ssdn denoise`` and the Denoise widget (no Qt)."""

import numpy as np
import pytest

from napari_ssdn.batch import denoise_file, folder_plan
from napari_ssdn.core.errors import SSDNError
from napari_ssdn.io import write_image


def test_folder_plan_takes_tiff_and_mrc_files_under_their_names(tmp_path):
    src, dst = tmp_path / "in", tmp_path / "out"
    (src / "sub").mkdir(parents=True)
    img = np.zeros((16, 16), np.float32)
    for name in ("b.tif", "a.TIFF", "c.mrc", "sub/d.tif"):
        write_image(src / name, img, "YX")
    (src / ".a.unfinished.tif").write_bytes(b"x")  # what an interrupted write leaves
    (src / "notes.txt").write_text("x")
    (src / "e.png").write_bytes(b"x")
    plan = folder_plan(src, dst)
    assert [(p.name, t) for p, t in plan] == [(n, dst / n) for n in ("a.TIFF", "b.tif", "c.mrc")]


def test_folder_plan_refuses_what_would_overwrite_or_has_nothing(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    with pytest.raises(SSDNError, match="no TIFF or MRC"):
        folder_plan(src, tmp_path / "out")
    write_image(src / "a.tif", np.zeros((16, 16), np.float32), "YX")
    with pytest.raises(SSDNError, match="replace the inputs"):
        folder_plan(src, src)
    with pytest.raises(SSDNError, match="replace the inputs"):
        folder_plan(src, tmp_path / "in" / ".." / "in")
    with pytest.raises(SSDNError, match="not a folder"):
        folder_plan(tmp_path / "missing", tmp_path / "out")
    with pytest.raises(SSDNError, match="is a file"):
        folder_plan(src, src / "a.tif")


def test_denoise_file_never_writes_its_input(tmp_path):
    path = tmp_path / "a.tif"
    write_image(path, np.zeros((16, 16), np.float32), "YX")
    before = path.read_bytes()
    with pytest.raises(SSDNError, match="is the input file"):
        next(denoise_file(object(), path, tmp_path / "." / "a.tif"))
    assert path.read_bytes() == before
