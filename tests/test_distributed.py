"""ssdn denoise on a Dask cluster (loopback only): the same outputs as the serial command,
a worker dying mid-task, a bad file among good ones, OME-Zarr in and out."""

import importlib.util
import os
import subprocess
import sys

import mrcfile
import numpy as np
import pytest

pytest.importorskip(
    "distributed", reason="the distributed extra is not installed (pip install 'napari-ssdn[distributed]')"
)
zarr = pytest.importorskip(
    "zarr", reason="the distributed extra is not installed (pip install 'napari-ssdn[distributed]')"
)

from napari_ssdn.cli import main  # noqa: E402
from napari_ssdn.core import TrainConfig, Trainer  # noqa: E402
from napari_ssdn.io import read_image, write_image  # noqa: E402
from napari_ssdn.samples import noisy_volume  # noqa: E402

TIMEOUT = 240  # seconds for one command on a cluster (starting workers imports torch)


def serial(*args):
    """The serial command, in this process."""
    return main([str(a) for a in args])


def ssdn(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "napari_ssdn.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture(scope="module")
def cluster():
    """Two worker processes, one thread each, on 127.0.0.1; closed after the module."""
    from distributed import LocalCluster

    from napari_ssdn.scaleout.cluster import environment_kept

    with environment_kept():
        with LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
        ) as c:
            yield c.scheduler_address


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Tiny 2D and 3D models, a folder of two TIFF and two MRC images, an MRC volume."""
    root = tmp_path_factory.mktemp("scaleout")
    rng = np.random.default_rng(0)
    folder = root / "in"
    folder.mkdir()
    for i in range(2):
        write_image(
            folder / f"a{i}.tif",
            (rng.random((48, 64)) * 100).astype(np.float32),
            "YX",
            {"Y": 0.25, "X": 0.25},
            "micrometer",
        )
        with mrcfile.new(folder / f"b{i}.mrc") as m:
            m.set_data((rng.random((40, 56)) * 100).astype(np.float32))
            m.voxel_size = 2.5
            m.header.origin = (1.0, 2.0, 3.0)
    img = (rng.random((48, 64)) * 100).astype(np.float32)
    trainer = Trainer(img, "YX", TrainConfig(width="tiny", patch=32, iterations=3, device="cpu"))
    for _ in trainer.run():
        pass
    trainer.save(root / "m2d.ssdn")
    vol, _ = noisy_volume((16, 32, 32), sigma=0.1, seed=1)
    trainer = Trainer(vol, "ZYX", TrainConfig(ndim=3, width="tiny", patch=16, batch=1, iterations=2, device="cpu"))
    for _ in trainer.run():
        pass
    trainer.save(root / "m3d.ssdn")
    with mrcfile.new(root / "vol.mrc") as m:
        m.set_data(vol.astype(np.float32))
        m.voxel_size = (5.0, 5.0, 10.0)
    return root


def _files(folder):
    return sorted(p.name for p in folder.iterdir())


def assert_same_image(a, b):
    """Values, axes, voxel size and (MRC) header fields, apart from the label's date."""
    x, y = read_image(a), read_image(b)
    np.testing.assert_allclose(y.data, x.data, rtol=0, atol=1e-6)
    assert (x.axes, x.voxel, x.unit, x.origin, x.start) == (y.axes, y.voxel, y.unit, y.origin, y.start)
    if str(a).endswith(".mrc"):
        with mrcfile.open(a) as m, mrcfile.open(b) as n:
            for field in m.header.dtype.names:
                if field != "label":
                    assert np.array_equal(m.header[field], n.header[field]), field
            assert m.header.label[1] == n.header.label[1]


def test_cluster_outputs_equal_the_serial_command(data, cluster, tmp_path, capsys):
    """A folder of TIFF and MRC images and a volume cut into blocks across two workers give
    the serial outputs; the volume also as OME-Zarr (on the cluster, and block by block in
    this process without one), with its voxel size in the OME-NGFF metadata."""
    inputs = sorted((data / "in").iterdir())
    assert serial("denoise", *inputs, "-m", data / "m2d.ssdn", "-o", tmp_path / "serial", "--quiet") == 0
    r = ssdn("denoise", *inputs, "-m", data / "m2d.ssdn", "-o", tmp_path / "dask", "--scheduler", cluster)
    assert r.returncode == 0, r.stderr
    assert "wrote 4 of 4 output(s)" in r.stderr
    assert _files(tmp_path / "dask") == _files(tmp_path / "serial") == ["a0.tif", "a1.tif", "b0.mrc", "b1.mrc"]
    for name in _files(tmp_path / "serial"):
        assert_same_image(tmp_path / "serial" / name, tmp_path / "dask" / name)

    vol, m3d = data / "vol.mrc", data / "m3d.ssdn"
    assert serial("denoise", vol, "-m", m3d, "-o", tmp_path / "serial.mrc", "--tile", "16", "--quiet") == 0
    r = ssdn("denoise", vol, "-m", m3d, "-o", tmp_path / "dask.mrc", "--tile", "16", "--scheduler", cluster)
    assert r.returncode == 0, r.stderr
    assert "/4 " in r.stderr  # the progress bar counts the volume's 4 blocks
    assert_same_image(tmp_path / "serial.mrc", tmp_path / "dask.mrc")
    want = read_image(tmp_path / "serial.mrc").data

    r = ssdn("denoise", vol, "-m", m3d, "-o", tmp_path / "dask.ome.zarr", "--tile", "16", "--scheduler", cluster, "-q")
    assert r.returncode == 0, r.stderr
    assert (
        serial(
            "denoise", tmp_path / "dask.ome.zarr", "-m", m3d, "-o", tmp_path / "again.ome.zarr", "--tile", "16", "-q"
        )
        == 0
    )
    group = zarr.open_group(str(tmp_path / "dask.ome.zarr"), mode="r")
    np.testing.assert_allclose(group["0"][...], want, rtol=0, atol=1e-6)
    assert group["0"].chunks == (16, 16, 16)
    again = zarr.open_group(str(tmp_path / "again.ome.zarr"), mode="r")
    (meta,) = again.attrs["multiscales"]  # OME-NGFF 0.4: axes with units, a scale per level
    assert meta["version"] == "0.4" and [a["name"] for a in meta["axes"]] == ["z", "y", "x"]
    assert [a["unit"] for a in meta["axes"]] == ["angstrom"] * 3
    assert meta["datasets"] == [
        {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [10.0, 5.0, 5.0]}]}
    ]
    if importlib.util.find_spec("ome_zarr") is not None:  # ome-zarr-py, where installed, reads it the same way
        from ome_zarr.io import parse_url
        from ome_zarr.reader import Reader

        node = next(iter(Reader(parse_url(str(tmp_path / "again.ome.zarr")))()))
        assert np.asarray(node.data[0]).shape == want.shape
        assert node.metadata["coordinateTransformations"][0][0]["scale"] == [10.0, 5.0, 5.0]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []

    # --resume: complete outputs are left alone, without starting anything.
    before = (tmp_path / "dask" / "a0.tif").stat().st_mtime_ns
    capsys.readouterr()
    assert (
        serial("denoise", *inputs, "-m", data / "m2d.ssdn", "-o", tmp_path / "dask", "--workers", "2", "--resume") == 0
    )
    err = capsys.readouterr().err
    assert "skipped 4 input(s)" in err and "cluster" not in err
    assert (tmp_path / "dask" / "a0.tif").stat().st_mtime_ns == before


@pytest.mark.parametrize("what", ["files", "volume"])
def test_a_worker_killed_mid_task_is_replaced_and_its_task_rerun(data, tmp_path, what):
    """The first task to reach its fault point ends its worker process (as a crash or an
    out-of-memory kill would): the task runs again on a new worker, every output appears
    once, equal to the serial output, and no temporary file is left."""
    marker = tmp_path / "died"
    if what == "files":
        inputs, model, extra = sorted((data / "in").iterdir()), data / "m2d.ssdn", []
        out = tmp_path / "out"
        serial("denoise", *inputs, "-m", model, "-o", tmp_path / "serial", "--quiet")
        expected = {out / n: tmp_path / "serial" / n for n in _files(tmp_path / "serial")}
    else:
        inputs, model, extra = [data / "vol.mrc"], data / "m3d.ssdn", ["--tile", "16"]
        out = tmp_path / "out" / "vol.mrc"
        serial("denoise", *inputs, "-m", model, "-o", tmp_path / "serial.mrc", "--quiet", *extra)
        expected = {out: tmp_path / "serial.mrc"}
    r = ssdn(
        "denoise", *inputs, "-m", model, "-o", out, "--workers", "2", *extra, env={"SSDN_FAULT_EXIT_ONCE": str(marker)}
    )
    assert marker.exists(), "no worker died: the test did not test anything"
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(p.name for p in expected)
    for got, want in expected.items():
        assert_same_image(want, got)


def test_a_bad_file_is_named_and_the_others_are_written(data, cluster, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a0.tif", "b0.mrc"):
        (folder / name).write_bytes((data / "in" / name).read_bytes())
    (folder / "broken.tif").write_bytes(b"not a tiff at all")
    r = ssdn(
        "denoise", *sorted(folder.iterdir()), "-m", data / "m2d.ssdn", "-o", tmp_path / "out", "--scheduler", cluster
    )
    assert r.returncode == 1, r.stderr
    assert _files(tmp_path / "out") == ["a0.tif", "b0.mrc"]
    errors = [line for line in r.stderr.splitlines() if line.startswith("ssdn: error:")]
    assert len(errors) == 1 and "broken.tif" in errors[0] and "wrote 2 of 3 output(s)" in r.stderr


def test_without_cluster_options_dask_is_not_imported_and_conflicts_fail_early(data, tmp_path):
    code = (
        "import sys; from napari_ssdn.cli import main; rc = main(sys.argv[1:]); "
        "print(rc, sorted(m for m in ('dask', 'distributed', 'zarr') if m in sys.modules))"
    )
    r = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            "denoise",
            data / "in" / "a0.tif",
            "-m",
            data / "m2d.ssdn",
            "-o",
            tmp_path / "plain.tif",
            "-q",
        ],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert r.stdout.split("\n")[0] == "0 []", r.stderr
    r = ssdn(
        "denoise",
        data / "in" / "a0.tif",
        "-m",
        data / "m2d.ssdn",
        "-o",
        tmp_path / "o.tif",
        "--workers",
        "2",
        "--scheduler",
        "tcp://127.0.0.1:1",
    )
    assert r.returncode == 2 and "pass one of them" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    # Dask would wait for a scheduler file that does not exist with no time limit
    r = ssdn(
        "denoise",
        data / "in" / "a0.tif",
        "-m",
        data / "m2d.ssdn",
        "-o",
        tmp_path / "o.tif",
        "--scheduler-file",
        tmp_path / "nothere.json",
    )
    assert r.returncode == 2 and "--scheduler-file" in r.stderr and "does not exist" in r.stderr, r.stderr
    r = ssdn("denoise", data / "in" / "a0.tif", "-m", data / "m2d.ssdn", "-o", tmp_path / "o.ome.zarr")
    assert r.returncode == 2 and "3D model" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o.tif").exists() and not (tmp_path / "o.ome.zarr").exists()


def test_a_volume_that_failed_keeps_its_whole_blocks_and_resume_writes_the_others(data, tmp_path):
    """A block fails for good (its worker dies and Dask may not retry it): the command
    names the volume, keeps the blocks written in a hidden partial output, and the same
    command with --resume runs only the others, giving the serial output."""
    model, extra = data / "m3d.ssdn", ["--tile", "16"]
    serial("denoise", data / "vol.mrc", "-m", model, "-o", tmp_path / "serial.mrc", "--quiet", *extra)
    out = tmp_path / "out" / "vol.mrc"
    env = {"SSDN_FAULT_EXIT_ONCE": str(tmp_path / "died"), "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0"}
    r = ssdn("denoise", data / "vol.mrc", "-m", model, "-o", out, "--workers", "2", "--retries", "0", *extra, env=env)
    assert (tmp_path / "died").exists(), "no worker died: the test did not test anything"
    assert r.returncode == 1 and not out.exists(), r.stderr
    kept = [line for line in r.stderr.splitlines() if "blocks are kept" in line]
    assert len(kept) == 1 and "--resume" in kept[0], r.stderr
    n_kept, n_blocks = (int(w) for w in kept[0].split("': ")[1].split(" blocks")[0].split(" of "))
    assert 0 < n_kept < n_blocks
    assert sorted(p.name for p in out.parent.iterdir()) == [".vol.mrc.ssdn-partial.json", ".vol.ssdn-partial.mrc"]

    r = ssdn("denoise", data / "vol.mrc", "-m", model, "-o", out, "--workers", "2", "--resume", *extra)
    assert r.returncode == 0, r.stderr
    assert f"resuming {str(out)!r}: {n_kept} of {n_blocks} blocks" in r.stderr
    assert _files(out.parent) == ["vol.mrc"]
    assert_same_image(tmp_path / "serial.mrc", out)


def _interrupted_after_two_blocks(monkeypatch, *args) -> int:
    """Exit code of the serial command ``args`` stopped by Ctrl-C as its third block starts."""
    import napari_ssdn.scaleout.run as scaleout_run

    real, calls = scaleout_run.run_task, []

    def interrupted(spec):
        calls.append(spec["block"])
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(spec)

    with monkeypatch.context() as m:
        m.setattr(scaleout_run, "run_task", interrupted)
        return serial(*args)


def test_an_interrupted_ome_zarr_output_resumes_from_its_kept_blocks(data, tmp_path, monkeypatch, capsys):
    """OME-Zarr without a cluster (block by block in this process): Ctrl-C after two
    blocks keeps them; --resume writes the rest, equal to an uninterrupted run; a changed
    setting starts afresh."""
    args = ["denoise", data / "vol.mrc", "-m", data / "m3d.ssdn", "--tile", "16"]
    assert serial(*args, "-o", tmp_path / "whole.ome.zarr", "-q") == 0
    out = tmp_path / "out.ome.zarr"
    assert _interrupted_after_two_blocks(monkeypatch, *args, "-o", out, "-q") == 130
    assert not out.exists() and "2 of " in capsys.readouterr().err
    assert serial(*args, "-o", out, "--resume") == 0
    err = capsys.readouterr().err
    total = int(err.split("resuming ")[1].split(" of ")[1].split()[0])
    assert f": 2 of {total} blocks written by an earlier run" in err and total > 2
    np.testing.assert_array_equal(
        zarr.open_array(str(out / "0"), mode="r")[...],
        zarr.open_array(str(tmp_path / "whole.ome.zarr" / "0"), mode="r")[...],
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.ome.zarr", "whole.ome.zarr"]


def test_resume_keeps_the_block_plan_when_the_memory_available_changed(data, tmp_path, monkeypatch, capsys):
    """The default block size follows the memory available when a run starts; a resumed
    run takes the interrupted run's blocks instead of starting afresh with new ones."""
    import napari_ssdn.core.infer.tiles as tiles
    from napari_ssdn.core import load_model
    from napari_ssdn.core.sizes import block_peak

    arch = load_model(data / "m3d.ssdn")[0].config.arch
    small = block_peak(arch, [16, 32, 32], [16, 16, 16], True) + 1  # 4 blocks of 16^3
    monkeypatch.setattr(tiles, "memory_budget", lambda dev, floor: small)
    args = ["denoise", data / "vol.mrc", "-m", data / "m3d.ssdn"]
    out = tmp_path / "out.ome.zarr"
    assert _interrupted_after_two_blocks(monkeypatch, *args, "-o", out, "-q") == 130
    monkeypatch.setattr(tiles, "memory_budget", lambda dev, floor: 1e12)  # now one block would do
    capsys.readouterr()
    assert serial(*args, "-o", out, "--resume") == 0
    assert ": 2 of 4 blocks written by an earlier run" in capsys.readouterr().err
    assert serial(*args, "-o", tmp_path / "whole.ome.zarr", "-q") == 0
    np.testing.assert_allclose(
        zarr.open_array(str(out / "0"), mode="r")[...],
        zarr.open_array(str(tmp_path / "whole.ome.zarr" / "0"), mode="r")[...],
        rtol=0,
        atol=1e-6,
    )


def test_a_local_cluster_leaves_the_environment_as_it_was(tmp_path):
    """Dask's nanny sets OMP_NUM_THREADS=1 in the parent when it starts workers; ssdn denoise
    --workers must not leave it there (every later torch run would take one thread)."""
    import os

    from napari_ssdn.scaleout.cluster import environment_kept

    before = dict(os.environ)
    with environment_kept():
        os.environ["OMP_NUM_THREADS"] = "1"
        os.environ.pop("HOME", None)
    assert dict(os.environ) == before


def test_each_task_on_a_worker_runs_on_one_torch_thread(cluster):
    """A worker's task threads share its cores, whatever else ran in the worker: a script
    that sets torch's threads at import does so again in every worker that multiprocessing
    spawns, and two such workers on two cores ran 4x slower than one."""
    from distributed import Client

    from napari_ssdn.scaleout.tasks import on_worker

    def threads(spec):
        import torch

        return torch.get_num_threads()

    def all_cores():
        import torch

        torch.set_num_threads(2)

    with Client(cluster) as client:
        for worker in client.scheduler_info()["workers"]:
            client.submit(all_cores, workers=[worker], pure=False).result()
            assert client.submit(threads, {}, workers=[worker], pure=False).result() == 2
            assert client.submit(on_worker, threads, {}, workers=[worker], pure=False).result() == 1
