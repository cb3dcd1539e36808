"""The measurements of the interoperability page, one JSON record each.

- ``ct2``: a trained translation checkpoint exported to CTranslate2 (fp32 and int8),
  Multi30k test2016 translated by loopformer and by CTranslate2 from the same token ids
  (greedy and beam 4, batches of 32 sentences sorted by length): sacreBLEU, identical
  hypotheses, wall time.
- ``speed``: untrained weights of a preset (``vanilla-mt-base``), batch 32, 32 source
  and exactly 32 new tokens (EOS never ends a row): new tokens/s of loopformer (fp32,
  bf16; weights packed once for all calls, as ``translate`` does), CTranslate2 (fp32,
  int8) and onnxruntime holding the same weights, greedy and beam 4, each engine in a
  process of its own, best of ``repeats``.
- ``lmeval``: lm-eval on offline tasks over a language model's validation text, next to
  ``loopformer``'s own validation loss on the same windows.
"""

from __future__ import annotations

import contextlib
import copy
import tempfile
import time
from pathlib import Path

import torch

from loopformer.beam_aside import beam_search_aside
from loopformer.data.batching import pad_batch
from loopformer.data.tokenizer import BOS, EOS, PAD
from loopformer.deploy.ctranslate2 import build_spec, export_ctranslate2
from loopformer.deploy.onnx import OnnxTranslator, export_onnx
from loopformer.generate import beam_search, decode, greedy_search
from loopformer.packing import packed_linears
from loopformer.tasks.translation import bleu

NEVER = -1  # an end-of-sentence id no row emits: every row decodes exactly the steps asked


def _ct2(folder: Path, threads: int):
    import ctranslate2

    return ctranslate2.Translator(str(folder), device="cpu", intra_threads=threads, inter_threads=1)


def _batches(ids: list[list[int]], size: int) -> list[list[int]]:
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    return [order[i:i + size] for i in range(0, len(order), size)]


def translate_loopformer(model, ids, beam, lp, max_len_of, search: str = "loopformer") -> tuple[list[list[int]], float]:
    """test2016 by loopformer's own search, or (``search="ctranslate2"``) by the search
    CTranslate2 runs (:func:`loopformer.beam_aside.beam_search_aside`)."""
    out: list[list[int]] = [[] for _ in ids]
    start = time.perf_counter()
    for idx in _batches(ids, 32):
        src = pad_batch([ids[i] for i in idx], PAD)
        if search == "ctranslate2" and beam > 1:
            hyps = beam_search_aside(model, src, BOS, EOS, max_len_of(src.shape[1]), beam=beam, length_penalty=lp)
        else:
            hyps = decode(model, src, BOS, EOS, max_len_of(src.shape[1]), beam=beam, length_penalty=lp)
        for i, h in zip(idx, hyps.tokens):
            out[i] = h
    return out, time.perf_counter() - start


def translate_ct2(translator, task, ids, beam, lp, max_len_of) -> tuple[list[list[int]], float]:
    backend = task.tok.backend
    out: list[list[int]] = [[] for _ in ids]
    start = time.perf_counter()
    for idx in _batches(ids, 32):
        toks = [[backend.id_to_token(t) for t in ids[i]] for i in idx]
        width = max(len(ids[i]) for i in idx)
        res = translator.translate_batch(toks, beam_size=beam, length_penalty=lp, max_batch_size=32,
                                         max_decoding_length=max_len_of(width))
        for i, r in zip(idx, res):
            out[i] = [task.tgt_tok.backend.token_to_id(t) for t in r.hypotheses[0]]
    return out, time.perf_counter() - start


def measure_ct2(model, task, name: str, threads: int, beam: int) -> dict:
    """test2016 by loopformer and CTranslate2 (fp32, int8): BLEU, agreement, seconds."""
    torch.set_num_threads(threads)
    src, refs = task.split("test2016")
    limit = model.config.max_len - 2
    ids = [row[: limit - 1] + [EOS] for row in task.tok.encode_batch(src)]
    max_len_of = lambda width: min(int(width * 1.5) + 10, model.config.max_len - 1)  # noqa: E731  (as translate)
    lp = task.cfg.length_penalty
    record = {"checkpoint": name, "sentences": len(src), "threads": threads, "length_penalty": lp, "rows": []}
    with tempfile.TemporaryDirectory() as tmp:
        folders = {q: export_ctranslate2(model, task, Path(tmp) / q, None if q == "float32" else q)
                   for q in ("float32", "int8")}
        sizes = {q: (f / "model.bin").stat().st_size for q, f in folders.items()}
        onnx = OnnxTranslator(export_onnx(model, task, Path(tmp) / "onnx"), threads=threads)
        # the run's length penalty, and 0 (raw scores: the engines' normalisations differ)
        for b, alpha in ((1, lp), (beam, lp), (beam, 0.0)):
            ours, secs = translate_loopformer(model, ids, b, alpha, max_len_of)
            record["rows"].append(_row("loopformer", "float32", b, ours, ours, secs, task, refs, alpha, "loopformer"))
            theirs, secs = translate_loopformer(onnx, ids, b, alpha, max_len_of)
            record["rows"].append(_row("onnxruntime", "float32", b, theirs, ours, secs, task, refs, alpha,
                                       "loopformer"))
            if b > 1:  # the same question CTranslate2 answers: its search, run by loopformer
                ours, secs = translate_loopformer(model, ids, b, alpha, max_len_of, "ctranslate2")
                record["rows"].append(_row("loopformer", "float32", b, ours, ours, secs, task, refs, alpha,
                                           "ctranslate2"))
            for q, folder in folders.items():
                theirs, secs = translate_ct2(_ct2(folder, threads), task, ids, b, alpha, max_len_of)
                record["rows"].append(_row("ctranslate2", q, b, theirs, ours, secs, task, refs, alpha, "ctranslate2"))
    record["ct2_model_bytes"] = sizes
    return record


def _row(engine, dtype, beam, hyps, reference_hyps, seconds, task, refs, alpha=None, search=None) -> dict:
    text = [task.tgt_tok.decode(h) for h in hyps]
    score, signature = bleu(text, refs)
    return {"engine": engine, "dtype": dtype, "beam": beam, "length_penalty": alpha, "search": search,
            "bleu": score.score,
            "signature": signature,
            "same_as_loopformer": sum(a == b for a, b in zip(hyps, reference_hyps)), "seconds": seconds,
            "new_tokens": sum(len(h) + 1 for h in hyps)}


def measure_speed(preset: str, threads: int, beam: int, repeats: int, batch: int = 32, length: int = 32,
                  before: str | None = None, rounds: int = 2) -> dict:
    """New tokens/s, exactly ``length`` new tokens per row: loopformer, CTranslate2 and
    onnxruntime each timed in a process of its own (their thread pools would otherwise
    compete: onnxruntime's spin after each call), on the same seeded weights and inputs.
    ``before``: the ``src`` folder of another loopformer version, timed the same way as
    engine "loopformer (before)". The engines take turns for ``rounds`` rounds and each
    row keeps its best time, so that a slow spell of the machine hits none alone."""
    engines = [("loopformer", None), ("ctranslate2", None), ("onnxruntime", None)]
    if before:
        engines.append(("loopformer", str(Path(before).resolve())))
    best: dict = {}
    greedy: dict = {}
    for _ in range(rounds):
        for engine, tree in engines:
            label = engine if tree is None else BEFORE
            part = _in_process(tree, (preset, engine, threads, beam, repeats, batch, length))
            greedy[label] = part["greedy"]
            for row in part["rows"]:
                key = (label, row["dtype"], row["beam"])
                if key not in best or row["seconds"] < best[key]["seconds"]:
                    best[key] = {**row, "engine": label}
    record = {"batch": batch, "src_len": length, "new_tokens": length, "threads": threads, "repeats": repeats,
              "rounds": rounds, "machine": _machine(),
              "fp32_greedy_identical": greedy["loopformer"] == greedy["ctranslate2"], "rows": list(best.values())}
    if before:
        record["before"] = {"tree": before, "commit": _commit(before),
                            "fp32_greedy_identical": greedy["loopformer"] == greedy[BEFORE]}
    return record


BEFORE = "loopformer (before)"


def _in_process(tree: str | None, args: tuple, function: str = "_engine_speed") -> dict:
    """``function(*args)`` of this module in a fresh interpreter, ``tree`` first on its
    import path (a spawned multiprocessing child would take this process's ``sys.path``)."""
    import json
    import os
    import subprocess
    import sys

    env = dict(os.environ)
    if tree:
        env["PYTHONPATH"] = tree + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    code = (f"import json, sys; from reports.interop_measure import {function}; "
            f"print(json.dumps({function}(*json.load(sys.stdin))))")
    done = subprocess.run([sys.executable, "-c", code], input=json.dumps(args), capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1], env=env)
    if done.returncode:
        raise RuntimeError(f"{function}{args} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure_beams(checkpoint: str, before: str, beam: int, threads: int) -> dict:
    """test2016 decoded by this loopformer and by the one in ``before`` (a ``src``
    folder), fp32 and bf16, greedy and beam search: identical hypotheses and BLEU."""
    from loopformer.tasks.translation_run import load_translation_checkpoint

    ours = _in_process(None, (checkpoint, beam, threads), "decode_test2016")
    theirs = _in_process(str(Path(before).resolve()), (checkpoint, beam, threads), "decode_test2016")
    _, task = load_translation_checkpoint(checkpoint)
    _, refs = task.split("test2016")
    rows = []
    for key, hyps in ours.items():
        dtype, b, alpha = key.split("/")
        scores = [bleu([task.tgt_tok.decode(h) for h in found[key]], refs)[0].score for found in (ours, theirs)]
        rows.append({"dtype": dtype, "beam": int(b), "length_penalty": float(alpha), "bleu": scores[0],
                     "bleu_before": scores[1], "same": sum(x == y for x, y in zip(hyps, theirs[key])),
                     "sentences": len(hyps)})
    return {"checkpoint": Path(checkpoint).parent.name, "before": {"tree": before, "commit": _commit(before)},
            "threads": threads, "rows": rows}


def decode_test2016(checkpoint: str, beam: int, threads: int) -> dict:
    """Token ids of test2016 as ``ct2`` decodes it, fp32 and bf16 weights, greedy and
    beam ``beam`` at the run's length penalty and at 0, keyed "dtype/beam/alpha"."""
    from loopformer.tasks.translation_run import load_translation_checkpoint

    torch.set_num_threads(threads)
    model, task = load_translation_checkpoint(checkpoint)
    src, _ = task.split("test2016")
    limit = model.config.max_len - 2
    ids = [row[: limit - 1] + [EOS] for row in task.tok.encode_batch(src)]
    max_len_of = lambda width: min(int(width * 1.5) + 10, model.config.max_len - 1)  # noqa: E731  (as translate)
    lp = task.cfg.length_penalty
    out = {}
    for dtype in ("float32", "bfloat16"):
        held = model.to(getattr(torch, dtype))
        with packed_linears(held):
            for b, alpha in ((1, lp), (beam, lp), (beam, 0.0)):
                out[f"{dtype}/{b}/{alpha}"] = translate_loopformer(held, ids, b, alpha, max_len_of)[0]
    return out


def _machine() -> dict:
    import platform

    import ctranslate2

    cpu = platform.processor() or platform.machine()
    try:
        names = [ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                 if ln.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    return {"cpu": cpu, "torch": torch.__version__, "ctranslate2": ctranslate2.__version__}


def _commit(tree: str) -> str | None:
    import subprocess

    try:
        out = subprocess.run(["git", "-C", tree, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    except OSError:
        return None
    return out.stdout.strip() or None


def _speed_setup(preset: str, batch: int, length: int):
    from loopformer import create_model

    torch.manual_seed(0)
    model = create_model(preset, vocab_size=8000).eval()
    gen = torch.Generator().manual_seed(0)
    src = torch.randint(4, model.config.vocab_size, (batch, length - 1), generator=gen)
    return model, torch.cat([src, torch.full((batch, 1), EOS)], 1)


def _engine_speed(preset, engine, threads, beam, repeats, batch, length) -> dict:
    """One engine's best-of-``repeats`` times (after a warm-up), and its fp32 greedy tokens."""
    torch.set_num_threads(threads)
    model, src = _speed_setup(preset, batch, length)
    with contextlib.ExitStack() as held:
        runs = _engine_runs(engine, model, src, threads, beam, length, tempfile.mkdtemp(), held)
        greedy = runs[("float32", 1)]()
        rows = []
        for (dtype, b), fn in runs.items():
            fn()  # warm-up
            seconds = min(_timed(fn) for _ in range(repeats))
            rows.append({"engine": engine, "dtype": dtype, "beam": b, "seconds": seconds,
                         "new_tokens_per_s": batch * length / seconds})
            if engine == "loopformer" and b > 1:
                rows[-1]["split"] = _beam_split(model if dtype == "float32" else runs.bf16, fn, repeats)
    return {"rows": rows, "greedy": _token_ids(greedy)}


def _beam_split(model, fn, repeats: int) -> dict:
    """Where a beam search's time goes: the encoder, the decoder's steps, the cache's row
    reordering, and the search's own work (the rest: log-softmax, top-k, bookkeeping).
    Timed through instance attributes of this model and its caches (the best of
    ``repeats`` runs by total time), so nothing outside them is touched."""
    spent: dict = {}

    def timed(name, method):
        def run(*args, **kwargs):
            start = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                spent[name] = spent.get(name, 0.0) + time.perf_counter() - start
        return run

    def new_cache():
        cache = make_cache()
        cache.reorder = timed("reorder", cache.reorder)
        return cache

    make_cache = model.new_cache
    model.encode, model.decode = timed("encode", model.encode), timed("decode", model.decode)
    model.new_cache = new_cache
    best = None
    try:
        for _ in range(repeats):
            spent.clear()
            total = _timed(fn)
            if best is None or total < best["total"]:
                best = {"total": total, **spent}
    finally:
        for name in ("encode", "decode", "new_cache"):
            del model.__dict__[name]
    best["search"] = best["total"] - best.get("encode", 0.0) - best.get("decode", 0.0) - best.get("reorder", 0.0)
    return best


class _Runs(dict):
    """The timed calls by (dtype, beam), and the bf16 copy of the model they use."""

    def __init__(self, bf16, runs: dict) -> None:
        super().__init__(runs)
        self.bf16 = bf16


def _engine_runs(engine, model, src, threads, beam, length, tmp, held: contextlib.ExitStack) -> dict:
    if engine == "loopformer":
        bf16 = copy.deepcopy(model).to(torch.bfloat16)
        # weights packed once for all calls, as `loopformer translate` does for a whole test
        # set (CTranslate2 likewise converts its weights once, when it loads them)
        held.enter_context(packed_linears(model))
        held.enter_context(packed_linears(bf16))
        return _Runs(bf16, {(d, b): (lambda m=m, b=b: beam_search(m, src, BOS, NEVER, length, beam=b) if b > 1
                         else greedy_search(m, src, BOS, NEVER, length))
                for d, m in (("float32", model), ("bfloat16", bf16)) for b in (1, beam)})
    if engine == "onnxruntime":
        onnx = OnnxTranslator(export_onnx(model, None, Path(tmp) / "onnx"), threads=threads)
        return {("float32", b): (lambda b=b: beam_search(onnx, src, BOS, NEVER, length, beam=b) if b > 1
                                 else greedy_search(onnx, src, BOS, NEVER, length)) for b in (1, beam)}
    vocab = [f"t{i}" for i in range(model.config.vocab_size)]
    vocab[:4] = ["<pad>", "<bos>", "<eos>", "<unk>"]
    toks = [[vocab[i] for i in row] for row in src.tolist()]
    runs = {}
    for q in ("float32", "int8"):
        spec = build_spec(model, vocab, vocab)
        spec.validate()
        spec.optimize(quantization=None if q == "float32" else q)
        (Path(tmp) / q).mkdir()
        spec.save(str(Path(tmp) / q))
        tr = _ct2(Path(tmp) / q, threads)
        for b in (1, beam):
            runs[(q, b)] = (lambda tr=tr, b=b: tr.translate_batch(
                toks, beam_size=b, max_batch_size=len(toks), min_decoding_length=length,
                max_decoding_length=length, length_penalty=0.0))
    return runs


def _token_ids(out) -> list[list[int]]:
    """Token ids of a loopformer search result or of CTranslate2's results."""
    if hasattr(out, "tokens"):
        return out.tokens
    return [[int(t[1:]) if t.startswith("t") else ["<pad>", "<bos>", "<eos>", "<unk>"].index(t)
             for t in r.hypotheses[0]] for r in out]


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure_lmeval(checkpoint: str, windows: int, work: Path) -> dict:
    """lm-eval (offline tasks over the validation text) and ``loopformer``'s own loss."""
    import math

    import lm_eval

    from loopformer.harness import write_heldout_tasks
    from loopformer.tasks.registry import load_checkpoint

    model, task, _ = load_checkpoint(checkpoint)
    t = task.cfg.context
    ids = task.ids("val")[: windows * t + 1]
    text = task.tok.decode(ids.tolist())
    own = _own_loss(model, ids, t)
    names = write_heldout_tasks(text, work, doc_chars=None, cloze=200)
    out = lm_eval.simple_evaluate(model="loopformer", model_args=f"pretrained={checkpoint}", tasks=names,
                                  batch_size=16, task_manager=lm_eval.tasks.TaskManager(include_path=str(work)))
    res = {k: {m: v for m, v in r.items() if isinstance(v, (int, float))} for k, r in out["results"].items()}
    byte_ppl = res["loopformer_heldout"]["byte_perplexity,none"]
    n_bytes = len(text.encode("utf-8"))
    return {"checkpoint": checkpoint, "windows": windows, "context": t, "characters": len(text), "bytes": n_bytes,
            "lm_eval_version": lm_eval.__version__, "lm_eval": res, "loopformer_val_loss": own,
            "lm_eval_loss_per_token": math.log(byte_ppl) * n_bytes / (windows * t)}


def _own_loss(model, ids, t) -> float:
    """``loopformer eval``'s loss on these windows (consecutive, ``t`` inputs each)."""
    w = ids.unfold(0, t + 1, t)
    with torch.no_grad():
        logits = model(w[:, :-1]).float()
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), w[:, 1:].reshape(-1)).item()


def measure_hf(checkpoint: str, threads: int, beam: int) -> dict:
    """test2016 through the exported Hugging Face model's ``generate`` against loopformer."""
    import transformers

    import loopformer.hf  # noqa: F401  (Auto classes)
    from loopformer.hf import export_hf
    from loopformer.tasks.translation_run import load_translation_checkpoint

    torch.set_num_threads(threads)
    model, task = load_translation_checkpoint(checkpoint)
    src, refs = task.split("test2016")
    lp = task.cfg.length_penalty
    limit = model.config.max_len - 2
    ids = [row[: limit - 1] + [EOS] for row in task.tok.encode_batch(src)]
    max_len_of = lambda width: min(int(width * 1.5) + 10, model.config.max_len - 1)  # noqa: E731
    record = {"checkpoint": Path(checkpoint).parent.name, "sentences": len(src), "threads": threads,
              "length_penalty": lp, "transformers_version": transformers.__version__, "rows": []}
    with tempfile.TemporaryDirectory() as tmp:
        hf = transformers.AutoModelForSeq2SeqLM.from_pretrained(export_hf(checkpoint, Path(tmp) / "hf")).eval()
        for b in (1, beam):
            ours, secs = translate_loopformer(model, ids, b, lp, max_len_of)
            record["rows"].append(_row("loopformer", "float32", b, ours, ours, secs, task, refs))
            theirs, secs = _translate_hf(hf, ids, b, lp, max_len_of)
            record["rows"].append(_row("transformers", "float32", b, theirs, ours, secs, task, refs))
    return record


def _translate_hf(hf, ids, beam, lp, max_len_of) -> tuple[list[list[int]], float]:
    out: list[list[int]] = [[] for _ in ids]
    start = time.perf_counter()
    for idx in _batches(ids, 32):
        src = pad_batch([ids[i] for i in idx], PAD)
        gen = hf.generate(input_ids=src, attention_mask=src.ne(PAD).long(), num_beams=beam, do_sample=False,
                          length_penalty=lp, max_new_tokens=max_len_of(src.shape[1]), early_stopping=False)
        for i, row in zip(idx, gen[:, 1:].tolist()):
            out[i] = row[: row.index(EOS)] if EOS in row else [t for t in row if t != PAD]
    return out, time.perf_counter() - start
