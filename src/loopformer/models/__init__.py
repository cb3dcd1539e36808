"""Task models built on the looped-stack engine."""

from ..config import ModelConfig
from .base import LoopformerModel
from .decoder import CausalLM
from .levels import LevelAdapter, PerLevelNorms, UniversalTiming
from .memory import check_fits
from .ringformer import RingFormerLevels
from .schedules import FullResolution, LoopSchedule
from .seq2seq import Seq2SeqModel
from .spiral import SpiralSchedule
from .stack import LoopedStack
from .vit import ViTClassifier

MODEL_CLASSES = {
    "seq2seq": Seq2SeqModel,
    "vit": ViTClassifier,
    "decoder": CausalLM,
}


def build_model(config: ModelConfig) -> LoopformerModel:
    """Instantiate the task model a config describes (refused, before any allocation,
    when its weights would not fit in the memory available)."""
    cls = MODEL_CLASSES[config.task]
    check_fits(cls, config)
    return cls(config)


__all__ = ["CausalLM", "FullResolution", "LevelAdapter", "LoopSchedule", "LoopedStack", "LoopformerModel",
           "MODEL_CLASSES", "PerLevelNorms", "RingFormerLevels", "Seq2SeqModel", "SpiralSchedule", "UniversalTiming",
           "ViTClassifier", "build_model"]
