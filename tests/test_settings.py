"""Training settings (core/training/settings.py): validation names the setting and its value."""

import pytest

from napari_ssdn.core import SSDNError, TrainConfig

BAD = [
    ("noise", "gausian"),
    ("mode", "blind"),
    ("per_image", "maybe"),
    ("iterations", 0),
    ("patch", -8),
    ("batch", 2.5),
    ("val_every", 0),
    ("holdout", 0.9),
    ("ndim", 4),
    ("anisotropy", 0.0),
    ("subsample", 5),
    ("time_limit", 0),
    ("width", "huge"),
    ("lr", -1e-3),
    ("pair_method", "average"),
]


@pytest.mark.parametrize("name, value", BAD)
def test_a_bad_value_is_refused_naming_the_setting_and_the_value(name, value):
    with pytest.raises(SSDNError) as err:
        TrainConfig(**{name: value}).validate()
    first = err.value.settings[0]
    assert first.name == name and first.value == str(value), err.value.settings
    assert f"{name}=" in str(err.value) and str(value) in str(err.value)


def test_subsampling_is_refused_for_volumes_naming_both_settings():
    with pytest.raises(SSDNError) as err:
        TrainConfig(ndim=3, subsample=2).validate()
    assert [s.name for s in err.value.settings][:2] == ["subsample", "ndim"]


def test_good_settings_pass_unchanged():
    config = TrainConfig(noise="poisson", iterations=10, patch=32, holdout=0.0, subsample=2, lr=1e-4)
    assert config.validate() is config


def test_the_budget_is_the_smaller_of_steps_and_time():
    steps = TrainConfig(iterations=100)
    assert steps.budget_fraction(25, 1e6) == 0.25 and steps.planned_steps(25, 1e6) == 100
    timed = TrainConfig(time_limit=10.0)
    assert timed.budget_fraction(50, 5.0) == 0.5 and timed.planned_steps(50, 5.0) == 100
    both = TrainConfig(iterations=1000, time_limit=10.0)
    assert both.budget_fraction(100, 5.0) == 0.5  # the time runs out first
    assert TrainConfig().budget_fraction(1000, 1e6) == 0.5  # neither: 2000 steps


def test_noise_model_follows_the_given_parameters():
    assert TrainConfig(noise_params={"sigma": 2.0}).noise_model_given == "gaussian"
    assert TrainConfig(noise_params={"a": 0.1, "b": 1.0}).noise_model_given == "poisson-gaussian"
    assert TrainConfig().noise_model_given is None
    with pytest.raises(SSDNError, match="do not belong to one noise model"):
        _ = TrainConfig(noise_params={"sigma": 1.0, "lam": 2.0}).noise_model_given


def test_blind_region_is_read_from_text_numbers_and_tuples():
    assert TrainConfig(blind="1,3").blind_region_given() == (1, 3)
    assert TrainConfig(blind=2).blind_region_given() == (2, 2)
    assert TrainConfig(blind=(1, 2, 3), ndim=3).blind_region_given() == (1, 2, 3)
    assert TrainConfig().blind_region_given() is None
