"""The ssdn command line end to end on tiny data, and its answers to bad input."""

import json
import signal
import subprocess
import sys

import mrcfile
import numpy as np
import pytest
import tifffile

from napari_ssdn.io import read_image, write_image

FAST = ["--width", "tiny", "--patch", "32", "--iterations", "4", "--device", "cpu", "--quiet"]


def ssdn(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "napari_ssdn.cli", *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=300
    )


@pytest.fixture
def noisy_tif(tmp_path):
    rng = np.random.default_rng(0)
    img = (rng.random((48, 64)) * 100).astype(np.float32)
    path = tmp_path / "noisy.tif"
    write_image(path, img, "YX", {"Y": 0.25, "X": 0.25}, "micrometer")
    return path


@pytest.fixture
def model(tmp_path, noisy_tif):
    out = tmp_path / "model.ssdn"
    r = ssdn("train", noisy_tif, "-o", out, *FAST)
    assert r.returncode == 0, r.stderr
    return out


def test_train_denoise_info_end_to_end(tmp_path, noisy_tif, model):
    """train writes a model; denoise writes float32 of the same shape with the voxel size; info reports it."""
    out = tmp_path / "den.tif"
    r = ssdn("denoise", noisy_tif, "-m", model, "-o", out, "--quiet")
    assert r.returncode == 0, r.stderr
    img = read_image(out)
    assert img.data.shape == (48, 64) and img.data.dtype == np.float32
    assert img.voxel["X"] == pytest.approx(0.25) and img.unit == "micrometer"
    r = ssdn("info", model, "--json")
    info = json.loads(r.stdout)
    assert info["noise"]["model"] == "gaussian"
    assert set(info["noise"]["params"]) == {"sigma"} and info["noise"]["params"]["sigma"] > 0
    assert info["training"]["steps"] == 4
    r = ssdn("info", model)
    assert "gaussian" in r.stdout and "4 steps" in r.stdout


def test_known_parameter_is_kept_in_data_units(tmp_path, noisy_tif):
    out = tmp_path / "m.ssdn"
    assert ssdn("train", noisy_tif, "-o", out, "--sigma", "12.5", *FAST).returncode == 0
    info = json.loads(ssdn("info", out, "--json").stdout)
    assert info["noise"]["params"]["sigma"] == pytest.approx(12.5)
    assert info["noise"]["learned"] == []


def test_denoise_with_a_known_noise_level(tmp_path, noisy_tif, model):
    """--sigma at denoise time replaces the learned level: a level near zero means the
    noisy pixel is trusted, so the posterior mean returns the input."""
    out = tmp_path / "den.tif"
    r = ssdn("denoise", noisy_tif, "-m", model, "-o", out, "--sigma", "1e-4", "--quiet")
    assert r.returncode == 0, r.stderr
    noisy = read_image(noisy_tif).data
    # (a pixel where the barely trained prior has near-zero variance keeps the prior mean: on
    # this structureless data the shipped start is that confident at about 5 % of pixels)
    assert np.mean(np.abs(read_image(out).data - noisy) < 0.05) > 0.9
    default = tmp_path / "default.tif"
    assert ssdn("denoise", noisy_tif, "-m", model, "-o", default, "--quiet").returncode == 0
    assert np.mean(np.abs(read_image(default).data - noisy) < 0.05) < 0.5


def test_tta_flag(tmp_path, noisy_tif, model):
    """A small image is averaged over the 8 flips and rotations by default; --no-tta gives
    the single pass, which differs."""
    outs = {}
    for flag in ("--tta", "--no-tta", None):
        outs[flag] = tmp_path / f"{flag}.tif"
        r = ssdn("denoise", noisy_tif, "-m", model, "-o", outs[flag], "--quiet", *([flag] if flag else []))
        assert r.returncode == 0, r.stderr
    data = {k: read_image(v).data for k, v in outs.items()}
    np.testing.assert_array_equal(data[None], data["--tta"])
    assert np.abs(data["--tta"] - data["--no-tta"]).max() > 1e-4


def test_several_inputs_go_to_a_folder_and_mrc_keeps_voxel_size(tmp_path, model):
    """Several inputs write OUTPUT/<name>; MRC in, MRC out with the same voxel size and stack flag."""
    rng = np.random.default_rng(1)
    a = tmp_path / "a.mrc"
    with mrcfile.new(a) as m:
        m.set_data((rng.random((3, 40, 40)) * 100).astype(np.float32))
        m.set_image_stack()
        m.voxel_size = (2.5, 2.5, 1.0)
    b = tmp_path / "b.png"
    from PIL import Image

    Image.fromarray((rng.random((40, 40)) * 255).astype(np.uint8)).save(b)
    out = tmp_path / "out"
    r = ssdn("denoise", a, b, "-m", model, "-o", out, "--kind", "posterior-std", "--quiet")
    assert r.returncode == 0, r.stderr
    with mrcfile.open(out / "a.mrc") as m:
        assert m.data.shape == (3, 40, 40) and m.data.dtype == np.float32
        assert float(m.voxel_size.x) == pytest.approx(2.5)
        assert m.header.ispg == 0  # still a stack, not a volume
    assert tifffile.imread(out / "b.tif").shape == (40, 40)


def test_resume_continues_counting_steps(tmp_path, noisy_tif, model):
    out = tmp_path / "resumed.ssdn"
    r = ssdn("train", noisy_tif, "-o", out, "--resume", model, *FAST)
    assert r.returncode == 0, r.stderr
    assert json.loads(ssdn("info", out, "--json").stdout)["training"]["steps"] == 8


def test_ctrl_c_saves_the_model_trained_so_far(tmp_path, noisy_tif):
    """An interrupted `ssdn train` exits 130 and leaves a loadable model of the steps it took."""
    out = tmp_path / "stopped.ssdn"
    args = [
        "train",
        noisy_tif,
        "-o",
        out,
        "--width",
        "tiny",
        "--patch",
        "32",
        "--iterations",
        "100000",
        "--device",
        "cpu",
    ]
    # A shell that starts jobs in the background ignores SIGINT for them, and the child would
    # inherit that: give it the default, which Python turns into KeyboardInterrupt.
    proc = subprocess.Popen(
        [sys.executable, "-m", "napari_ssdn.cli", *map(str, args)],
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        seen = []
        while not (seen and seen[-1].startswith("train [")):  # the first progress line: training has begun
            line = proc.stderr.readline()
            assert line, "".join(seen)
            seen.append(line)
        proc.send_signal(signal.SIGINT)
        err = proc.stderr.read()
        assert proc.wait(timeout=60) == 130, err
    finally:
        proc.kill()
    assert "interrupted at step" in err and "of about 100000 planned" in err and "--resume" in err, err
    steps = json.loads(ssdn("info", out, "--json").stdout)["training"]["steps"]
    assert 1 <= steps < 100000


def _assert_clean_failure(r, *words):
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr
    for w in words:
        assert w.lower() in lines[0].lower(), lines[0]


def test_bad_inputs_fail_cleanly(tmp_path, noisy_tif, model):
    """Each bad input: one line on stderr naming it, exit code 2, no traceback."""
    _assert_clean_failure(
        ssdn("train", tmp_path / "missing.tif", "-o", tmp_path / "m.ssdn"), "missing.tif", "does not exist"
    )
    garbage = tmp_path / "garbage.tif"
    garbage.write_bytes(b"this is not a tiff at all" * 10)
    _assert_clean_failure(ssdn("train", garbage, "-o", tmp_path / "m.ssdn"), "garbage.tif")
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    _assert_clean_failure(ssdn("train", text, "-o", tmp_path / "m.ssdn"), "notes.txt", "extension")
    nan = tmp_path / "nan.tif"
    tifffile.imwrite(nan, np.full((40, 40), np.nan, np.float32))
    _assert_clean_failure(ssdn("train", nan, "-o", tmp_path / "m.ssdn", *FAST), "nan.tif", "finite")
    _assert_clean_failure(ssdn("denoise", nan, "-m", model, "-o", tmp_path / "o.tif"), "finite")
    thin = tmp_path / "thin.tif"
    tifffile.imwrite(thin, np.random.default_rng(0).random((64, 1), np.float32))
    _assert_clean_failure(ssdn("train", thin, "-o", tmp_path / "m.ssdn", *FAST), "1 pixel along X", "larger images")
    _assert_clean_failure(ssdn("denoise", noisy_tif, "-m", tmp_path, "-o", tmp_path / "o.tif"), "is a folder")
    _assert_clean_failure(ssdn("train", noisy_tif, "-o", tmp_path / "m.ssdn", "--sigma", "-3"), "sigma")
    _assert_clean_failure(ssdn("train", noisy_tif, "-o", tmp_path / "m.ssdn", "--sigma", "0"), "sigma")
    _assert_clean_failure(
        ssdn("train", noisy_tif, "-o", tmp_path / "m.ssdn", "--noise", "poisson", "--lam", "-1"), "lam"
    )
    _assert_clean_failure(
        ssdn("denoise", noisy_tif, "-m", tmp_path / "nope.ssdn", "-o", tmp_path / "o.tif"), "nope.ssdn"
    )
    _assert_clean_failure(
        ssdn("denoise", noisy_tif, "-m", model, "-o", tmp_path / "o.tif", "--lam", "3"),
        "--lam does not fit the model",
        "gaussian",
        "takes --sigma",
    )
    _assert_clean_failure(
        ssdn("train", noisy_tif, "-o", tmp_path / "m.ssdn", "--init", tmp_path / "gone.ssdn"),
        "--init",
        "gone.ssdn",
        "no such model file",
        "--init generic",
    )
    _assert_clean_failure(
        ssdn("train", noisy_tif, "-o", tmp_path / "m.ssdn", "--resume", tmp_path / "gone.ssdn"),
        "--resume",
        "gone.ssdn",
        "no such model file",
    )
    _assert_clean_failure(
        ssdn("denoise", noisy_tif, nan, "-m", model, "-o", tmp_path / "one.tif"),
        "one.tif",
        "names an image file but 2 inputs",
        "pass a folder",
    )
    corrupt = tmp_path / "corrupt.ssdn"
    corrupt.write_bytes(model.read_bytes()[:200])
    _assert_clean_failure(ssdn("denoise", noisy_tif, "-m", corrupt, "-o", tmp_path / "o.tif"), "corrupt.ssdn")
    rgb = tmp_path / "rgb.png"
    from PIL import Image

    Image.fromarray((np.random.default_rng(0).random((40, 40, 3)) * 255).astype(np.uint8)).save(rgb)
    _assert_clean_failure(ssdn("denoise", rgb, "-m", model, "-o", tmp_path / "o.tif"), "channel")
    # the core's Python argument names are written as the command's options
    _assert_clean_failure(
        ssdn("train", noisy_tif, "-o", tmp_path / "m.ssdn", "--3d"),
        "--3d needs a Z axis",
        "noisy.tif",
        "axes YX (from the file)",
        "no --3d",
    )
    vol = tmp_path / "vol.mrc"
    with mrcfile.new(vol) as m:
        m.set_data(np.zeros((6, 32, 32), np.float32))
    _assert_clean_failure(
        ssdn("train", vol, "-o", tmp_path / "m.ssdn", "--3d", "--subsample", "2"),
        "--subsample 2 is for images; volumes (--3d) take --subsample 1",
    )
    # a wrong --axes is caught before the output file is opened
    _assert_clean_failure(
        ssdn("denoise", noisy_tif, "-m", model, "-o", tmp_path / "o.tif", "--axes", "ZYX"),
        "noisy.tif",
        "--axes ZYX has 3 letters",
        "2 dimensions",
    )
    _assert_clean_failure(
        ssdn("denoise", noisy_tif, "-m", model, "-o", noisy_tif.parent / "noisy.tif" / "o.mrc"),
        "is a file, not a folder",
    )
    # a mistyped option points to the subcommand's help, where the options are
    _assert_clean_failure(
        ssdn("denoise", noisy_tif, "-m", model, "-o", tmp_path / "o.tif", "--tiles", "64"),
        "unrecognized arguments: --tiles 64",
        "ssdn denoise --help",
    )
    assert not (tmp_path / "o.tif").exists() and not (tmp_path / "one.tif").exists()


def test_denoise_warns_about_data_far_from_the_training_range(tmp_path, noisy_tif, model):
    """Data 1000x brighter than the training data is denoised but flagged on stderr; the
    training data is not."""
    img = read_image(noisy_tif)
    bright = write_image(tmp_path / "bright.tif", img.data * 1000, "YX")
    r = ssdn("denoise", bright, "-m", model, "-o", tmp_path / "b_den.tif", "--quiet")
    assert r.returncode == 0 and (tmp_path / "b_den.tif").is_file(), r.stderr
    assert "ssdn: warning: " in r.stderr and "bright.tif" in r.stderr and "far from" in r.stderr
    r = ssdn("denoise", noisy_tif, "-m", model, "-o", tmp_path / "n_den.tif", "--quiet")
    assert r.returncode == 0 and "warning" not in r.stderr, r.stderr


def test_output_folder_with_a_trailing_slash_and_info_into_a_closed_pipe(tmp_path, noisy_tif, model):
    """`-o out/` names a folder to create even for one input; `ssdn info` into a pipe that
    was closed (like `| head`) ends quietly."""
    r = ssdn("denoise", noisy_tif, "-m", model, "-o", str(tmp_path / "new") + "/", "--quiet")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "new" / "noisy.tif").is_file()
    import os

    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        r = subprocess.run(
            [sys.executable, "-m", "napari_ssdn.cli", "info", str(model), "--json"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    finally:
        os.close(write_end)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr


def test_output_that_is_an_input_is_refused_and_input_untouched(tmp_path, noisy_tif, model):
    before = noisy_tif.read_bytes()
    _assert_clean_failure(ssdn("denoise", noisy_tif, "-m", model, "-o", noisy_tif), "input")
    _assert_clean_failure(ssdn("train", noisy_tif, "-o", noisy_tif), "input")
    model_bytes = model.read_bytes()
    _assert_clean_failure(ssdn("denoise", noisy_tif, "-m", model, "-o", model.with_suffix(".ssdn")), "input")
    _assert_clean_failure(ssdn("train", noisy_tif, "-o", model, "--resume", model), "input")
    assert noisy_tif.read_bytes() == before
    assert model.read_bytes() == model_bytes


def test_no_temporary_files_are_left_behind(tmp_path, noisy_tif, model):
    """Outputs are written through a temporary file that is renamed: nothing else remains."""
    out = tmp_path / "sub" / "den.mrc"
    assert ssdn("denoise", noisy_tif, "-m", model, "-o", out, "--quiet").returncode == 0
    assert [p.name for p in out.parent.iterdir()] == ["den.mrc"]


def test_demo_writes_its_images_and_the_posterior_beats_the_noisy_input(tmp_path):
    """`ssdn demo` (README's first command) on a short budget: the four TIFFs and the model
    are written, PSNR is printed for each, and the posterior mean is above the noisy input."""
    out = tmp_path / "demo"
    r = ssdn("demo", "-o", out, "--time-limit", "20", "--device", "cpu", "--quiet")
    assert r.returncode == 0, r.stderr
    for name in ("noisy", "prior_mean", "posterior_mean", "clean"):
        assert read_image(out / f"{name}.tif").data.ndim == 2
    assert (out / "model.ssdn").stat().st_size > 0
    scores = {line.split()[0]: float(line.split()[2]) for line in r.stdout.splitlines() if " PSNR " in line}
    assert set(scores) == {"noisy", "prior_mean", "posterior_mean"}
    assert scores["posterior_mean"] > scores["noisy"] + 1
    assert "learned sigma" in r.stdout


def test_compile_flag_gives_the_same_result(tmp_path, noisy_tif, model):
    """ssdn denoise --compile (torch.compile) writes the plain network's result. In float32:
    bfloat16 (the default on CPUs fast at it) rounds differently in any two orders of
    summation by more than a compiler bug needs to show."""
    plain, fast = tmp_path / "plain.tif", tmp_path / "fast.tif"
    assert ssdn("denoise", noisy_tif, "-m", model, "-o", plain, "--quiet", "--float32").returncode == 0
    r = ssdn("denoise", noisy_tif, "-m", model, "-o", fast, "--quiet", "--compile", "--float32")
    assert r.returncode == 0, r.stderr
    assert "torch.compile failed" not in r.stderr
    np.testing.assert_allclose(read_image(fast).data, read_image(plain).data, rtol=1e-4, atol=1e-4)


def test_a_killed_training_leaves_a_checkpoint_that_resume_continues(tmp_path):
    """SIGKILL mid-run (as the out-of-memory killer or a cluster's time limit would) leaves
    the last periodic checkpoint at -o: a loadable model that --resume continues."""
    import signal
    import time

    from napari_ssdn.core import load_model

    src = tmp_path / "noisy.tif"
    rng = np.random.default_rng(0)
    write_image(src, (rng.random((96, 96)) * 50 + 100).astype(np.float32), "YX")
    out = tmp_path / "m.ssdn"
    cmd = [
        sys.executable,
        "-m",
        "napari_ssdn.cli",
        "train",
        str(src),
        "-o",
        str(out),
        "--time-limit",
        "600",
        "--patch",
        "32",
        "--device",
        "cpu",
        "--checkpoint-every",
        "1",
        "--init",
        "none",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not out.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        time.sleep(1.5)  # let a second checkpoint replace the first, mid-write or not
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    model, info = load_model(out)
    done = info["training"]["steps"]
    assert done > 0 and info["training"]["checkpoint"] is True
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")], "a temporary file was left behind"
    more = tmp_path / "more.ssdn"
    r = ssdn("train", src, "-o", more, "--resume", out, "--iterations", "3", "--patch", "32", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    assert load_model(more)[1]["training"]["steps"] == done + 3
