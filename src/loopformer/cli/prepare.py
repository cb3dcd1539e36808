"""``loopformer prepare text``: tokenise a corpus once into a folder of token ids that
``train language dataset=FOLDER`` reads by memory map (see :mod:`loopformer.data.token_files`)."""

from __future__ import annotations

import argparse
import os
import resource
import sys

from ..arguments import MAX_THREADS, count, finite_float
from ..errors import ConfigError

MAX_VOCAB = 1 << 20  # as the language task's bpe_vocab_size
MAX_SAMPLE = 1 << 40


def add_parser(sub) -> None:
    p = sub.add_parser("prepare", help="tokenise a large corpus once into memory-mapped token ids")
    kinds = p.add_subparsers(dest="kind", required=True)
    t = kinds.add_parser("text", help="text or JSONL files (gzip allowed), or a HuggingFace data set")
    t.add_argument("files", nargs="*", help="corpus files: plain text (one document each) or JSONL (one a line)")
    t.add_argument("--out", required=True, help="the folder to write (tokens.bin, tokenizer, prepared.json)")
    t.add_argument("--tokenizer", choices=["bpe", "char"], default="bpe")
    t.add_argument("--vocab-size", type=count(300, MAX_VOCAB), default=8192, dest="vocab_size",
                   help=f"BPE vocabulary, 300..{MAX_VOCAB:,} (default 8,192)")
    t.add_argument("--tokenizer-sample-chars", type=count(1, MAX_SAMPLE), default=100_000_000,
                   dest="tokenizer_sample_chars",
                   help="BPE is trained on the first this many characters (default 100,000,000)")
    t.add_argument("--val-fraction", type=finite_float(0.0, 0.5), default=0.005, dest="val_fraction",
                   help="the tail of the tokens kept for validation, 0..0.5 (default 0.005)")
    t.add_argument("--format", choices=["auto", "text", "jsonl"], default="auto",
                   help="auto: .jsonl/.json/.ndjson (gzipped or not) are JSONL, the rest text")
    t.add_argument("--field", default="text", help="the text field of JSONL records and HF data sets")
    t.add_argument("--hf-dataset", default=None, dest="hf_dataset",
                   help="a HuggingFace data set name (streamed; needs pip install datasets), or a builder "
                        "such as json or text applied to FILES")
    t.add_argument("--hf-split", default="train", dest="hf_split")
    t.add_argument("--workers", type=count(1, MAX_THREADS), default=None,
                   help=f"BPE encoding threads, 1..{MAX_THREADS} (default: every core)")
    t.add_argument("--force", action="store_true", help="replace a folder that is already prepared")
    t.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_prepare)


def cmd_prepare(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..data.corpus_sources import Corpus
    from ..data.prepare_tokens import Prepare, prepare_text

    if not args.files and args.hf_dataset is None:
        raise ConfigError("give corpus files, or --hf-dataset NAME")
    if args.workers:  # read by the tokenizers library's thread pool when it starts
        os.environ["RAYON_NUM_THREADS"] = str(args.workers)
    corpus = Corpus(list(args.files), args.format, args.field, args.hf_dataset, args.hf_split)
    job = Prepare(Path(args.out), args.tokenizer, args.vocab_size, args.val_fraction, args.tokenizer_sample_chars,
                  args.force, progress=not args.quiet and sys.stderr.isatty())
    manifest = prepare_text(corpus, job)
    for line in summary_lines(manifest, args.out):
        print(line)
    return 0


def peak_rss_mb() -> float:
    """This process's peak resident memory (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024


def summary_lines(m: dict, out: str) -> list[str]:
    seconds = max(m["seconds"], 1e-9)
    return [f"prepared {out}: {m['tokenizer']} tokenizer, vocabulary {m['vocab_size']:,} ({m['dtype']})",
            f"characters {m['characters']:,}, documents {m['documents']:,}",
            f"tokens {m['tokens']:,} (train {m['train_tokens']:,}, val {m['val_tokens']:,})",
            f"{m['characters'] / seconds:,.0f} characters/s ({m['seconds']:.1f} s), "
            f"peak memory {peak_rss_mb():,.0f} MiB"]
