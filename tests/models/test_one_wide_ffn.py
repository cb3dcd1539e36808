"""One Wide FFN baseline: one FFN shared by the encoder layers, none in the decoder."""

import pytest
import torch

from loopformer import count_parameters, create_model
from loopformer.checkpoint import load_model, save_model
from loopformer.errors import ConfigError


def test_encoder_layers_share_one_ffn_and_decoder_has_none():
    model = create_model("owf-mt-small", vocab_size=50, d_model=32, n_heads=2, d_ff=96)
    enc = model.encoder.prelude
    assert all(layer.ffn is enc[0].ffn for layer in enc)
    assert all(layer.ffn is None and len(layer.norms) == 2 for layer in model.decoder.prelude)
    # counted once, used by every encoder layer
    ffn = sum(p.numel() for p in enc[0].ffn.parameters())
    c = count_parameters(model)
    assert c.total == sum(p.numel() for p in model.parameters())
    assert c.effective == c.total + (len(enc) - 1) * ffn


def test_one_wide_ffn_vit_trains_saves_and_reloads(tmp_path):
    model = create_model("owf-vit-tiny", d_model=32, n_heads=2, d_ff=64, n_layers=3, image_size=8, patch_size=4)
    x, y = torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 2, 3])
    torch.nn.functional.cross_entropy(model(x), y).backward()
    assert model.encoder.prelude[0].ffn.up.weight.grad.abs().sum() > 0
    model.eval()
    folder = save_model(model, tmp_path / "owf")
    again = load_model(folder).eval()
    assert all(layer.ffn is again.encoder.prelude[0].ffn for layer in again.encoder.prelude)
    torch.testing.assert_close(again(x), model(x))


def test_one_wide_ffn_needs_vanilla():
    with pytest.raises(ConfigError, match="arch=vanilla"):
        create_model("ringformer-vit-tiny", one_wide_ffn=True)
