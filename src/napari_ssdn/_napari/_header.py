"""The top line of each widget (the device in use and a link to the docs), the scroll area
that lets the widgets' forms shrink to a small screen and the word-wrapped labels that
keep long texts inside the dock's width."""

from __future__ import annotations

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QFrame, QHBoxLayout, QLabel, QScrollArea, QSizePolicy, QWidget

from ._common import in_widget_terms
from ._workers import WorkerGroup

__all__ = ["DOCS_URL", "MIN_FORM_HEIGHT", "WidgetHeader", "scrollable", "docs_url", "wrapping"]

#: Fallback when the package metadata is not available (run from a source tree).
DOCS_URL = "https://github.com/napari-ssdn/napari-ssdn/tree/main/docs"


def docs_url() -> str:
    """The project's documentation URL (``[project.urls] Documentation`` of pyproject)."""
    try:
        from importlib.metadata import metadata

        for entry in metadata("napari-ssdn").get_all("Project-URL") or ():
            label, _, url = entry.partition(",")
            if label.strip().lower() == "documentation" and url.strip():
                return url.strip()
    except Exception:  # noqa: BLE001 - not installed: the known address
        pass
    return DOCS_URL


class WidgetHeader(QWidget):
    """ "Device: …" (word-wrapped, in the widget's own wording) and a "Help" link.

    Parameters
    ----------
    anchor : str
        Section of docs/napari.md the link opens (e.g. ``"train-denoiser"``).
    """

    def __init__(self, anchor: str = "", parent=None):
        super().__init__(parent)
        self.device_label = wrapping(QLabel("Device: resolved when you run"))
        self.device_label.setToolTip(
            "The device training and denoising run on (Device field; auto picks CUDA, then Apple MPS, then the CPU)"
        )
        self.help_url = f"{docs_url()}/napari.md" + (f"#{anchor}" if anchor else "")
        self.help_label = QLabel(f'<a href="{self.help_url}">Help</a>')
        self.help_label.setOpenExternalLinks(True)
        self.help_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextBrowserInteraction)
        self.help_label.setToolTip(f"Open the documentation of this widget: {self.help_url}")
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.device_label, 1)
        lay.addWidget(self.help_label, 0, Qt.AlignmentFlag.AlignTop)
        self.workers = WorkerGroup(self)

    def resolve(self, device: str, threads: int | None = None) -> None:
        """Resolve ``device`` in a thread (that imports torch) and show what it gives, with
        the CPU threads a run would take (``threads``: as set; None: the cores free)."""
        from ._jobs import device_label_job

        self.device_label.setText("Device: checking…")
        self.device_label.setStyleSheet("")
        self.workers.start(device_label_job, device.strip().lower(), threads, on={"returned": self.show_device})

    def show_device(self, result: tuple[bool, str]) -> None:
        """Show ``(ok, text)`` from :func:`~napari_ssdn._napari._jobs.device_label_job`."""
        ok, text = result
        try:
            self.device_label.setText(f"Device: {text}" if ok else "\u26a0 " + in_widget_terms(text))
            self.device_label.setStyleSheet("" if ok else "color: #e05050;")
        except RuntimeError:  # the widget was deleted while the device was being resolved
            pass

    def show_invalid(self, message: str) -> None:
        """The Device field holds no device name: say so instead of a stale device."""
        self.device_label.setText("Device: \u26a0 " + message)
        self.device_label.setStyleSheet("color: #e05050;")


#: Height (px) a widget's scroll area keeps at least, so that a dock sharing the column
#: with another shows a few rows of its form instead of one (the Denoise dock under a
#: Train dock that has run got 51 px on a 768-pixel screen).
MIN_FORM_HEIGHT = 180


def wrapping(label: QLabel) -> QLabel:
    """``label`` word-wrapped within the width it is given: no text (not even a long word or
    path) widens the form, and its height follows the lines the text takes at that width."""
    label.setWordWrap(True)
    label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.MinimumExpanding)
    label.setMinimumWidth(0)
    return label


def scrollable(content: QWidget) -> QScrollArea:
    """``content`` in a frameless scroll area, so the dock can be short or narrow and every
    control can still be scrolled to (a horizontal scroll bar only when the dock is narrower
    than the form's narrowest layout)."""
    area = QScrollArea()
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
    area.setMinimumHeight(MIN_FORM_HEIGHT)
    area.setWidget(content)
    return area
