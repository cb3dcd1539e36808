"""Large text corpora as token files: ``loopformer prepare text`` throughput and peak
memory on a corpus of over 50 million characters, and the peak memory of a looped LM
trained from a prepared folder, on a 5-million-character prefix and on the whole corpus
(the same model, steps and batches: only the corpus size differs).

The corpus is documentation shipped by three Debian 12 packages, fetched and unpacked with
``apt-get download`` and ``dpkg-deb -x`` into ``--corpus-dir`` (outside the repository):

- ``linux-doc-6.1`` 6.1.176-1: the Linux kernel's ``Documentation/`` tree (reST, text,
  YAML bindings), GPL-2.0 (the package's ``copyright`` file);
- ``python3.11-doc`` 3.11.2-6+deb12u8: the reST sources of the Python documentation
  (``html/_sources/*.rst.txt``), PSF License 2.0;
- ``perl-doc`` 5.36.0-7+deb12u3: Perl's manual pages in POD (``pod/*.pod``), GPL-1+ or
  the Artistic License.

Every documentation file becomes one JSONL record (one document), in an order shuffled
with a fixed seed so that the validation tail mixes the manuals. Each finished
measurement is one JSON under docs/results/your_data/ and is skipped on a re-run; the
prepared folders and runs are reused too.

    python -m reports your_data_text [--corpus-dir /work/corpus] [--steps 60]
"""

from __future__ import annotations

import gzip
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

from . import runner
from .paths import RESULTS, RUNS

OUT = RESULTS / "your_data"
PACKAGES = {  # package: (version, licence, the folder of its text below the unpacked root, file pattern)
    "linux-doc-6.1": ("6.1.176-1", "GPL-2.0", "usr/share/doc/linux-doc-6.1/Documentation", "**/*.gz"),
    "python3.11-doc": ("3.11.2-6+deb12u8", "PSF-2.0", "usr/share/doc/python3.11/html/_sources", "**/*.rst.txt"),
    "perl-doc": ("5.36.0-7+deb12u3", "GPL-1.0-or-later OR Artistic-1.0-Perl", "usr/share/perl/5.36.0/pod", "*.pod"),
}
# the folder each package is unpacked into, under --corpus-dir
UNPACKED = {"linux-doc-6.1": "linux-doc", "python3.11-doc": "python-doc", "perl-doc": "perl-doc"}
PREFIX_CHARS = 5_000_000
VOCAB = 8192
LM = ["--model", "looped", "--preset", "lm-small", "tokenizer=bpe", "context=256", "batch_size=8",
      "eval_windows=16", "eval_batch_size=8", "threads=1", "progress=false", "log_every=10", "eval_every=100000"]


def documents(root: Path) -> list[tuple[str, str]]:
    """(name, text) of every documentation file of the unpacked packages (files that are
    not UTF-8 text, such as a few compressed images, are left out)."""
    docs = []
    for package, (_, _, below, pattern) in PACKAGES.items():
        base = root / UNPACKED[package] / below
        if not base.is_dir():
            raise SystemExit(f"{base} is missing: apt-get download {package} && dpkg-deb -x <the .deb> "
                             f"{root / UNPACKED[package]}")
        for path in sorted(base.glob(pattern)):
            if path.suffix in (".svg", ".png") or path.name.endswith((".svg.gz", ".png.gz")):
                continue
            data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
            try:
                docs.append((f"{package}/{path.relative_to(base)}", data.decode("utf-8")))
            except UnicodeDecodeError:
                continue
    random.Random(0).shuffle(docs)
    return docs


def build_corpus(root: Path) -> dict:
    """The corpus JSONL and its 5M-character prefix (written once), and what they hold."""
    full, prefix, info = root / "docs-corpus.jsonl", root / "docs-corpus-5M.jsonl", root / "docs-corpus.json"
    if not info.exists():
        docs = documents(root)
        chars, kept = 0, 0
        with open(full, "w", encoding="utf-8") as f, open(prefix, "w", encoding="utf-8") as p:
            for name, text in docs:
                line = json.dumps({"text": text, "source": name}, ensure_ascii=False) + "\n"
                f.write(line)
                if chars < PREFIX_CHARS:
                    p.write(line)
                    kept += len(text)
                chars += len(text)
        info.write_text(json.dumps({
            "packages": {k: {"version": v[0], "licence": v[1]} for k, v in PACKAGES.items()},
            "documents": len(docs), "characters": chars, "prefix_characters": kept,
            "files": {"full": str(full), "prefix": str(prefix)}}, indent=2))
    return json.loads(info.read_text())


def measured(argv: list[str]) -> dict:
    """Run ``python -m loopformer ARGV``, reaped with wait4 for the child's own peak RSS."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "loopformer", *argv], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"loopformer {' '.join(argv)} failed:\n{output[-3000:]}")
    return {"argv": ["loopformer", *argv], "wall_seconds": round(time.monotonic() - start, 2),
            "peak_rss_mib": round(usage.ru_maxrss / 1024, 1), "output_tail": output.strip().splitlines()[-6:]}


def prepare(source: Path, folder: Path, workers: int, extra: tuple[str, ...] = ("--tokenizer", "bpe")) -> dict:
    """Prepare ``source`` into ``folder`` (measured) unless it is prepared, and its figures."""
    argv = ["prepare", "text", str(source), "--out", str(folder), "--vocab-size", str(VOCAB), "--workers",
            str(workers), "--quiet", *extra]
    run = measured(argv) if not (folder / "prepared.json").exists() else {"argv": ["loopformer", *argv]}
    m = json.loads((folder / "prepared.json").read_text())
    run.update({k: m[k] for k in ("characters", "documents", "tokens", "train_tokens", "val_tokens", "vocab_size",
                                  "dtype", "seconds")})
    run["characters_per_second"] = round(m["characters"] / m["seconds"])
    run["tokens_bin_mib"] = round((folder / "tokens.bin").stat().st_size / 2**20, 1)
    return run


def train(name: str, folder: Path, steps: int) -> dict:
    """A looped LM trained from a prepared folder for ``steps`` steps, in a child process."""
    out = RUNS / "your_data" / name
    shutil.rmtree(out, ignore_errors=True)  # a run left without its record is measured again, from scratch
    run = measured(["train", "language", "--out", str(out), f"dataset={folder}", f"max_steps={steps}", *LM])
    results = json.loads((out / "results.json").read_text())
    run.update({"corpus_tokens": json.loads((folder / "prepared.json").read_text())["tokens"],
                "steps": steps, "val_loss": round(results["val"]["val_loss"], 4),
                "parameters": results["parameters"]})
    return run


def write(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n")


def char_pieces(path: Path, chars: int) -> list[str]:
    """The first ``chars`` characters of the corpus's documents, in 64K-character pieces."""
    text, seen = [], 0
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            text.append(json.loads(line)["text"])
            seen += len(text[-1])
            if seen >= chars:
                break
    whole = "".join(text)[:chars]
    return [whole[i : i + 65536] for i in range(0, len(whole), 65536)]


def map_chars(pieces: list[str]) -> int:
    """The plain-Python way of mapping characters to ids (a worker of the pool)."""
    index = {c: i for i, c in enumerate(sorted(set("".join(pieces))))}
    return sum(len([index[c] for c in p]) for p in pieces)


def char_mapping(path: Path) -> dict:
    """Characters per second of the three ways to map characters to ids considered for
    ``--tokenizer char``: the vectorised table lookup it uses, a Python loop, and the loop
    in a pool of two processes (the machine's cores)."""
    from multiprocessing import Pool

    import numpy as np

    pieces = char_pieces(path, PREFIX_CHARS)
    chars = sorted(set("".join(pieces)))
    table = np.full(ord(chars[-1]) + 1, -1, dtype=np.int64)
    table[[ord(c) for c in chars]] = np.arange(len(chars))
    out = {"characters": sum(map(len, pieces))}
    start = time.perf_counter()
    for piece in pieces:
        table[np.frombuffer(piece.encode("utf-32-le"), dtype=np.uint32)]
    out["vectorised"] = round(out["characters"] / (time.perf_counter() - start))
    start = time.perf_counter()
    map_chars(pieces)
    out["python_loop"] = round(out["characters"] / (time.perf_counter() - start))
    with Pool(2) as pool:
        start = time.perf_counter()
        pool.map(map_chars, [pieces[i : i + 8] for i in range(0, len(pieces), 8)])
        out["process_pool_2"] = round(out["characters"] / (time.perf_counter() - start))
    return out


def measure_prepare(root: Path, corpus: dict, workers: int) -> dict:
    """prepare.json: ``prepare text`` on the whole corpus (BPE as the LM uses it, BPE on a
    5M-character tokenizer sample, characters) and the character-mapping comparison."""
    variants = {"bpe": (root / "prepared-full", ("--tokenizer", "bpe")),  # the folder the LM trains from
                "bpe_sample_5m": (root / "prepared-full-s5M", ("--tokenizer", "bpe", "--tokenizer-sample-chars",
                                                               str(PREFIX_CHARS))),
                "char": (root / "prepared-full-char", ("--tokenizer", "char"))}
    path = OUT / "prepare.json"
    record = json.loads(path.read_text()) if path.exists() else {"corpus": corpus, "runs": {}}
    for name, (folder, extra) in variants.items():
        if name not in record["runs"]:
            shutil.rmtree(folder, ignore_errors=True)  # a folder without its record is measured again
            record["runs"][name] = prepare(Path(corpus["files"]["full"]), folder, workers, extra)
            write(path, record)
        run = record["runs"][name]
        print(f"prepare {name}: {run['characters_per_second']:,} characters/s, peak RSS {run['peak_rss_mib']:,} MiB",
              flush=True)
    if "char_mapping" not in record:
        record["char_mapping"] = char_mapping(Path(corpus["files"]["prefix"]))
        write(path, record)
    return record


def measure_lm(root: Path, corpus: dict, workers: int, steps: int) -> dict:
    """lm_memory.json: the same looped LM trained from the 5M-character prefix and from the
    whole corpus, one finished run at a time."""
    folders = {"prefix_5m": root / "prepared-5M", "full": root / "prepared-full"}
    path = OUT / "lm_memory.json"
    record = json.loads(path.read_text()) if path.exists() else {"runs": {}}
    for name, folder in folders.items():
        if name not in record["runs"]:
            source = Path(corpus["files"]["prefix" if name == "prefix_5m" else "full"])
            record.setdefault("prepared", {})[name] = prepare(source, folder, workers)
            record["runs"][name] = train(name, folder, steps)
            write(path, record)
        print(f"LM from {name}: peak RSS {record['runs'][name]['peak_rss_mib']:,} MiB", flush=True)
    return record


def render(prep: dict, lm: dict) -> str:
    """The token-file section of docs/results/your_data.md (its text.md)."""
    c = prep["corpus"]
    names = ", ".join(f"`{k}` {v['version']} ({v['licence']})" for k, v in c["packages"].items())
    lines = ["## Large text corpora: token files", "",
             f"Corpus: the documentation of the Debian 12 packages {names}, one JSONL record per file: "
             f"{c['characters']:,} characters in {c['documents']:,} documents. Rebuild: "
             "`python -m reports your_data_text` (2-core CPU shared with other jobs: rates are lower bounds).", "",
             "| `prepare text` | tokens | characters/s | wall s | peak RSS MiB |", "|---|---|---|---|---|"]
    for name, r in prep["runs"].items():
        lines.append(f"| {name} | {r['tokens']:,} | {r['characters_per_second']:,} | {r['wall_seconds']} | "
                     f"{r['peak_rss_mib']:,} |")
    m = prep.get("char_mapping")
    if m:
        lines += ["", f"Mapping characters to ids ({m['characters']:,} characters): vectorised table lookup "
                  f"{m['vectorised']:,}/s, Python loop {m['python_loop']:,}/s, the loop in 2 processes "
                  f"{m['process_pool_2']:,}/s."]
    lines += ["", "| looped LM (`lm-small`, BPE 8,192) from | corpus tokens | steps | peak RSS MiB | val loss |",
              "|---|---|---|---|---|"]
    for name, r in lm["runs"].items():
        lines.append(f"| {name} | {r['corpus_tokens']:,} | {r['steps']} | {r['peak_rss_mib']:,} | {r['val_loss']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = runner.parser("your_data_text", __doc__)
    ap.add_argument("--corpus-dir", default="/work/corpus", help="where the packages are unpacked (outside the repo)")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--workers", type=int, default=2, help="BPE encoding threads")
    args = ap.parse_args(argv)
    root = Path(args.corpus_dir)
    corpus = build_corpus(root)
    print(f"corpus: {corpus['characters']:,} characters in {corpus['documents']:,} documents", flush=True)
    prep = measure_prepare(root, corpus, args.workers)
    lm = measure_lm(root, corpus, args.workers, args.steps)
    (OUT / "text.md").write_text(render(prep, lm))
    return 0


if __name__ == "__main__":  # until `python -m reports your_data_text` dispatches here
    sys.exit(main())
