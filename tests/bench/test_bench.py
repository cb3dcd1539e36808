import json

import pytest
import torch

from loopformer.bench.entries import split_name
from loopformer.bench.workloads import greedy_uncached
from loopformer.cli import main
from loopformer.generate import greedy_search
from loopformer.registry import create_model

TINY = ["d_model=32", "n_heads=2", "d_ff=64", "n_layers=2"]
FAST = ["--repeats", "2", "--warmup", "0", "--batch", "2"]


def test_seq2seq_bench_writes_json_with_ratios_flops_and_mfu(tmp_path, capsys):
    out = tmp_path / "b.json"
    code = main(["bench", "ringformer-mt-small", "vanilla-mt-small:bf16", "torch-transformer:bf16", *TINY,
                 "signal_rank=4", "--vocab-size", "50", "--src-len", "6", "--tgt-len", "5", *FAST,
                 "--workloads", "train,encode,greedy,greedy-nocache,greedy-rerun,beam",
                 "--baseline", "vanilla-mt-small:bf16",
                 "--json", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "matmul peak" in text and "torch-transformer:bf16" in text
    res = json.loads(out.read_text())
    assert res["peaks"]["fp32"] > 0 and res["peaks"]["bf16"] > 0
    rows = {(r["workload"], r["entry"]): r for r in res["rows"]}
    assert rows[("train", "vanilla-mt-small:bf16")]["ratio"] == 1.0
    train = rows[("train", "ringformer-mt-small")]
    assert train["units"] == 2 * 5 and len(train["seconds"]) == 2
    assert train["flops"] > 0 and 0 < train["mfu"] < 1.5
    assert train["memory_mib"] > 0
    # inference rows carry counted FLOPs: re-running the decoder does more arithmetic than the cache
    flops = {w: rows[(w, "ringformer-mt-small")]["flops"] for w in ("encode", "greedy", "greedy-nocache",
                                                                     "greedy-rerun")}
    assert 0 < flops["encode"] < flops["greedy"] < flops["greedy-nocache"] < flops["greedy-rerun"]
    assert "GFLOP/s" in text
    # the reference only trains; decoding workloads are the library's
    assert ("train", "torch-transformer:bf16") in rows and ("greedy", "torch-transformer:bf16") not in rows
    assert {w for w, e in rows if e == "ringformer-mt-small"} == {"train", "encode", "greedy", "greedy-nocache",
                                                                   "greedy-rerun", "beam4"}


def test_decoder_bench_decode_positions_and_core(tmp_path, capsys):
    out = tmp_path / "lm.json"
    assert main(["bench", "spiral-lm-char", "looped-lm-char", "d_model=32", "n_heads=2", "d_ff=64", "max_len=96",
                 *FAST, "--no-peak", "--context", "32", "--prompt", "8", "--new-tokens", "8", "--positions", "8,64",
                 "--workloads", "train,prefill,generate,decode,core", "--json", str(out)]) == 0
    rows = {(r["workload"], r["entry"]): r for r in json.loads(out.read_text())["rows"]}
    assert ("decode@8", "looped-lm-char") in rows and ("decode@64", "spiral-lm-char") in rows
    # the loop runs its 2-layer core 3 times per token; SpiralFormer {4,2,1} on average 2 * (1/4 + 1/2 + 1)
    assert rows[("core", "looped-lm-char")]["calls_per_token"] == pytest.approx(6.0)
    assert rows[("core", "spiral-lm-char")]["calls_per_token"] == pytest.approx(3.5, abs=0.5)


def test_uncached_greedy_equals_cached_greedy():
    torch.manual_seed(0)
    model = create_model("ringformer-mt-small", vocab_size=40, d_model=32, n_heads=2, d_ff=64, signal_rank=4).eval()
    src = torch.randint(2, 40, (3, 7))
    cached = greedy_search(model, src, 1, -1, 6)
    assert greedy_uncached(model, src, 1, 6).tolist() == cached.tokens
    assert greedy_uncached(model, src, 1, 6, rerun_encoder=True).tolist() == cached.tokens


@pytest.mark.parametrize("args, message", [
    (["nope-mt"], "unknown"),
    (["ringformer-mt-small:fp8"], "unknown precision"),
    (["torch-transformer"], "sized after an encoder-decoder preset"),
    (["ringformer-mt-small", "looped-lm-char"], "mix tasks"),
    (["looped-lm-char", "--workloads", "beam"], "no workload 'beam'"),
    (["looped-lm-char", "--baseline", "x"], "baseline 'x'"),
    (["looped-lm-char", "--positions", "a"], "--positions"),
    (["looped-lm-char", "--beam", "0"], "--beam must be >= 1"),
    (["vanilla-lm-char", "--workloads", "core"], "no shared core"),
])
def test_bad_arguments_give_one_line_errors(args, message, capsys):
    assert main(["bench", *args, "d_model=32", "n_heads=2", "d_ff=64", "--no-peak", "--repeats", "1",
                 "--warmup", "0", "--batch", "1", "--context", "8", "--prompt", "4", "--new-tokens", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("loopformer: error:") and message in err and "\n" not in err


def test_split_name():
    assert split_name("ringformer-mt-base:bf16+compile", "fp32") == ("ringformer-mt-base", "bf16", {"compile"})
    assert split_name("vit-tiny", "bf16") == ("vit-tiny", "bf16", set())
    assert split_name("vit-tiny+compile+nopack", "fp32") == ("vit-tiny", "fp32", {"compile", "nopack"})


def test_unknown_entry_option_is_a_config_error():
    from loopformer.errors import ConfigError

    with pytest.raises(ConfigError, match=r"unknown option '\+fast'.*\+nopack"):
        split_name("vit-tiny+fast", "fp32")


def test_nopack_entry_decodes_without_packing(tmp_path):
    out = tmp_path / "p.json"
    assert main(["bench", "ringformer-mt-small", "ringformer-mt-small+nopack", *TINY, "signal_rank=4",
                 "--vocab-size", "50", "--src-len", "6", "--tgt-len", "5", *FAST, "--no-peak",
                 "--workloads", "greedy", "--baseline", "ringformer-mt-small+nopack", "--json", str(out)]) == 0
    rows = {r["entry"]: r for r in json.loads(out.read_text())["rows"]}
    assert set(rows) == {"ringformer-mt-small", "ringformer-mt-small+nopack"}
    # the same arithmetic is counted either way (FLOP counting never takes the packed path)
    assert rows["ringformer-mt-small"]["flops"] == rows["ringformer-mt-small+nopack"]["flops"] > 0


def test_vision_bench_counts_images(tmp_path):
    out = tmp_path / "vit.json"
    assert main(["bench", "ringformer-vit-tiny", "vit-tiny", "d_model=32", "n_heads=2", "d_ff=64", "signal_rank=4",
                 *FAST, "--no-peak", "--baseline", "vit-tiny", "--json", str(out)]) == 0
    rows = {(r["workload"], r["entry"]): r for r in json.loads(out.read_text())["rows"]}
    assert set(rows) == {(w, e) for w in ("train", "infer") for e in ("ringformer-vit-tiny", "vit-tiny")}
    assert rows[("infer", "vit-tiny")]["unit"] == "images" and rows[("infer", "vit-tiny")]["units"] == 2


def test_shared_overrides_apply_only_where_they_apply(capsys):
    from loopformer.bench.entries import parse_entry

    over = {"d_model": 32, "n_heads": 2, "d_ff": 64, "signal_rank": 4, "n_layers": 2, "image_size": 8,
            "patch_size": 4}
    ring = parse_entry("ringformer-vit-tiny", over, torch.device("cpu"))
    vit = parse_entry("vit-tiny", over, torch.device("cpu"))
    assert ring.config.signal_rank == 4 and vit.config.signal_rank is None
    err = capsys.readouterr().err
    assert "vit-tiny: signal_rank not set (does not apply to this model)" in err
    assert "ringformer-vit-tiny:" not in err


def test_inference_flops_of_a_model_with_learned_positions(capsys):
    # learned positions are a slice of a parameter; counting FLOPs of prefill and
    # generation under no_grad used to fail inside torch's module tracker
    assert main(["bench", "vanilla-lm-small", "d_model=32", "n_heads=2", "d_ff=64", "--prompt", "4",
                 "--new-tokens", "4", "--positions", "4", "--context", "16", "--workloads", "prefill,generate",
                 "--no-peak", *FAST]) == 0
    assert "prefill" in capsys.readouterr().out
