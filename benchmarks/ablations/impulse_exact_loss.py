"""Ablation: train impulse models on the exact marginal of the noisy pixel instead of the
moment-matched Gaussian the engine uses (docs/design.md), then run table.py with the same arguments.

    python benchmarks/ablations/impulse_exact_loss.py --data DATA/bsd68_gray --limit 10 --noise impulse \\
        --level 0.5 --budget 600 --rows learned --name proto_impulse_exact_600s

Under the prior N(mu, Sigma_x) a pixel replaced by an impulse (uniform on the normalised
range, density 1) with probability alpha has the density alpha + (1 - alpha) N(y; mu,
Sigma_x), exactly. The loss here is -2 log of it (the factor matches the engine's dropped
1/2). Measured worse than the engine's loss (benchmarks/NOTES.md, "Impulse noise:
the exact marginal as the loss"), so the engine keeps the moment-matched Gaussian.
"""

import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # common.py and table.py live one level up
import napari_ssdn.core.noise.bayes as bayes  # noqa: E402

moment_matched = bayes.nll_loss


def exact_nll(model, y, mu, sx, params):
    if model != "impulse":
        return moment_matched(model, y, mu, sx, params)
    y = y.to(torch.float64)
    c = y.shape[-1]
    a = bayes._as(params["alpha"], mu).clamp(1e-6, 1 - 1e-6)
    inv, logdet = bayes._inv_logdet(sx + bayes.EPS * bayes._eye(c, y))
    log_g = -0.5 * (bayes._quad(y - mu, inv) + logdet + c * math.log(2 * math.pi))
    return -2.0 * torch.logaddexp(torch.log(a), torch.log1p(-a) + log_g)


if __name__ == "__main__":
    import table

    table.main(sys.argv[1:], nll=exact_nll)  # the trainer's loss and its validation both use it
