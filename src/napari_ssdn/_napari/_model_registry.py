"""The model registry of this napari process, shared by the Train and Denoise widgets.

The widgets never call each other: the Train widget adds models here and the Denoise
widget lists what is here. Models are kept as opaque objects, so this module needs no torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from psygnal import Signal

__all__ = ["SessionModel", "ModelRegistry", "session_models"]


@dataclass
class SessionModel:
    """A model available in this session.

    Attributes
    ----------
    name : str
        Unique display name (``"run <n> (<layer>)"`` or the file name).
    model : SSDNModel
        The model itself.
    info : dict
        Model-file style metadata: ``training`` state, ``optimizer`` state (or None), ...
    source : str
        ``"trained"`` or the path of the file it was loaded from.
    saved : str or None
        The file a trained model was last saved to.
    """

    name: str
    model: object
    info: dict = field(default_factory=dict)
    source: str = "trained"
    saved: str | None = None

    @property
    def unsaved(self) -> bool:
        """Trained in this session and in no file: removing it from the session loses it."""
        return self.source == "trained" and self.saved is None

    @property
    def channels(self) -> int:
        """Number of image channels the model was trained on."""
        return int(self.model.config.channels)

    @property
    def ndim(self) -> int:
        """2 for image models, 3 for volume models."""
        return int(getattr(self.model.config, "ndim", 2))


class ModelRegistry:
    """An ordered name -> :class:`SessionModel` map that announces changes.

    Signals
    -------
    changed()
        A model was added, replaced or removed.
    """

    changed = Signal()

    def __init__(self) -> None:
        self._models: dict[str, SessionModel] = {}
        self._runs = 0

    def next_run(self) -> int:
        """The number of the next training run of this session (1, 2, ...): each run's model
        is kept under its own name, so a new run never replaces an earlier one."""
        self._runs += 1
        return self._runs

    def add(self, entry: SessionModel) -> SessionModel:
        """Add ``entry``, replacing a model of the same name."""
        self._models[entry.name] = entry
        self.changed.emit()
        return entry

    def remove(self, name: str) -> None:
        """Forget the model ``name`` (no error when absent)."""
        if self._models.pop(name, None) is not None:
            self.changed.emit()

    def get(self, name: str) -> SessionModel:
        """The model called ``name``; raises KeyError naming the known models."""
        try:
            return self._models[name]
        except KeyError:
            raise KeyError(f"no session model {name!r}; known: {', '.join(self._models) or 'none'}") from None

    def names(self) -> list[str]:
        """Names, oldest first."""
        return list(self._models)

    def __contains__(self, name: str) -> bool:
        return name in self._models

    def __len__(self) -> int:
        return len(self._models)

    def clear(self) -> None:
        """Forget all models; run numbers start again at 1."""
        self._runs = 0
        if self._models:
            self._models.clear()
            self.changed.emit()


_REGISTRY = ModelRegistry()


def session_models() -> ModelRegistry:
    """The registry shared by all widgets of this Python process."""
    return _REGISTRY
