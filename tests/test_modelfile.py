"""Model files: save, load, resume, and nothing unpickled."""

import numpy as np
import pytest
import torch

from napari_ssdn.core import SSDNError, TrainConfig, Trainer, denoise, load_model

FAST = dict(width="tiny", patch=32, batch=4, device="cpu", val_every=20)


def test_save_load_and_resume(tmp_path, clean_and_noisy):
    """A saved model reloads identically and training resumes from its steps and optimizer."""
    _, noisy, _ = clean_and_noisy
    trainer = Trainer(noisy, "YX", TrainConfig(iterations=10, **FAST))
    for _ in trainer.run():
        pass
    path = tmp_path / "m.ssdn"
    trainer.save(path)
    model, info = load_model(path)
    assert info["training"]["steps"] == 10
    assert info["optimizer"] is not None
    a = denoise(trainer.model, noisy, "YX")
    b = denoise(model, noisy, "YX")
    np.testing.assert_array_equal(a, b)
    resumed = Trainer(noisy, "YX", TrainConfig(iterations=5, **FAST), resume=model, resume_info=info)
    for _ in resumed.run():
        pass
    assert resumed.train_state()["steps"] == 15
    # The default start was the shipped network: the resumed run stays a fine-tune.
    assert resumed.train_state()["init"] == "generic" and resumed.lr == trainer.lr == pytest.approx(3e-4)
    assert not torch.equal(next(resumed.model.parameters()), next(trainer.model.parameters()))


def test_model_file_is_not_unpickled(tmp_path, clean_and_noisy):
    """Loading refuses files that hold arbitrary Python objects."""
    import pickle

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    bad = tmp_path / "evil.ssdn"
    torch.save({"meta": "{}", "state": {}, "x": Evil()}, bad)
    with pytest.raises(SSDNError, match="not a readable napari-ssdn model"):
        load_model(bad)
    (tmp_path / "junk.ssdn").write_bytes(pickle.dumps([1, 2]) + b"garbage")
    with pytest.raises(SSDNError):
        load_model(tmp_path / "junk.ssdn")
