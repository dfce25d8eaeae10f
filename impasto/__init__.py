"""impasto: paint a photo in the style of an artwork.

Iterative (Gatys) stylisation optimises pixels against perceptual losses of a frozen VGG; fast
(Johnson) stylisation runs a feed-forward network trained on COCO against the same losses,
exported to ONNX. This top-level module stays light: heavy parts import on first use.
"""

from .errors import ImpastoError

__version__ = "0.1.0"
__all__ = ["ImpastoError", "__version__"]
