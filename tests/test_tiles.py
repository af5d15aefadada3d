"""Tiles and blocks (core/infer/tiles.py): the plan covers the data, tiles equal one pass."""

import numpy as np
import pytest
import torch

from napari_ssdn.core import ModelConfig, SSDNModel, denoise, denoise_iter
from napari_ssdn.core.infer.tiles import TileWriter, default_tile, volume_plan
from napari_ssdn.core.nets.receptive import receptive_margin

CPU = torch.device("cpu")
PLAIN = dict(mixed_precision=False, tta=False, device="cpu")


def _model(ndim: int = 2, seed: int = 0) -> SSDNModel:
    """An untrained narrow model: tiling must reproduce any network, and a shallow one has
    margins small enough that a small image takes many tiles."""
    torch.manual_seed(seed)
    config = ModelConfig(enc=8, dec=8, depth=4 - ndim, ndim=ndim, offset=0.5, scale=0.25, noise_init={"sigma": 0.1})
    return SSDNModel(config).eval()


@pytest.fixture(scope="module")
def model():
    return _model()


@pytest.mark.parametrize("shape", [(100, 90), (103, 97)])
def test_tiled_result_equals_the_whole_image_result(model, shape):
    """Windows overlapping by the receptive field give the whole-image pass, sizes that are
    not multiples of the tile or of the network's multiple included."""
    noisy = np.random.default_rng(0).random(shape).astype(np.float32)
    whole = denoise(model, noisy, "YX", ("prior-mean", "posterior-mean"), **PLAIN)
    steps = list(denoise_iter(model, noisy, "YX", ("prior-mean", "posterior-mean"), tile=24, **PLAIN))
    assert steps[-1].total > 1 and steps[-1].done == steps[-1].total
    tiled = denoise(model, noisy, "YX", ("prior-mean", "posterior-mean"), tile=24, **PLAIN)
    for kind in whole:
        assert tiled[kind].shape == shape
        np.testing.assert_allclose(tiled[kind], whole[kind], atol=1e-5)


def test_tiles_cover_every_pixel_once_with_an_even_split(model):
    """The kept tiles of a 2D image cover it: the number of tiles is the fewest of the
    planned side that reach every row and column, and no kept side is wasted."""
    h, w = 110, 97
    noisy = np.random.default_rng(1).random((h, w)).astype(np.float32)
    steps = list(denoise_iter(model, noisy, "YX", tile=24, **PLAIN))
    inner = steps[-1].tile
    assert inner % model.multiple == 0
    assert steps[-1].total == -(-h // inner) * -(-w // inner)
    # A smaller kept side would need more tiles: the split is as even as it gets.
    assert (
        -(-h // (inner - model.multiple)) * -(-w // (inner - model.multiple)) > steps[-1].total
        or inner == model.multiple
    )
    out = denoise(model, noisy, "YX", tile=24, **PLAIN)
    assert np.isfinite(out).all()


def test_a_stack_counts_tiles_per_sample(model):
    noisy = np.random.default_rng(2).random((2, 100, 90)).astype(np.float32)
    steps = list(denoise_iter(model, noisy, "SYX", tile=24, **PLAIN))
    per_sample = steps[-1].total // 2
    assert steps[-1].total == 2 * per_sample and per_sample > 1
    tiled = denoise(model, noisy, "SYX", tile=24, **PLAIN)
    np.testing.assert_allclose(tiled, denoise(model, noisy, "SYX", **PLAIN), atol=1e-5)


def test_default_tile_is_a_multiple_of_the_network_larger_than_its_margins(model):
    side = default_tile(model, CPU)
    assert side >= model.multiple and side % model.multiple == 0
    # The whole-image margin must fit inside the default window, or every tile would be margin.
    assert side > 2 * receptive_margin(model.config.arch)


@pytest.mark.parametrize("spatial, tile", [((20, 40, 36), 16), ((9, 17, 30), 8)])
def test_volume_blocks_cover_the_volume_without_overlap(spatial, tile):
    """Every voxel of the volume lies in exactly one kept block."""
    model = _model(ndim=3)
    inner, starts = volume_plan(model, spatial, tile, CPU)
    assert all(i % m == 0 for i, m in zip(inner, model.config.arch.multiples, strict=True))
    hits = np.zeros(spatial, np.int32)
    for z, y, x in starts:
        hits[z : z + inner[0], y : y + inner[1], x : x + inner[2]] += 1
    np.testing.assert_array_equal(hits, 1)


def test_tiled_volume_equals_the_whole_volume():
    model = _model(ndim=3)
    vol = np.random.default_rng(3).random((12, 28, 20)).astype(np.float32)
    whole = denoise(model, vol, "ZYX", **PLAIN)
    steps = list(denoise_iter(model, vol, "ZYX", tile=8, **PLAIN))
    assert steps[-1].total > 1
    np.testing.assert_allclose(denoise(model, vol, "ZYX", tile=8, **PLAIN), whole, atol=1e-5)


def test_the_writer_keeps_missing_pixels_missing_and_returns_data_units():
    samples = np.array([[[[1.0], [np.nan]], [[np.inf], [3.0]]]], np.float32)  # (S, Y, X, C)
    results = {"posterior-mean": np.zeros_like(samples), "posterior-std": np.zeros_like(samples)}
    writer = TileWriter(samples, results, offset=1.0, scale=2.0)
    np.testing.assert_array_equal(writer.norm(samples[0])[..., 0], [[0.0, 0.0], [0.0, 1.0]])
    net = np.full((2, 2, 1), 0.5, np.float32)
    writer.store(0, (slice(0, 2), slice(0, 2)), {"posterior-mean": net, "posterior-std": net})
    mean, std = results["posterior-mean"][0, ..., 0], results["posterior-std"][0, ..., 0]
    np.testing.assert_array_equal(np.isnan(mean), [[False, True], [True, False]])
    assert mean[0, 0] == 2.0 and mean[1, 1] == 2.0  # 0.5 * scale + offset
    assert std[0, 0] == 1.0  # a spread is scaled, not shifted


@pytest.mark.parametrize(
    "available, budget", [(None, 1.5e9), (4e9, 1.5e9), (16e9, 2e9), (100e9, 4e9)], ids=["unknown", "low", "mid", "high"]
)
def test_a_cpu_tile_takes_an_eighth_of_the_available_memory_within_its_bounds(model, monkeypatch, available, budget):
    import napari_ssdn.core.infer.tiles as tiles

    monkeypatch.setattr(tiles, "available_memory", lambda: available)
    assert tiles.memory_budget(CPU, 1.5e9) == pytest.approx(budget)
    side = default_tile(model, CPU)
    per_pixel = tiles.pixel_bytes(model.config)
    assert side * side * per_pixel <= budget < (side + 2 * model.multiple) ** 2 * per_pixel


def test_larger_memory_gives_larger_volume_blocks(monkeypatch):
    import napari_ssdn.core.infer.tiles as tiles

    vol = SSDNModel(ModelConfig(enc=16, dec=32, depth=3, ndim=3, noise_init={"sigma": 0.1}))  # the tiny width
    sizes = []
    for available in (1e9, 16e9):
        monkeypatch.setattr(tiles, "available_memory", lambda a=available: a)
        sizes.append(np.prod(volume_plan(vol, (64, 512, 512), None, CPU)[0]))
    assert sizes[1] > 1.5 * sizes[0]
