"""Training on several ranks (torch.distributed, gloo on the loopback interface): DDP averages
the gradients, rank 0 alone writes the model, and a rank that dies ends the run in bounded time."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_ssdn.core import TrainConfig, Trainer, load_model
from napari_ssdn.core.data import CropSampler
from napari_ssdn.io import write_image

SRC = str(Path(__file__).resolve().parents[1] / "src")
# Two learned-noise steps of a tiny network, float32 (bfloat16 would round differently per batch split).
STEPS = dict(
    iterations=2,
    noise="gaussian",
    blind=1,
    width="tiny",
    patch=32,
    init="none",
    holdout=0.0,
    lr=0.05,
    mixed_precision=False,
    device="cpu",
    val_size=32,
)
LIMIT = 120  # seconds any multi-process test may take before it is stopped


def _noisy(size=96):
    from napari_ssdn.samples import clean_cells

    clean = clean_cells(size, seed=3)
    return (clean + 0.1 * np.random.default_rng(7).standard_normal(clean.shape)).astype(np.float32)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_env(rank: int, world: int, port: int) -> dict:
    return {
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
        "RANK": str(rank),
        "LOCAL_RANK": str(rank),
        "WORLD_SIZE": str(world),
        "LOCAL_WORLD_SIZE": str(world),
        "GLOO_SOCKET_IFNAME": "lo",
        "OMP_NUM_THREADS": "1",
    }


class ShareOfBatch:
    """The test's crop feed (it replaces ``Trainer.sampler``): every rank draws the same
    whole batch from a fixed seed and trains on its own share of it."""

    def __init__(self, trainer, rank: int, world: int, seed: int = 5):
        self.whole = CropSampler(trainer.samples, trainer.plan.patch, np.random.default_rng(seed))
        self.rank, self.world = rank, world
        self.kept, self.drawn = None, []

    def sample(self, batch, *extra):
        crops = self.whole.sample(batch * self.world, *extra)
        part = slice(self.rank * batch, (self.rank + 1) * batch)
        self.drawn = self.whole.drawn[part]
        return [c[part] for c in crops]


def _feed(trainer, rank: int, world: int) -> None:
    """The test's hooks: this rank's share of a fixed batch, and plain SGD for Adam (whose
    normalised first steps turn rounding-level differences of vanishing gradients into
    differences of the learning rate's size)."""
    trainer.sampler = ShareOfBatch(trainer, rank, world)
    trainer.optimizer = torch.optim.SGD(
        [{"params": g["params"]} for g in trainer.optimizer.param_groups], lr=trainer.lr
    )


def _two_rank_steps(rank: int, port: int, out: str) -> None:
    """One rank of the comparison: two steps with half the batch, rank 0 saves the weights."""
    from napari_ssdn.core.training.distributed import DistributedTrainer, close, init_ranks

    os.environ.update(_rank_env(rank, 2, port))
    torch.set_num_threads(1)
    ranks = init_ranks("cpu", timeout=30)
    try:
        trainer = DistributedTrainer(_noisy(), "YX", TrainConfig(batch=2, **STEPS), ranks=ranks)
        own = trainer.sampler.sample(2)[0]  # the crops this rank would draw by itself
        _feed(trainer, rank, 2)
        records = list(trainer.run())
        torch.save(
            {"state": trainer.model.state_dict(), "val": [r.val_loss for r in records], "own": torch.from_numpy(own)},
            f"{out}.{rank}",
        )
        # A time budget follows rank 0's clock, even when rank 1 starts later.
        timed = DistributedTrainer(
            _noisy(), "YX", TrainConfig(batch=2, **{**STEPS, "iterations": None, "time_limit": 1.5}), ranks=ranks
        )
        time.sleep(0.5 * rank)
        list(timed.run())
        torch.save({"steps": timed.step, "state": timed.model.state_dict()}, f"{out}.timed.{rank}")
    finally:
        close()
    # Skip the interpreter's finalization, as `ssdn train` ranks do: gloo's threads could
    # abort the process there (SIGABRT) after everything went well.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _single(batch: int, share=(0, 1)) -> tuple[Trainer, dict, np.ndarray]:
    """One process's run; its starting weights and the crops it would draw by itself."""
    trainer = Trainer(_noisy(), "YX", TrainConfig(batch=batch, **STEPS))
    start = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    own = trainer.sampler.sample(2)[0]
    _feed(trainer, *share)
    for _ in trainer.run():
        pass
    return trainer, start, own


def test_two_ranks_with_half_the_batch_match_one_process_with_all(tmp_path):
    """DDP averages the gradients of the whole loss (network and learned noise level): two gloo
    ranks with two crops each end where one process with the four crops ends, to 1e-6, with
    equal weights and validation losses on both ranks; each rank seeds its own crops; a time
    budget ends both ranks at the same step with the same weights."""
    import torch.multiprocessing as mp

    out = tmp_path / "ddp.pt"
    ctx = mp.start_processes(_two_rank_steps, args=(_free_port(), str(out)), nprocs=2, join=False, start_method="spawn")
    deadline = time.monotonic() + LIMIT
    try:
        while not ctx.join(timeout=1):
            assert time.monotonic() < deadline, "the ranks did not finish in time"
    finally:
        for p in ctx.processes:
            if p.is_alive():
                p.kill()
    ddp, other = (torch.load(f"{out}.{r}", weights_only=True) for r in range(2))
    whole, start, alone = _single(4)
    assert whole.step == 2 and whole.model.noise_params_data()["sigma"] != pytest.approx(
        whole.model.config.noise_init["sigma"], rel=1e-9
    )
    moved = 0.0
    for name, value in whole.model.state_dict().items():
        assert torch.allclose(ddp["state"][name], value, atol=1e-6, rtol=0), name
        moved = max(moved, float((value - start[name]).abs().max()))
    assert moved > 1e-3
    assert ddp["val"][-1] == pytest.approx(whole.history[-1].val_loss, abs=1e-5) and ddp["val"] == other["val"]
    assert all(torch.equal(other["state"][k], v) for k, v in ddp["state"].items())
    timed = [torch.load(f"{out}.timed.{r}", weights_only=True) for r in range(2)]
    assert timed[0]["steps"] == timed[1]["steps"] > 1
    assert all(torch.equal(timed[1]["state"][k], v) for k, v in timed[0]["state"].items())
    # Rank 0 draws the crops of one process with the same seed, rank 1 crops of its own.
    assert np.array_equal(ddp["own"].numpy(), alone) and not np.array_equal(other["own"].numpy(), alone)
    # Without the averaging (one rank's two crops alone) the weights differ: the test can fail.
    half = _single(2, share=(0, 2))[0].model.state_dict()
    assert max(float((ddp["state"][k] - v).abs().max()) for k, v in half.items()) > 1e-4


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": SRC, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}


def test_ssdn_train_distributed_writes_one_model_from_rank_0(tmp_path):
    """`ssdn train --distributed 2` trains on two ranks of this machine until a time limit (on
    rank 0's clock: ranks that stopped at different steps would wait for each other until the
    timeout and fail); rank 0 alone reports and writes the model, which `ssdn info` reads."""
    write_image(tmp_path / "img.tif", _noisy(), "YX")
    out = tmp_path / "m.ssdn"
    cmd = [
        sys.executable,
        "-m",
        "napari_ssdn.cli",
        "train",
        str(tmp_path / "img.tif"),
        "-o",
        str(out),
        "--time-limit",
        "3",
        "--device",
        "cpu",
        "--patch",
        "32",
        "--batch",
        "2",
        "--checkpoint-every",
        "0",
        "--distributed",
        "2",
        "--dist-timeout",
        "30",
    ]
    run = subprocess.run(cmd, check=False, env=_env(), capture_output=True, text=True, timeout=LIMIT, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img.tif", "m.ssdn"]
    assert run.stderr.count("saved ") == 1 and run.stderr.count("plan: ") == 1, run.stderr
    info = subprocess.run(
        [sys.executable, "-m", "napari_ssdn.cli", "info", str(out), "--json"],
        check=False,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=LIMIT,
    )
    assert info.returncode == 0, info.stderr
    training = json.loads(info.stdout)["training"]
    assert (training["ranks"], training["backend"], training["batch"]) == (2, "gloo", 2) and training["steps"] > 1
    assert 3 <= training["elapsed"] < 10


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGSTOP], ids=["killed", "hung"])
def test_a_lost_rank_ends_the_run_with_the_last_checkpoint_kept(tmp_path, how):
    """Two ranks started as torchrun would (one per machine, say); rank 1 is killed, or stops
    answering, after rank 0's first checkpoint. Rank 0 ends within the process-group timeout
    with one clear error and a non-zero exit, without writing the model again: the last
    checkpoint stays and loads."""
    write_image(tmp_path / "img.tif", _noisy(), "YX")
    out = tmp_path / "m.ssdn"
    port, timeout = _free_port(), 6
    cmd = [
        sys.executable,
        "-m",
        "napari_ssdn.cli",
        "train",
        str(tmp_path / "img.tif"),
        "-o",
        str(out),
        "--iterations",
        "100000",
        "--device",
        "cpu",
        "--patch",
        "32",
        "--batch",
        "2",
        "--checkpoint-every",
        "0.5",
        "--dist-timeout",
        str(timeout),
    ]
    ranks = [
        subprocess.Popen(
            cmd, env={**_env(), **_rank_env(r, 2, port)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for r in range(2)
    ]
    try:
        deadline = time.monotonic() + LIMIT
        while not out.exists():
            assert time.monotonic() < deadline and ranks[0].poll() is None, ranks[0].communicate()[1]
            time.sleep(0.1)
        os.kill(ranks[1].pid, how)
        lost = time.monotonic()
        err = ranks[0].communicate(timeout=timeout + 30)[1]
        ended = time.monotonic() - lost
    finally:
        for p in ranks:
            p.kill()
            p.communicate()
    assert ranks[0].returncode == 1, err
    assert ended < timeout + 15
    last = [line for line in err.splitlines() if line.startswith("ssdn: error:")]
    assert len(last) == 1 and "rank 0 lost the other ranks" in last[0] and "--dist-timeout 6" in last[0], err
    assert "the last checkpoint (step" in last[0] and "is kept in" in last[0], err
    _, meta = load_model(out)
    assert meta["training"]["checkpoint"] is True and meta["training"]["ranks"] == 2 and meta["training"]["steps"] > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img.tif", "m.ssdn"]


def test_bad_distributed_settings_are_one_clear_error(tmp_path, capsys):
    """Outside torchrun the library asks for its environment; a torchrun rank takes no --distributed
    of another size; a timeout must be positive."""
    from napari_ssdn.cli import main
    from napari_ssdn.core import SSDNError
    from napari_ssdn.core.training.distributed import init_ranks

    with pytest.MonkeyPatch.context() as mp:
        for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
            mp.delenv(k, raising=False)
        with pytest.raises(SSDNError, match="torchrun"):
            init_ranks("cpu")
        mp.setenv("RANK", "0")
        for k, v in _rank_env(0, 2, _free_port()).items():
            mp.setenv(k, v)
        with pytest.raises(SSDNError, match="dist_timeout=0"):
            init_ranks("cpu", timeout=0)
        write_image(tmp_path / "img.tif", _noisy(), "YX")
        assert (
            main(["train", str(tmp_path / "img.tif"), "-o", str(tmp_path / "m.ssdn"), "--distributed", "3", "-q"]) == 2
        )
    err = capsys.readouterr().err
    assert err.count("ssdn: error:") == 1 and "--distributed 3 under torchrun" in err, err
    assert not (tmp_path / "m.ssdn").exists()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_distributed_on_gpus_uses_nccl(tmp_path):
    """On GPUs each rank trains on cuda:LOCAL_RANK with NCCL (one rank per GPU shown)."""
    n = min(2, torch.cuda.device_count())
    write_image(tmp_path / "img.tif", _noisy(128), "YX")
    out = tmp_path / "m.ssdn"
    cmd = [
        sys.executable,
        "-m",
        "napari_ssdn.cli",
        "train",
        str(tmp_path / "img.tif"),
        "-o",
        str(out),
        "--iterations",
        "20",
        "--device",
        "cuda",
        "--distributed",
        str(n),
    ]
    run = subprocess.run(cmd, check=False, env=_env(), capture_output=True, text=True, timeout=LIMIT)
    assert run.returncode == 0, run.stderr
    training = load_model(out)[1]["training"]
    assert (training["steps"], training["ranks"], training["backend"]) == (20, n, "nccl")
