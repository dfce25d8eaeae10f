"""Networks and the perceptual objective: VGG loss network with its weight sources, losses."""

from .losses import (ContentLoss, HistogramLoss, MRFLoss, PerceptualLoss, StyleLoss, TVLoss, gram)
from .tensors import to_array, to_tensor
from .vgg import VGGFeatures, layer_names
from .weights import VGGWeights, load_vgg_weights

__all__ = ["ContentLoss", "HistogramLoss", "MRFLoss", "PerceptualLoss", "StyleLoss", "TVLoss", "gram",
           "to_array", "to_tensor", "VGGFeatures", "layer_names", "VGGWeights", "load_vgg_weights"]
