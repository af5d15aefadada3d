"""Training settings (core/training/settings.py): validation names the setting and its value."""

import re

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


def test_every_bad_setting_is_reported_at_once_under_its_name():
    config = TrainConfig(lr=0.5, patch=3, subsample=9, seed=-1, holdout=0.9, noise_params={"sigma": -1.0})
    found = config.problems()
    assert list(found) == ["sigma", "patch", "holdout", "subsample", "lr", "seed"], found
    assert all(isinstance(e, SSDNError) for e in found.values())
    assert found["lr"].settings[0] == ("lr", "0.5") and "at most 0.1" in str(found["lr"])
    # validate raises the first of them, in the table's order
    with pytest.raises(SSDNError) as err:
        config.validate()
    assert str(err.value) == str(found["sigma"])
    assert TrainConfig().problems() == {}


@pytest.mark.parametrize("lr, ok", [(0.1, True), (0.1001, False), (1.0, False), (1e-3, True), (0.0, False)])
def test_the_core_bounds_the_learning_rate(lr, ok):
    assert ("lr" not in TrainConfig(lr=lr).problems()) is ok


def test_the_table_holds_the_dataclass_defaults_and_every_user_setting():
    import dataclasses

    from napari_ssdn.core.training.fields import FIELDS

    settings = {f.name: f for f in dataclasses.fields(TrainConfig) if f.name != "tuning"}
    assert set(FIELDS) == set(settings)
    for name, f in FIELDS.items():
        default = settings[name].default
        if default is dataclasses.MISSING:
            default = settings[name].default_factory()
        assert f.default == default, name
        assert f.help and f.problem(f.default) is None, name
        assert f.kind != "choice" or f.default in f.choices or f.default is None, name


def test_the_table_words_init_auto_and_the_warm_start_rates_as_the_core_has_them():
    from napari_ssdn.core.nets.warmstart import AUTO_START_NOISE
    from napari_ssdn.core.training.fields import field_help

    for noise in AUTO_START_NOISE[1]:
        assert noise in field_help("init")
    assert "3e-4" in field_help("lr") and "1.5 megapixels" in field_help("lr")
    assert "light" in field_help("width") and "tiny on a CPU" in field_help("width")


def test_the_table_words_init_auto_as_the_warm_start_takes_it():
    from napari_ssdn.core.nets.warmstart import AUTO_START_NOISE, BLIND_MODES
    from napari_ssdn.core.training.fields import FIELDS

    auto = FIELDS["init"].auto
    gray, rest = auto.split(" is ", 1)[1].split(" on gray 2D images")
    rgb = rest.split(" on RGB 2D images")[0]
    assert set(re.findall(r"[a-z-]+", gray)) - {"or"} == set(AUTO_START_NOISE[1])
    assert set(re.findall(r"[a-z-]+", rgb)) - {"or"} == set(AUTO_START_NOISE[3])
    assert all(mode in auto for mode in BLIND_MODES) and "supervised" not in auto


def test_a_blind_region_reads_as_the_pixels_it_hides():
    from napari_ssdn.core.constants import region_extent, region_text

    assert region_extent((2, 3)) == "3 x 5" and region_extent((4,)) == "7"
    assert region_text((2, 3)).startswith(region_extent((2, 3)) + " pixels")


def test_the_blind_regions_extent_is_worked_out_in_one_place():
    """``2 k - 1`` written out anywhere but the helper could drift from it."""
    from pathlib import Path

    import napari_ssdn

    root = Path(napari_ssdn.__file__).parent
    by_hand = re.compile(r"2 \* (int\()?k\)? - 1")
    found = [
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if path.name != "constants.py" and by_hand.search(path.read_text(encoding="utf-8"))
    ]
    assert not found, found


def _actions(command: str) -> dict:
    import argparse

    from napari_ssdn.cli.parser import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return {a.dest: a for a in sub.choices[command]._actions}


def _train_actions():
    return _actions("train")


def test_every_cli_training_option_takes_its_help_choices_and_default_from_the_table():
    from napari_ssdn.cli.parser import TRAIN_FIELDS
    from napari_ssdn.core.training.fields import FIELDS

    actions = _train_actions()
    for dest, name in TRAIN_FIELDS.items():
        action, f = actions[dest], FIELDS[name]
        assert action.help.replace("%%", "%") == f.text, dest
        if f.kind == "choice" and name != "per_image":
            assert tuple(action.choices) == tuple(c for c in f.choices if c is not None), dest
        if f.default is not None and name != "per_image":
            assert action.default == f.default, dest


@pytest.mark.parametrize("command", ["train", "denoise"])
def test_the_cli_noise_parameter_options_take_their_help_from_the_table(command):
    from napari_ssdn.cli.commands import NOISE_FLAGS
    from napari_ssdn.core.constants import NOISE_PARAMS
    from napari_ssdn.core.training.fields import noise_param_help

    actions = _actions(command)
    assert sorted(NOISE_FLAGS.values()) == sorted(p for ps in NOISE_PARAMS.values() for p in ps)
    for flag, name in NOISE_FLAGS.items():
        assert actions[flag].help.replace("%%", "%").startswith(noise_param_help(name) + " ("), flag


def test_the_cli_help_of_init_auto_names_every_noise_the_shipped_start_takes():
    from napari_ssdn.core.nets.warmstart import AUTO_START_NOISE

    helps = _train_actions()["init"].help
    assert all(noise in helps for noise in AUTO_START_NOISE[1])


def test_every_noise_parameter_field_tooltip_holds_the_tables_words():
    from napari_ssdn._napari.train._train_help import param_help
    from napari_ssdn.core.constants import NOISE_PARAMS
    from napari_ssdn.core.training.fields import noise_param_help

    for name in {p for ps in NOISE_PARAMS.values() for p in ps}:
        assert noise_param_help(name) in param_help(name), name


def test_every_widget_tooltip_holds_its_settings_help():
    from napari_ssdn._napari.train._train_help import HELP, TOOLTIP_FIELDS
    from napari_ssdn.core.training.fields import field_help

    for key, name in TOOLTIP_FIELDS.items():
        assert field_help(name).lower() in HELP[key].lower(), key


def test_the_widget_reports_each_bad_field_from_the_core_at_once():
    from napari_ssdn._napari.train._validation import TrainFields, validate_train

    fields = TrainFields(shape=(64, 64), axes="YX", lr="0.5", seed="-1", subsample="9", device="gpu", batch="0")
    request, errors = validate_train(fields)
    assert request is None
    assert {"lr", "seed", "subsample", "device", "batch"} <= set(errors), errors
    assert errors["lr"].startswith("Learning rate '0.5' is too large"), errors["lr"]
    assert "Subsample '9'" in errors["subsample"] and "Device 'gpu'" in errors["device"]
    fields = TrainFields(shape=(64, 64), axes="YX", noise="impulse", params={"alpha": (False, "1.5")})
    assert "below 1" in validate_train(fields)[1]["param:alpha"]
    request, errors = validate_train(TrainFields(shape=(64, 64), axes="YX", lr="0.01", blind="2"))
    assert not errors and request.config["lr"] == 0.01 and request.config["blind"] == (2, 2)
