"""wa: WeightAlign (Shi, Li, Liu, van Gemert, ICPR 2020) and its relatives, on minigrad.

    import wa
    model = wa.models.build("resnet20", norm="gn+wa")
    ds = wa.data.load_dataset("cifar10-sample")           # offline, real CIFAR-10 images
    train, test = wa.data.make_loaders(ds, batch_size=64)
    test_loss, test_acc = wa.loop.evaluate(model, test)   # wa.loop: train_step, train_epoch
    model, config = wa.load_run("runs/first")             # a wa-train run folder

    wa.functional   the ops with hand-derived backward passes: weight_align (eq. 10),
                    weight_standardize, weight_norm, batch_channel_norm
    wa.nn           WAConv2d, WSConv2d, WNConv2d, BatchChannelNorm
    wa.norms        norm specs such as "gn+wa" -> (conv class, norm layer)
    wa.models       plain8, vgg11/16, resnet18/34/50/101/152, resnet20
    wa.data         CIFAR-10/100, the bundled sample, the synthetic set, loaders
    wa.loop         the training loop: train_step, train_epoch, evaluate
"""
__version__ = "0.1.0"

from minigrad.gradcheck_graph import register_library

from . import data, functional, loop, models, nn, norms
from .models import build
from .run_folder import load_run

register_library(__file__)   # gradcheck_graph reports the caller's line, not wa's internals
__all__ = ["data", "functional", "loop", "models", "nn", "norms", "build", "load_run"]
