"""Acceptance fuzz of the whole command line, on real tiny checkpoints.

Every command runs in its own process with random arguments (valid values, boundaries,
huge and negative numbers, NaN and infinities, junk strings, missing paths, a FIFO, a
folder), and copies of real checkpoints get random edits of their files. Each call must
end with exit 0, or exit 2 and one ``loopformer: error:`` line as the last line of stderr;
never a traceback, never more than 1 GB of memory or 30 s, and the original checkpoints
stay byte-identical. Examples are derandomized (the same ones on every run) and not
shrunk (each costs a process start), so a failure names the exact command line; every
declared upper bound is also tried once on a valid call (BOUNDARIES).

LOOPFORMER_FUZZ_SCALE=N multiplies the random examples (a longer hunt);
LOOPFORMER_FUZZ_LOG=FILE appends one line per call (argv, exit, seconds, memory).
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from loopformer.arguments import MAX_THREADS

EXAMPLES = {"list": 1, "params": 3, "flops": 2, "demo": 3, "translate": 3, "eval": 3, "generate": 3,
            "classify": 3, "bench": 3, "train": 3, "analyze": 2, "plot": 3,
            "prepare": 3}  # analyze: per analysis
EXAMPLES_PER_FILE = 1  # random edits, per file of a checkpoint
WALL_LIMIT_S = 30.0
RSS_LIMIT = 1 << 30
DATA_LIMIT = 3 << 30  # a runaway allocation fails at once instead of taking the machine's memory
ANALYSES = ("cka", "probe", "mad", "attention-distance", "signals", "params", "flops")


SCALE = int(os.environ.get("LOOPFORMER_FUZZ_SCALE", "1"))  # more examples for a longer hunt, e.g. 10


def fuzz(examples: int):
    return settings(max_examples=examples * SCALE, deadline=None, derandomize=True, database=None,
                    phases=(Phase.explicit, Phase.generate), suppress_health_check=list(HealthCheck))


# --- the checkpoints -------------------------------------------------------------------

TEXT = "To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n" * 40
TRAIN = {
    "lm": ["language", "--preset", "lm-char", "dataset={TEXT}", "d_model=32", "n_heads=2", "context=64",
           "batch_size=2", "eval_windows=2", "max_steps=2", "progress=false"],
    "vis": ["vision", "--preset", "vit-tiny", "d_model=32", "n_heads=2", "d_ff=64", "n_layers=1", "signal_rank=4",
            "max_steps=2", "batch_size=4", "val_size=50", "test_split=val", "eval_every=100",
            "eval_batch_size=50", "progress=false"],
    "mt": ["translation", "--preset", "mt-small", "d_model=32", "n_heads=2", "d_ff=64", "n_layers=1",
           "signal_rank=4", "max_steps=2", "batch_tokens=512", "bpe_vocab_size=400", "val_bleu_sentences=4",
           "max_sentence_tokens=30",
           "test_splits=", "test_beam=1", "progress=false"],  # greedy eval: a second on 1,000 sentences
}


@dataclass
class World:
    root: Path
    places: dict[str, str]  # placeholder in an argument -> path
    digests: dict[str, str]  # every file of the original runs

    def runs(self) -> list[Path]:
        return [self.root / kind for kind in TRAIN]


def digest(runs: list[Path]) -> dict[str, str]:
    """sha256 of every file under the runs (confusion PNGs that eval adds beside them aside)."""
    out = {}
    for run in runs:
        for path in sorted(run.rglob("*")):
            if path.is_file() and not path.name.startswith("confusion-"):
                out[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def _inputs(root: Path) -> dict[str, str]:
    """The non-checkpoint things arguments may name: good and bad images, a FIFO, junk."""
    from PIL import Image

    Image.new("L", (28, 28), 200).save(root / "shirt.png")
    Image.new("RGBA", (37, 19), (10, 200, 30, 128)).save(root / "rgba.png")
    Image.new("L", (3000, 1), 0).save(root / "thin.png")
    (root / "junk.bin").write_bytes(os.urandom(300))
    (root / "empty").write_bytes(b"")
    (root / "c.txt").write_text(TEXT)
    (root / "dir").mkdir()
    os.mkfifo(root / "fifo")
    return {"PNG": "shirt.png", "RGBA": "rgba.png", "THIN": "thin.png", "FILE": "junk.bin", "EMPTY": "empty",
            "TEXT": "c.txt", "DIR": "dir", "FIFO": "fifo", "MISSING": "missing/nothing",
            "UNDER_FILE": "junk.bin/below"}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    if not os.environ.get("LOOPFORMER_DATA_MIRROR"):
        pytest.skip("the fuzz trains on Multi30k and Fashion-MNIST from the offline data mirror")
    root = tmp_path_factory.mktemp("fuzz")
    places = {k: str(root / v) for k, v in _inputs(root).items()}
    for kind, args in TRAIN.items():
        argv = ["train", args[0], "--model", "ringformer", "--out", str(root / kind), *args[1:]]
        res = run_cli([a.replace("{TEXT}", places["TEXT"]) for a in argv], root, timeout=120)
        assert res.code == 0, res.stderr
        places[kind.upper()] = str(root / kind / "best")
        places[f"{kind.upper()}_LAST"] = str(root / kind / "last")
        places[f"{kind.upper()}_RUN"] = str(root / kind)
    (root / "out").mkdir()
    w = World(root, places, {})
    w.digests = digest(w.runs())
    return w


# --- running one command -----------------------------------------------------------------


@dataclass
class Result:
    argv: list[str]
    code: int
    stderr: str
    seconds: float
    max_rss: int  # bytes

    def describe(self) -> str:
        tail = "\n".join(self.stderr.splitlines()[-6:])
        return f"argv: {self.argv}\nexit {self.code}, {self.seconds:.1f} s, {self.max_rss >> 20} MiB\n{tail}"


def _limits() -> None:
    resource.setrlimit(resource.RLIMIT_DATA, (DATA_LIMIT, DATA_LIMIT))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


# ``python -m loopformer`` that leaves its own peak RSS (VmHWM) in a file when it exits:
# wait4's ru_maxrss would include the pytest process it was forked from, which the
# integration tests make larger than the limit checked here
PEAK_WRAPPER = """
import atexit, os, runpy, sys
def _peak():
    with open("/proc/self/status") as f:
        kb = f.read().split("VmHWM:")[1].split()[0]
    with open(os.environ["LOOPFORMER_TEST_PEAK"], "w") as f:
        f.write(kb)
atexit.register(_peak)
sys.argv[0] = "loopformer"
runpy.run_module("loopformer", run_name="__main__", alter_sys=True)
"""


def run_cli(argv: list[str], root: Path, stdin: bytes = b"", timeout: float = WALL_LIMIT_S) -> Result:
    """``python -m loopformer ARGV`` in a child process, with its own peak RSS."""
    handle, name = tempfile.mkstemp(prefix="loopformer-peak-")
    os.close(handle)
    peak = Path(name)
    env = dict(os.environ, OMP_NUM_THREADS="1", LOOPFORMER_CACHE=str(root / "cache"), LOOPFORMER_TEST_PEAK=str(peak))
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-c", PEAK_WRAPPER, *argv], stdin=subprocess.PIPE, stdout=out,
                                stderr=err, env=env, cwd=root, preexec_fn=_limits)
        try:
            proc.stdin.write(stdin)
        except BrokenPipeError:
            pass
        proc.stdin.close()
        status, usage = _reap(proc, start + timeout)
        seconds = time.monotonic() - start
        err.seek(0)
        text = err.read().decode("utf-8", errors="replace")
    code = os.waitstatus_to_exitcode(status) if status is not None else -9
    try:  # a child killed at the deadline, or one that crashed, left no figure: wait4's bound
        max_rss = int(peak.read_text()) * 1024
    except (OSError, ValueError):
        max_rss = usage.ru_maxrss * 1024
    peak.unlink(missing_ok=True)
    return Result(argv, code, text, seconds, max_rss)


def _reap(proc: subprocess.Popen, deadline: float):
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return status, usage
        if time.monotonic() > deadline:
            proc.kill()
            _, _, usage = os.wait4(proc.pid, 0)
            proc.returncode = -9
            return None, usage
        time.sleep(0.02)


def fill(argv: list[str], places: dict[str, str]) -> list[str]:
    out = []
    for arg in argv:
        for key, path in places.items():
            arg = arg.replace("{" + key + "}", path)
        out.append(arg)
    return out


def check(res: Result) -> None:
    """Exit 0, or exit 2 ending in one ``loopformer: error:`` line (warnings may precede it);
    no traceback; within the time and memory bounds."""
    assert res.seconds < WALL_LIMIT_S and res.code != -9, f"took over {WALL_LIMIT_S} s\n{res.describe()}"
    assert "Traceback" not in res.stderr, res.describe()
    assert res.max_rss < RSS_LIMIT, f"peak memory over {RSS_LIMIT >> 20} MiB\n{res.describe()}"
    if res.code == 0:
        return
    assert res.code == 2, res.describe()
    lines = res.stderr.splitlines()
    assert lines and lines[-1].startswith("loopformer: error: "), res.describe()
    assert all(line.startswith("loopformer: warning: ") for line in lines[:-1]), res.describe()


def call(world: World, argv: list[str], stdin: bytes = b"") -> Result:
    """One checked call with a fresh output folder ({OUT}); the original runs stay intact."""
    out = Path(tempfile.mkdtemp(dir=world.root / "out"))
    (out / "old.txt").write_text("an existing file\n")
    res = run_cli(fill(argv, {**world.places, "OUT": str(out)}), world.root, stdin)
    _log(res)
    check(res)
    assert digest(world.runs()) == world.digests, f"an original checkpoint changed\n{res.describe()}"
    shutil.rmtree(out, ignore_errors=True)
    return res


def _log(res: Result) -> None:
    """With LOOPFORMER_FUZZ_LOG=FILE, one line per call: what ran and how it ended."""
    if os.environ.get("LOOPFORMER_FUZZ_LOG"):
        with open(os.environ["LOOPFORMER_FUZZ_LOG"], "a") as log:
            last = res.stderr.splitlines()[-1] if res.stderr.strip() else ""
            log.write(f"{res.code} {res.seconds:5.1f}s {res.max_rss >> 20:4d}M {res.argv} | {last[:160]}\n")


# --- argument strategies -------------------------------------------------------------------
# Each option has valid values and bad ones; a command line gets at most one bad value, so
# most calls get past the argument checks into the work, and every check still gets hit.

JUNK = ["", "x", "nan", "inf", "1e400", "-0", "0x10", "1_000", " 7 ", "\u0663", "--", "-", "é\n", "{FIFO}", "{DIR}"]
BAD_NUMBERS = ["0", "-1", "-7", "100000", "99999999999999999999999", str(2**63), str(2**64)]
BAD_FLOATS = ["nan", "-nan", "inf", "-inf", "1e308", "-1", "-1e-9", "5e-324", "1e-300"]
SAFE_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)
OUTPUTS = ["{OUT}/f.png", "{OUT}/new/deeper/f.png", "{OUT}/old.txt"]
BAD_OUTPUTS = ["{UNDER_FILE}/f.png", "{DIR}", "{FIFO}", "/proc/f.png", "{OUT}", "{TEXT}/x.png"]
CKPTS = ["{LM}", "{VIS}", "{MT}", "{LM_LAST}", "{VIS_LAST}", "{MT_LAST}"]
NOT_CKPTS = ["{LM_RUN}", "{FIFO}", "{DIR}", "{MISSING}", "{FILE}", "{PNG}", "nope"]
RUNS = ["{LM_RUN}", "{VIS_RUN}", "{MT_RUN}", "{LM_RUN}/metrics.jsonl"]  # what plot reads
NOT_RUNS = ["{LM}", "{FIFO}", "{DIR}", "{MISSING}", "{FILE}", "{EMPTY}", "{TEXT}", "{PNG}"]


def ints(*valid: int) -> tuple[list[str], list[str]]:
    return [str(v) for v in valid], BAD_NUMBERS + JUNK


def floats(*valid: float) -> tuple[list[str], list[str]]:
    return [repr(v) for v in valid], BAD_FLOATS + JUNK


def choice(valid: list[str], bad: list[str] = ()) -> tuple[list[str], list[str]]:
    return list(valid), list(bad) or JUNK


@st.composite
def options(draw, spec: dict) -> list[str]:
    """Any subset of the options in random order, at most one with a bad value; a None
    spec is a flag without a value."""
    names = draw(st.lists(st.sampled_from(sorted(spec)), unique=True, max_size=len(spec)))
    valued = [n for n in names if spec[n] is not None]
    bad = draw(st.one_of(st.none(), st.none(), st.sampled_from(valued))) if valued else None
    argv = []
    for name in names:
        argv.append("--" + name.replace("_", "-"))
        if spec[name] is not None:
            valid, wrong = spec[name]
            argv.append(draw(st.sampled_from(wrong if name == bad else valid)))
    return argv


def one(valid: list[str], bad: list[str]) -> st.SearchStrategy[list[str]]:
    """A positional argument: mostly a valid one (the first is the simplest example)."""
    return st.one_of(st.sampled_from(valid), st.sampled_from(valid), st.sampled_from(bad)).map(lambda a: [a])


def extras(good: list[str], bad: list[str], max_size: int = 2, min_size: int = 0) -> st.SearchStrategy[list[str]]:
    element = st.one_of(st.sampled_from(good), st.sampled_from(good), st.sampled_from(bad))
    return st.lists(element, min_size=min_size, max_size=max_size)


STRAY = st.one_of(st.just([]), st.just([]), st.just([]),  # now and then an argument no command takes
                  st.tuples(st.one_of(SAFE_TEXT, st.sampled_from(["--nope", "-x", "a=b", "d_model=32"]))).map(list))
TINY = ["d_model=32", "n_heads=2", "d_ff=64", "n_layers=2", "signal_rank=4"]
BAD_OVERRIDES = ["n_layers=0", "d_model=-1", "d_model=nan", "n_heads=3", "vocab_size=99999999999999", "dropout=2",
                 "max_len=1000000000", "bogus=1", "=", "d_model", "arch=nope", "d_model=1e3", "image_size=0",
                 "d_model=" + "9" * 5000]
PRESETS = ["ringformer-mt-small", "vit-tiny", "spiral-lm-160m", "ringformer-vit-b", "uit-s", "ringformer-lm-char"]
SMALL_PRESETS = ["ringformer-mt-small", "vit-tiny", "ringformer-lm-char", "uit-tiny", "spiral-lm-char",
                 "looped-lm-small"]
GOOD_STDIN = {"translate": b"Ein Hund l\xc3\xa4uft.\n\nZwei M\xc3\xa4nner.\n", "generate": b"To be, or not\n"}
BAD_STDIN = st.one_of(st.sampled_from([b"", ("Hund " * 300).encode(), b"\xff\xfe\n", b"\r\n\x0c"]),
                      st.binary(max_size=60), SAFE_TEXT.map(str.encode))


def stdin_of(command: str) -> st.SearchStrategy[bytes]:
    """What is piped in: mostly text the model can read, else random bytes."""
    good = st.just(GOOD_STDIN.get(command, b""))
    return st.one_of(good, good, BAD_STDIN)


SPLITS = choice(["val", "test", "test2016", "test2017"], ["train", "x", ""])
IMAGES = ["{PNG}", "{RGBA}", "{THIN}"]
BAD_IMAGES = ["{FIFO}", "{DIR}", "{MISSING}", "{FILE}", "{EMPTY}", "{TEXT}"]
BENCH = ["ringformer-lm-char", "vanilla-lm-small", "vit-tiny", "ringformer-mt-small", "torch-transformer",
         "ringformer-mt-small:bf16", "looped-lm-char+nopack"]
BAD_BENCH = ["vit-tiny+nope", "nope", "ringformer-mt-small:fp8"]


def _for_task(command: str) -> list[str]:
    """Checkpoints of the task a command reads first (its simplest example is a valid call)."""
    return {"translate": ["{MT}", "{MT_LAST}"], "generate": ["{LM}", "{LM_LAST}"],
            "classify": ["{VIS}", "{VIS_LAST}"]}.get(command, CKPTS)


def _analyze(analysis: str) -> list:
    pairs = [["{MT}", "{MT_LAST}"], ["{VIS}", "{VIS_LAST}"], ["{LM}", "{LM_LAST}"]]
    singles = {"mad": [["{VIS}"]], "params": [["ringformer-lm-char"], ["{MT}"]], "flops": [["{LM}"], ["vit-tiny"]]}
    good = pairs if analysis in ("cka", "probe") else singles.get(analysis, [["{MT}"], ["{VIS}"], ["{LM}"]])
    targets = st.one_of(st.sampled_from(good), st.sampled_from(good),
                        st.lists(st.sampled_from(CKPTS + NOT_CKPTS), max_size=3))
    return [st.just(["analyze", analysis]), targets,
            options({"data": SPLITS, "plot": choice(OUTPUTS, BAD_OUTPUTS), "json": None,
                     "batch_size": ints(16, 64, 1, 256), "max_batches": ints(1, 2), "context": ints(64, 1),
                     "threads": ints(1, 2)})]


def _bench() -> list:
    sizes = {"batch": ints(2, 1, 256), "src_len": ints(8, 4, 4096), "tgt_len": ints(4, 2), "context": ints(16, 8),
             "prompt": ints(4, 2), "new_tokens": ints(4, 2), "beam": ints(2, 1, 64), "repeats": ints(1, 2, 100),
             "warmup": ints(0, 1), "vocab_size": ints(40), "threads": ints(1, 2),
             "positions": choice(["4", "8,16"], ["0", "1,a", "", "9999999", "4," * 20]),
             "workloads": choice(["train", "prefill,generate", "decode", "core", "beam", "infer", "greedy,encode"],
                                 ["x", "", ","]),
             "baseline": choice(["vit-tiny", "ringformer-lm-char"], ["x"]), "json": choice(OUTPUTS, BAD_OUTPUTS),
             "device": choice(["cpu", "auto"], ["cuda", "nope", "cuda:7"]), "precision": choice(["fp32", "bf16"])}
    fixed = ["--batch", "2", "--context", "16", "--src-len", "8", "--tgt-len", "4", "--prompt", "4", "--new-tokens",
             "4", "--positions", "4", "--repeats", "1", "--warmup", "0", "--no-peak"]  # overridden by later flags
    return [st.just(["bench"]), extras(BENCH, BAD_BENCH, min_size=1), st.just(TINY[:3] + fixed),
            extras(["max_len=64"], BAD_OVERRIDES, 1), options(sizes)]


def argv_of(command: str) -> st.SearchStrategy[list[str]]:
    """Random command lines of a command (a tuple of strategies of argument groups)."""
    ckpt = one(_for_task(command), CKPTS + NOT_CKPTS)
    threads, beam = ints(1, 2), ints(2, 1, 64)
    parts = {
        "list": [st.just(["list"])],
        "params": [st.just(["params"]), one(PRESETS + CKPTS, NOT_CKPTS), extras(TINY, BAD_OVERRIDES),
                   options({"vocab_size": ints(40, 1 << 24), "num_classes": ints(10, 1),
                            "image_size": ints(28, 65536), "json": None})],
        "flops": [st.just(["flops"]), one(["ringformer-lm-char", "spiral-lm-160m", "{LM}"], NOT_CKPTS + CKPTS),
                  extras(TINY, BAD_OVERRIDES), options({"context": ints(64, 1, 256), "vocab_size": ints(40),
                                                        "json": None})],
        "demo": [st.just(["demo"]), one(SMALL_PRESETS, ["{LM}", "nope", "{DIR}", "{FIFO}"]),
                 extras(TINY, BAD_OVERRIDES), options({"batch": ints(2, 1, 8), "length": ints(16, 1, 256)})],
        "translate": [st.just(["translate"]), ckpt,
                      options({"beam": beam, "length_penalty": floats(0.6, 0.0, 10.0), "threads": threads})],
        "eval": [st.just(["eval"]), ckpt,
                 options({"split": SPLITS, "confusion": choice(OUTPUTS, BAD_OUTPUTS), "beam": ints(1),
                          "length_penalty": floats(0.0, 1.0), "threads": threads, "json": None})],
        "generate": [st.just(["generate"]), ckpt,
                     options({"prompt": choice(["To be", "T", "A" * 100], ["", "é", "\u2028"]),
                              "max_new_tokens": ints(20, 0, 1_000_000),
                              "temperature": floats(0.8, 0.0, 0.001, 100.0), "top_k": ints(5, 1, 1_000_000),
                              "seed": ints(0, 2**63 - 1), "threads": threads})],
        "classify": [st.just(["classify"]), ckpt, extras(IMAGES, BAD_IMAGES, 3),
                     options({"top_k": ints(3, 1, 1_000_000), "invert": choice(["auto", "yes", "no"], ["maybe"]),
                              "json": None})],
        "bench": _bench(),
        "prepare": [st.just(["prepare", "text"]),
                    extras(["{TEXT}"], ["{FILE}", "{EMPTY}", "{DIR}", "{FIFO}", "{MISSING}", "{LM}"], 2, min_size=1),
                    st.just(["--out"]),
                    one(["{OUT}/prepared", "{OUT}/new/deeper"], ["{OUT}/old.txt", "{FIFO}", "{UNDER_FILE}", "/proc/p"]),
                    options({"tokenizer": choice(["bpe", "char"]), "vocab_size": ints(300, 1 << 20),
                             "val_fraction": floats(0.005, 0.0, 0.5), "tokenizer_sample_chars": ints(1, 1000),
                             "format": choice(["auto", "text", "jsonl"]), "field": choice(["text", "body", ""]),
                             "hf_dataset": choice(["wikitext"]), "workers": ints(1, 2), "force": None,
                             "quiet": None})],
        "plot": [st.just(["plot"]), extras(RUNS, NOT_RUNS, 3, min_size=1), st.just(["--out"]),
                 one(OUTPUTS, BAD_OUTPUTS), options({"labels": choice(["a", "a,b", "x,y,z"], ["", ",", "a,,b"]),
                                                     "x": choice(["step", "tokens", "minutes"], ["hours", ""])})],
    }
    if command.startswith("analyze "):
        parts[command] = _analyze(command.split()[1])
    return st.tuples(*parts[command], STRAY).map(lambda groups: [a for g in groups for a in g])


COMMANDS = [(c, EXAMPLES[c]) for c in EXAMPLES if c not in ("analyze", "train")]
COMMANDS += [(f"analyze {a}", EXAMPLES["analyze"]) for a in ANALYSES]


_BENCH_TINY = ["d_model=32", "n_heads=2", "d_ff=64", "--prompt", "4", "--new-tokens", "4", "--positions", "4",
               "--repeats", "1", "--warmup", "0", "--no-peak"]
_AT_MOST = ["--batch-size", "256", "--max-batches", "2", "--threads", str(MAX_THREADS)]
BOUNDARIES = {  # every declared upper bound at once, on a valid call: explicit examples, run first
    "translate": [["translate", "{MT}", "--beam", "64", "--length-penalty", "10", "--threads", str(MAX_THREADS)]],
    "eval": [["eval", "{VIS}", "--split", "test", "--confusion", "{OUT}/new/cm.png", "--threads", str(MAX_THREADS)],
             ["eval", "{MT}", "--split", "test2017", "--beam", "1", "--length-penalty", "10", "--json"]],
    "generate": [["generate", "{LM}", "--prompt", "To be", "--max-new-tokens", "1000000", "--temperature", "100",
                  "--top-k", "1000000", "--seed", str(2**63 - 1), "--threads", str(MAX_THREADS)],
                 ["generate", "{LM}", "--prompt", "T", "--temperature", "0.001"]],
    "classify": [["classify", "{VIS}", "{PNG}", "{RGBA}", "{THIN}", "--top-k", "1000000", "--json"]],
    "demo": [["demo", "ringformer-mt-small", "--batch", "8", "--length", "256"]],
    "flops": [["flops", "spiral-lm-160m", "--context", "4096"]],
    "bench": [["bench", "ringformer-lm-char", *_BENCH_TINY, "--batch", "256", "--context", "64"],
              ["bench", "ringformer-mt-small", *_BENCH_TINY, "--batch", "16", "--beam", "64", "--src-len", "8",
               "--tgt-len", "8"],
              ["bench", "vanilla-lm-small", *_BENCH_TINY, "--batch", "2", "--context", "16"]],
    "analyze cka": [["analyze", "cka", "{MT}", "{MT_LAST}", *_AT_MOST]],
    "analyze probe": [["analyze", "probe", "{VIS}", "{VIS_LAST}", *_AT_MOST]],
    "analyze mad": [["analyze", "mad", "{VIS}", *_AT_MOST, "--plot", "{OUT}/mad.png"]],
    "analyze attention-distance": [["analyze", "attention-distance", "{MT}", *_AT_MOST]],
    "analyze signals": [["analyze", "signals", "{LM}", *_AT_MOST]],
    "prepare": [["prepare", "text", "{TEXT}", "--out", "{OUT}/new/p", "--vocab-size", str(1 << 20), "--val-fraction",
                 "0.5", "--tokenizer-sample-chars", str(1 << 40), "--workers", str(MAX_THREADS)],
                ["prepare", "text", "{TEXT}", "{TEXT}", "--out", "{OUT}/p", "--tokenizer", "char", "--quiet"]],
    "plot": [["plot", "{MT_RUN}", "{MT_RUN}/metrics.jsonl", "--out", "{OUT}/new/c.png", "--x", "step",
              "--labels", "a,b"]],
}


@pytest.mark.parametrize("command, examples", COMMANDS, ids=[c for c, _ in COMMANDS])
def test_every_command_with_random_arguments(world, command, examples):
    def one(argv, stdin):
        call(world, argv, stdin)

    test = given(argv=argv_of(command), stdin=stdin_of(command))(one)
    for argv in BOUNDARIES.get(command, []):
        test = example(argv=argv, stdin=GOOD_STDIN.get(command, b""))(test)
    fuzz(examples)(test)()


RESUME_SETTINGS = st.lists(st.sampled_from(
    ["max_steps=3", "max_steps=0", "max_steps=-1", f"max_steps={2**70}", "max_steps=nan", "lr=nan", "lr=-1",
     "batch_size=0", "d_model=48", "eval_windows=99999999999", "context=100000", "dataset={FIFO}",
     "dataset={DIR}", "dataset={MISSING}", "dataset={EMPTY}", "dataset={FILE}", "threads=0", "seed=-1",
     "progress=false", "bogus=1", "=", "max_steps"]), min_size=1, max_size=3)


@fuzz(EXAMPLES["train"])
@given(settings_=RESUME_SETTINGS, config=st.sampled_from([None, "{FIFO}", "{DIR}", "{MISSING}", "{FILE}", "{EMPTY}"]),
       model=st.sampled_from(["ringformer", "vanilla", "nope"]))
def test_train_resume_into_a_copy(world, settings_, config, model):
    copy = Path(tempfile.mkdtemp(dir=world.root / "out")) / "run"
    shutil.copytree(world.root / "lm", copy)
    argv = ["train", "language", "--model", model, "--preset", "lm-char", "--out", str(copy), "--resume",
            "max_steps=3", *settings_] + (["--config", config] if config else [])
    call(world, argv)


# --- random edits of a checkpoint's files ---------------------------------------------------

JSON_LEAVES = st.one_of(st.none(), st.booleans(), st.integers(-3, 3),
                        st.sampled_from([2**31, 2**63, 10**30, -(10**20)]),
                        st.floats(allow_nan=True, allow_infinity=True), SAFE_TEXT)
JSON_VALUES = st.one_of(JSON_LEAVES, st.lists(JSON_LEAVES, max_size=3),
                        st.dictionaries(SAFE_TEXT, JSON_LEAVES, max_size=3),
                        st.lists(st.lists(JSON_LEAVES, max_size=2), max_size=2))
JSON_EDITS = ["set", "delete", "add", "nest", "huge", "truncate", "garbage", "fifo", "directory", "empty", "type"]
BINARY_EDITS = ["truncate", "garbage", "fifo", "directory", "empty", "flip"]


def _keys(data, prefix=()):
    """Every key path of a JSON document (dict keys and list indexes)."""
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else []
    for k, v in items:
        yield prefix + (k,)
        yield from _keys(v, prefix + (k,))


def edit_file(path: Path, edit: str, draw) -> None:
    """Apply one random edit to a file of a checkpoint copy."""
    raw = path.read_bytes()
    if edit in ("fifo", "directory"):
        path.unlink()
        os.mkfifo(path) if edit == "fifo" else path.mkdir()
    elif edit in ("truncate", "empty"):
        path.write_bytes(raw[: draw(st.integers(0, max(len(raw) - 1, 0)))] if edit == "truncate" else b"")
    elif edit == "garbage":
        path.write_bytes(draw(st.binary(min_size=1, max_size=64)))
    elif edit == "flip":
        i = draw(st.integers(0, len(raw) - 1))
        path.write_bytes(raw[:i] + bytes([raw[i] ^ 0xFF]) + raw[i + 1:])
    else:
        path.write_text(json.dumps(_edited_json(json.loads(raw), edit, draw)))


def _edited_json(data, edit: str, draw):
    keys = list(_keys(data))
    if edit == "type" or not keys:
        return draw(JSON_VALUES)  # the whole document replaced by another JSON value
    if edit == "add":
        holders = [()] * isinstance(data, dict) + [k for k in keys if isinstance(_get(data, k), dict)]
        if holders:
            _set(data, draw(st.sampled_from(holders)) + (draw(SAFE_TEXT),), draw(JSON_VALUES))
        return data
    key = draw(st.sampled_from(keys))
    if edit == "delete":
        _set(data, key, None, delete=True)
    elif edit == "huge":
        _set(data, key, draw(st.sampled_from([10**12, 2**63, 10**40, -(10**12), 1e308])))
    elif edit == "nest":
        _set(data, key, [[[[[1]]]]] * 3)
    else:
        _set(data, key, draw(JSON_VALUES))
    return data


def _get(data, path):
    for k in path:
        data = data[k]
    return data


def _set(data, path, value, delete=False):
    target = _get(data, path[:-1])
    if delete:
        del target[path[-1]]
    else:
        target[path[-1]] = value


EDITED_FILES = [("lm", f) for f in ("chars.json", "config.json", "task.json", "trainer_state.json",
                                    "model.safetensors", "trainer_state.safetensors")]
EDITED_FILES += [("vis", f) for f in ("config.json", "task.json", "trainer_state.json", "model.safetensors")]
EDITED_FILES += [("mt", f) for f in ("config.json", "task.json", "tokenizer.json", "trainer_state.json",
                                     "model.safetensors")]
USES = {  # commands that read a checkpoint of each task (and one of another task's)
    "lm": [["generate", "{CKPT}", "--prompt", "To", "--max-new-tokens", "5"], ["eval", "{CKPT}"],
           ["params", "{CKPT}"], ["analyze", "signals", "{CKPT}", "--max-batches", "1"], ["translate", "{CKPT}"],
           ["train", "language", "--out", "{RUN}", "--resume", "max_steps=3"]],
    "vis": [["eval", "{CKPT}", "--split", "val", "--confusion", "{OUT}/cm.png"], ["classify", "{CKPT}", "{PNG}"],
            ["analyze", "mad", "{CKPT}", "--max-batches", "1"], ["flops", "{CKPT}"], ["generate", "{CKPT}"],
            ["train", "vision", "--out", "{RUN}", "--resume", "max_steps=3"]],
    "mt": [["translate", "{CKPT}", "--beam", "2"], ["eval", "{CKPT}", "--split", "val", "--beam", "1"],
           ["analyze", "attention-distance", "{CKPT}", "--max-batches", "1"], ["classify", "{CKPT}", "{PNG}"],
           ["train", "translation", "--out", "{RUN}", "--resume", "max_steps=3"]],
}


@pytest.mark.parametrize("kind, name", EDITED_FILES, ids=[f"{k}-{n}" for k, n in EDITED_FILES])
def test_random_edits_of_checkpoint_files(world, kind, name):
    index = EDITED_FILES.index((kind, name))
    edits = JSON_EDITS if name.endswith(".json") else BINARY_EDITS
    edits = edits[index % len(edits):] + edits[: index % len(edits)]  # derandomized: vary the first pick per file

    @fuzz(EXAMPLES_PER_FILE)
    @given(data=st.data())
    def one(data):
        run = Path(tempfile.mkdtemp(dir=world.root / "out")) / "run"
        shutil.copytree(world.root / kind, run)
        folder = data.draw(st.sampled_from(["last", "best"] if (run / "best" / name).exists() else ["last"]))
        edit_file(run / folder / name, data.draw(st.sampled_from(edits)), data.draw)
        uses = USES[kind][index % len(USES[kind]):] + USES[kind][: index % len(USES[kind])]
        argv = data.draw(st.sampled_from(uses))
        call(world, [a.replace("{CKPT}", str(run / folder)).replace("{RUN}", str(run)) for a in argv],
             b"Ein Hund.\n")

    one()
