"""Where the posterior's gain goes, for a model trained by config_trial.py on a Set12 image.

    python benchmarks/ablations/posterior_analysis.py SET12 02.png m.ssdn

SET12 is the folder of the Set12 images (see benchmarks/README.md).

Prints the prior and posterior PSNR, the posterior with the true sigma, with an oracle
prior variance ((x - mu)^2, the bound of the Gaussian-prior combination for this prior
mean), with one constant prior variance and with the predicted one recalibrated against the
truth in 50 bins (the best a calibrated variance with this ranking can do), with the prior
variance rescaled, the predicted prior std against the real error by decile, the calibration E[(y - mu)^2] against
Sigma_x + sigma^2, and test-time averaging over the 8 flips and rotations.
"""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # common.py and table.py live one level up
from common import add_gaussian, load_clean, psnr8  # noqa: E402

from napari_ssdn.core import denoise, load_model  # noqa: E402

if len(sys.argv) < 4:
    sys.exit(__doc__)
folder, name, path = sys.argv[1], sys.argv[2], sys.argv[3]
data = load_clean(folder, None, 256)
idx = [n for n, _ in data].index(name)
x = data[idx][1]
y = add_gaussian(x, 25 / 255, 1000 + idx).astype(np.float64)
model, _ = load_model(path)
sn = model.noise_params_data()["sigma"]


def outputs(img):
    r = denoise(
        model, img.astype(np.float32), "YX", ("prior-mean", "posterior-mean", "posterior-std"), mixed_precision=False
    )
    return [r[k].astype(np.float64) for k in ("prior-mean", "posterior-mean", "posterior-std")]


mu, post, pstd = outputs(y)
pv = pstd**2
sx2 = pv * sn**2 / np.maximum(sn**2 - pv, 1e-12)  # 1/pv = 1/sx2 + 1/sn2


def combine(s2x, s2n):
    return (y * s2x + mu * s2n) / (s2x + s2n)


print(f"learned sigma {sn * 255:.2f}; prior {psnr8(mu, x):.2f}, posterior {psnr8(post, x):.2f} dB")
print(f"posterior with the true sigma: {psnr8(combine(sx2, (25 / 255) ** 2), x):.2f}")
print(f"oracle prior variance (x - mu)^2: {psnr8(combine((x - mu) ** 2, (25 / 255) ** 2), x):.2f}")
# Realistic bounds: the oracle above knows each pixel's error, not only its variance.
flat = np.full_like(sx2, ((x - mu) ** 2).mean())
print(f"one constant prior variance, the true mean of (x - mu)^2: {psnr8(combine(flat, (25 / 255) ** 2), x):.2f}")
bins = np.quantile(sx2, np.linspace(0, 1, 51))
which = np.clip(np.searchsorted(bins, sx2, side="right") - 1, 0, 49)
calibrated = np.array([((x - mu) ** 2)[which == b].mean() if (which == b).any() else 0.0 for b in range(50)])[which]
print(
    "prior variance recalibrated with the truth in 50 bins of the predicted one: "
    f"{psnr8(combine(calibrated, (25 / 255) ** 2), x):.2f}"
)
sx, err = np.sqrt(sx2) * 255, np.abs(x - mu) * 255
print(
    f"predicted prior std percentiles 5/25/50/75/95: {np.round(np.percentile(sx, [5, 25, 50, 75, 95]), 2)}; below 1 "
    f"grey level: {(sx < 1).mean():.1%}"
)
edges = np.quantile(sx, np.linspace(0, 1, 11))
for lo, hi in zip(edges[:-1], edges[1:], strict=True):
    sel = (sx >= lo) & (sx <= hi)
    print(
        f"  predicted prior std decile {lo:5.2f}-{hi:5.2f}: rms predicted {np.sqrt((sx[sel] ** 2).mean()):5.2f}, rms "
        f"real error {np.sqrt((err[sel] ** 2).mean()):5.2f}"
    )
print(
    f"predicted prior std (rms) {np.sqrt(sx2.mean()) * 255:.2f}, actual prior error (rms) "
    f"{np.sqrt(((x - mu) ** 2).mean()) * 255:.2f}"
)
for s in (0.5, 1.5, 2.0, 3.0):
    print(f"  prior variance x{s}: {psnr8(combine(s * sx2, sn**2), x):.2f}")
print(
    f"E[(y - mu)^2] {((y - mu) ** 2).mean() * 255**2:.1f} vs mean Sigma_x + sigma^2 {(sx2.mean() + sn**2) * 255**2:.1f}"
)
P, Q = [], []
for k in range(4):
    for flip in (False, True):
        t = np.rot90(y, k)
        t = t[:, ::-1] if flip else t
        a, b, _ = outputs(np.ascontiguousarray(t))

        def back(z, flip=flip, k=k):
            return np.rot90(z[:, ::-1] if flip else z, -k)

        P.append(back(a))
        Q.append(back(b))
print(f"8-fold test-time averaging: prior {psnr8(np.mean(P, 0), x):.2f}, posterior {psnr8(np.mean(Q, 0), x):.2f}")
