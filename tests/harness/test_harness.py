"""The lm-eval model type: its log-likelihoods are loopformer's, and lm-eval runs it offline."""

import math

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("lm_eval")

from loopformer.harness import LoopformerLM, rolling_windows, write_heldout_tasks  # noqa: E402
from tests.conftest import LM_TEXT as TEXT  # noqa: E402


class Req:
    def __init__(self, *args):
        self.args = args


@pytest.fixture
def lm(lm_ckpt):
    return lm_ckpt  # the tiny RingFormer LM of tests/conftest.py


def test_rolling_windows_score_every_token_but_the_first_once():
    ids = list(range(23))
    pairs = rolling_windows(ids, 8)
    assert [t for _, x in pairs for t in x] == ids[1:]
    assert all(len(c) + len(x) <= 9 for c, x in pairs) and len(pairs[-1][0]) + len(pairs[-1][1]) == 9


def test_rolling_loglikelihood_equals_the_library_validation_loss(lm):
    harness = LoopformerLM(str(lm), batch_size=3)
    t = harness.context
    ids = harness.tok.encode(TEXT)[: 5 * t + 1]
    windows = torch.tensor(ids).unfold(0, t + 1, t)  # loopformer eval's validation windows
    with torch.no_grad():
        logits = harness.model(windows[:, :-1]).float()
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), windows[:, 1:].reshape(-1)).item()
    [total] = harness.loglikelihood_rolling([Req(harness.tok.decode(ids))])
    assert abs(-total / (5 * t) - loss) < 1e-5


def test_loglikelihood_and_greedy_flag(lm):
    harness = LoopformerLM(str(lm))
    ctx = "To be, or not to be, that is the"
    [(lp, _)] = harness.loglikelihood([Req(ctx, " question")])
    ids = harness.tok.encode(ctx + " question")[-(harness.context + 1):]
    with torch.no_grad():
        logp = harness.model(torch.tensor([ids[:-1]])).float().log_softmax(-1)[0]
    n = len(" question")
    ref = logp[-n:].gather(1, torch.tensor(ids[-n:])[:, None]).sum().item()
    assert abs(lp - ref) < 1e-4
    greedy = harness.tok.decode(logp[-1:].argmax(-1).tolist())
    [(_, flag)] = harness.loglikelihood([Req(ids and harness.tok.decode(ids[:-1]), greedy)])
    assert flag is True


def test_generate_until_stops_at_the_stop_string(lm):
    harness = LoopformerLM(str(lm))
    [text] = harness.generate_until([Req("To be", {"until": ["\n"], "max_gen_toks": 10})])
    assert "\n" not in text and len(text) <= 10


def test_lm_eval_runs_the_local_tasks_offline(lm, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import lm_eval

    names = write_heldout_tasks(TEXT, tmp_path / "tasks", docs=3, doc_chars=150, cloze=8)
    out = lm_eval.simple_evaluate(model="loopformer", model_args=f"pretrained={lm}", tasks=names, batch_size=4,
                                  task_manager=lm_eval.tasks.TaskManager(include_path=str(tmp_path / "tasks")))
    res = out["results"]
    assert 0.0 <= res["loopformer_cloze"]["acc,none"] <= 1.0
    harness = LoopformerLM(str(lm))
    docs = [TEXT[i * 150:(i + 1) * 150] for i in range(3)]
    total = sum(harness.loglikelihood_rolling([Req(d) for d in docs]))
    assert math.isclose(res["loopformer_heldout"]["byte_perplexity,none"],
                        math.exp(-total / sum(len(d.encode()) for d in docs)), rel_tol=1e-6)
