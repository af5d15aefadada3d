"""The blind region, by gradient: a network with final shifts k hides exactly the offsets
with |d| < k on every axis, and sees every pixel just outside them."""

import itertools

import numpy as np
import pytest
import torch

from napari_ssdn.core import SSDNError
from napari_ssdn.core.nets.model import ModelConfig
from napari_ssdn.core.nets.network import ArchConfig, build_network
from napari_ssdn.core.nets.receptive import receptive_margins

SIZE = 32
POSITIONS = [(16, 16), (0, 0), (0, 31), (31, 0), (31, 31), (0, 15), (15, 0), (31, 17), (9, 31), (2, 3)]
REGIONS_2D = [(1, 1), (2, 2), (1, 3), (3, 1), (2, 3)]


def _expected(shape, p, region):
    """Boolean maps of the offsets that must be hidden and of the ring just outside them."""
    grids = np.meshgrid(*[np.arange(n) - c for n, c in zip(shape, p, strict=True)], indexing="ij")
    inside = np.all([np.abs(g) < k for g, k in zip(grids, region, strict=True)], axis=0)
    ring = np.all([np.abs(g) <= k for g, k in zip(grids, region, strict=True)], axis=0) & ~inside
    return inside, ring


def _check(g: np.ndarray, p, region):
    inside, ring = _expected(g.shape, p, region)
    assert np.all(g[inside] == 0), (
        f"output at {p} sees {np.argwhere(inside & (g != 0))[:3].tolist()} inside region {region}"
    )
    assert np.all(g[ring] != 0), (
        f"output at {p} misses {np.argwhere(ring & (g == 0))[:3].tolist()} just outside region {region}"
    )


@pytest.mark.parametrize("region", REGIONS_2D)
def test_2d_region_hidden_exactly_at_centre_edges_and_corners(region):
    torch.manual_seed(0)
    net = build_network(ArchConfig(channels=1, outputs=2, enc=6, dec=8, depth=3, blind_region=region)).double()
    x = torch.randn(1, 1, SIZE, SIZE, dtype=torch.float64, requires_grad=True)
    out = net(x)
    for p in POSITIONS:
        for oc in range(2):
            (g,) = torch.autograd.grad(out[(0, oc) + p], x, retain_graph=True)
            _check(g[0, 0].abs().numpy(), p, region)


@pytest.mark.parametrize("region", [(2, 2), (1, 3)])
def test_2d_region_holds_in_the_inference_paths(region):
    """Branch by branch (eval) and the four turned head outputs of test-time averaging: a
    change inside the region moves nothing, one just outside it does."""
    torch.manual_seed(0)
    net = build_network(ArchConfig(channels=2, outputs=5, enc=6, dec=8, depth=3, blind_region=region)).double().eval()
    x = torch.randn(1, 2, SIZE, SIZE, dtype=torch.float64)
    with torch.no_grad():
        ref = [net(x)] + net.turned_head_outputs(net.branch_features(x))
    for p in [(16, 16), (0, 0), (31, 5)]:
        inside, ring = _expected((SIZE, SIZE), p, region)
        for mask, moves in ((inside, False), (ring, True)):
            for q in map(tuple, np.argwhere(mask)):
                x2 = x.clone()
                x2[(0, slice(None)) + q] += 100.0
                with torch.no_grad():
                    got = [net(x2)] + net.turned_head_outputs(net.branch_features(x2))
                for a, b in zip(ref, got, strict=True):
                    changed = bool((b - a)[(0, slice(None)) + p].abs().sum() > 0)
                    assert changed == moves, f"output at {p}, input at {q}: moved={changed}, region {region}"


SHAPE3 = (8, 12, 12)
REGIONS_3D = [(1, 1, 1), (2, 1, 1), (1, 2, 3)]


@pytest.mark.parametrize("region", REGIONS_3D)
def test_3d_region_hidden_exactly_at_centre_faces_and_corners(region):
    torch.manual_seed(0)
    net = build_network(ArchConfig(channels=1, outputs=2, enc=4, dec=6, depth=2, ndim=3, blind_region=region)).double()
    x = torch.randn((1, 1) + SHAPE3, dtype=torch.float64, requires_grad=True)
    out = net(x)
    d, h, w = (s - 1 for s in SHAPE3)
    corners = [(z, y, xx) for z in (0, d) for y in (0, h) for xx in (0, w)]
    for p in [(4, 6, 6), (0, 6, 6), (4, 0, 6), (4, 6, w), *corners]:
        (g,) = torch.autograd.grad(out[(0, 0) + p], x, retain_graph=True)
        _check(g[0, 0].abs().numpy(), p, region)
    with torch.no_grad():  # the eval path accumulates the branches one by one
        net.eval()
        ref = net(x)
        x2 = x.detach().clone()
        for q in itertools.product(
            *[range(4 - k + 1, 4 + k) for k in (region[0],)],
            range(7 - region[1], 6 + region[1]),
            range(7 - region[2], 6 + region[2]),
        ):
            x2[(0, 0) + q] += 100.0
        assert (net(x2) - ref)[0, :, 4, 6, 6].abs().sum() == 0


@pytest.mark.parametrize("ndim,region", [(2, (3, 2)), (3, (2, 1, 3))])
def test_margins_cover_the_shifted_field(ndim, region):
    """Tiles overlap by receptive_margins: no input farther than that reaches an output."""
    arch = ArchConfig(channels=1, outputs=2, enc=3, dec=3, depth=2, ndim=ndim, blind_region=region)
    m = receptive_margins(arch)
    net = build_network(arch).double()
    shape = tuple(2 * mi + 8 for mi in m)
    x = torch.randn((1, 1) + shape, dtype=torch.float64, requires_grad=True)
    c = tuple(s // 2 for s in shape)
    (g,) = torch.autograd.grad(net(x)[(0, 0) + c], x)
    reach = (torch.nonzero(g[0, 0]) - torch.tensor(c)).abs().max(dim=0).values.tolist()
    assert all(0 < r <= mi for r, mi in zip(reach, m, strict=True)), (reach, m)


@pytest.mark.parametrize("region,ndim", [((0, 1), 2), ((9,), 2), ((2, 2, 2), 2), ((1, 2), 3), (("a",), 2), ((1.5,), 2)])
def test_bad_regions_name_the_setting_and_the_remedy(region, ndim):
    with pytest.raises(SSDNError, match=r"blind.*whole number from 1 to 8"):
        ModelConfig(blind_region=region, ndim=ndim)


def test_one_k_means_every_axis_and_old_model_files_mean_the_centre_pixel():
    assert ModelConfig(blind_region=(2,), ndim=3).region == (2, 2, 2)
    assert ModelConfig.from_dict({k: v for k, v in ModelConfig().to_dict().items() if k != "blind_region"}).region == (
        1,
        1,
    )


def test_a_region_too_large_for_the_data_is_refused_with_a_smaller_one_suggested():
    from napari_ssdn.core import TrainConfig, Trainer

    img = np.random.default_rng(0).random((20, 64)).astype(np.float32)
    with pytest.raises(
        SSDNError,
        match=r"blind='6,6' hides 11 pixels across but the smallest image is 20 pixels along Y; "
        r"use a smaller blind region \(e.g. blind='5,6'\)",
    ):
        Trainer(img, "YX", TrainConfig(blind=6, iterations=1, patch=16, device="cpu"))
