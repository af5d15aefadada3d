r"""One Set12 image, one training configuration: the quick trial behind default choices.

    python benchmarks/ablations/config_trial.py SET12 02.png 300 m.ssdn \
        '{"nll_beta": 0.0, "width": "tiny", "lr": 2e-3}'

SET12 is the folder of the Set12 images (01.png ... 12.png; see benchmarks/README.md).

Same protocol as gaussian.py (the 256 x 256 Set12 images in order, Gaussian sigma 25 with
seed 1000 + index, sigma learned); the optional JSON object overrides TrainConfig fields,
plus any field of Tuning (e.g. ``noise_freeze``, ``prior_std_start``, ``nll_beta``).
Prints one JSON line.
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # common.py and table.py live one level up
from dataclasses import fields  # noqa: E402

from common import add_gaussian, load_clean, psnr8  # noqa: E402

from napari_ssdn.core import TrainConfig, Trainer, Tuning, denoise  # noqa: E402

if len(sys.argv) < 5:
    sys.exit(__doc__)
folder, name, budget, out = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
extra = json.loads(sys.argv[5]) if len(sys.argv) > 5 else {}
tuning = Tuning(**{f.name: extra.pop(f.name) for f in fields(Tuning) if f.name in extra})
data = load_clean(folder, None, 256)
idx = [n for n, _ in data].index(name)
clean = data[idx][1]
noisy = add_gaussian(clean, 25 / 255, 1000 + idx)
trainer = Trainer([noisy], ["YX"], TrainConfig(time_limit=budget, tuning=tuning, **extra))
for _ in trainer.run():
    pass
trainer.save(out)
res = denoise(trainer.model, noisy, "YX", ("prior-mean", "posterior-mean"))
p, q = psnr8(res["prior-mean"], clean), psnr8(res["posterior-mean"], clean)
print(
    json.dumps(
        dict(
            img=name,
            cfg=sys.argv[5] if len(sys.argv) > 5 else "{}",
            steps=trainer.step,
            sigma=round(trainer.model.noise_params_data()["sigma"] * 255, 2),
            prior=round(p, 2),
            post=round(q, 2),
            gain=round(q - p, 2),
        )
    )
)
