"""Activation checkpointing recomputes the core in backward: same gradients, fewer saved tensors."""

import pytest
import torch

from loopformer import create_model

CASES = [
    ("ringformer-mt-small", dict(vocab_size=50, d_model=32, n_heads=2, d_ff=64)),
    ("looped-lm-char", dict(vocab_size=30, d_model=32, n_heads=2, d_ff=64, state_update="mesh")),
    ("spiral-lm-char", dict(vocab_size=30, d_model=32, n_heads=2, d_ff=64)),
    ("ringformer-vit-tiny", dict(d_model=32, n_heads=2, d_ff=64, image_size=8, patch_size=4)),
]


def inputs(model):
    cfg = model.config
    if cfg.task == "vit":
        return (torch.randn(3, cfg.in_channels, cfg.image_size, cfg.image_size),)
    if cfg.task == "seq2seq":
        return torch.randint(1, cfg.vocab_size, (3, 9)), torch.randint(1, cfg.vocab_size, (3, 7))
    return (torch.randint(1, cfg.vocab_size, (3, 24)),)


def saved_bytes(fn) -> int:
    total = 0

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return total


@pytest.mark.parametrize("name, kw", CASES, ids=[c[0] for c in CASES])
def test_same_gradients_and_less_saved_activation(name, kw):
    torch.manual_seed(0)
    plain = create_model(name, dropout=0.0, **kw).train()
    ckpt = create_model(name, dropout=0.0, activation_checkpointing=True, **kw).train()
    ckpt.load_state_dict(plain.state_dict())
    x = inputs(plain)
    grads = []
    for model in (plain, ckpt):
        model.zero_grad()
        model(*x).float().square().mean().backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for n in grads[0]:
        torch.testing.assert_close(grads[1][n], grads[0][n], atol=1e-6, rtol=1e-5, msg=n)
    assert saved_bytes(lambda: ckpt(*x).sum()) < saved_bytes(lambda: plain(*x).sum())
