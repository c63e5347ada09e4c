"""wa: WeightAlign (Shi, Li, Liu, van Gemert, ICPR 2020) and its relatives, on minigrad.

    import wa
    model = wa.models.build("resnet20", norm="gn+wa")

    wa.functional   the ops with hand-derived backward passes: weight_align (eq. 10),
                    weight_standardize, weight_norm, batch_channel_norm
    wa.nn           WAConv2d, WSConv2d, WNConv2d, BatchChannelNorm
    wa.norms        norm specs such as "gn+wa" -> (conv class, norm layer)
    wa.models       plain8, vgg11/16, resnet18/34/50/101/152, resnet20
"""
__version__ = "0.1.0"

from minigrad.gradcheck_graph import register_library

from . import functional, models, nn, norms
from .models import build

register_library(__file__)   # gradcheck_graph reports the caller's line, not wa's internals
__all__ = ["functional", "models", "nn", "norms", "build"]
