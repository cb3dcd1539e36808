"""Rendering of docs/results/your_data.md from its records (no training here).

Every sentence that states a comparison is computed from the records, and a section
whose runs have not been made says so instead of showing nothing."""

from __future__ import annotations

import json
from pathlib import Path

HEADER = """# Your own data: files against the built-in registry

Each comparison trains one recipe twice: once on the built-in data set (the registry,
which downloads and caches it) and once from plain files through the task's data
setting, the way a user brings their own corpus. The two must agree within seed noise.
How to lay out your files: [docs/data.md](../data.md). Rebuild: `python -m reports your_data`.
"""


def load(folder: Path, pattern: str) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob(pattern))]


def render(folder: Path) -> str:
    parts = [HEADER, translation_section(folder)]
    for extra in ("images.md", "text.md", "curves.md"):  # sections the other scripts render
        path = folder / extra
        if path.exists():
            parts.append(path.read_text().rstrip() + "\n")
    return "\n".join(parts)


def translation_section(folder: Path) -> str:
    runs = load(folder, "translation-*-s*.json")
    lines = ["## Translation: Multi30k En→De from its files", ""]
    if not runs:
        return "\n".join(lines + ["Not run yet: `python -m reports your_data --translation`.", ""])
    lines += ["The main job's recipe (`configs/mt-small-cpu.yaml`: RingFormer `mt-small`, 1,250 steps, length "
              "penalty chosen on validation), En→De. *registry* reads Multi30k by name; *files* reads the "
              "eight gzipped files (`train.en.gz`, `train.de.gz`, `val.*`, `test_2016_flickr.*`, "
              "`test_2017_flickr.*`) as an aligned-text folder with `data=DIR`.", "",
              "| source | seed | steps | best val BLEU | length penalty | test 2016 BLEU | test 2017 BLEU "
              "| train min | device |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(runs, key=lambda r: (r["seed"], r["source"] != "registry")):
        t16, t17 = test_scores(r)
        lines.append(f"| {r['source']} | {r['seed']} | {r['steps']:,} | {r['best_val_bleu']:.2f} | "
                     f"{r['length_penalty']} | {t16:.2f} | {t17:.2f} | {r['train_seconds'] / 60:.1f} | {r['device']} |")
    lines += ["", *agreement(runs), "",
              "Both ran with `LOOPFORMER_DATA_MIRROR` pointing at the offline mirror (`/work/shared/data`), so "
              "the registry and `data=` read the very same files; each shared the 2-core CPU with two to three "
              "other runs (1 thread each), which is what the training minutes measure.", "", "Commands:", ""]
    lines += [f"    {r['command']}" for r in runs]
    lines += ["", f"sacreBLEU signature: `{next(iter(runs[0]['tests'].values()))['signature']}`", ""]
    return "\n".join(lines)


def test_scores(record: dict) -> tuple[float, float]:
    """(test 2016, test 2017) BLEU whatever the split names (registry: test2016; files: test_2016_flickr)."""
    tests = record["tests"]
    pick = [next((v["bleu"] for k, v in tests.items() if year in k), float("nan")) for year in ("2016", "2017")]
    return pick[0], pick[1]


def agreement(runs: list[dict]) -> list[str]:
    """Data-computed sentences comparing each seed's two runs."""
    out = []
    by_seed: dict[int, dict[str, dict]] = {}
    for r in runs:
        by_seed.setdefault(r["seed"], {})[r["source"]] = r
    for seed, pair in sorted(by_seed.items()):
        if set(pair) != {"registry", "files"}:
            out.append(f"Seed {seed}: only the {', '.join(pair)} run is done so far.")
            continue
        a, b = test_scores(pair["registry"]), test_scores(pair["files"])
        diff = max(abs(x - y) for x, y in zip(a, b))
        same = "identical" if diff == 0 else f"within {diff:.2f} BLEU of each other"
        out.append(f"Seed {seed}: the two runs' test BLEU are {same} (test 2016 {a[0]:.2f} vs {b[0]:.2f}, "
                   f"test 2017 {a[1]:.2f} vs {b[1]:.2f}).")
    return out
