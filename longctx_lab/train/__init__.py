"""Training the course's tiny LM on the synthetic long-context tasks (chapter 6): :func:`train`."""

from longctx_lab.train.data import make_batch
from longctx_lab.train.loop import TrainResult, train

__all__ = ["TrainResult", "make_batch", "train"]
