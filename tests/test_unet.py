"""The U-Net backbone (core/nets/unet.py): output shapes and the half-space receptive field."""

import pytest
import torch

from napari_ssdn.core.nets.unet import UNet, shift_down


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.mark.parametrize("size", [(16, 16), (12, 20), (4, 28)])
def test_2d_output_has_the_decoder_width_and_the_input_size(size):
    net = UNet(cin=3, enc=8, dec=6, depth=2, blind=False)
    out = net(torch.randn(2, 3, *size))
    assert out.shape == (2, 6, *size)


@pytest.mark.parametrize("size", [(8, 8, 8), (4, 12, 20)])
def test_3d_output_has_the_decoder_width_and_the_input_size(size):
    net = UNet(cin=1, enc=4, dec=5, depth=2, blind=True, ndim=3)
    assert net(torch.randn(1, 1, *size)).shape == (1, 5, *size)


def test_anisotropic_pooling_keeps_the_shape():
    """In-plane-only pooling levels let a thin volume (z not a multiple of 4) through."""
    net = UNet(cin=1, enc=4, dec=4, depth=2, blind=False, ndim=3)
    out = net(torch.randn(1, 1, 6, 16, 16), pools=[(1, 2, 2), (2, 2, 2)])
    assert out.shape == (1, 4, 6, 16, 16)


def test_a_size_the_pooling_cannot_halve_is_refused():
    net = UNet(cin=1, enc=4, dec=4, depth=2, blind=False)
    with pytest.raises(RuntimeError):
        net(torch.randn(1, 1, 13, 16))


def test_blind_network_sees_only_rows_above_and_including_its_own():
    """With ``blind``, output row i depends on input rows <= i only; without, it sees below."""
    x = torch.randn(1, 1, 16, 16)
    changed = x.clone()
    changed[:, :, 9:] += 5.0  # rows 9 and below
    for blind in (True, False):
        net = UNet(cin=1, enc=4, dec=4, depth=2, blind=blind).eval()
        with torch.no_grad():
            diff = (net(changed) - net(x)).abs().amax(dim=(0, 1, 3))
        if blind:
            assert diff[:9].max() == 0 and diff[9:].max() > 0
        else:
            assert diff[:9].max() > 0


def test_shift_down_moves_rows_and_fills_zeros():
    x = torch.arange(1.0, 5.0).reshape(1, 1, 4, 1)
    assert shift_down(x).flatten().tolist() == [0.0, 1.0, 2.0, 3.0]
    assert shift_down(x, rows=2).flatten().tolist() == [0.0, 0.0, 1.0, 2.0]


@pytest.mark.parametrize("blind", [True, False])
@pytest.mark.parametrize(
    "ndim, size, pools",
    [
        (2, (16, 24), None),
        (3, (8, 16, 8), None),
        (3, (4, 16, 16), [(1, 2, 2), (2, 2, 2)]),
        (3, (16, 4, 8), [(2, 1, 2)] * 2),
    ],
)
def test_inference_pooling_gives_the_features_of_training_pooling(blind, ndim, size, pools):
    """Without gradients the pools are pairwise maxima of strided views; with them,
    max-pooling (after the one-row shift in blind mode). Both must agree, negative values,
    the zero row of the shift and anisotropic factors included."""
    net = UNet(cin=1, enc=4, dec=5, depth=2, blind=blind, ndim=ndim)
    x = torch.randn(2, 1, *size) - 0.5
    with torch.no_grad():
        fast = net(x, pools)
    with torch.enable_grad():
        reference = net(x, pools).detach()
    torch.testing.assert_close(fast, reference, rtol=0, atol=1e-6)
