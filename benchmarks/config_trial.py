"""One Set12 image, one training configuration: the quick trial behind default choices.

    python benchmarks/config_trial.py 02.png 300 /tmp/m.ssdn "{'push': 0.0, 'width': 'tiny', 'lr': 2e-3}"

Same protocol as gaussian.py (the 256 x 256 Set12 images in order, Gaussian sigma 25 with
seed 1000 + index, sigma learned); the optional dict overrides TrainConfig fields, plus
``push`` (weight of the paper's -0.1 * std term) and ``freeze`` (fraction of the budget
with the noise level held at its classical estimate). Prints one JSON line.
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import add_gaussian, load_clean, psnr8  # noqa: E402

from napari_ssdn.core import Trainer, TrainConfig, denoise, training  # noqa: E402

name, budget, out = sys.argv[1], float(sys.argv[2]), sys.argv[3]
extra = eval(sys.argv[4]) if len(sys.argv) > 4 else {}  # a literal dict from the command line
if "push" in extra:
    training.NOISE_PUSH = extra.pop("push")
if "prior_std" in extra:
    training.PRIOR_STD_START = extra.pop("prior_std")
if "beta" in extra:
    training.NLL_BETA = extra.pop("beta")
if "freeze" in extra:
    training.NOISE_FREEZE = extra.pop("freeze")
data = load_clean(str(Path(__file__).parents[1] / ".." / "shared" / "data" / "set12"), None, 256)
idx = [n for n, _ in data].index(name)
clean = data[idx][1]
noisy = add_gaussian(clean, 25 / 255, 1000 + idx)
trainer = Trainer([noisy], ["YX"], TrainConfig(time_limit=budget, **extra))
for _ in trainer.run():
    pass
trainer.save(out)
res = denoise(trainer.model, noisy, "YX", ("prior-mean", "posterior-mean"))
p, q = psnr8(res["prior-mean"], clean), psnr8(res["posterior-mean"], clean)
print(json.dumps(dict(img=name, cfg=sys.argv[4] if len(sys.argv) > 4 else "{}", steps=trainer.step,
                      sigma=round(trainer.model.noise_params_data()["sigma"] * 255, 2), prior=round(p, 2), post=round(q, 2), gain=round(q - p, 2))))
