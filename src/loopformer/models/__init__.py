"""Task models built on the looped-stack engine."""

from ..config import ModelConfig
from .base import LoopformerModel
from .decoder import CausalLM
from .seq2seq import Seq2SeqModel
from .stack import LoopedStack
from .vit import ViTClassifier

MODEL_CLASSES = {
    "seq2seq": Seq2SeqModel,
    "vit": ViTClassifier,
    "decoder": CausalLM,
}


def build_model(config: ModelConfig) -> LoopformerModel:
    """Instantiate the task model a config describes."""
    return MODEL_CLASSES[config.task](config)


__all__ = ["CausalLM", "LoopedStack", "LoopformerModel", "MODEL_CLASSES", "Seq2SeqModel", "ViTClassifier",
           "build_model"]
