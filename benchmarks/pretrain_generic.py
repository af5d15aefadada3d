"""Train the generic starting network shipped in the package (warm start for `ssdn train`).

    python benchmarks/pretrain_generic.py --data DATA/kodak24 --budget 2400 \
        --width tiny --lr 2e-3 -o generic_tiny.ssdn
    # the colour start: on Set14 in RGB, as Kodak is the colour benchmark's test set
    python benchmarks/pretrain_generic.py --data DATA/set14 --color --budget 2400 \
        --width tiny --lr 2e-3 -o generic_rgb_tiny.ssdn
    # ship it without Adam's state (a third of the size):
    python -c "from napari_ssdn.core import load_model, save_model; m, i = load_model('generic_tiny.ssdn'); \
        save_model(m, 'src/napari_ssdn/core/weights/generic_gray_tiny.ssdn', train_state=i['training'])"

Self-supervised like every ssdn model (the loss never sees a clean pixel), on images in no
benchmark's test set for that channel count: Kodak in gray for the gray start (the gray
benchmarks are BSD68, Set12, FMD, cryo-EM), Set14 in RGB for the colour start (the colour
benchmark is Kodak).
Fresh Gaussian noise with sigma drawn uniformly in [5, 50] / 255 for every crop, sigma
known, so the network learns priors for a range of noise levels; users' own training then
fine-tunes it to their data and noise model.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import load_clean  # noqa: E402

from napari_ssdn.core.data import CropSampler  # noqa: E402
from napari_ssdn.core.device import network_precision, resolve_device  # noqa: E402
from napari_ssdn.core.modelfile import read_model_file, save_model  # noqa: E402
from napari_ssdn.core.nets.model import WIDTHS, ModelConfig, SSDNModel  # noqa: E402
from napari_ssdn.core.noise.bayes import nll_loss, split_prior  # noqa: E402
from napari_ssdn.core.training.progress import lr_factor as _lr_factor  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--data", required=True, help="folder of clean training images, e.g. DATA/kodak24 (see benchmarks/README.md)"
    )
    p.add_argument("--color", action="store_true", help="RGB network (default: images converted to gray)")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--budget", type=float, default=1500)
    p.add_argument("--width", default="light")
    p.add_argument("--patch", type=int, default=64)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--device", default="auto")
    p.add_argument("--resume", help="continue from a file written by this script (weights and Adam state)")
    args = p.parse_args(argv)
    dev = resolve_device(args.device)
    # Kodak: the last row or column of most images is black; drop a 2-pixel border.
    clean = [
        (c[2:-2, 2:-2] if args.color else c[2:-2, 2:-2, None]).astype(np.float32)[None]
        for _, c in load_clean(args.data, gray=not args.color)
    ]
    channels = clean[0].shape[-1]
    enc, dec, depth = WIDTHS[args.width]
    torch.manual_seed(0)
    model = SSDNModel(
        ModelConfig(channels=channels, enc=enc, dec=dec, depth=depth, noise="gaussian", noise_init={"sigma": 25 / 255})
    ).to(dev)
    opt = torch.optim.Adam(model.net.parameters(), lr=args.lr, betas=(0.9, 0.99))
    steps_before, seconds_before = 0, 0.0
    warmup = 0.05
    if args.resume:
        blob = read_model_file(args.resume)
        model.load_state_dict(blob["state"])
        if blob.get("optimizer"):
            opt.load_state_dict(blob["optimizer"])
            warmup = 0.0  # Adam's moments are restored: no need to ramp up again
        steps_before = int(blob["meta"]["training"]["steps"])
        seconds_before = float(blob["meta"]["training"]["elapsed"])
    rng = np.random.default_rng(steps_before)
    sampler = CropSampler(clean, args.patch, rng)
    cast = network_precision(dev)
    t0 = time.perf_counter()
    step = 0
    while True:
        f = (time.perf_counter() - t0) / args.budget
        if f >= 1:
            break
        for g in opt.param_groups:
            g["lr"] = args.lr * _lr_factor(f + 1e-3, warmup, 0.3)
        x = torch.from_numpy(sampler.sample(args.batch)[0]).to(dev)
        sigma = torch.from_numpy(rng.uniform(5, 50, size=(args.batch, 1, 1)) / 255).to(dev)
        y = x + sigma[:, None].float() * torch.randn_like(x)
        with cast:
            out = model(y)
        mu, sx = split_prior(out, channels)
        loss = nll_loss("gaussian", y.permute(0, 2, 3, 1), mu, sx, {"sigma": sigma}).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if all(torch.isfinite(q.grad).all() for q in model.net.parameters() if q.grad is not None):
            opt.step()
        step += 1
        if step % 100 == 0:
            print(f"step {step} loss {loss.item():.4f} {time.perf_counter() - t0:.0f}s", flush=True)
    model.eval()
    save_model(
        model,
        args.output,
        optimizer_state=opt.state_dict(),
        train_state={
            "steps": steps_before + step,
            "elapsed": seconds_before + time.perf_counter() - t0,
            "generic": f"self-supervised on {Path(args.data).name} {'RGB' if args.color else 'gray'}, Gaussian sigma "
            f"U[5,50]/255, {args.width}",
        },
    )
    print(f"saved {args.output}: {steps_before + step} steps")


if __name__ == "__main__":
    main()
