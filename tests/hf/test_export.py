"""``loopformer export hf`` / ``import hf`` round trips and PEFT on an export."""

import pytest
import torch

transformers = pytest.importorskip("transformers")

from loopformer.checkpoint import load_model  # noqa: E402
from loopformer.cli import main  # noqa: E402


def test_import_gives_back_the_checkpoint(lm_ckpt, lm_hf, tmp_path, capsys):
    assert main(["import", "hf", str(lm_hf), str(tmp_path / "back")]) == 0
    a, b = load_model(lm_ckpt), load_model(tmp_path / "back")
    assert a.config == b.config
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert main(["generate", str(tmp_path / "back"), "--prompt", "To", "--max-new-tokens", "4"]) == 0


def test_export_refuses_a_used_folder_and_import_a_foreign_one(lm_ckpt, tmp_path, capsys):
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "x").write_text("x")
    assert main(["export", "hf", str(lm_ckpt), str(tmp_path / "used")]) == 2
    assert "already exists" in capsys.readouterr().err
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "config.json").write_text('{"model_type": "gpt2"}')
    assert main(["import", "hf", str(tmp_path / "foreign"), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a loopformer export" in err


def test_peft_lora_attaches_and_trains(lm_hf):
    peft = pytest.importorskip("peft")
    model = transformers.AutoModelForCausalLM.from_pretrained(lm_hf)
    tok = transformers.AutoTokenizer.from_pretrained(lm_hf)
    lora = peft.get_peft_model(model, peft.LoraConfig(r=4, lora_alpha=8, target_modules=["qkv_proj", "out_proj"]))
    frozen = {n: p.detach().clone() for n, p in lora.named_parameters() if not p.requires_grad}
    trainable = [p for p in lora.parameters() if p.requires_grad]
    assert 0 < sum(p.numel() for p in trainable) < sum(p.numel() for p in frozen.values())
    ids = torch.tensor([tok("To be, or not to be, that is")["input_ids"]])
    opt = torch.optim.AdamW(trainable, lr=1e-2)
    losses = []
    for _ in range(8):
        loss = lora(input_ids=ids, labels=ids).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    assert all(torch.equal(p, frozen[n]) for n, p in lora.named_parameters() if n in frozen)
