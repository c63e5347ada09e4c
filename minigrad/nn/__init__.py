"""Layers and the Module machinery, as `torch.nn`: `import minigrad.nn as nn`.

    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))
"""
from .. import functional  # noqa: F401  (nn.functional, as in PyTorch)
from . import init
from .layers import (AdaptiveAvgPool2d, AvgPool2d, BatchNorm1d, BatchNorm2d, Conv2d, Dropout,
                     Flatten, GroupNorm, Identity, InstanceNorm2d, LayerNorm, Linear, MaxPool2d,
                     ReLU)
from .module import Module, ModuleList, Parameter, Sequential

__all__ = ["init", "functional", "Module", "Parameter", "Sequential", "ModuleList", "Conv2d",
           "Linear", "BatchNorm1d", "BatchNorm2d", "GroupNorm", "LayerNorm", "InstanceNorm2d",
           "ReLU", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "Flatten", "Dropout", "Identity"]
