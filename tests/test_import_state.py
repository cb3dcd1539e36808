import json
import subprocess
import sys

PROBE = r"""
import json, torch
def state():
    return dict(
        anomaly=torch.is_anomaly_enabled(),
        threads=torch.get_num_threads(),
        interop=torch.get_num_interop_threads(),
        dtype=str(torch.get_default_dtype()),
        grad=torch.is_grad_enabled(),
        deterministic=torch.are_deterministic_algorithms_enabled(),
        matmul=torch.get_float32_matmul_precision(),
    )
before = state()
import loopformer, loopformer.cli
from loopformer import create_model
create_model("ringformer-mt-small", d_model=32, n_heads=2, d_ff=64, n_layers=2, vocab_size=20)
print(json.dumps([before, state()]))
"""


def test_import_changes_no_global_torch_state():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    before, after = json.loads(out.stdout.strip().splitlines()[-1])
    assert before == after


def test_import_loads_no_optional_integration():
    probe = ("import sys, loopformer, loopformer.cli; loopformer.cli.build_parser(); "
             "print(sorted(m for m in ('transformers', 'lm_eval', 'ctranslate2', 'onnxruntime', 'peft', 'tensorboard')"
             " if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"
