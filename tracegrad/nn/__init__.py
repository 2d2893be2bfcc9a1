"""Neural networks on ``Value``s, as in micrograd: modules, losses, optimizers, a training loop.

>>> import tracegrad as tg
>>> model = tg.nn.MLP(2, [16, 16, 1], seed=0)
>>> len(model.parameters())
337
"""
from .functional import log_softmax, logsumexp, softmax
from .losses import binary_cross_entropy, cross_entropy, hinge_loss, mse_loss
from .module import MLP, Layer, Module, Neuron, TanhMLP, TanhNeuron
from .optim import SGD, Adam, Optimizer
from .saving import load, save
from .train import train
from .trainer import Trainer

binary_cross_entropy_loss = binary_cross_entropy  # MicroAutograd's name, beside mse_loss and hinge_loss

__all__ = ["Adam", "Layer", "MLP", "Module", "Neuron", "Optimizer", "SGD", "TanhMLP", "TanhNeuron", "Trainer",
           "binary_cross_entropy", "binary_cross_entropy_loss", "cross_entropy", "hinge_loss", "load",
           "log_softmax", "mse_loss", "save", "softmax", "train"]
