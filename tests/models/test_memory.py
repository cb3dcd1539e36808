"""A model whose weights cannot fit is refused before anything is allocated."""

import subprocess
import sys

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loopformer.config import ModelConfig
from loopformer.errors import ConfigError
from loopformer.models import MODEL_CLASSES
from loopformer.models.memory import exact_values, upper_bound_values
from loopformer.registry import PRESETS, get_config


def test_bound_is_at_least_the_exact_count_for_every_preset():
    for name in PRESETS:
        cfg = get_config(name)
        assert upper_bound_values(cfg) >= exact_values(MODEL_CLASSES[cfg.task], cfg), name


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(PRESETS)), st.integers(1, 6), st.sampled_from([8, 16, 32]), st.integers(1, 64),
       st.integers(8, 300), st.integers(16, 128))
def test_bound_is_at_least_the_exact_count_for_random_sizes(name, loops, d, d_ff, vocab, max_len):
    base = get_config(name).to_dict()
    cfg_dict = dict(base, d_model=d, n_heads=2, d_ff=d_ff, max_len=max_len)
    if base["task"] != "vit":
        cfg_dict["vocab_size"] = vocab
    if base["arch"] != "spiral" and not base.get("spiral_schedule"):
        cfg_dict["n_layers"] = base["n_prelude"] + base["n_coda"] + base["core_layers"] * loops
    if base.get("signal_rank") is not None:
        cfg_dict["signal_rank"] = 2
    try:
        cfg = ModelConfig.from_dict(cfg_dict)
    except ConfigError:
        return
    assert upper_bound_values(cfg) >= exact_values(MODEL_CLASSES[cfg.task], cfg)


def test_a_model_larger_than_memory_is_refused_without_allocating():
    # the peak of this process's own memory (VmHWM): getrusage's ru_maxrss survives exec
    # and so would count the (large) pytest process that spawned it
    code = (
        "import sys\n"
        "from loopformer import create_model\n"
        "from loopformer.errors import ConfigError\n"
        "try:\n"
        "    create_model('ringformer-mt-small', d_model=65536, n_heads=64, d_ff=1 << 20)\n"
        "except ConfigError as exc:\n"
        "    print(exc)\n"
        "status = open('/proc/self/status').read().split('VmHWM:')[1]\n"
        "print(int(status.split()[0]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    message, peak_kib = out.stdout.strip().splitlines()
    assert "GiB available" in message and "d_model" in message
    assert int(peak_kib) < 1_000_000  # under 1 GB: nothing of the 1.2 TB was allocated
