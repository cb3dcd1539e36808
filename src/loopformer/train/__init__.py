"""The trainer shared by every task."""

from .config import TrainConfig, lr_at
from .trainer import Trainer, TrainingError

__all__ = ["TrainConfig", "Trainer", "TrainingError", "lr_at"]
