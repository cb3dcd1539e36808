import torch

from loopformer.registry import create_model
from loopformer.train.config import TrainConfig
from loopformer.train.optim import build_optimizer, decay_groups


def test_decay_groups_exempt_vectors_and_signal_factors():
    model = create_model("ringformer-mt-small", vocab_size=50, d_model=32, n_heads=2, d_ff=64, signal_rank=4)
    decay, no_decay = decay_groups(model)
    names = {n for n, _ in no_decay}
    assert any(n.endswith("qkv_down") for n in names) and any(n.endswith("ffn_up") for n in names)
    assert all(p.dim() >= 2 for _, p in decay)
    assert all(not n.endswith(("_up", "_down")) for n, _ in decay)
    assert len(decay) + len(no_decay) == len(list(model.parameters()))


def test_fused_adamw_matches_the_reference_update():
    """The fused kernel is the library default; it must move weights as the plain loop does.
    (No biases: the key bias gets a gradient of pure rounding noise, which Adam magnifies.)"""
    torch.manual_seed(0)
    a = create_model("vanilla-lm-small", vocab_size=30, d_model=32, n_heads=2, d_ff=64, n_layers=2,
                      bias=False)
    b = create_model("vanilla-lm-small", vocab_size=30, d_model=32, n_heads=2, d_ff=64, n_layers=2,
                      bias=False)
    b.load_state_dict(a.state_dict())
    fused, _ = build_optimizer(a, TrainConfig(lr=1e-2))
    assert fused.defaults["fused"]
    decay, no_decay = decay_groups(b)
    plain = torch.optim.AdamW([{"params": [p for _, p in decay], "weight_decay": 0.01},
                               {"params": [p for _, p in no_decay], "weight_decay": 0.0}],
                              lr=1e-2, betas=(0.9, 0.98), eps=1e-8, foreach=False)
    x = torch.randint(0, 30, (2, 9))
    for _ in range(3):
        for model, opt in ((a, fused), (b, plain)):
            model(x[:, :-1]).float().logsumexp(-1).mean().backward()
            opt.step()
            opt.zero_grad()
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6, msg=name)
