"""The ``loopformer`` command-line tool.

User mistakes (unknown preset, bad override, corrupt checkpoint) end with a one-line
``loopformer: error: ...`` on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Sequence

from .errors import CheckpointError, ConfigError, LoopformerError


def _model_config(target: str, overrides: Sequence[str], args: argparse.Namespace):
    """A config from a preset name or a checkpoint directory, with overrides applied."""
    from .checkpoint import read_checkpoint_config
    from .config import parse_override
    from .registry import get_config

    if Path(target).is_dir():
        config, _ = read_checkpoint_config(target)
    elif "/" in target or target.startswith("."):
        raise CheckpointError(f"checkpoint directory {target} does not exist")
    else:
        config = get_config(target)
    changes = dict(parse_override(o) for o in overrides)
    for flag, key in (("vocab_size", "vocab_size"), ("num_classes", "num_classes"), ("image_size", "image_size")):
        value = getattr(args, flag, None)
        if value is not None:
            changes[key] = value
    return config.replace(**changes) if changes else config


def cmd_list(args: argparse.Namespace) -> int:
    from .registry import PRESETS, list_models

    print(f"{'preset':<22} {'task':<8} {'arch':<11} {'d':>5} {'layers':>7}")
    for name in list_models():
        p = PRESETS[name]
        print(f"{name:<22} {p['task']:<8} {p['arch']:<11} {p['d_model']:>5} {p['n_layers']:>7}")
    return 0


def cmd_params(args: argparse.Namespace) -> int:
    from .analysis.params import count_parameters, format_parameter_table
    from .models import build_model

    import torch

    config = _model_config(args.target, args.overrides, args)
    with torch.device("meta"):  # count without allocating paper-sized weights
        model = build_model(config)
    count = count_parameters(model)
    if args.json:
        print(json.dumps({"target": args.target, **count.to_dict()}, indent=2))
    else:
        print(format_parameter_table(count, title=f"{args.target} ({config.task}, {config.arch})"))
    return 0


def cmd_flops(args: argparse.Namespace) -> int:
    from .analysis.flops import lm_flops

    config = _model_config(args.target, args.overrides, args)
    if config.task != "decoder":
        raise ConfigError(f"flops covers causal language models; {args.target} is a {config.task} model")
    if args.context is not None and not 1 <= args.context <= config.max_len:
        raise ConfigError(f"--context must be between 1 and the model's max_len ({config.max_len})")
    count = lm_flops(config, args.context)
    if args.json:
        print(json.dumps({"target": args.target, **count.to_dict()}, indent=2))
        return 0
    print(f"{args.target}: forward FLOPs on {count.context:,} tokens")
    for label, value in (("transformer layers", count.layers), ("level signals", count.signals),
                         ("MeSH routers", count.state), ("LM head", count.head)):
        print(f"  {label:<20} {value:>18,.0f}")
    print(f"  {'per token':<20} {count.per_token:>18,.0f}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Build a preset, run one forward pass on random input, print its parameter table."""
    import torch

    from .analysis.params import count_parameters, format_parameter_table
    from .models import build_model

    config = _model_config(args.preset, args.overrides, args)
    torch.manual_seed(0)
    model = build_model(config).eval()
    print(format_parameter_table(count_parameters(model), title=f"{args.preset} ({config.task}, {config.arch})"))
    b = args.batch
    with torch.inference_mode():
        if config.task == "vit":
            inputs = (torch.randn(b, config.in_channels, config.image_size, config.image_size),)
        elif config.task == "seq2seq":
            inputs = (torch.randint(1, config.vocab_size, (b, args.length)),
                      torch.randint(1, config.target_vocab_size, (b, args.length)))
        else:
            inputs = (torch.randint(1, config.vocab_size, (b, args.length)),)
        start = time.perf_counter()
        out = model(*inputs)
        elapsed = time.perf_counter() - start
    print(f"\nforward on {tuple(inputs[0].shape)} -> output {tuple(out.shape)} in {elapsed * 1000:.1f} ms")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from .train.distributed import teardown

    try:
        return _train(args)
    finally:
        teardown()


def _train(args: argparse.Namespace) -> int:
    if args.task == "language":
        from .tasks.language_run import train_language

        results = train_language(args.model, args.preset or "lm-small", args.overrides, args.config, args.out,
                                 args.resume)
        if "val" not in results:  # a non-zero rank under torchrun
            return 0
        val = results["val"]
        print(f"\ncheckpoint: {results['checkpoint']}")
        print(f"validation loss {val['val_loss']:.4f} (perplexity {val['val_ppl']:.2f})")
        return 0
    if args.task == "vision":
        from .tasks.vision_run import train_vision

        preset = args.preset or "vit-tiny"
        results = train_vision(args.model, preset, args.overrides, args.config, args.out, args.resume)
        if "test" not in results:
            return 0
        test = results["test"]
        print(f"\ncheckpoint: {results['checkpoint']}")
        print(f"{test['split']} accuracy: {test['accuracy']:.2f}% on {test['images']:,} images")
        return 0
    from .tasks.translation_run import train_translation

    results = train_translation(args.model, args.preset or "mt-small", args.overrides, args.config, args.out,
                                args.resume)
    if "checkpoint" not in results:
        return 0
    print(f"\ncheckpoint: {results['checkpoint']}")
    for split in ("test2016", "test2017"):
        if split in results:
            r = results[split]
            print(f"{split} sacreBLEU (beam {r['beam']}): {r['bleu']:.2f}  [{r['text']}]  {r['signature']}")
    return 0


def _read_stdin_lines() -> list[str]:
    data = sys.stdin.buffer.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"standard input is not UTF-8 (byte {exc.start})") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.rstrip("\r") for line in lines]


def cmd_translate(args: argparse.Namespace) -> int:
    from .tasks.translation_run import load_translation_checkpoint

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    model, task = load_translation_checkpoint(args.checkpoint)
    lines = _read_stdin_lines()
    limit = model.config.max_len - 2
    encoded = task.tok.encode_batch(lines)
    for i, ids in enumerate(encoded):
        if len(ids) >= limit:
            print(f"loopformer: warning: line {i + 1} has {len(ids)} tokens; "
                  f"only the first {limit - 1} are translated", file=sys.stderr)
    for line in task.translate(model, lines, beam=args.beam, length_penalty=args.length_penalty):
        print(one_line(line))
    return 0


def one_line(text: str) -> str:
    """A byte-level tokenizer can decode to any character, line breaks included; output
    keeps one line per input line, so each break (as ``str.splitlines`` sees them) is a space."""
    return " ".join(text.splitlines())


def cmd_eval(args: argparse.Namespace) -> int:
    from .tasks.task_file import task_name

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    kind = task_name(args.checkpoint, missing="translation")  # the translation loader says what is missing
    if kind == "vision":
        return _eval_vision(args)
    if kind == "language":
        return _eval_language(args)
    from .tasks.translation_run import load_translation_checkpoint

    split = args.split or "test2016"
    if split not in ("val", "test2016", "test2017"):
        raise ConfigError(f"a translation checkpoint is evaluated on val, test2016 or test2017, not {split!r}")
    model, task = load_translation_checkpoint(args.checkpoint)
    if args.length_penalty is not None and args.length_penalty < 0:
        raise ConfigError(f"--length-penalty must be >= 0, got {args.length_penalty}")
    res = task.test_bleu(model, split, beam=args.beam, length_penalty=args.length_penalty)
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        print(f"{split} sacreBLEU (beam {res['beam']}, length penalty {res['length_penalty']}): {res['bleu']:.2f}")
        print(res["text"])
        print(res["signature"])
    return 0


def _eval_vision(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .analysis.confusion import plot_confusion
    from .tasks.vision_run import load_vision_checkpoint

    split = args.split or "test"
    if split not in ("val", "test"):
        raise ConfigError(f"a vision checkpoint is evaluated on val or test, not {split!r}")
    model, task = load_vision_checkpoint(args.checkpoint)
    res = task.test_accuracy(model, split)
    ckpt = Path(args.checkpoint)
    figure = Path(args.confusion) if args.confusion else ckpt.resolve().parent / f"confusion-{ckpt.name}-{split}.png"
    plot_confusion(res["confusion"], task.classes, figure,
                   title=f"{model.config.arch} ViT, {split}: {res['accuracy']:.2f}%")
    res["confusion_png"] = str(figure)
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    print(f"{split} accuracy: {res['accuracy']:.2f}% on {res['images']:,} images")
    width = max(len(c) for c in task.classes)
    for name, acc in res["per_class"].items():
        print(f"  {name:<{width}}  {acc:6.2f}%")
    print(f"confusion matrix: {figure}")
    return 0


def _eval_language(args: argparse.Namespace) -> int:
    import torch

    from .tasks.language_run import load_language_checkpoint

    if args.split not in (None, "val"):
        raise ConfigError(f"a language-model checkpoint is evaluated on val, not {args.split!r}")
    model, task = load_language_checkpoint(args.checkpoint)
    with torch.no_grad():
        res = task.evaluate(model)
    res.pop("score", None)
    res["tokens"] = int(task.eval_windows()[:, 1:].numel())
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        print(f"val loss {res['val_loss']:.4f}  perplexity {res['val_ppl']:.2f}  ({res['tokens']:,} tokens)")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from .tasks.language_run import generate_text, load_language_checkpoint
    from .tasks.task_file import task_name

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    kind = task_name(args.checkpoint, missing="")
    if kind != "language":
        raise ConfigError(f"{args.checkpoint} is not a language-model checkpoint ({_task_found(kind)})")
    if args.max_new_tokens < 0:
        raise ConfigError("--max-new-tokens must be >= 0")
    if args.temperature < 0:
        raise ConfigError("--temperature must be >= 0 (0 = greedy)")
    if args.top_k is not None and args.top_k < 1:
        raise ConfigError("--top-k must be >= 1")
    model, task = load_language_checkpoint(args.checkpoint)
    prompt = args.prompt if args.prompt is not None else _read_stdin_text()
    print(generate_text(model, task, prompt, args.max_new_tokens, args.temperature, args.top_k, args.seed))
    return 0


def _task_found(kind: str) -> str:
    return f"it holds a {kind} run" if kind else "it has no task.json"


def _read_stdin_text() -> str:
    data = sys.stdin.buffer.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"standard input is not UTF-8 (byte {exc.start})") from None


def cmd_classify(args: argparse.Namespace) -> int:
    from .tasks.task_file import task_name
    from .tasks.vision_run import classify_images, load_vision_checkpoint

    kind = task_name(args.checkpoint, missing="")
    if kind != "vision":
        raise ConfigError(f"{args.checkpoint} is not a vision checkpoint ({_task_found(kind)})")
    model, task = load_vision_checkpoint(args.checkpoint)
    results = classify_images(model, task, args.images, invert=args.invert, top_k=args.top_k)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for r in results:
        tops = ", ".join(f"{t['class']} {t['probability']:.1%}" for t in r["top"])
        print(f"{r['image']}: {tops}")
    return 0


def cmd_analyze(args: argparse.Namespace) -> int:
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    what = args.analysis
    if what in ("params", "flops"):
        if len(args.targets) != 1:
            raise ConfigError(f"analyze {what} takes one preset or checkpoint")
        args.target, args.overrides = args.targets[0], []
        return cmd_params(args) if what == "params" else cmd_flops(args)
    if what == "probe":
        from .tasks.analyze import probe_levels

        if len(args.targets) != 2:
            raise ConfigError("analyze probe takes two checkpoints: A B")
        res = probe_levels(args.targets[0], args.targets[1], args.data, args.batch_size, args.max_batches)
        if args.json:
            print(json.dumps(res, indent=2))
            return 0
        print("held-out accuracy (%) of a linear classifier telling A's states from B's (50 = indistinguishable)")
        for stack, r in res.items():
            print(f"{stack}:")
            for (la, lb), acc, (n_fit, n_test) in zip(r["pairs"], r["accuracy"], r["rows"]):
                print(f"  {la:<10} vs {lb:<10} {acc:6.2f}   ({n_fit:,} rows fitted, {n_test:,} tested)")
        return 0
    if what == "cka":
        from .tasks.analyze import compare_cka
        from .analysis.plots import format_matrix, plot_cka

        if len(args.targets) != 2:
            raise ConfigError("analyze cka takes two checkpoints: A B")
        res = compare_cka(args.targets[0], args.targets[1], args.data, args.batch_size, args.max_batches)
        if args.plot:
            plot_cka(res, args.plot, name_a=args.targets[0], name_b=args.targets[1])
        if args.json:
            print(json.dumps(res, indent=2))
            return 0
        for stack, r in res.items():
            print(f"{stack} ({r['batches']} minibatches): rows {args.targets[0]}, columns {args.targets[1]}")
            print(format_matrix(r["a_layers"], r["b_layers"], r["cka"]))
            n = min(len(r["a_layers"]), len(r["b_layers"]))
            diag = [r["cka"][i][i] for i in range(n)]
            print("diagonal: " + " ".join(f"{v:.3f}" for v in diag) + "\n")
        return 0
    from .tasks.analyze import attention_distances, signal_norms
    from .analysis.plots import plot_distances
    from .tasks.task_file import task_name

    if len(args.targets) != 1:
        raise ConfigError(f"analyze {what} takes one checkpoint")
    if what == "signals":
        rows = signal_norms(args.targets[0], args.data, args.batch_size, args.max_batches)
        if args.json:
            print(json.dumps(rows, indent=2))
            return 0
        print("level signal size relative to what it is added to: E||s(x)|| / E||base||")
        kinds = sorted({r["kind"] for r in rows}, key=["q", "k", "v", "ffn"].index)
        print(f"  {'module':<24} {'level':>5} " + " ".join(f"{k:>7}" for k in kinds))
        table: dict = {}
        for r in rows:
            table.setdefault((r["module"], r["level"]), {})[r["kind"]] = r["ratio"]
        for (module, level), by_kind in table.items():
            cells = " ".join(f"{by_kind[k]:7.3f}" if k in by_kind else f"{'-':>7}" for k in kinds)
            print(f"  {module:<24} {level:>5} {cells}")
        return 0
    kind = task_name(args.targets[0])
    if what == "mad" and kind != "vision":
        raise ConfigError("mad (mean attention distance in pixels) is for vision checkpoints; "
                          "use attention-distance for text models")
    res = attention_distances(args.targets[0], args.data, args.batch_size, args.max_batches)
    if args.plot:
        plot_distances(res, args.plot, title=Path(args.targets[0]).name)
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    for stack, rows in res["stacks"].items():
        print(f"{stack}: mean attention distance in {res['unit']} (per head, then mean)")
        for row in rows:
            heads = " ".join(f"{v:6.2f}" for v in row["per_head"])
            print(f"  {row['layer']:<10} {heads}   mean {row['mean']:6.2f}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="loopformer", description="Looped Transformers: RingFormer, SpiralFormer and baselines."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="list the named presets")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("params", help="parameter table of a preset or checkpoint")
    p.add_argument("target", help="preset name (see `loopformer list`) or checkpoint directory")
    p.add_argument("overrides", nargs="*", help="config overrides as key=value")
    p.add_argument("--vocab-size", type=int, dest="vocab_size")
    p.add_argument("--num-classes", type=int, dest="num_classes")
    p.add_argument("--image-size", type=int, dest="image_size")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_params)

    p = sub.add_parser("flops", help="analytic forward FLOPs of a causal LM preset or checkpoint")
    p.add_argument("target", help="preset name or checkpoint directory")
    p.add_argument("overrides", nargs="*", help="config overrides as key=value")
    p.add_argument("--context", type=int, default=None, help="sequence length (default: the model's max_len)")
    p.add_argument("--vocab-size", type=int, dest="vocab_size")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_flops)

    p = sub.add_parser("demo", help="build a preset, run it once on random input, print its parameters")
    p.add_argument("preset", nargs="?", default="ringformer-mt-small")
    p.add_argument("overrides", nargs="*", help="config overrides as key=value")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--length", type=int, default=16)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("train", help="train a model on a task (progress bar, checkpoints, resume)")
    p.add_argument("task", choices=["translation", "vision", "language"], help="what to train")
    p.add_argument("--model", default="ringformer", help="family: vanilla, looped, universal, ringformer")
    p.add_argument("--preset", default=None,
                   help="size: mt-small, mt-base (translation; default mt-small), vit-tiny (vision; default), "
                        "lm-small (language; default)")
    p.add_argument("--config", default=None, help="YAML file of settings (flat or model/train/task sections)")
    p.add_argument("--out", default=None, help="run directory (default runs/<task>/<model>-<preset>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("overrides", nargs="*", help="settings as key=value (model, training or task fields)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("translate", help="translate stdin to stdout, one sentence a line")
    p.add_argument("checkpoint")
    p.add_argument("--beam", type=int, default=None, help="beam size (default: the run's test_beam)")
    p.add_argument("--length-penalty", type=float, default=None, dest="length_penalty")
    p.add_argument("--threads", type=int, default=None)
    p.set_defaults(func=cmd_translate)

    p = sub.add_parser("eval", help="sacreBLEU (translation), accuracy + confusion matrix (vision), or loss (LM)")
    p.add_argument("checkpoint")
    p.add_argument("--split", default=None, choices=["val", "test2016", "test2017", "test"],
                   help="translation: val, test2016 (default), test2017; vision: val, test (default)")
    p.add_argument("--confusion", default=None,
                   help="vision: where to save the confusion-matrix PNG (default next to the checkpoint)")
    p.add_argument("--beam", type=int, default=None, help="translation: beam size (default: the run's test_beam)")
    p.add_argument("--length-penalty", type=float, default=None, dest="length_penalty",
                   help="translation: beam length penalty alpha (default: the run's, 0.6)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("generate", help="continue a prompt with a language-model checkpoint (KV-cached)")
    p.add_argument("checkpoint")
    p.add_argument("--prompt", default=None, help="text to continue (default: read standard input)")
    p.add_argument("--max-new-tokens", type=int, default=200, dest="max_new_tokens")
    p.add_argument("--temperature", type=float, default=0.8, help="0 = greedy")
    p.add_argument("--top-k", type=int, default=200, dest="top_k")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("analyze", help="CKA, linear probes, attention distances (MAD), level-signal sizes, "
                                         "parameters and FLOPs")
    p.add_argument("analysis", choices=["cka", "probe", "mad", "attention-distance", "signals", "params", "flops"])
    p.add_argument("targets", nargs="+", help="checkpoint(s) (cka, probe: A B) or, for params/flops, a preset")
    p.add_argument("--data", default=None, help="split: test2016/test2017/val (translation), test/val (vision)")
    p.add_argument("--plot", default=None, help="write a PNG figure here")
    p.add_argument("--json", action="store_true")
    p.add_argument("--batch-size", type=int, default=64, dest="batch_size")
    p.add_argument("--max-batches", type=int, default=None, dest="max_batches")
    p.add_argument("--context", type=int, default=None, help="flops: sequence length")
    p.add_argument("--threads", type=int, default=None)
    p.set_defaults(func=cmd_analyze)

    p = sub.add_parser("classify", help="classify image files (PNG, JPEG, ...) with a vision checkpoint")
    p.add_argument("checkpoint")
    p.add_argument("images", nargs="+", help="image files of any size; converted to the model's input")
    p.add_argument("--top-k", type=int, default=3, dest="top_k")
    p.add_argument("--invert", default="auto", choices=["auto", "yes", "no"],
                   help="invert greyscale (auto: when the picture's border is light, unlike Fashion-MNIST)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_classify)

    from .bench.cli import add_parser as add_bench

    add_bench(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # key=value overrides may follow options (argparse stops collecting positionals there)
    stray = [e for e in extra if "=" not in e or e.startswith("-")]
    if stray or (extra and not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(stray or extra)}")
    if extra:
        args.overrides = list(args.overrides) + extra
    try:
        return args.func(args)
    except LoopformerError as exc:
        print(f"loopformer: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("loopformer: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly, as Unix tools do
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # no second error when Python flushes stdout at exit
        return 141


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
