"""napari contributions (widgets, readers, writers, samples). Never import torch here."""
