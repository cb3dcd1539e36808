"""Exported models give loopformer's logits and tokens, through both loading routes."""

import json
import subprocess
import sys

import pytest
import torch

transformers = pytest.importorskip("transformers")

import loopformer.hf  # noqa: E402,F401  (registers the Auto classes)
from loopformer.data.tokenizer import BOS, EOS  # noqa: E402
from loopformer.generate import beam_search, greedy_search  # noqa: E402
from loopformer.models.depth import run_depth  # noqa: E402
from loopformer.sampling import sample  # noqa: E402
from loopformer.tasks.registry import load_checkpoint  # noqa: E402

PROMPTS = ["To be", "Whether 'tis", "or not to be, that", "T", "nobler in", "the question:\nW", "suffer", "be, or"]
SOURCES = ["Zwei Hunde spielen im Schnee.", "Ein Mann.", "Eine Frau mit einem roten Hut sitzt auf einer Bank.",
           "Kinder", "Ein kleines Mädchen klettert in ein Spielhaus aus Holz.", "Drei Leute", "Ein Hund rennt.",
           "Zwei junge Männer stehen neben einem Zaun und schauen auf das Wasser."]


def _lm(lm_ckpt, lm_hf):
    model = transformers.AutoModelForCausalLM.from_pretrained(lm_hf).eval()
    tok = transformers.AutoTokenizer.from_pretrained(lm_hf)
    net = load_checkpoint(lm_ckpt)[0]
    return model, tok, net


def test_causal_lm_logits_match_on_a_left_padded_batch(lm_ckpt, lm_hf):
    model, tok, net = _lm(lm_ckpt, lm_hf)
    enc = tok(PROMPTS, return_tensors="pt", padding=True)
    assert len(set(enc.attention_mask.sum(1).tolist())) > 4  # really of different lengths
    with torch.no_grad():
        ours = net(enc.input_ids, padding_mask=enc.attention_mask.eq(0))
        theirs = model(**enc).logits
    real = enc.attention_mask.bool()
    assert (ours - theirs)[real].abs().max() <= 1e-5


@pytest.mark.parametrize("use_cache", [True, False])
def test_greedy_generate_of_8_left_padded_prompts_equals_loopformer(lm_ckpt, lm_hf, use_cache):
    model, tok, net = _lm(lm_ckpt, lm_hf)
    enc = tok(PROMPTS, return_tensors="pt", padding=True)
    out = model.generate(**enc, max_new_tokens=12, do_sample=False, use_cache=use_cache)
    ref = sample(net, enc.input_ids, 12, temperature=0, padding_mask=enc.attention_mask.eq(0))
    assert torch.equal(out, ref)


def test_loops_pass_through_generate_and_the_config(lm_ckpt, lm_hf):
    model, tok, net = _lm(lm_ckpt, lm_hf)
    enc = tok(PROMPTS[:3], return_tensors="pt", padding=True)
    with run_depth(net, loops=6, rule="cycle"):
        ref = sample(net, enc.input_ids, 8, temperature=0, padding_mask=enc.attention_mask.eq(0))
    assert torch.equal(model.generate(**enc, max_new_tokens=8, do_sample=False, loops=6, level_rule="cycle"), ref)
    model.config.loops, model.config.level_rule = 6, "cycle"
    assert torch.equal(model.generate(**enc, max_new_tokens=8, do_sample=False), ref)


def test_trust_remote_code_loads_the_folder_without_importing_loopformer_hf(lm_ckpt, lm_hf):
    probe = (
        "import json, sys, torch\n"
        "from transformers import AutoModelForCausalLM, AutoTokenizer\n"
        f"m = AutoModelForCausalLM.from_pretrained({str(lm_hf)!r}, trust_remote_code=True).eval()\n"
        f"t = AutoTokenizer.from_pretrained({str(lm_hf)!r})\n"
        f"e = t({PROMPTS!r}, return_tensors='pt', padding=True)\n"
        "print(json.dumps(m.generate(**e, max_new_tokens=6, do_sample=False).tolist()))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=_offline())
    assert done.returncode == 0, done.stderr[-2000:]
    model, tok, net = _lm(lm_ckpt, lm_hf)
    enc = tok(PROMPTS, return_tensors="pt", padding=True)
    ref = sample(net, enc.input_ids, 6, temperature=0, padding_mask=enc.attention_mask.eq(0))
    assert json.loads(done.stdout.strip().splitlines()[-1]) == ref.tolist()


def _offline():
    import os

    return {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def _mt(mt_ckpt, mt_hf):
    model = transformers.AutoModelForSeq2SeqLM.from_pretrained(mt_hf).eval()
    tok = transformers.AutoTokenizer.from_pretrained(mt_hf)
    net, task, _ = load_checkpoint(mt_ckpt)
    return model, tok, net, task


def test_seq2seq_tokenizer_and_logits_match(mt_ckpt, mt_hf):
    model, tok, net, task = _mt(mt_ckpt, mt_hf)
    enc = tok(SOURCES, return_tensors="pt", padding=True)
    assert [row[row.ne(0)].tolist() for row in enc.input_ids] == task.encode_pairs(SOURCES, SOURCES)[0]
    tgt = torch.randint(4, net.config.target_vocab_size, (len(SOURCES), 7))
    tgt[:, 0] = BOS
    with torch.no_grad():
        ours = net(enc.input_ids, tgt, enc.attention_mask.eq(0))
        theirs = model(**enc, decoder_input_ids=tgt).logits
    assert (ours - theirs).abs().max() <= 1e-5


def test_seq2seq_greedy_and_beam_generate_equal_loopformer(mt_ckpt, mt_hf):
    model, tok, net, _ = _mt(mt_ckpt, mt_hf)
    enc = tok(SOURCES, return_tensors="pt", padding=True)
    pad = enc.attention_mask.eq(0)
    greedy = model.generate(**enc, max_new_tokens=10, do_sample=False)
    assert [row[1:].tolist() for row in greedy] == greedy_search(net, enc.input_ids, BOS, EOS, 10, pad).tokens
    beam = model.generate(**enc, max_new_tokens=10, do_sample=False, num_beams=4, length_penalty=0.0)
    uncached = model.generate(**enc, max_new_tokens=10, do_sample=False, num_beams=4, length_penalty=0.0,
                              use_cache=False)
    assert torch.equal(beam, uncached)  # the (level, layer) cache follows beam reordering
    ours = beam_search(net, enc.input_ids, BOS, EOS, 10, beam=4, length_penalty=0.0, src_padding_mask=pad)
    assert [_strip(row[1:].tolist()) for row in beam] == ours.tokens


def _strip(ids):
    return ids[: ids.index(EOS)] if EOS in ids else [i for i in ids if i != 0]


def test_vit_logits_and_labels(vit_ckpt, vit_hf):
    model = transformers.AutoModelForImageClassification.from_pretrained(vit_hf).eval()
    net, task, _ = load_checkpoint(vit_ckpt)
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        assert (model(pixel_values=x).logits - net(x)).abs().max() <= 1e-5
    assert model.config.id2label[0] == task.classes[0]


def test_labels_give_the_loopformer_loss(lm_ckpt, lm_hf):
    model, tok, net = _lm(lm_ckpt, lm_hf)
    ids = torch.tensor([tok("To be, or not to be")["input_ids"]])
    with torch.no_grad():
        loss = model(input_ids=ids, labels=ids).loss
        logits = net(ids)
    ref = torch.nn.functional.cross_entropy(logits[0, :-1], ids[0, 1:])
    assert abs(loss.item() - ref.item()) < 1e-6


def test_seq2seq_generate_takes_loops_for_encoder_and_decoder(mt_ckpt, mt_hf):
    model, tok, net, _ = _mt(mt_ckpt, mt_hf)
    enc = tok(SOURCES[:4], return_tensors="pt", padding=True)
    with run_depth(net, loops=4):
        ref = greedy_search(net, enc.input_ids, BOS, EOS, 8, enc.attention_mask.eq(0)).tokens
    out = model.generate(**enc, max_new_tokens=8, do_sample=False, loops=4)
    assert [_strip(row[1:].tolist()) for row in out] == ref
