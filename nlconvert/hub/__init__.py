"""Publishing converted networks: Hugging Face hub folders and torch.hub entries.

:mod:`.export` writes a hub folder (``config.json``, ``model.safetensors``, a ``README.md``
model card, optionally ``model.onnx``) after checking the weights against the Caffe2
reference; :mod:`.card` writes the model card; :mod:`.torchhub` is what the repository's
``hubconf.py`` calls (an entry per zoo architecture; ``pretrained=True`` downloads the
official checkpoint once, converts it once, and caches the converted file). The folder's
format itself is :mod:`nlconvert.model.hubfolder`, which every reader of model files uses.
"""

from .export import HubExport, export_hub

__all__ = ["HubExport", "export_hub"]
