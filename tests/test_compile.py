"""Regional compilation: same outputs as eager, and no recompilation when the number of
levels changes at inference (dynamo's guards are what recompiles; the eager backend
exercises them without code generation)."""

import pytest
import torch
from torch._dynamo.utils import counters

from loopformer.compile import compile_layers, is_compiled, uncompile_layers
from loopformer.registry import create_model
from loopformer.sampling import sample

SMALL = dict(d_model=32, n_heads=2, d_ff=64, dropout=0.0)


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    counters.clear()
    yield
    torch._dynamo.reset()


def graphs() -> int:
    return counters["stats"]["unique_graphs"]


@pytest.mark.parametrize("preset", ["ringformer-mt-small", "looped-lm-char", "spiral-lm-char", "ringformer-vit-tiny"])
def test_compiled_layers_match_eager(preset):
    torch.manual_seed(0)
    model = create_model(preset, **SMALL, **({"signal_rank": 4} if "ringformer" in preset else {}))
    if model.config.task == "seq2seq":
        inputs = (torch.randint(2, 50, (2, 7)), torch.randint(2, 50, (2, 5)))
    elif model.config.task == "decoder":
        inputs = (torch.randint(0, 60, (2, 16)),)
    else:
        inputs = (torch.randn(2, 1, 28, 28),)
    want = model(*inputs)
    assert compile_layers(model, backend="eager") > 0 and is_compiled(model)
    got = model(*inputs)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    got.sum().backward()  # and it trains
    uncompile_layers(model)
    assert not is_compiled(model)
    torch.testing.assert_close(model(*inputs), want, rtol=1e-6, atol=1e-6)


def test_changing_the_number_of_levels_does_not_recompile():
    """Two levels teach dynamo that the level index varies; after that, running the core
    more or fewer times (looped model) or on fewer levels (RingFormer) reuses the code."""
    looped = create_model("looped-lm-char", **SMALL)
    ring = create_model("ringformer-lm-char", **SMALL, signal_rank=4)
    x = torch.randint(0, 60, (2, 16))
    for model in (looped, ring):
        compile_layers(model, backend="eager")
        model(x)
    warm = graphs()
    assert warm > 0
    with torch._dynamo.config.patch(error_on_recompile=True):
        for loops in (1, 2, 5, 8):
            looped.decoder.n_loops = loops
            looped(x)
        for loops in (1, 2):
            ring.decoder.n_loops = loops
            ring(x)
    assert graphs() == warm


def test_cached_generation_stays_eager():
    model = create_model("ringformer-lm-char", **SMALL, signal_rank=4).eval()
    prompt = torch.randint(0, 60, (1, 4))
    want = sample(model, prompt, 6, temperature=0.0)
    compile_layers(model, backend="eager")
    assert torch.equal(sample(model, prompt, 6, temperature=0.0), want)
    assert graphs() == 0  # decoding with a KV cache never entered the compiled path


def test_inductor_compiled_layer_matches_eager():
    """Real code generation (C++ on CPU), once, on a tiny model."""
    torch.manual_seed(0)
    model = create_model("ringformer-lm-char", **SMALL, signal_rank=4)
    x = torch.randint(0, 60, (2, 16))
    want = model(x)
    compile_layers(model)
    torch.testing.assert_close(model(x), want, rtol=1e-4, atol=1e-4)
