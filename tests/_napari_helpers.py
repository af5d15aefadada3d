"""Helpers shared by the napari widget tests (fast training settings, waiting for workers)."""

import dataclasses

TIMEOUT = 60_000  # ms; a tiny network trains its few steps in about a second


def tiny(widget, budget="20", unit="iterations"):
    """Fast settings: tiny network, small crops, CPU."""
    widget.width_combo.setCurrentText("tiny")
    widget.patch_edit.setText("16")
    widget.batch_edit.setText("2")
    widget.budget_unit.setCurrentText(unit)
    widget.budget_edit.setText(budget)
    widget.device_combo.setCurrentText("cpu")


def wait(qtbot, widget):
    """Wait until the widget has handled its worker's finished signal."""
    qtbot.waitUntil(lambda: widget.worker is None, timeout=TIMEOUT)


def train(qtbot, widget, resume=False):
    worker = widget.start(resume=resume)
    assert worker is not None, widget.status.text()
    wait(qtbot, widget)
    return worker


def fast_previews(monkeypatch, every=0.05):
    """Previews every ``every`` seconds instead of every 3 s."""
    import napari_ssdn._napari._train_widget as tw

    real = tw.validate_train

    def validate(fields):
        request, errors = real(fields)
        return (dataclasses.replace(request, preview_every=every) if request else request), errors

    monkeypatch.setattr(tw, "validate_train", validate)


# -- fixtures shared by the napari test modules (import the ones a module uses) -----------
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def fresh_registry():
    """Each test starts with no trained or loaded models."""
    from napari_ssdn._napari._model_registry import session_models

    session_models().clear()
    yield
    session_models().clear()


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One torch thread: on a small shared CI machine, OpenMP threads competing with the GUI
    thread and other jobs make each step many times slower."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


@pytest.fixture(scope="module")
def tiny_model():
    """A 1-channel model trained for a few steps (not through the widget)."""
    import torch

    from napari_ssdn.core import TrainConfig, Trainer
    from napari_ssdn.samples import noisy_cells

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    noisy, _ = noisy_cells(64)
    trainer = Trainer(noisy, "YX", TrainConfig(iterations=3, width="tiny", patch=16, batch=2, device="cpu"))
    for _ in trainer.run():
        pass
    torch.set_num_threads(n)
    return trainer.model
