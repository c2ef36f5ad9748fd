"""Training the course's tiny LM on the synthetic long-context tasks (chapter 6): :func:`train`."""

from longctx_lab.lm.train.data import make_batch
from longctx_lab.lm.train.loop import PASSKEY_MODEL, PASSKEY_RECIPE, TrainResult, train

__all__ = ["PASSKEY_MODEL", "PASSKEY_RECIPE", "TrainResult", "make_batch", "train"]
