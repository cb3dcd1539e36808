"""docs/results/interop.md from the records in docs/results/interop/."""

from __future__ import annotations

import json
from pathlib import Path

PAGE = "interop.md"


def write_page(folder: Path) -> Path:
    records = {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}
    lines = ["# Using loopformer models elsewhere: measured", "",
             "Written by `python -m reports interop` (see its `--help`) from the records in `interop/`.",
             "How to export and evaluate: [docs/interop.md](../interop.md).", ""]
    lines += _ct2_section({k: v for k, v in records.items() if k.startswith("ct2-")})
    lines += _hf_section({k: v for k, v in records.items() if k.startswith("hf-")})
    lines += _speed_section({k: v for k, v in records.items() if k.startswith("speed-")})
    lines += _beams_section({k: v for k, v in records.items() if k.startswith("beams-")})
    lines += _lmeval_section({k: v for k, v in records.items() if k.startswith("lmeval-")})
    path = folder.parent / PAGE
    path.write_text("\n".join(lines).rstrip() + "\n")
    return path


def _ct2_section(records: dict) -> list[str]:
    lines = ["## CTranslate2: the same translations from an exported model", ""]
    if not records:
        return lines + ["No record yet (`--part ct2`).", ""]
    lines += ["Multi30k test2016 (1,000 sentences), the same source token ids, batches of 32 sentences sorted by "
              "length; looped models are exported unrolled with their level signals folded into the weights. "
              "`same` counts hypotheses identical to loopformer's with the same search, beam and length "
              "penalty α.", "",
              "| checkpoint | engine | weights | search | beam | α | BLEU | ΔBLEU | same | seconds |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for rec in records.values():
        base = {(r["beam"], r.get("length_penalty"), _search(r)): r["bleu"] for r in rec["rows"]
                if r["engine"] == "loopformer"}
        for r in rec["rows"]:
            alpha = r.get("length_penalty")
            ref = base.get((r["beam"], alpha, _search(r)), base[(r["beam"], alpha, "loopformer")])
            search = "–" if r["beam"] == 1 else f"{_search(r)}'s"
            lines.append(f"| {rec['checkpoint']} | {r['engine']} | {r['dtype']} | {search} | {r['beam']} | "
                         f"{'–' if r['beam'] == 1 or alpha is None else alpha} | {r['bleu']:.2f} | "
                         f"{r['bleu'] - ref:+.2f} | {r['same_as_loopformer']} / {rec['sentences']} | "
                         f"{r['seconds']:.1f} |")
    rec = next(iter(records.values()))
    lines += ["", f"{rec['threads']} threads. ΔBLEU and `same` are against loopformer running the same search "
              "with the same beam and length penalty α. The two engines' beam searches differ: loopformer's "
              "keeps a hypothesis that has ended among its k beams and normalises the winner's score by GNMT's "
              "((5 + len) / 6)^α; CTranslate2's sets an ended hypothesis aside, goes on with k live ones, and "
              "normalises by len^α over the tokens before EOS. `loopformer.beam_aside.beam_search_aside` is "
              "CTranslate2's search run by loopformer (rows with search \"ctranslate2's\"). "
              f"sacreBLEU signature: `{rec['rows'][0]['signature']}`.", ""]
    return lines


def _search(row: dict) -> str:
    """Whose beam search produced a row (records without the field: each engine its own)."""
    return row.get("search") or ("ctranslate2" if row["engine"] == "ctranslate2" else "loopformer")


def _hf_section(records: dict) -> list[str]:
    lines = ["## Hugging Face `generate` on an exported translation model", ""]
    if not records:
        return lines + ["No record yet (`--part hf`).", ""]
    lines += ["Multi30k test2016 through `AutoModelForSeq2SeqLM.generate` (batches of 32, the same token ids) "
              "against loopformer's own search. Greedy is the same algorithm; beam search is Hugging Face's "
              "(finished hypotheses set aside, scores normalised by len^α) against loopformer's (finished "
              "hypotheses stay among the beams, GNMT's ((5 + len) / 6)^α).", "",
              "| checkpoint | engine | beam | BLEU | same as loopformer | seconds |", "|---|---|---|---|---|---|"]
    for rec in records.values():
        for r in rec["rows"]:
            lines.append(f"| {rec['checkpoint']} | {r['engine']} | {r['beam']} | {r['bleu']:.2f} | "
                         f"{r['same_as_loopformer']} / {rec['sentences']} | {r['seconds']:.1f} |")
    return lines + [""]


def _speed_section(records: dict) -> list[str]:
    lines = ["## Decoding speed against CTranslate2", ""]
    if not records:
        return lines + ["No record yet (`--part speed`).", ""]
    for rec in records.values():
        machine = rec.get("machine")
        where = (f" on {machine['cpu']} (torch {machine['torch']}, CTranslate2 {machine['ctranslate2']})"
                 if machine else "")
        lines += [f"`{rec['preset']}`, untrained weights held by every engine: batch {rec['batch']}, "
                  f"{rec['src_len']} source tokens, exactly {rec['new_tokens']} new tokens per row, "
                  f"{rec['threads']} threads{where}. Each engine runs in a process of its own; best of "
                  f"{rec['repeats']} after a warm-up, over {rec.get('rounds', 1)} round(s) in which the engines "
                  "take turns. loopformer holds its packed weights across calls, as `translate` does. "
                  "loopformer's and CTranslate2's fp32 greedy outputs identical: "
                  f"**{rec['fp32_greedy_identical']}**.", ""]
        if "before" in rec:
            b = rec["before"]
            lines += [f"\"loopformer (before)\" is commit `{b['commit']}`, timed the same way in the same run "
                      f"(fp32 greedy outputs identical to the current code: **{b['fp32_greedy_identical']}**).", ""]
        lines += ["| engine | weights | beam | seconds | new tokens/s |", "|---|---|---|---|---|"]
        for r in rec["rows"]:
            lines.append(f"| {r['engine']} | {r['dtype']} | {r['beam']} | {r['seconds']:.2f} | "
                         f"{r['new_tokens_per_s']:,.0f} |")
        lines += [""] + _ratios(rec) + [""] + _splits(rec)
    return lines


def _splits(rec: dict) -> list[str]:
    rows = [r for r in rec["rows"] if "split" in r]
    if not rows:
        return []
    out = ["Where loopformer's beam search spends its time (seconds of one run): the encoder, the decoder's "
           "steps, the cache's row reordering, and the search's own work (log-softmax, top-k, bookkeeping). "
           "Profiling the earlier search (`torch.profiler`) showed three costs beyond the model's matmuls, "
           "each now removed: the cross-attention read k copies of each sentence's encoder keys and values "
           "at every step (the encoder output now stays one row per sentence and its k beams attend to it "
           "as one block of k queries); every step gathered every row of the self-attention cache into new "
           "buffers (now each beam's best continuation keeps its row, and only the rows of beams that died "
           "are overwritten, in place); and `topk` over all k × vocabulary sums per sentence (now a max over "
           "blocks of 64 entries first). In bf16 the attention also copied each cache view before "
           "multiplying it; it now reads it in place.", "",
           "| engine | weights | beam | encoder | decoder steps | cache reordering | search | total |",
           "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        sp = r["split"]
        out.append(f"| {r['engine']} | {r['dtype']} | {r['beam']} | {sp.get('encode', 0):.3f} | "
                   f"{sp.get('decode', 0):.3f} | {sp.get('reorder', 0):.3f} | {sp['search']:.3f} | {sp['total']:.3f} |")
    return out + [""]


def _ratios(rec: dict) -> list[str]:
    speed = {(r["engine"], r["dtype"], r["beam"]): r["new_tokens_per_s"] for r in rec["rows"]}
    beams = sorted({r["beam"] for r in rec["rows"]})
    ours = ["loopformer"] + (["loopformer (before)"] if "before" in rec else [])
    out = []
    for b in beams:
        name = "greedy" if b == 1 else f"beam {b}"
        for engine in ours:
            fp = speed[(engine, "float32", b)] / speed[("ctranslate2", "float32", b)]
            bf = speed[(engine, "bfloat16", b)] / speed[("ctranslate2", "int8", b)]
            out.append(f"- {name}: {engine} fp32 is **{fp:.2f}×** CTranslate2 fp32; bf16 is "
                       f"**{bf:.2f}×** CTranslate2 int8.")
    b = beams[-1]
    for engine in [*ours, "ctranslate2"]:
        cost = speed[(engine, "float32", 1)] / speed[(engine, "float32", b)]
        out.append(f"- beam {b} costs {engine} (fp32) {cost:.2f}× its greedy time.")
    return out


def _beams_section(records: dict) -> list[str]:
    if not records:
        return []
    first = next(iter(records.values()))
    lines = ["### The same hypotheses as before?", "",
             f"test2016 decoded by this loopformer and by commit `{first['before']['commit']}` (before the beam "
             "search's speed-ups) from the same checkpoints, batches of 32 sentences sorted by length. "
             "`same` counts identical hypotheses.", "",
             "| checkpoint | weights | beam | α | same | BLEU | BLEU before |", "|---|---|---|---|---|---|---|"]
    for rec in records.values():
        for r in rec["rows"]:
            lines.append(f"| {rec['checkpoint']} | {r['dtype']} | {r['beam']} | "
                         f"{'–' if r['beam'] == 1 else r['length_penalty']} | {r['same']} / {r['sentences']} | "
                         f"{r['bleu']:.2f} | {r['bleu_before']:.2f} |")
    return lines + ["", "Greedy search is unchanged. Where beam hypotheses differ, the two searches met candidates "
                    "of equal score at the edge of the beam, and which of equal scores `torch.topk` keeps is not "
                    "specified: the grouped cross-attention sums in another order (differences of ~1e-7), and "
                    "hypotheses now keep their rows, so ties can fall the other way. In fp32 such ties are rare "
                    "(the looped sentence that differs had two continuations of one beam with log-probabilities "
                    "equal to the last bit in the earlier search); bf16 logits carry 8 significant bits, so equal "
                    "scores are common and about 1% of beam hypotheses differ, with BLEU within noise.", ""]


def _lmeval_section(records: dict) -> list[str]:
    lines = ["## lm-evaluation-harness", ""]
    if not records:
        return lines + ["No record yet (`--part lmeval`).", ""]
    for rec in records.values():
        res = rec["lm_eval"]
        held, cloze = res["loopformer_heldout"], res["loopformer_cloze"]
        lines += [f"`{Path(rec['checkpoint']).parent.name}` (a test-time-depth page run): lm-eval "
                  f"{rec['lm_eval_version']}, offline tasks written by "
                  "`loopformer.harness.write_heldout_tasks` over the first "
                  f"{rec['windows']} validation windows ({rec['characters']:,} characters, context {rec['context']}).",
                  "", "| task | metric | value |", "|---|---|---|"]
        for m in ("word_perplexity", "byte_perplexity", "bits_per_byte"):
            lines.append(f"| loopformer_heldout | {m} | {held[m + ',none']:.4f} |")
        lines.append(f"| loopformer_cloze | acc | {cloze['acc,none']:.4f} ± {cloze.get('acc_stderr,none', 0):.4f} |")
        lines += ["", f"Loss per token from lm-eval's byte perplexity (ln byte-ppl × bytes / predicted tokens): "
                  f"**{rec['lm_eval_loss_per_token']:.5f}**; loopformer's own loss on the same windows: "
                  f"**{rec['loopformer_val_loss']:.5f}**.", ""]
    return lines
