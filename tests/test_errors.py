"""One error vocabulary: core errors mark the settings they name, and each front end words
them its own way (Python arguments, command-line options, widget fields)."""

import pickle

import numpy as np
import pytest

from napari_ssdn import cli
from napari_ssdn._napari._words import in_widget_terms
from napari_ssdn._napari.train._validation import TrainFields, validate_train
from napari_ssdn.cli.text import in_cli_terms
from napari_ssdn.core import TrainConfig
from napari_ssdn.core.errors import Setting, SSDNError, setting


def test_error_names_its_setting_in_each_front_end():
    err = SSDNError(
        f"{setting('blind', (6, 6))} is too large; use {setting('blind', '5,5')} or give {setting('sigma')}"
    )
    assert str(err) == "blind='6,6' is too large; use blind='5,5' or give sigma"
    assert err.setting == "blind" and err.settings[1] == Setting("blind", "5,5")
    assert in_cli_terms(err) == "--blind 6,6 is too large; use --blind 5,5 or give --sigma"
    assert in_widget_terms(err) == "Blind region '6,6' is too large; use Blind region '5,5' or give the sigma field"


def test_error_keeps_its_settings_through_pickling():
    err = SSDNError(f"{setting('device', 'cuda:3')} is missing; use {setting('device', 'cpu')}")
    back = pickle.loads(pickle.dumps(err))
    assert str(back) == str(err) and back.settings == err.settings
    assert in_cli_terms(back) == "--device cuda:3 is missing; use --device cpu"


@pytest.mark.parametrize(
    "config, python, cli_text, widget",
    [
        (dict(subsample=9), "subsample=9 must", "--subsample 9 must", "Subsample '9' must"),
        (
            dict(ndim=3, subsample=2),
            "volumes (ndim=3) take subsample=1",
            "volumes (--3d) take --subsample 1",
            "volumes (Network 3D) take Subsample '1'",
        ),
        (dict(noise="salt"), "noise='salt' is not a noise model", "--noise salt is not", "Noise model 'salt' is not"),
    ],
)
def test_core_settings_errors_are_worded_per_front_end(config, python, cli_text, widget):
    with pytest.raises(SSDNError) as info:
        TrainConfig(**config).validate()
    assert python in str(info.value)
    assert cli_text in in_cli_terms(info.value)
    assert widget in in_widget_terms(info.value)


def test_widget_validation_names_the_blind_region_field():
    _, errors = validate_train(TrainFields(shape=(64, 64), axes="YX", blind="0"))
    assert errors["blind"].startswith("Blind region '0' is not a blind region")


def test_cli_error_names_the_option(tmp_path, capsys):
    import tifffile

    tifffile.imwrite(tmp_path / "small.tif", np.random.default_rng(0).random((20, 40), dtype=np.float32))
    code = cli.main(
        ["train", str(tmp_path / "small.tif"), "-o", str(tmp_path / "m.ssdn"), "--blind", "6,6", "--iterations", "1"]
    )
    err = capsys.readouterr().err
    assert code != 0
    assert "ssdn: error: --blind 6,6 hides 11 pixels across but the smallest image is 20 pixels along Y" in err
    assert "(e.g. --blind 5,6)" in err and "\x02" not in err
    assert not (tmp_path / "m.ssdn").exists()
