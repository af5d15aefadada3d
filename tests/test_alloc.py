"""Freed memory is reused while the network runs, and the defaults come back afterwards."""

import resource

import pytest
import torch

from napari_ssdn.core import alloc
from napari_ssdn.core.alloc import reuse_freed_memory

pytestmark = pytest.mark.skipif(alloc._glibc() is None, reason="the reuse applies to glibc's malloc only")

SIZE = 96 * 2**20  # above glibc's largest mmap threshold (32 MB)
PAGES = SIZE // resource.getpagesize()


def _faults_of_another_allocation() -> int:
    """Page faults of filling a large tensor after a larger one was freed (larger: an
    aligned request needs a little more room than a block of its own size)."""
    torch.ones(2 * SIZE, dtype=torch.uint8)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.ones(SIZE, dtype=torch.uint8)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def test_freed_block_is_reused_inside_and_mapped_afresh_outside():
    assert _faults_of_another_allocation() > PAGES // 2  # glibc's default: a fresh mapping
    with reuse_freed_memory():
        assert _faults_of_another_allocation() < PAGES // 20
    assert _faults_of_another_allocation() > PAGES // 2  # defaults restored


def test_nested_users_keep_it_until_the_last_leaves():
    with reuse_freed_memory():
        with reuse_freed_memory():
            pass
        assert _faults_of_another_allocation() < PAGES // 20  # one user left, one remains
    assert alloc._users == 0
    assert _faults_of_another_allocation() > PAGES // 2


def test_a_denoise_run_holds_it_while_running_and_releases_it_when_closed():
    from napari_ssdn.core import TrainConfig, denoise_iter, train

    image = torch.rand(64, 64, generator=torch.Generator().manual_seed(0)).numpy()
    model = train(image, "YX", TrainConfig(iterations=1, width="tiny", patch=32))
    run = denoise_iter(model, image, "YX", tile=16, tta=False)
    next(run)
    assert alloc._users == 1
    run.close()  # a cancelled run
    assert alloc._users == 0
    assert _faults_of_another_allocation() > PAGES // 2
