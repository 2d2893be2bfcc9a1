"""Neural networks on ``Value``s, as in micrograd: modules, losses, optimizers, a training loop.

>>> import tracegrad as tg
>>> model = tg.nn.MLP(2, [16, 16, 1], seed=0)
>>> len(model.parameters())
337
"""
from .losses import binary_cross_entropy, hinge_loss, mse_loss
from .module import MLP, Layer, Module, Neuron
from .optim import SGD, Adam, Optimizer
from .train import train
from .trainer import Trainer

__all__ = ["Adam", "Layer", "MLP", "Module", "Neuron", "Optimizer", "SGD", "Trainer", "binary_cross_entropy",
           "hinge_loss", "mse_loss", "train"]
