"""Hugging Face ``transformers`` models of loopformer checkpoints (``pip install
"loopformer[hf]"``). Importing this package registers the ``loopformer`` model type with
the Auto classes; ``import loopformer`` alone never imports ``transformers``.

    loopformer export hf RUN/best hf-model
    >>> import loopformer.hf
    >>> from transformers import AutoModelForCausalLM, AutoTokenizer
    >>> model = AutoModelForCausalLM.from_pretrained("hf-model")
"""

from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageClassification, AutoModelForSeq2SeqLM

from .cache import LoopformerCache
from .config import LoopformerConfig
from .export import export_hf, import_hf
from .modeling import LoopformerForCausalLM, LoopformerForImageClassification, LoopformerForSeq2SeqLM

AutoConfig.register("loopformer", LoopformerConfig, exist_ok=True)
AutoModelForCausalLM.register(LoopformerConfig, LoopformerForCausalLM, exist_ok=True)
AutoModelForSeq2SeqLM.register(LoopformerConfig, LoopformerForSeq2SeqLM, exist_ok=True)
AutoModelForImageClassification.register(LoopformerConfig, LoopformerForImageClassification, exist_ok=True)

__all__ = ["LoopformerCache", "LoopformerConfig", "LoopformerForCausalLM", "LoopformerForImageClassification",
           "LoopformerForSeq2SeqLM", "export_hf", "import_hf"]
