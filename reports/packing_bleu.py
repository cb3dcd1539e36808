"""Does packing change translations? test2016 with and without packed weights.

Translates Multi30k test2016 (beam 4) with a trained translation checkpoint three times,
packed, unpacked, packed again, and records sacreBLEU, how many hypotheses are
identical and the wall time of each pass. Writes docs/results/speed/packing_bleu.json
for the speed page.

    python -m reports packing_bleu runs/table/ringformer-s0/best
"""

from __future__ import annotations

import json
import time

import torch

from loopformer.packing import packed_linears
from loopformer.tasks.translation import bleu
from loopformer.tasks.translation_run import load_translation_checkpoint

from . import runner
from .paths import RESULTS

OUT = RESULTS / "speed" / "packing_bleu.json"


def main(argv: list[str] | None = None) -> int:
    ap = runner.parser("packing_bleu", __doc__)
    ap.add_argument("checkpoint")
    ap.add_argument("--beam", type=int, default=4)
    args = ap.parse_args(argv)
    model, task = load_translation_checkpoint(args.checkpoint)
    src, refs = task.split("test2016")
    passes = {}
    for label, on in (("packed", True), ("unpacked", False), ("packed again", True)):
        start = time.perf_counter()
        with packed_linears(model, enabled=on):
            hyps = task.translate(model, src, beam=args.beam)
        seconds = time.perf_counter() - start
        score, _ = bleu(hyps, refs)
        passes[label] = {"bleu": score.score, "seconds": seconds, "hypotheses": hyps}
        print(f"{label:13} BLEU {score.score:.2f}  {seconds:.1f} s", flush=True)
    same = sum(a == b for a, b in zip(passes["packed"]["hypotheses"], passes["unpacked"]["hypotheses"]))
    print(f"identical hypotheses: {same} of {len(src)}")
    cfg = model.config
    result = {
        "checkpoint": args.checkpoint, "model": {"arch": cfg.arch, "d_model": cfg.d_model}, "beam": args.beam,
        "sentences": len(src), "identical": same, "torch": torch.__version__, "threads": torch.get_num_threads(),
        "passes": {k: {"bleu": v["bleu"], "seconds": v["seconds"]} for k, v in passes.items()},
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    return 0
