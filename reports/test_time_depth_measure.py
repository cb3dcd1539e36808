"""The measurements of the test-time depth page on one trained checkpoint: quality at each
loop count (and with each level rule where the count differs from the trained one), and
early-exit curves (loops run per token against quality) with the decoding speed measured
in the same run on the same inputs."""

from __future__ import annotations

import time

import torch

from loopformer.models.depth import ExitMeter, ExitRule, run_depth

RULES = ("repeat_last", "cycle", "spread")
PROMPT = "ROMEO:\n"
NEW_TOKENS = 128


def measure_lm(model, task, sweep: tuple[int, ...], exits: dict[str, tuple[float, ...]]) -> dict:
    trained = model.decoder.n_loops
    out = {"sweep": {}, "rules": {}, "exits": []}
    for loops in sweep:
        out["sweep"][str(loops)] = _lm_loss(model, task, loops)
    for loops in (2 * trained, 4 * trained):
        out["rules"][str(loops)] = {rule: _lm_loss(model, task, loops, rule) for rule in RULES}
    if model.config.is_spiral:
        return out  # early exit applies to full-resolution loops only
    for loops in (trained, 2 * trained):
        out["exits"].append(_lm_exit_point(model, task, loops, None, 0.0))
        for criterion, thresholds in exits.items():
            for threshold in thresholds:
                out["exits"].append(_lm_exit_point(model, task, loops, criterion, threshold))
    return out


def _lm_loss(model, task, loops: int, rule: str = "repeat_last", rule_exit: ExitRule | None = None,
             meter: ExitMeter | None = None) -> float:
    with torch.no_grad(), run_depth(model, loops=loops, rule=rule, exit=rule_exit, meter=meter):
        return task.evaluate(model)["val_loss"]


def _lm_exit_point(model, task, loops: int, criterion: str | None, threshold: float) -> dict:
    """Validation loss and loops per token at one exit threshold, and the tokens/s of
    greedy generation (batch 1 and batch 8) with the same exit."""
    rule = ExitRule(criterion, threshold) if criterion else None
    meter = ExitMeter()
    loss = _lm_loss(model, task, loops, rule_exit=rule, meter=meter)
    point = {"loops": loops, "criterion": criterion, "threshold": threshold, "val_loss": loss,
             "mean_loops": meter.mean_loops if rule else float(loops)}
    for batch in (1, 8):
        point[f"gen_tokens_per_s_b{batch}"], point[f"gen_mean_loops_b{batch}"] = _lm_speed(model, task, loops,
                                                                                          rule, batch)
    return point


def _lm_speed(model, task, loops: int, rule: ExitRule | None, batch: int) -> tuple[float, float]:
    from loopformer.sampling import sample

    ids = torch.tensor([task.tok.encode(PROMPT)] * batch)
    with run_depth(model, loops=loops, exit=rule):
        sample(model, ids, 8, temperature=0)  # warm-up, not counted
    meter = ExitMeter()
    with run_depth(model, loops=loops, exit=rule, meter=meter):
        start = time.perf_counter()
        sample(model, ids, NEW_TOKENS, temperature=0)
        elapsed = time.perf_counter() - start
    return batch * NEW_TOKENS / elapsed, (meter.mean_loops if rule else float(loops))


def measure_mt(model, task, sweep: tuple[int, ...], exits: dict[str, tuple[float, ...]]) -> dict:
    trained = model.decoder.n_loops
    out = {"sweep": {}, "rules": {}, "exits": []}
    for loops in sweep:
        with torch.no_grad(), run_depth(model, loops=loops):
            res = task.evaluate(model)
        out["sweep"][str(loops)] = {"val_loss": res["val_loss"], "val_bleu": res["val_bleu"]}
    for loops in (2 * trained, 4 * trained):
        out["rules"][str(loops)] = {rule: _mt_bleu(model, task, loops, rule)["val_bleu"] for rule in RULES}
    for loops in (trained, 2 * trained):
        out["exits"].append({"loops": loops, "criterion": None, "threshold": 0.0,
                             **_mt_bleu(model, task, loops, "repeat_last")})
        for criterion, thresholds in exits.items():
            for threshold in thresholds:
                point = _mt_bleu(model, task, loops, "repeat_last", ExitRule(criterion, threshold))
                out["exits"].append({"loops": loops, "criterion": criterion, "threshold": threshold, **point})
    return out


def _mt_bleu(model, task, loops: int, rule: str, exit_rule: ExitRule | None = None) -> dict:
    """Greedy val BLEU, decoder loops per target token and target tokens/s (batched as
    the library translates: length-sorted batches of up to 128 sentences)."""
    from loopformer.tasks.translation import bleu

    val = task.val_data
    meter = ExitMeter()
    with torch.no_grad(), run_depth(model, loops=loops, rule=rule, exit=exit_rule, meter=meter):
        start = time.perf_counter()
        hyps = task.translate(model, val["src"], beam=1)
        elapsed = time.perf_counter() - start
    tokens = sum(len(task.tgt_tok.encode(h)) + 1 for h in hyps)
    mean = meter.mean("token") if exit_rule is not None else float(loops)
    return {"val_bleu": bleu(hyps, val["ref"])[0].score, "mean_loops": mean,
            "tokens_per_s": tokens / elapsed}
