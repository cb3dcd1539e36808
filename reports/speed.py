"""Speed page (docs/results/speed.md): the speed targets, measured with ``loopformer bench``.

Each job is one ``loopformer bench ... --json docs/results/speed/<job>.json`` command
(printed on the page as it was run) or one measurement module of this package; finished
jobs are kept, so the page can be completed across sittings and rewritten without
re-timing (``--page-only``). Run on a quiet machine: the ratios are taken within one run,
but other processes still add noise.

    python -m reports speed            # every missing job, then the page
    python -m reports speed --jobs lm-decode --force
    python -m reports speed --gpu      # the GPU jobs (--device cuda)
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

from . import runner
from .paths import RESULTS as DOCS
from .paths import ROOT

RESULTS = DOCS / "speed"
PAGE = "speed.md"  # relative to docs/results
MT = ["--vocab-size", "8000", "--batch", "32", "--src-len", "32", "--tgt-len", "32"]
JOBS: dict[str, list[str]] = {
    "train-mt-base-bf16": ["ringformer-mt-base", "looped-mt-base", "vanilla-mt-base", "--precision", "bf16", *MT,
                           "--workloads", "train", "--baseline", "looped-mt-base", "--repeats", "10"],
    "train-mt-base-fp32": ["ringformer-mt-base", "looped-mt-base", "vanilla-mt-base", *MT,
                           "--workloads", "train", "--baseline", "looped-mt-base", "--repeats", "6"],
    "reference-mt-base": ["ringformer-mt-base:bf16", "ringformer-mt-base:bf16+compile", "torch-transformer:bf16",
                          "torch-transformer:fp32", *MT, "--workloads", "train",
                          "--baseline", "torch-transformer:bf16", "--repeats", "10"],
    "compile-mt-base": ["ringformer-mt-base:bf16", "ringformer-mt-base:bf16+compile", "dropout=0.0", *MT,
                        "--workloads", "train", "--baseline", "ringformer-mt-base:bf16", "--repeats", "6",
                        "--no-peak"],
    "decode-mt-base": ["ringformer-mt-base", "ringformer-mt-base+nopack", *MT,
                       "--workloads", "greedy,greedy-nocache,greedy-rerun,beam",
                       "--baseline", "ringformer-mt-base+nopack", "--repeats", "5", "--no-peak"],
    "decode-mt-base-bf16": ["ringformer-mt-base:bf16", "ringformer-mt-base:bf16+nopack", *MT,
                            "--workloads", "greedy,greedy-nocache,greedy-rerun,beam",
                            "--baseline", "ringformer-mt-base:bf16+nopack", "--repeats", "5", "--no-peak"],
    "spiral-1024": ["spiral-lm-char", "looped-lm-char", "max_len=1024", "--context", "1024", "--batch", "8",
                    "--workloads", "train,prefill", "--baseline", "looped-lm-char", "--repeats", "6", "--no-peak"],
    "lm-decode": ["ringformer-lm-char", "spiral-lm-char", "looped-lm-char", "max_len=1024", "--batch", "1",
                  "--prompt", "64", "--new-tokens", "64", "--positions", "64,512", "--workloads", "decode,core",
                  "--baseline", "looped-lm-char", "--repeats", "5", "--no-peak"],
}


# the same workloads on a GPU (``--gpu``; JSONs in docs/results/speed/gpu/): the CPU jobs,
# plus a batch of 256 sentences, where a GPU still has arithmetic to spare at batch 32
MT256 = ["--vocab-size", "8000", "--batch", "256", "--src-len", "32", "--tgt-len", "32"]
GPU_RESULTS = RESULTS / "gpu"
GPU_JOBS: dict[str, list[str]] = {
    "train-mt-base-bf16": JOBS["train-mt-base-bf16"],
    "train-mt-base-fp32": [*JOBS["train-mt-base-fp32"], "--no-peak"],
    "train-mt-base-bf16-b256": ["ringformer-mt-base", "looped-mt-base", "vanilla-mt-base", "--precision", "bf16",
                                *MT256, "--workloads", "train", "--baseline", "looped-mt-base", "--repeats", "8"],
    "reference-mt-base": ["ringformer-mt-base:bf16", "torch-transformer:bf16", "torch-transformer:fp32", *MT,
                          "--workloads", "train", "--baseline", "torch-transformer:bf16", "--repeats", "10",
                          "--no-peak"],
    "compile-mt-base": JOBS["compile-mt-base"],
    "compile-mt-base-b256": ["ringformer-mt-base:bf16", "ringformer-mt-base:bf16+compile", "torch-transformer:bf16",
                             "dropout=0.0", *MT256, "--workloads", "train", "--baseline", "torch-transformer:bf16",
                             "--repeats", "6", "--no-peak"],
    # packing is a CPU path: the GPU job times the default model alone
    "decode-mt-base": ["ringformer-mt-base", *MT, "--workloads", "greedy,greedy-nocache,greedy-rerun,beam",
                       "--repeats", "5", "--no-peak"],
    "spiral-1024": JOBS["spiral-1024"],
    "lm-decode": JOBS["lm-decode"],
}

# jobs that are measurement modules of this package rather than bench runs
SCRIPTS = {"matmul-shapes": "matmul_shapes", "decode-profile": "decode_profile"}


def _bench(job: str, gpu: bool) -> tuple[list[str], str]:
    """The ``loopformer bench`` arguments of a job and its JSON (relative to the root)."""
    if gpu:
        return [*GPU_JOBS[job], "--device", "cuda"], f"docs/results/speed/gpu/{job}.json"
    return JOBS[job], f"docs/results/speed/{job}.json"


def command(job: str, gpu: bool = False) -> str:
    """The command that measures a job, as the page quotes it."""
    if job in SCRIPTS and not gpu:
        return f"python -m reports {SCRIPTS[job]}"
    args, out = _bench(job, gpu)
    return " ".join(["loopformer", "bench", *args, "--json", out])


def run_job(job: str, gpu: bool = False) -> None:
    """Measure one job in its own process (a bench run or a measurement module)."""
    print(f"== {job}: {command(job, gpu)}", flush=True)
    if job in SCRIPTS and not gpu:
        RESULTS.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "reports", SCRIPTS[job]], check=True, cwd=ROOT)
        return
    args, out = _bench(job, gpu)
    (ROOT / out).parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "loopformer", "bench", *args, "--json", str(ROOT / out)], check=True,
                   cwd=ROOT)


def load(job: str, gpu: bool = False) -> dict | None:
    """A job's JSON, or None when it has not been measured (the page then says how to)."""
    if gpu:
        path = GPU_RESULTS / f"{job}.json"
        return json.loads(path.read_text()) if path.exists() else None
    path = RESULTS / f"{job.replace('-', '_') if job in SCRIPTS else job}.json"
    return json.loads(path.read_text()) if path.exists() else None


def rows(res: dict, workload: str) -> dict[str, dict]:
    """A bench result's rows of one workload, by model entry."""
    return {r["entry"]: r for r in res["rows"] if r["workload"] == workload}


def paired(a: dict, b: dict) -> float:
    """Median over rounds of a's time / b's time (the two were timed alternately)."""
    return statistics.median(x / y for x, y in zip(a["seconds"], b["seconds"]))


def verdict(ok: bool) -> str:
    """How a target reads on the page: in bold, so a reader finds the verdicts at a glance."""
    return "**holds**" if ok else "**does not hold**"


def table(res: dict) -> str:
    """A bench result as a Markdown table with the conditions it was measured under."""
    lines = ["| workload | model | median ms | min–max ms | per s | ratio | GFLOP/s | MFU | memory MiB |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in res["rows"]:
        ratio = f"{r['ratio']:.3f}" if r["ratio"] is not None else ""
        mfu = f"{r['mfu']:.1%}" if r["mfu"] is not None else ""
        mem = f"{r['memory_mib']:,.0f}" if r["memory_mib"] is not None else ""
        rate = f"{r['flops'] / r['median_s'] / 1e9:,.0f}" if r.get("flops") else ""
        lines.append(f"| {r['workload']} | `{r['entry']}` | {r['median_s'] * 1e3:,.1f} | "
                     f"{r['min_s'] * 1e3:,.1f}–{r['max_s'] * 1e3:,.1f} | {r['per_s']:,.0f} {r['unit']} | {ratio} | "
                     f"{rate} | {mfu} | {mem} |")
    peaks = ", ".join(f"{k} {v / 1e9:,.0f} GFLOP/s" for k, v in res["peaks"].items())
    foot = f"\n\n{res['device']}, {res['threads']} threads, torch {res['torch']}"
    foot += f"; matmul peak measured in the same run: {peaks}." if peaks else "."
    if res["baseline"]:
        foot += f" Ratio: median over rounds of time / time of `{res['baseline']}` in the same round."
    kinds = {r["memory_kind"] for r in res["rows"] if r["memory_kind"]}
    if kinds:
        foot += f" Memory: {', '.join(sorted(kinds))}."
    return "\n".join(lines) + foot + "\n"


def section(job: str, title: str, body: list[str]) -> list[str]:
    """A numbered section: its reading, the command, then the table (or, not measured
    yet, the command to run)."""
    res = load(job)
    out = [f"## {title}", ""]
    if res is None:
        return out + [f"Not measured yet: `{command(job)}`", ""]
    return out + body + ["", "```", command(job), "```", "", table(res)]


def render() -> str:
    """The whole page from the jobs' JSONs; a job not measured yet shows its command."""
    out = ["# Speed", "",
           "Every figure below comes from `loopformer bench` or a module of the `reports` package (the command is "
           "under each table; the full JSON is in `docs/results/speed/`). Models are timed alternately in one "
           "process and each ratio is the median over rounds of the per-round ratio, so machine noise hits "
           "both sides alike; absolute figures vary "
           "about ±10% between runs on these 2-core machines. Written by `python -m reports speed`.", "",
           "The numbered sections are the targets, measured on a 2-core CPU (AMD EPYC with AVX-512 BF16, "
           "torch 2.13). The same workloads on a GPU are in the last section but one, with the device named.", ""]
    out += _training() + _reference() + _decoding() + _spiral() + _lm_decode()
    out += _gpu() + _loss_curve()
    return "\n".join(out) + "\n"


def write_page(out: Path = DOCS) -> Path:
    """Write the page under ``out`` (docs/results unless a test renders elsewhere)."""
    path = out / PAGE
    path.write_text(render())
    print(f"wrote {path}")
    return path


def _training() -> list[str]:
    body = []
    for job, label in (("train-mt-base-bf16", "bf16 autocast"), ("train-mt-base-fp32", "fp32")):
        res = load(job)
        if res is None:
            continue
        t = rows(res, "train")
        ring, loop, van = t["ringformer-mt-base"], t["looped-mt-base"], t["vanilla-mt-base"]
        a, b = paired(ring, loop), paired(ring, van)
        body.append(f"- {label}: RingFormer / plain looped **{a:.3f}** (target <= 1.10: {verdict(a <= 1.10)}); "
                    f"RingFormer / vanilla **{b:.3f}** (target <= 1.15: {verdict(b <= 1.15)}).")
    intro = ["A training step (forward, backward, AdamW) of `ringformer-mt-base` (d 512, 6+6 levels, r 32) "
             "against the plain looped model and the vanilla Transformer of the same depth and width, vocabulary "
             "8,000, batch 32 × 32 tokens. The ratios move by about ±0.05 between runs of the same command: "
             "an earlier run (same session, same machine) measured 1.048 (bf16) and 1.111 (fp32) against the "
             "plain looped model, so the fp32 figure sits at the edge of its target.", ""]
    out = section("train-mt-base-bf16", "1. RingFormer's training step against its baselines", intro + body)
    fp32 = load("train-mt-base-fp32")
    if fp32 is not None:
        out += ["```", command("train-mt-base-fp32"), "```", "", table(fp32)]
    return out


def _reference() -> list[str]:
    res = load("reference-mt-base")
    body = ["`ringformer-mt-base` in bf16 autocast (fp32 master weights) against a `torch.nn.Transformer` of the "
            "same size written the usual way (embeddings, sinusoid, `nn.Transformer`, output layer; the library's "
            "AdamW), in bf16 autocast and in fp32; vocabulary 8,000, batch 32 × 32.", ""]
    if res is not None:
        t = rows(res, "train")
        ref = t["torch-transformer:bf16"]
        name = "ringformer-mt-base:bf16"
        speed = 1.0 / paired(t[name], ref)
        body.append(f"- `{name}`: **{speed:.2f}×** the target tokens/s of `torch-transformer:bf16` "
                    f"({t[name]['per_s']:,.0f} against {ref['per_s']:,.0f}; target >= 1.2×: "
                    f"{verdict(speed >= 1.2)}), MFU {t[name]['mfu']:.1%} of the measured bf16 matmul peak "
                    f"(the reference: {ref['mfu']:.1%}). Its bf16 loss curve is fp32's: see the last section.")
        fast = t.get("ringformer-mt-base:bf16+compile")
        if fast is not None:
            body.append(f"- with `+compile` (regional `torch.compile`, dropout 0.1 as in the preset): "
                        f"{1.0 / paired(fast, ref):.2f}× the reference, i.e. {paired(fast, t[name]):.3f}× the "
                        f"eager step time.")
        nodrop = load("compile-mt-base")
        if nodrop is not None:
            c = rows(nodrop, "train")
            r = paired(c["ringformer-mt-base:bf16+compile"], c["ringformer-mt-base:bf16"])
            body += [f"- without dropout (`{command('compile-mt-base')}`): compiled / eager step time "
                     f"**{r:.3f}**.", "",
                     "Compiling the layers pays off only without dropout on this CPU: inductor generates its own "
                     "random numbers, which cost more than the library's CPU dropout (four 16-bit uniforms per "
                     "64-bit draw), while the matmuls that dominate the step are the same library calls either "
                     "way. `compile=true` is therefore off by default."]
    return section("reference-mt-base", "2. Against `torch.nn.Transformer`", body)


def _decoding() -> list[str]:
    return (_decoding_job("decode-mt-base", "fp32", "3. Cached decoding")
            + _decoding_job("decode-mt-base-bf16", "bf16", "3b. Cached decoding in bf16"))


def _decoding_job(job: str, precision: str, title: str) -> list[str]:
    """Cached decoding against re-running the decoder, beam against greedy, packed against
    unpacked weights, and (fp32, when the cached search misses 10×) why."""
    res = load(job)
    name = "ringformer-mt-base" + ("" if precision == "fp32" else f":{precision}")
    body = [f"`ringformer-mt-base` ({precision}, vocabulary 8,000): batch 32, 32 source tokens, 32 new tokens (no "
            "early stop). `greedy-nocache` re-runs the decoder over the whole prefix at every step (encoder once), "
            "`greedy-rerun` the whole model (as decoding without a cache is usually written); "
            "`greedy` and `beam4` use the (level, layer) KV cache. Decoding multiplies through pre-packed "
            "oneDNN weights by default (`loopformer.packing`); `+nopack` is the same model without them, "
            "timed alternately in the same run.", ""]
    if res is None:
        return section(job, title, body)
    g = rows(res, "greedy")[name]
    n = rows(res, "greedy-nocache")[name]
    b = rows(res, "beam4")[name]
    rerun = rows(res, "greedy-rerun").get(name)
    speedup = paired(n, g)
    beam = paired(b, g)
    whole = f", and {paired(rerun, g):.1f}× faster than re-running the whole model" if rerun else ""
    body += [f"- cached greedy is **{speedup:.1f}×** faster than re-running the decoder (target >= 10×: "
             f"{verdict(speedup >= 10)}){whole};",
             f"- beam 4 takes **{beam:.2f}×** the greedy time (target <= 5×: {verdict(beam <= 5)})."]
    body += _packing(res, name, precision)
    if speedup < 10 and g.get("flops") and n.get("flops"):
        body += _why_under_ten(g, n, precision)
    return section(job, title, body)


def _packing(res: dict, name: str, precision: str) -> list[str]:
    """What pre-packed weights gain, and (fp32) that they change no translation."""
    body = []
    plain = name + "+nopack"
    if plain in rows(res, "greedy"):
        gains = {w: paired(rows(res, w)[plain], rows(res, w)[name]) for w in ("greedy", "greedy-nocache", "beam4")}
        body += [f"- pre-packed weights make cached greedy **{gains['greedy']:.2f}×** as fast as without them "
                 f"(`+nopack`), beam 4 {gains['beam4']:.2f}× and the decoder re-run "
                 f"{gains['greedy-nocache']:.2f}×; without packing, cached greedy is "
                 f"{paired(rows(res, 'greedy-nocache')[plain], rows(res, 'greedy')[plain]):.1f}× faster than "
                 "re-running the decoder."]
    same = RESULTS / "packing_bleu.json"
    if same.exists() and precision == "fp32":
        pb = json.loads(same.read_text())
        ps = pb["passes"]
        body += [f"- packing changes no translation (`python -m reports packing_bleu {pb['checkpoint']}`, a "
                 f"trained d {pb['model']['d_model']} `{pb['model']['arch']}` from the translation table, "
                 f"test2016, beam {pb['beam']}): {pb['identical']:,} of {pb['sentences']:,} hypotheses identical, "
                 f"BLEU {ps['packed']['bleu']:.2f} packed and {ps['unpacked']['bleu']:.2f} unpacked; the pass "
                 f"took {ps['packed']['seconds']:.1f} s packed, {ps['unpacked']['seconds']:.1f} s unpacked, "
                 f"{ps['packed again']['seconds']:.1f} s packed again."]
    return body


def _why_under_ten(g: dict, n: dict, precision: str) -> list[str]:
    """The FLOP ceiling of the cache's saving and the efficiency the cached search reaches,
    then (fp32) the matmul throughput at these shapes and where a cached step goes."""
    ceiling = n["flops"] / g["flops"]
    rate = {k: r["flops"] / r["median_s"] / 1e9 for k, r in (("g", g), ("n", n))}
    needed = 10 / ceiling
    body = ["", f"Why under 10×: counted FLOPs (`torch.utils.flop_counter`, in the JSON) put the ceiling at "
            f"**{ceiling:.1f}×**: that is how much less arithmetic the cached search does (both share the "
            f"encoder pass; the cache saves the prefix re-run and the per-step cross-attention projection of "
            f"the encoder output). The cached search ran at {rate['g']:.0f} GFLOP/s against "
            f"{rate['n']:.0f} for the re-run, {rate['g'] / rate['n']:.0%} of its efficiency; 10× needs "
            f"{needed:.0%}. A cached step is a chain of matmuls of 32 rows (one position per sentence) "
            "whose weights come from memory, where the re-run multiplies 32 × prefix rows by the same "
            "weights."]
    if precision != "fp32":
        return body
    shapes = load("matmul-shapes")
    if shapes is not None:
        body += _matmul_table(shapes)
    prof = load("decode-profile")
    if prof is not None:
        body += _profile(prof, shapes, n)
    return body


def _matmul_table(shapes: dict) -> list[str]:
    gf = shapes["gflops"]
    body = ["", f"Matmul throughput at these shapes (`{command('matmul-shapes')}`, "
            f"{shapes['threads']} threads):", "",
            "| layer (fp32) | 32 rows (a decoding step) | 1,024 rows (a training batch) "
            "| 32 rows, packed | 1,024 rows, packed |", "|---|---|---|---|---|"]
    for layer in ("Q/K/V", "FFN up", "FFN down", "output layer"):
        cells = [gf.get(f"fp32{p} {layer} M={m}") for p in ("", " packed") for m in (32, 1024)]
        body.append(f"| {layer} | " + " | ".join(f"{c:.0f} GFLOP/s" if c else "" for c in cells) + " |")
    return body


def _profile(prof: dict, shapes: dict | None, n: dict) -> list[str]:
    """Where a cached decoding step goes, against the time 10× would leave it."""
    ms = prof["per_step_ms"]
    step = sum(ms.values())
    budget = 1e3 * (n["median_s"] / 10 - prof["encode_wall_s"]) / prof["steps"]
    alone = ""
    if shapes is not None and "fp32 packed Q/K/V M=32" in shapes["gflops"]:
        packed = [shapes["gflops"][f"fp32 packed {layer} M=32"]
                  for layer in ("Q/K/V", "FFN up", "FFN down", "output layer")]
        alone = f", against {min(packed):.0f}–{max(packed):.0f} for the packed products alone in the table"
    fits = ("less than the matmuls alone take inside the model" if budget < ms["matmul"] else
            f"{budget / ms['matmul']:.2f}× what the matmuls alone take inside the model, "
            f"{budget / step:.0%} of the whole step")
    return ["", f"Where a cached step goes (`{command('decode-profile')}`: `torch.profiler`, operators' own "
            f"CPU time, the encoder's subtracted): **{ms['matmul']:.1f} ms** in matmuls (the linear layers "
            f"and the signals' low-rank products: {prof['matmul_gflop_per_step']:.2f} GFLOP at "
            f"{prof['matmul_gflops_in_model']:.0f} GFLOP/s{alone}), **{ms['attention']:.1f} ms** in "
            f"attention against the cache and **{ms['other']:.1f} ms** in everything else (norms, residual "
            f"additions, GELU, cache writes, the softmax over the vocabulary) per step, {step:.1f} ms in "
            f"all. 10× leaves about {budget:.1f} ms per step (a tenth of the re-run above, less the "
            f"encoder's {1e3 * prof['encode_wall_s']:.0f} ms): {fits}; attention and the small operators, "
            f"each handling only 32 rows, add {(ms['attention'] + ms['other']) / ms['matmul']:.0%} of the "
            "matmul time."]


def _spiral() -> list[str]:
    res = load("spiral-1024")
    body = ["SpiralFormer {4,2,1} against the full-resolution looped model of the same parameters "
            "(`*-lm-char`, d 128), context 1,024, batch 8. The analytic ratio is "
            "`loopformer flops` (forward FLOPs, LM head included).", ""]
    if res is not None:
        from loopformer.analysis.flops import lm_flops
        from loopformer.registry import get_config

        def total(name: str) -> float:  # forward FLOPs of the whole model, LM head included
            f = lm_flops(get_config(name, max_len=1024), 1024)
            return f.layers + f.signals + f.state + f.head

        analytic = total("spiral-lm-char") / total("looped-lm-char")
        limit = 0.2 + 0.8 * analytic  # measured saving (1 - time ratio) >= 80% of the analytic one
        for workload in ("train", "prefill"):
            t = rows(res, workload)
            r = paired(t["spiral-lm-char"], t["looped-lm-char"])
            realised = (1 - r) / (1 - analytic)
            body.append(f"- {workload}: measured time ratio **{r:.3f}** against the analytic FLOP ratio "
                        f"{analytic:.3f}: {realised:.0%} of the analytic saving realised (target >= 80%, "
                        f"i.e. time ratio <= {limit:.3f}: {verdict(r <= limit)}).")
    return section("spiral-1024", "4. SpiralFormer at context 1,024", body)


def _lm_decode() -> list[str]:
    res = load("lm-decode")
    body = ["Batch 1, cached decoding. `decode@P`: 16 one-token steps starting at position P (the cache is "
            "filled to P first, untimed). `core`: the time spent inside the shared core layers while generating "
            "64 tokens after a 64-token prompt.", ""]
    if res is not None:
        d64, d512 = rows(res, "decode@64"), rows(res, "decode@512")
        ring = "ringformer-lm-char"
        flat = d512[ring]["median_s"] / d64[ring]["median_s"]
        body.append(f"- `{ring}` (6 core levels): per-token time at position 512 / at 64 = **{flat:.2f}** "
                    f"(target within 1.5×: {verdict(flat <= 1.5)}).")
        core = rows(res, "core")
        from loopformer.registry import get_config

        cfg = get_config("spiral-lm-char")
        schedule = list(cfg.schedule)
        expect = sum(1 / g for g in schedule) / len(schedule)
        measured = paired(core["spiral-lm-char"], core["looped-lm-char"])
        calls = core["spiral-lm-char"]["calls_per_token"] / core["looped-lm-char"]["calls_per_token"]
        err = abs(measured - expect) / expect
        body.append(f"- SpiralFormer's amortised core time per token / the loop's: **{measured:.3f}**; analytic "
                    f"Σ 1/g_t / N_loop = {expect:.3f} for schedule {{{','.join(map(str, schedule))}}} "
                    f"(core applications counted: {calls:.3f}); off by {err:.0%} (target within 20%: "
                    f"{verdict(err <= 0.2)}).")
    return section("lm-decode", "5. Causal-LM decoding", body)


def _gpu() -> list[str]:
    found = {job: load(job, gpu=True) for job in GPU_JOBS}
    found = {job: res for job, res in found.items() if res is not None}
    out = ["## The same workloads on a GPU", ""]
    if not found:
        return out + ["Not measured yet: `python -m reports speed --gpu` on a machine with CUDA.", ""]
    device = next(iter(found.values()))
    out += [f"Measured on {device['device']} (torch {device['torch']}) with `python -m reports speed --gpu`, "
            "one `loopformer bench ... --device cuda` command per table (below). The targets above are set for the "
            "CPU; here they are read the same way for comparison.", ""]
    out += _gpu_reading(found)
    for job, res in found.items():
        out += ["", f"### `{job}`", "", "```", command(job, gpu=True), "```", "", table(res)]
    return out


def _gpu_reading(found: dict) -> list[str]:
    """What the GPU tables say, computed from their JSONs."""
    lines = []
    ring, loop, van = "ringformer-mt-base", "looped-mt-base", "vanilla-mt-base"
    small, big = found.get("train-mt-base-bf16"), found.get("train-mt-base-bf16-b256")
    for job, label in (("train-mt-base-bf16", "bf16, batch 32"), ("train-mt-base-fp32", "fp32, batch 32"),
                       ("train-mt-base-bf16-b256", "bf16, batch 256")):
        if job in found:
            t = rows(found[job], "train")
            lines.append(f"- Training step ({label}): RingFormer / plain looped **{paired(t[ring], t[loop]):.2f}**, "
                         f"RingFormer / vanilla **{paired(t[ring], t[van]):.2f}** (CPU targets 1.10 and 1.15).")
    if small and big:
        a, b = rows(small, "train"), rows(big, "train")
        growth = {m: b[m]["median_s"] / a[m]["median_s"] for m in (ring, loop, van)}
        lines.append(f"- 8× the sentences (batch 256 against 32) take {min(growth.values()):.2f}–"
                     f"{max(growth.values()):.2f}× the step time, and the bf16 MFU at batch 256 is "
                     f"{b[ring]['mfu']:.1%} (RingFormer) to {max(r['mfu'] for r in b.values()):.1%}: at these "
                     "sizes the GPU waits on kernel launches, not arithmetic, so every extra small operation "
                     "counts in full. RingFormer's level signals and per-level norms add such small operations at "
                     "every level, which is what its ratio to the looped model measures here"
                     + _cpu_ratio() + ".")
    for job in ("reference-mt-base", "compile-mt-base-b256"):
        base = "torch-transformer:bf16"
        if job in found:
            t = rows(found[job], "train")
            parts = [f"`{name}` **{1.0 / paired(r, t[base]):.2f}×**" for name, r in t.items() if name != base]
            shape = found[job]["shape"].get("batch", "?")
            lines.append(f"- Against `{base}` (batch {shape}, target tokens/s relative to it): " + ", ".join(parts)
                         + " (CPU target for RingFormer bf16: 1.2×).")
    if "compile-mt-base" in found:
        t = rows(found["compile-mt-base"], "train")
        lines.append(f"- Regional `torch.compile` (no dropout, batch 32): compiled / eager step time "
                     f"**{paired(t['ringformer-mt-base:bf16+compile'], t['ringformer-mt-base:bf16']):.3f}**.")
    return lines + _gpu_decoding(found)


def _gpu_decoding(found: dict) -> list[str]:
    """The GPU reading of the decoding and SpiralFormer jobs."""
    lines = []
    ring = "ringformer-mt-base"
    if "decode-mt-base" in found:
        res = found["decode-mt-base"]
        g, n = rows(res, "greedy")[ring], rows(res, "greedy-nocache")[ring]
        rerun, beam = rows(res, "greedy-rerun")[ring], rows(res, "beam4")[ring]
        lines.append(f"- Decoding (fp32, batch 32, 32 new tokens): re-running the decoder at every step takes "
                     f"**{paired(n, g):.2f}×** the time of cached greedy, re-running the whole model "
                     f"{paired(rerun, g):.2f}× (CPU target for the first: 10×); beam 4 takes {paired(beam, g):.2f}× "
                     "the greedy time (target <= 5×). Each step is launch-bound whether or not it re-runs the "
                     "prefix, so the cache saves arithmetic the GPU was not short of"
                     + (", and its bookkeeping makes the cached search the slower one here" if paired(n, g) < 1
                        else "") + ".")
    if "spiral-1024" in found:
        res = found["spiral-1024"]
        parts = [f"{w} {paired(rows(res, w)['spiral-lm-char'], rows(res, w)['looped-lm-char']):.3f}"
                 for w in ("train", "prefill")]
        lines.append("- SpiralFormer / full-resolution looped time at context 1,024, batch 8: " + ", ".join(parts)
                     + " (on the CPU, where arithmetic dominates, SpiralFormer is the faster; here its pooling and "
                     "up-scaling add launches to a step the GPU finishes in milliseconds).")
    if "lm-decode" in found:
        res = found["lm-decode"]
        d64, d512 = rows(res, "decode@64"), rows(res, "decode@512")
        r = "ringformer-lm-char"
        core = rows(res, "core")
        lines.append(f"- Cached LM decoding: `{r}` per-token time at position 512 / at 64 = "
                     f"**{d512[r]['median_s'] / d64[r]['median_s']:.2f}** (target within 1.5×); SpiralFormer's core "
                     f"time per token / the loop's **{paired(core['spiral-lm-char'], core['looped-lm-char']):.3f}**.")
    return lines


def _cpu_ratio() -> str:
    res = load("train-mt-base-bf16")
    if res is None:
        return ""
    t = rows(res, "train")
    return (f" (on the CPU, where the matmuls dominate, the same step is "
            f"{paired(t['ringformer-mt-base'], t['looped-mt-base']):.2f}× the looped one)")


def _loss_curve() -> list[str]:
    """The bf16 loss-curve check, with the command that reproduces it."""
    from .bf16_loss_curve import command as loss_curve_command

    path = RESULTS / "loss_curve.json"
    out = ["## bf16 autocast keeps the fp32 loss curve", ""]
    if not path.exists():
        return out + ["Not measured yet: `python -m reports bf16_loss_curve`.", ""]
    rec = json.loads(path.read_text())
    out += [rec["summary"], "", "```", loss_curve_command(rec["steps"]), "```", "",
            "![loss curves](speed/loss_curve.png)", ""]
    return out


def _jobs(names: str, known: list[str]) -> list[str]:
    jobs = known if names == "all" else names.split(",")
    unknown = [j for j in jobs if j not in known]
    if unknown:
        raise SystemExit(f"unknown jobs {', '.join(unknown)}; choose from {', '.join(known)}")
    return jobs


def main(argv: list[str] | None = None) -> int:
    """Measure the jobs that have no JSON yet (all of them with ``--force``), then write
    the page; ``--gpu`` measures the GPU jobs instead of the CPU ones."""
    ap = runner.parser("speed", __doc__)
    ap.add_argument("--jobs", default="all", help=f"comma-separated from {', '.join([*JOBS, *SCRIPTS])}")
    ap.add_argument("--force", action="store_true", help="re-time jobs that already have a JSON")
    ap.add_argument("--page-only", action="store_true")
    ap.add_argument("--gpu", action="store_true", help="time the GPU jobs (--device cuda) instead of the CPU ones")
    args = ap.parse_args(argv)
    jobs = _jobs(args.jobs, list(GPU_JOBS) if args.gpu else [*JOBS, *SCRIPTS])
    if not args.page_only:
        for job in jobs:
            if args.force or load(job, gpu=args.gpu) is None:
                run_job(job, gpu=args.gpu)
    write_page()
    return 0
