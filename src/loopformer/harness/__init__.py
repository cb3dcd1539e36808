"""lm-evaluation-harness model type ``loopformer`` (``pip install "loopformer[eval]"``).

lm-eval has no plugin discovery for model types, so the type is registered when this
module is imported; ``python -m loopformer.harness`` is lm-eval's own command line with it
registered::

    python -m loopformer.harness --model loopformer --model_args pretrained=RUN/best --batch_size 16 \\
        --tasks my_task --include_path my_tasks/

``model_args``: ``pretrained`` (a language-model checkpoint folder), ``device``, ``loops``,
``level_rule``, ``exit`` (test-time depth, as on the command line). From Python, import
this package and pass ``model="loopformer"`` to ``lm_eval.simple_evaluate``.

Scoring is loopformer's own: a request's context and continuation are encoded separately
and concatenated; inputs longer than the model's context keep their last tokens. The
models have no beginning-of-text token, so the first token of a text with no context is
conditioned on nothing and is not scored (rolling log-likelihood scores tokens 2..n, in
consecutive windows of the model's context, as ``loopformer eval`` does; the last window
keeps a full context).
"""

from __future__ import annotations

import sys
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F
from lm_eval.api.model import LM
from lm_eval.api.registry import register_model

from ..device import module_device
from ..errors import ConfigError
from ..models.depth import ExitRule, run_depth
from ..sampling import sample
from ..tasks.registry import load_checkpoint


@register_model("loopformer")
class LoopformerLM(LM):
    def __init__(self, pretrained: str, batch_size: int | str = 16, device: str = "cpu", loops: int | None = None,
                 level_rule: str = "repeat_last", exit: str | None = None, max_gen_toks: int = 256,
                 **kwargs) -> None:
        super().__init__()
        model, task, kind = load_checkpoint(pretrained)
        if kind != "language":
            raise ConfigError(f"{pretrained} is a {kind} checkpoint; lm-eval needs a language model")
        if str(device).startswith("cuda") and not torch.cuda.is_available():
            device = "cpu"  # lm-eval's default device is cuda
        self.model, self.tok = model.to(device), task.tok
        self.context = model.config.max_len
        self.batch = int(batch_size) if str(batch_size).isdigit() else 16  # "auto": 16
        self.max_gen_toks = int(max_gen_toks)
        changed = loops is not None or exit is not None or level_rule != "repeat_last"
        self._depth = (lambda: run_depth(self.model, loops=int(loops) if loops is not None else None,
                                         rule=level_rule, exit=ExitRule.parse(exit) if exit else None)) \
            if changed else nullcontext

    # -- scoring -------------------------------------------------------------------------
    def loglikelihood(self, requests) -> list[tuple[float, bool]]:
        pairs = []
        for req in requests:
            ctx, cont = req.args
            c, x = self.tok.encode(ctx), self.tok.encode(cont)
            if not c:  # no token to condition on: the first continuation token is context
                c, x = x[:1], x[1:]
            pairs.append((c, x))
        return self._score(pairs)

    def loglikelihood_rolling(self, requests) -> list[float]:
        out = []
        for req in requests:
            ids = self.tok.encode(req.args[0])
            windows = rolling_windows(ids, self.context)
            out.append(sum(lp for lp, _ in self._score(windows)))
        return out

    def _score(self, pairs: list[tuple[list[int], list[int]]]) -> list[tuple[float, bool]]:
        """(sum of log-probabilities, whether greedy) of each continuation after its context."""
        results: list[tuple[float, bool]] = [(0.0, True)] * len(pairs)
        order = sorted(range(len(pairs)), key=lambda i: -len(pairs[i][0]) - len(pairs[i][1]))
        for start in range(0, len(order), self.batch):
            chunk = [i for i in order[start:start + self.batch] if pairs[i][1]]
            if chunk:
                for i, res in zip(chunk, self._score_batch([pairs[i] for i in chunk])):
                    results[i] = res
        return results

    @torch.no_grad()
    def _score_batch(self, pairs) -> list[tuple[float, bool]]:
        seqs = [(c + x)[-(self.context + 1):] for c, x in pairs]
        width = max(len(s) for s in seqs) - 1
        inputs = torch.zeros(len(seqs), width, dtype=torch.long)
        for row, s in enumerate(seqs):
            inputs[row, : len(s) - 1] = torch.tensor(s[:-1])
        with self._depth():
            logp = F.log_softmax(self.model(inputs.to(module_device(self.model))).float(), -1).cpu()
        out = []
        for row, ((_, x), s) in enumerate(zip(pairs, seqs)):
            n = len(s) - 1
            lp = logp[row, n - len(x): n]
            target = torch.tensor(x)
            out.append((float(lp.gather(1, target[:, None]).sum()), bool(lp.argmax(-1).eq(target).all())))
        return out

    # -- generation ----------------------------------------------------------------------
    def generate_until(self, requests) -> list[str]:
        return [self._generate(*req.args) for req in requests]

    def _generate(self, context: str, gen_kwargs: dict) -> str:
        until = gen_kwargs.get("until") or []
        until = [until] if isinstance(until, str) else list(until)
        limit = int(gen_kwargs.get("max_gen_toks", self.max_gen_toks))
        ids = self.tok.encode(context)[-(self.context - 1):] or [0]
        with self._depth():
            out = sample(self.model, torch.tensor([ids]), min(limit, self.context - len(ids)), temperature=0)
        text = self.tok.decode(out[0, len(ids):].tolist())
        cut = min((text.find(u) for u in until if u and u in text), default=len(text))
        return text[:cut]


def rolling_windows(ids: list[int], context: int) -> list[tuple[list[int], list[int]]]:
    """(context, continuation) pairs scoring tokens 1..n-1 once each: consecutive windows of
    ``context`` inputs, the last one shifted back so it keeps a full context."""
    pairs = []
    for start in range(0, len(ids) - 1, context):
        end = min(start + context, len(ids) - 1)
        lo = max(0, end - context)
        pairs.append((ids[lo: start + 1], ids[start + 1: end + 1]))
    return pairs


def write_heldout_tasks(text: str, folder: str | Path, docs: int = 20, doc_chars: int | None = 500,
                        cloze: int = 100, seed: int = 0) -> list[str]:
    """Two offline lm-eval tasks over ``text`` (e.g. a run's validation text), written to
    ``folder`` as YAML beside their JSONL data: ``loopformer_heldout`` (rolling
    log-likelihood of ``docs`` consecutive passages of ``doc_chars`` characters, or of the
    whole text as one passage with ``doc_chars=None``: word and byte perplexity, bits per
    byte) and ``loopformer_cloze`` (4-way multiple choice: which 16 characters follow a
    64-character context; the wrong choices are spans from elsewhere in the text).
    Returns the task names (``--include_path folder --tasks ...``)."""
    import json
    import random

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    passages = [text] if doc_chars is None else \
        [text[i * doc_chars:(i + 1) * doc_chars] for i in range(min(docs, len(text) // doc_chars))]
    rng = random.Random(seed)
    items = []
    for _ in range(cloze):
        i = rng.randrange(0, len(text) - 80)
        true = text[i + 64:i + 80]
        wrong = [text[j:j + 16] for j in (rng.randrange(0, len(text) - 16) for _ in range(3))]
        choices = [true] + wrong
        rng.shuffle(choices)
        items.append({"context": text[i:i + 64], "choices": choices, "label": choices.index(true)})
    for name, rows in (("heldout", [{"text": p} for p in passages]), ("cloze", items)):
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "loopformer_heldout.yaml").write_text(HELDOUT_YAML.format(data=folder / "heldout.jsonl"))
    (folder / "loopformer_cloze.yaml").write_text(CLOZE_YAML.format(data=folder / "cloze.jsonl"))
    return ["loopformer_heldout", "loopformer_cloze"]


HELDOUT_YAML = """task: loopformer_heldout
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: loglikelihood_rolling
doc_to_text: ""
doc_to_target: "{{{{text}}}}"
metric_list:
  - metric: word_perplexity
  - metric: byte_perplexity
  - metric: bits_per_byte
"""
CLOZE_YAML = """task: loopformer_cloze
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{context}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{label}}}}"
target_delimiter: ""
metric_list:
  - metric: acc
"""


def main() -> None:
    """lm-eval's command line with ``--model loopformer`` as the default model type."""
    from lm_eval.__main__ import cli_evaluate

    if "--model" not in sys.argv:
        sys.argv[1:1] = ["--model", "loopformer"]
    cli_evaluate()
