"""The blind spot, by gradient: output pixel p never depends on input pixel p."""

import pytest
import torch

from napari_ssdn.core.nets.network import ArchConfig, BlindSpotNet, PlainNet, build_network
from napari_ssdn.core.nets.receptive import receptive_margin, receptive_margins

SIZE = 32
POSITIONS = [(16, 16), (0, 0), (0, 31), (31, 0), (31, 31), (0, 15), (15, 0), (31, 17), (9, 31), (5, 22)]


def _grad(net, c, i, j, out_channel=0):
    torch.manual_seed(1)
    x = torch.randn(1, c, SIZE, SIZE, dtype=torch.float64, requires_grad=True)
    out = net(x)
    (g,) = torch.autograd.grad(out[0, out_channel, i, j], x)
    return g[0].abs().sum(0)  # over input channels


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("depth", [2, 3])
def test_centre_pixel_has_zero_gradient_and_neighbours_do_not(channels, depth):
    """Exactly zero gradient at p, non-zero at the 24 nearest pixels and the rest of the field."""
    torch.manual_seed(0)
    k = channels + channels * (channels + 1) // 2
    net = BlindSpotNet(ArchConfig(channels=channels, outputs=k, enc=6, dec=8, depth=depth)).double()
    for i, j in POSITIONS:
        for oc in range(k):
            g = _grad(net, channels, i, j, oc)
            assert g[i, j].item() == 0.0, f"output {oc} at {(i, j)} sees its own input pixel"
            for di in range(-2, 3):
                for dj in range(-2, 3):
                    ii, jj = i + di, j + dj
                    if (di or dj) and 0 <= ii < SIZE and 0 <= jj < SIZE:
                        assert g[ii, jj].item() != 0.0, f"output at {(i, j)} misses neighbour {(ii, jj)}"
        if depth == 3:
            # The field of a 3-level network covers every other pixel of this small image.
            g = _grad(net, channels, i, j)
            assert int((g != 0).sum()) == SIZE * SIZE - 1


def test_every_input_channel_of_the_centre_is_hidden():
    """For C = 3 no output channel sees any input channel of its own pixel."""
    net = BlindSpotNet(ArchConfig(channels=3, outputs=9, enc=6, dec=8, depth=2)).double()
    x = torch.randn(1, 3, SIZE, SIZE, dtype=torch.float64, requires_grad=True)
    out = net(x)
    jac = torch.autograd.grad(out[0, :, 10, 20].sum(), x)[0][0]
    assert torch.all(jac[:, 10, 20] == 0)
    assert torch.all(jac[:, 10, 21] != 0)


def test_plain_network_does_see_the_centre():
    """Sanity check of the test itself: the non-blind twin has a gradient at p."""
    net = PlainNet(ArchConfig(channels=1, outputs=1, enc=6, dec=8, depth=2, blind=False)).double()
    g = _grad(net, 1, 16, 16)
    assert g[16, 16].item() != 0.0


def test_blind_spot_holds_in_eval_mode_path():
    """Inference runs the four branches one by one; the blind spot must hold there too."""
    net = BlindSpotNet(ArchConfig(channels=1, outputs=2, enc=6, dec=8, depth=2)).double().eval()
    x = torch.randn(1, 1, SIZE, SIZE, dtype=torch.float64)
    with torch.no_grad():
        ref = net(x)
        x2 = x.clone()
        x2[0, 0, 12, 7] += 100.0
        changed = net(x2)
    diff = (changed - ref).abs()[0].sum(0)
    assert diff[12, 7].item() == 0.0
    assert diff[12, 8].item() > 0 and diff[11, 7].item() > 0


def test_turned_head_outputs_are_the_turned_views_and_keep_the_blind_spot():
    """Inference's head for all four turns at once: each turn equals the training path on
    the turned input (turned back), and no output pixel moves when its own input does."""
    torch.manual_seed(0)
    net = BlindSpotNet(ArchConfig(channels=2, outputs=5, enc=6, dec=8, depth=2)).double().eval()
    x = torch.randn(1, 2, SIZE, SIZE, dtype=torch.float64)
    with torch.no_grad():
        turned = net.turned_head_outputs(net.branch_features(x))
    for k, out in enumerate(turned):
        with torch.enable_grad():
            ref = torch.rot90(net(torch.rot90(x, k, (2, 3))), -k, (2, 3))
        torch.testing.assert_close(out, ref.detach(), rtol=0, atol=1e-12)
    for i, j in POSITIONS:
        x2 = x.clone()
        x2[0, :, i, j] += 100.0
        with torch.no_grad():
            moved = net.turned_head_outputs(net.branch_features(x2))
        for k, (a, b) in enumerate(zip(turned, moved, strict=True)):
            diff = (b - a).abs()[0].sum(0)
            assert diff[i, j].item() == 0.0, f"turn {k}: output at {(i, j)} sees its own input pixel"
            assert int((diff != 0).sum()) > 1, f"turn {k}: perturbing {(i, j)} changed nothing"


@pytest.mark.parametrize("region", [(1, 1), (2, 3)])
def test_branch_features_are_the_same_in_either_memory_layout(monkeypatch, region):
    """CPU inference runs channels-last; GPUs keep channels-first. Both must place each
    branch's shifted, turned-back features in the same block (two images, a wider blind
    region along x than y)."""
    from napari_ssdn.core.nets import unet

    torch.manual_seed(0)
    net = BlindSpotNet(ArchConfig(channels=2, outputs=5, enc=6, dec=8, depth=2, blind_region=region)).double().eval()
    x = torch.randn(2, 2, SIZE, SIZE, dtype=torch.float64)
    with torch.no_grad():
        last = net.branch_features(x)
        monkeypatch.setattr(unet, "inference_layout", lambda x: None)
        first = net.branch_features(x)
    assert last.is_contiguous(memory_format=torch.channels_last)
    assert first.is_contiguous()
    torch.testing.assert_close(last, first, rtol=0, atol=1e-12)
    with torch.enable_grad():
        reference = net(x).detach()
    with torch.no_grad():
        torch.testing.assert_close(net.head_output(first), reference, rtol=0, atol=1e-12)


def test_receptive_margin_bounds_the_field():
    """No input pixel farther than the margin influences an output pixel."""
    arch = ArchConfig(channels=1, outputs=2, enc=4, dec=4, depth=2)
    m = receptive_margin(arch)
    net = BlindSpotNet(arch).double()
    size = 2 * m + 32
    x = torch.randn(1, 1, size, size, dtype=torch.float64, requires_grad=True)
    c = size // 2
    (g,) = torch.autograd.grad(net(x)[0, 0, c, c], x)
    nz = torch.nonzero(g[0, 0])
    reach = (nz - torch.tensor([c, c])).abs().max().item()
    assert 0 < reach <= m


# -- volumes -----------------------------------------------------------------------------

SHAPE3 = (8, 12, 12)


def _positions3(shape):
    """Centre, a point on each face, on some edges and every corner."""
    d, h, w = (s - 1 for s in shape)
    c = (shape[0] // 2, shape[1] // 2, shape[2] // 2)
    faces = [(0, c[1], c[2]), (d, c[1], c[2]), (c[0], 0, c[2]), (c[0], h, c[2]), (c[0], c[1], 0), (c[0], c[1], w)]
    edges = [(0, 0, c[2]), (d, c[1], w), (c[0], h, 0), (0, h, 5)]
    corners = [(z, y, x) for z in (0, d) for y in (0, h) for x in (0, w)]
    return [c] + faces + edges + corners


def _grad3(net, c, p, out_channel=0):
    torch.manual_seed(1)
    x = torch.randn((1, c) + SHAPE3, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(net(x)[(0, out_channel) + p], x)
    return g[0].abs().sum(0)


@pytest.mark.parametrize("channels,flat", [(1, 0), (1, 1), (2, 1)])
def test_volume_centre_voxel_has_zero_gradient_and_neighbours_do_not(channels, flat):
    """3D: zero gradient at the voxel, non-zero at its 26 neighbours, at centre, faces,
    edges and corners, with isotropic and in-plane-only first pooling."""
    torch.manual_seed(0)
    k = channels + channels * (channels + 1) // 2
    net = build_network(ArchConfig(channels=channels, outputs=k, enc=4, dec=6, depth=2, ndim=3, flat=flat)).double()
    for p in _positions3(SHAPE3):
        for oc in range(k):
            g = _grad3(net, channels, p, oc)
            assert g[p].item() == 0.0, f"output {oc} at {p} sees its own input voxel"
            for dz in (-1, 0, 1):
                for dy in (-1, 0, 1):
                    for dx in (-1, 0, 1):
                        q = (p[0] + dz, p[1] + dy, p[2] + dx)
                        if (dz or dy or dx) and all(0 <= q[i] < SHAPE3[i] for i in range(3)):
                            assert g[q].item() != 0.0, f"output at {p} misses neighbour {q}"


def test_volume_blind_spot_holds_in_inference_path():
    """Inference accumulates the six branches one by one; same output, same blind voxel."""
    net = build_network(ArchConfig(channels=1, outputs=2, enc=4, dec=6, depth=2, ndim=3, flat=1)).double().eval()
    x = torch.randn((1, 1) + SHAPE3, dtype=torch.float64)
    with torch.enable_grad():
        batched = net(x).detach()
    with torch.no_grad():
        ref = net(x)
        x2 = x.clone()
        x2[0, 0, 3, 5, 6] += 100.0
        diff = (net(x2) - ref).abs()[0].sum(0)
    assert torch.allclose(batched, ref, atol=1e-12)
    assert diff[3, 5, 6].item() == 0.0
    assert diff[2, 5, 6].item() > 0 and diff[3, 5, 7].item() > 0 and diff[4, 4, 6].item() > 0


@pytest.mark.parametrize("flat", [0, 1])
def test_volume_margins_bound_the_field(flat):
    """No voxel farther than the per-axis margin influences an output voxel."""
    arch = ArchConfig(channels=1, outputs=2, enc=3, dec=3, depth=2, ndim=3, flat=flat)
    m = receptive_margins(arch)
    net = build_network(arch).double()
    shape = tuple(2 * mi + 8 for mi in m)
    x = torch.randn((1, 1) + shape, dtype=torch.float64, requires_grad=True)
    c = tuple(s // 2 for s in shape)
    (g,) = torch.autograd.grad(net(x)[(0, 0) + c], x)
    nz = torch.nonzero(g[0, 0])
    reach = (nz - torch.tensor(c)).abs().max(dim=0).values.tolist()
    assert all(0 < r <= mi for r, mi in zip(reach, m, strict=True)), (reach, m)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("ndim", [2, 3])
def test_blind_spot_holds_on_cuda_in_mixed_precision(ndim):
    """The GPU path (cuDNN kernels, bfloat16/float16 autocast) keeps the pixel hidden: a
    huge change at p moves no output at p, in training (batched) and inference mode."""
    from napari_ssdn.core.device import network_precision

    shape = (SIZE, SIZE) if ndim == 2 else SHAPE3
    p = (12, 7) if ndim == 2 else (3, 5, 6)
    net = build_network(ArchConfig(channels=1, outputs=2, enc=16, dec=32, depth=2, ndim=ndim)).cuda()
    dev = torch.device("cuda")
    x = torch.randn((1, 1) + shape, device=dev)
    x2 = x.clone()
    x2[(0, 0) + p] += 100.0
    for train_mode in (True, False):
        net.train(train_mode)
        with torch.no_grad(), network_precision(dev):
            diff = (net(x2).float() - net(x).float()).abs()[0].sum(0)
        assert diff[p].item() == 0.0, f"train={train_mode}: output at {p} moved with its own input"
        near = tuple(v + 1 if i == ndim - 1 else v for i, v in enumerate(p))
        assert diff[near].item() > 0, "the test is blind too: a neighbour's output did not move"


@pytest.mark.parametrize("layout", ["channels_last", "channels_first"])
def test_volume_branches_kept_over_a_crop_give_the_cropped_output(monkeypatch, layout):
    """Volume blocks keep each branch's features over the block's crop only; with two
    volumes, a blind region wider along x, pooling in-plane first, and either memory
    layout (CPU inference runs channels-last, GPUs channels-first), the head on them
    equals the training path's output cut to the crop."""
    from napari_ssdn.core.nets import unet
    from napari_ssdn.core.nets.network import BRANCHES_3D

    if layout == "channels_first":
        monkeypatch.setattr(unet, "inference_layout", lambda x: None)
    torch.manual_seed(0)
    arch = ArchConfig(channels=1, outputs=2, enc=4, dec=6, depth=2, ndim=3, flat=1, blind_region=(2, 1, 3))
    net = build_network(arch).double().eval()
    x = torch.randn((2, 1, 6, 12, 16), dtype=torch.float64)
    with torch.enable_grad():
        reference = net(x).detach()
    crop = (slice(1, 5), slice(0, 7), slice(3, 16))
    with torch.no_grad():
        features = None
        for k in range(len(BRANCHES_3D)):
            features = net.place_branch(x, k, features, crop)
        got = net.head_output(features)
    assert features.is_contiguous(memory_format=torch.channels_last_3d) == (layout == "channels_last")
    torch.testing.assert_close(got, reference[(slice(None), slice(None), *crop)], rtol=0, atol=1e-12)
