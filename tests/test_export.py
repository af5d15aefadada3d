"""bioimage.io export (``ssdn export``, ``napari_ssdn.export``): the packages pass the
format's own test, their TorchScript and ONNX weights match ``ssdn denoise --no-tta
--float32``, ``ssdn denoise -m`` reads them, and bad input writes nothing."""

import io
import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import tifffile
import torch
from _export_helpers import make_model_file, noisy_image

from napari_ssdn.cli import main
from napari_ssdn.core import denoise, load_model

pytest.importorskip("bioimageio.spec")

#: Exported output against napari-ssdn's own inference, as a fraction of the data range
#: (the models' scale): float32 rounding only (about 1e-6 measured).
TOLERANCE = 1e-4

CASES = {
    "gray-2d": dict(),
    "volume-3d": dict(ndim=3, depth=1),
    "poisson-gaussian": dict(noise="poisson-gaussian"),
    "curve": dict(noise="curve"),
}
SIZES = {
    "gray-2d": [(37, 50), (64, 64), (90, 23)],
    "poisson-gaussian": [(37, 50), (64, 64), (90, 23)],
    "curve": [(37, 50), (64, 64)],
    "volume-3d": [(5, 19, 22), (8, 16, 16), (11, 30, 9)],
}


def _model_file(path, case):
    kw = dict(CASES[case])
    depth = kw.pop("depth", None)
    if depth is None:
        return make_model_file(path, **kw)
    from napari_ssdn.core import ModelConfig, SSDNModel, save_model

    torch.manual_seed(0)
    cfg = ModelConfig(
        enc=4, dec=6, depth=depth, ndim=3, noise_init={"sigma": 0.1}, learned=("sigma",), offset=0.1, scale=0.8
    )
    model = SSDNModel(cfg).eval()
    save_model(model, path, train_state={"steps": 3}, sample=noisy_image((12, 40, 40))[..., None])
    return path, model


@pytest.fixture(scope="module")
def packages(tmp_path_factory):
    """One exported package per case, through the command line."""
    root = tmp_path_factory.mktemp("export")
    out = {}
    for case in CASES:
        model_path, _ = _model_file(root / f"{case}.ssdn", case)
        assert main(["export", str(model_path), "-o", str(root / f"{case}.zip"), "-q"]) == 0
        out[case] = (model_path, root / f"{case}.zip")
    return out


def _torchscript(package):
    with zipfile.ZipFile(package) as zf:
        return torch.jit.load(io.BytesIO(zf.read("weights_torchscript.pt")))


@pytest.mark.parametrize("case", list(CASES))
def test_package_passes_bioimageio_test(packages, case):
    from bioimageio.core import test_model

    _, package = packages[case]
    formats = ["torchscript"] if case == "volume-3d" else ["torchscript", "onnx"]  # a volume's run is slow
    for fmt in formats:
        summary = test_model(str(package), weight_format=fmt)
        assert summary.status == "passed", summary.format()


@pytest.mark.parametrize("case", list(CASES))
def test_exported_output_matches_ssdn_denoise(packages, case):
    model_path, package = packages[case]
    model, _ = load_model(model_path)
    ts = _torchscript(package)
    ort = pytest.importorskip("onnxruntime")
    with zipfile.ZipFile(package) as zf:
        session = ort.InferenceSession(zf.read("weights.onnx"))
    axes = "ZYX" if model.config.ndim == 3 else "YX"
    for i, shape in enumerate(SIZES[case]):
        img = noisy_image(shape, seed=i) * 0.8 + 0.1
        ref = denoise(model, img, axes, tta=False, mixed_precision=False, device="cpu")
        with torch.no_grad():
            got = ts(torch.from_numpy(img)[None, None])[0, 0].numpy()
        onnx_out = session.run(None, {"input": img[None, None]})[0][0, 0]
        assert got.shape == img.shape
        assert np.abs(got - ref).max() < TOLERANCE * model.config.scale
        assert np.abs(onnx_out - ref).max() < TOLERANCE * model.config.scale
        assert np.abs(got - img).max() > 1e-3  # it did something


def test_package_contents(packages):
    _, package = packages["poisson-gaussian"]
    with zipfile.ZipFile(package) as zf:
        names = set(zf.namelist())
        readme = zf.read("README.md").decode()
        rdf = zf.read("rdf.yaml").decode()
    assert {
        "rdf.yaml",
        "cover.png",
        "README.md",
        "test_input.npy",
        "test_output.npy",
        "weights.onnx",
        "weights_torchscript.pt",
        "napari_ssdn_model.ssdn",
    } <= names
    for text in (
        "High-Quality Self-Supervised Deep Image Denoising",
        "napari-ssdn",
        "BSD-3-Clause",
        "poisson-gaussian",
        "blind region: 1 x 1",
        "a = ",
        "b = ",
    ):
        assert text in readme
    assert "halo: 36" in rdf and "license: BSD-3-Clause" in rdf


def test_multichannel_and_subsampling_models_export(tmp_path):
    """RGB: TorchScript only (the posterior needs a matrix inverse); a subsampling model
    works on interleaved sub-images. Both match ssdn denoise."""
    for name, kw, shape in [("rgb", dict(channels=3), (30, 41, 3)), ("sub", dict(subsample=2), (45, 38))]:
        model_path, model = make_model_file(tmp_path / f"{name}.ssdn", **kw)
        package = tmp_path / f"{name}.zip"
        assert main(["export", str(model_path), "-o", str(package), "-q"]) == 0
        with zipfile.ZipFile(package) as zf:
            assert ("weights.onnx" in zf.namelist()) == (name != "rgb")
        img = noisy_image(shape[:2], channels=shape[-1] if len(shape) == 3 else 1)
        ref = denoise(model, img, "YXC" if img.ndim == 3 else "YX", tta=False, mixed_precision=False, device="cpu")
        x = torch.from_numpy(np.moveaxis(img, -1, 0)[None] if img.ndim == 3 else img[None, None])
        with torch.no_grad():
            got = _torchscript(package)(x)[0].numpy()
        got = np.moveaxis(got, 0, -1) if img.ndim == 3 else got[0]
        assert np.abs(got - ref).max() < TOLERANCE * model.config.scale


def test_denoise_reads_exported_package(packages, tmp_path):
    model_path, package = packages["gray-2d"]
    tifffile.imwrite(tmp_path / "in.tif", noisy_image((40, 33)))
    outs = []
    for m in (model_path, package):
        out = tmp_path / f"out_{m.suffix[1:]}.tif"
        assert (
            # One thread: the thread count follows the free cores, and another count may round differently.
            main(
                [
                    "denoise",
                    str(tmp_path / "in.tif"),
                    "-m",
                    str(m),
                    "-o",
                    str(out),
                    "--no-tta",
                    "--float32",
                    "-q",
                    "--threads",
                    "1",
                ]
            )
            == 0
        )
        outs.append(tifffile.imread(out))
    np.testing.assert_array_equal(outs[0], outs[1])


def test_api_export_of_a_loaded_model_with_a_sample_array(tmp_path):
    from napari_ssdn.export import export_model

    model_path, _ = make_model_file(tmp_path / "m.ssdn", sample=False)
    model, info = load_model(model_path)
    out = export_model(
        model, tmp_path / "m.zip", sample=noisy_image((70, 90)), axes="YX", info=info, name="m", onnx=False
    )
    with zipfile.ZipFile(out) as zf:
        assert "weights.onnx" not in zf.namelist()
        x = np.load(io.BytesIO(zf.read("test_input.npy")))
    # At least 2 x halo 36 + step 4 = 76 (the 70 rows mirrored at the edges), in steps of 4 (the 90 columns cut).
    assert x.shape == (1, 1, 76, 88)


def test_torchscript_loads_without_napari_ssdn(packages):
    """The weights need torch alone: napari_ssdn, napari and Qt cannot be imported."""
    _, package = packages["gray-2d"]
    code = (
        "import sys, io, zipfile\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('napari_ssdn', 'napari', 'qtpy', 'PyQt6', 'PyQt5'):\n"
        "            raise ImportError(name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import torch\n"
        f"zf = zipfile.ZipFile({str(package)!r})\n"
        "m = torch.jit.load(io.BytesIO(zf.read('weights_torchscript.pt')))\n"
        "print(tuple(m(torch.rand(1, 1, 21, 30)).shape))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "(1, 1, 21, 30)"


def test_no_bioimageio_import_until_exporting():
    code = (
        "import sys, napari_ssdn, napari_ssdn.cli, napari_ssdn.export\n"
        "napari_ssdn.cli.build_parser()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('bioimageio', 'onnx', 'onnxruntime')))"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


def _fails(argv, capsys, *words):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ssdn: error:"), err
    for w in words:
        assert w in err[0], err[0]


def test_bad_input_ends_in_one_line_and_writes_nothing(tmp_path, capsys):
    good, _ = make_model_file(tmp_path / "good.ssdn")
    untrained, _ = make_model_file(tmp_path / "untrained.ssdn", steps=0)
    (tmp_path / "corrupt.ssdn").write_bytes(b"not a model")
    old, _ = make_model_file(tmp_path / "old.ssdn", sample=False)
    tifffile.imwrite(tmp_path / "rgb.tif", noisy_image((40, 40), channels=3), photometric="rgb")
    out = str(tmp_path / "pkg.zip")
    before = sorted(p.name for p in tmp_path.iterdir())
    _fails(["export", str(untrained), "-o", out], capsys, "not been trained")
    _fails(["export", str(tmp_path / "corrupt.ssdn"), "-o", out], capsys, "corrupt.ssdn", "not a readable")
    _fails(["export", str(good), "-o", str(tmp_path / "pkg.tif")], capsys, "must end in .zip")
    _fails(
        ["export", str(good), "-o", out, "--sample", str(tmp_path / "rgb.tif")],
        capsys,
        "--sample",
        "3 channel(s)",
        "trained on 1",
    )
    _fails(["export", str(old), "-o", out], capsys, "--sample")
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    (tmp_path / "pkg.zip").write_bytes(b"keep me")
    _fails(["export", str(good), "-o", out], capsys, "pkg.zip", "exists")
    assert (tmp_path / "pkg.zip").read_bytes() == b"keep me"


def test_denoise_names_a_zip_that_is_not_ours(tmp_path, capsys):
    tifffile.imwrite(tmp_path / "in.tif", noisy_image((32, 32)))
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as zf:
        zf.writestr("rdf.yaml", json.dumps({"type": "model"}))
        zf.writestr("weights.pt", b"x")
    _fails(
        ["denoise", str(tmp_path / "in.tif"), "-m", str(tmp_path / "other.zip"), "-o", str(tmp_path / "o.tif")],
        capsys,
        "other.zip",
        "without a napari-ssdn model",
        "ssdn export",
    )
    assert not (tmp_path / "o.tif").exists()


def test_trained_model_file_keeps_a_crop_of_its_data(tmp_path):
    from napari_ssdn.core import TrainConfig, Trainer

    img = noisy_image((150, 70))
    trainer = Trainer(img, "YX", TrainConfig(iterations=1, width="tiny", patch=16, batch=1, device="cpu", init="none"))
    for _ in trainer.run():
        pass
    trainer.save(tmp_path / "m.ssdn")
    _, info = load_model(tmp_path / "m.ssdn")
    assert info["sample"].shape == (128, 70, 1)
    np.testing.assert_array_equal(info["sample"][..., 0], img[11:139])
