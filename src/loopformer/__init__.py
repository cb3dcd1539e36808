"""loopformer: looped Transformers (RingFormer, SpiralFormer) and their baselines.

Importing the package changes no global torch state (threads, anomaly mode, default
dtype, grad mode): that is left to the caller and to the command-line tool.
"""

from .analysis.params import ParameterCount, count_parameters
from .checkpoint import load_model, save_model
from .config import ModelConfig
from .errors import CheckpointError, ConfigError, LoopformerError
from .layers.cache import KVCache
from .models import build_model
from .registry import create_model, get_config, list_models

__version__ = "0.1.0"

__all__ = [
    "CheckpointError", "ConfigError", "KVCache", "LoopformerError", "ModelConfig", "ParameterCount",
    "build_model", "count_parameters", "create_model", "get_config", "list_models", "load_model",
    "save_model", "__version__",
]
