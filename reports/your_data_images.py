"""Image folders against the registry: Fashion-MNIST written out as a PNG tree, then one
ViT recipe trained from the registry and from the tree (``data=DIR``).

``write-tree`` writes the registry's own partition (``train``: its 55,000 training
images, ``val``: the 5,000 it holds out, ``test``: the official 10,000) as
``DIR/<split>/<k>-<class>/<index>.png`` into a folder outside the repository (images are
never committed). The class folders carry the label as a prefix so that their sorted
order is the registry's label order: the two runs' confusion matrices then line up row by
row. It reads the tree back through the library, checks every pixel against the registry
and records the counts and the seconds of both in ``docs/results/your_data/image-tree.json``.

``compare`` trains ``--model vanilla --preset vit-tiny`` (the ``vit`` row of
docs/results/vision.md) with ``configs/vit-tiny-cpu.yaml`` and a shorter budget, once per
source and seed, each in its own resumable run directory ``runs/your-data/vision-<source>-s<seed>``;
a finished run is one JSON ``docs/results/your_data/vision-<source>-s<seed>.json`` and is
skipped when run again. Every command rewrites the page section
``docs/results/your_data/images.md`` from the records.

    LOOPFORMER_DATA_MIRROR=../shared/data python -m reports.your_data_images write-tree [--tree /work/imagetree]
    LOOPFORMER_DATA_MIRROR=../shared/data python -m reports.your_data_images compare [--seeds 0] [--steps 800]
    python -m reports.your_data_images page
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

from .paths import RESULTS, ROOT, RUNS
from .runner import parser

RECORDS = RESULTS / "your_data"
TREE_RECORD = RECORDS / "image-tree.json"
SECTION = RECORDS / "images.md"
MARKER = "loopformer-tree.json"  # written last into a finished tree; the only tree --force deletes
RECIPE = "configs/vit-tiny-cpu.yaml"
SOURCES = ("registry", "folder")
SPLITS = ("train", "val", "test")


def class_folder(label: int, name: str) -> str:
    """``0-T-shirt_top``: the label first, so sorted folder names keep the registry's order."""
    return f"{label}-{name.replace('/', '_')}"


# --- write-tree -------------------------------------------------------------------------------


def write_tree(tree: Path, force: bool) -> dict:
    """Write the registry's splits as PNG files (into ``<tree>.partial``, renamed when
    complete, so a tree that exists is whole) and return the record."""
    from loopformer.data.fashion_mnist import CLASSES, load_fashion_mnist

    tree = tree.resolve()
    if tree == ROOT or ROOT in tree.parents:
        raise SystemExit(f"{tree} is inside the repository; write the images elsewhere (--tree)")
    if tree.exists():
        if not force:
            raise SystemExit(f"{tree} exists; give --force to write it again")
        if not (tree / MARKER).is_file():
            raise SystemExit(f"{tree} exists and was not written by this script; not deleting it")
        shutil.rmtree(tree)
    partial = tree.with_name(tree.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    data = {split: load_fashion_mnist(split) for split in SPLITS}
    started = time.time()
    counts = {split: write_split(partial / split, *data[split], CLASSES) for split in SPLITS}
    seconds = time.time() - started
    record = {"tree": str(tree), "images": {s: sum(c.values()) for s, c in counts.items()}, "per_class": counts,
              "classes": [class_folder(i, c) for i, c in enumerate(CLASSES)], "write_seconds": round(seconds, 2),
              "bytes": sum(p.stat().st_size for p in partial.rglob("*.png")), **read_back(partial, data)}
    (partial / MARKER).write_text(json.dumps(record, indent=1) + "\n")
    partial.rename(tree)
    return record


def write_split(folder: Path, images, labels, classes) -> dict[str, int]:
    """One PNG per image, on a thread pool; the count per class folder."""
    from concurrent.futures import ThreadPoolExecutor

    from PIL import Image

    names = [class_folder(i, c) for i, c in enumerate(classes)]
    for name in names:
        (folder / name).mkdir(parents=True)

    def save(i: int) -> None:
        Image.fromarray(images[i], "L").save(folder / names[labels[i]] / f"{i:05d}.png")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(save, range(len(labels)), chunksize=256))
    return {name: int((labels == k).sum()) for k, name in enumerate(names)}


def read_back(tree: Path, data: dict) -> dict:
    """Read the tree as a training run does (listing, format inference, decoding) and check
    each split's pixels and labels against the registry's (the tree lists images by class,
    then by index)."""
    import numpy as np

    from loopformer.data.image_folder import infer_format, read_split, scan_tree

    started = time.time()
    listed = scan_tree(tree, val_size=5000)
    size, channels = infer_format(listed.files["train"], None, None, 28, "error")
    decoded = {s: read_split(listed.files[s], size, channels, "error", tree / s) for s in SPLITS}
    seconds = time.time() - started
    same = {}
    for split, (images, labels) in data.items():
        order = np.lexsort((np.arange(len(labels)), labels))
        got = decoded[split]
        same[split] = bool(np.array_equal(got.images[:, 0], images[order])
                           and np.array_equal(got.labels, labels[order]))
    return {"read_seconds": round(seconds, 2), "inferred": {"image_size": size, "channels": channels},
            "identical_to_registry": same}


# --- compare ----------------------------------------------------------------------------------


def vision_command(source: str, seed: int, out: Path, tree: Path, steps: int, eval_every: int) -> list[str]:
    """The ``loopformer`` arguments of one run: the same recipe, the data the only difference."""
    args = ["train", "vision", "--model", "vanilla", "--preset", "vit-tiny", "--config", RECIPE,
            "--out", str(out), f"max_steps={steps}", f"eval_every={eval_every}", f"seed={seed}", "progress=false"]
    return args + ([f"data={tree}"] if source == "folder" else [])


def train_pair(seed: int, tree: Path, steps: int, eval_every: int, device: str) -> None:
    """Both runs of a seed that have no record yet, each resumed from its checkpoint if any."""
    from .training import train_with_cli

    for source in SOURCES:
        record = RECORDS / f"vision-{source}-s{seed}.json"
        if record.exists():
            print(f"{record.relative_to(ROOT)} exists; skipped")
            continue
        out = RUNS / "your-data" / f"vision-{source}-s{seed}"
        args = vision_command(source, seed, out, tree, steps, eval_every) + [f"device={device}"]
        started = time.time()
        results = train_with_cli(args, out)
        RECORDS.mkdir(parents=True, exist_ok=True)
        rec = vision_record(source, seed, args, results, time.time() - started, device)
        record.write_text(json.dumps(rec, indent=1) + "\n")
        write_section()


def vision_record(source: str, seed: int, args: list[str], results: dict, wall: float, device: str) -> dict:
    from .training import run_context

    test, train = results["test"], results["train"]
    shown = [a.replace(str(ROOT) + "/", "") for a in args]
    return {
        **run_context(device), "source": source, "seed": seed, "command": "loopformer " + " ".join(shown),
        "steps": train["step"], "train_seconds": train["train_seconds"],
        "train_minutes": round(train["train_seconds"] / 60, 2), "wall_seconds": round(wall, 1),
        "best_val_accuracy": train["best_score"], "test_split": test["split"], "test_images": test["images"],
        "test_accuracy": test["accuracy"], "per_class": test["per_class"], "confusion": test["confusion"],
        "parameters": results["parameters"], "data": results.get("data", {}),
    }


# --- the page section -------------------------------------------------------------------------


def write_section() -> Path:
    """``images.md``, the image section of docs/results/your_data.md, from the records."""
    tree = json.loads(TREE_RECORD.read_text()) if TREE_RECORD.exists() else None
    runs = [json.loads(p.read_text()) for p in sorted(RECORDS.glob("vision-*-s*.json"))]
    lines = ["## Images: Fashion-MNIST as a folder of PNG files", ""]
    if tree is None:
        lines += ["The tree is not written yet: `python -m reports.your_data_images write-tree`.", ""]
    else:
        lines += [tree_sentence(tree), ""]
    if not runs:
        lines += ["The comparison has not run yet: `python -m reports.your_data_images compare`.", ""]
    else:
        lines += run_table(runs)
    SECTION.parent.mkdir(parents=True, exist_ok=True)
    SECTION.write_text("\n".join(lines))
    return SECTION


def tree_sentence(tree: dict) -> str:
    n = tree["images"]
    same = "every pixel and label equal to the registry's" if all(tree["identical_to_registry"].values()) \
        else f"NOT equal to the registry's ({tree['identical_to_registry']})"
    return (f"`write-tree` wrote the registry's partition as {sum(n.values()):,} PNG files "
            f"({n['train']:,} train, {n['val']:,} val, {n['test']:,} test; {tree['bytes'] / 2**20:.1f} MiB) in "
            f"{tree['write_seconds']:.0f} s. Reading them back as a run does (listing, headers, decoding on a "
            f"thread pool) took {tree['read_seconds']:.0f} s, inferred {tree['inferred']['image_size']}x"
            f"{tree['inferred']['image_size']} with {tree['inferred']['channels']} channel(s), and gave {same}. "
            "Class folders are `<label>-<name>` so that the sorted order is the registry's label order.")


def run_table(runs: list[dict]) -> list[str]:
    lines = [f"ViT (`--model vanilla --preset vit-tiny`), recipe `{RECIPE}` with the budget in the table "
             "(evaluated every `eval_every` steps, best validation checkpoint scored on the test split). "
             "*registry* reads the IDX files by name, *folder* reads the PNG tree with `data=DIR`: the same "
             "images, but listed class by class, so the batches differ and the two runs differ as two seeds "
             "would.", "",
             "| source | seed | steps | best val % | test % | train min | device |", "|---|---|---|---|---|---|---|"]
    for r in sorted(runs, key=lambda r: (r["seed"], SOURCES.index(r["source"]))):
        lines.append(f"| {r['source']} | {r['seed']} | {r['steps']:,} | {r['best_val_accuracy']:.2f} | "
                     f"{r['test_accuracy']:.2f} | {r['train_minutes']:.1f} | {r['device']} |")
    by_seed: dict[int, dict[str, dict]] = {}
    for r in runs:
        by_seed.setdefault(r["seed"], {})[r["source"]] = r
    lines.append("")
    for seed, pair in sorted(by_seed.items()):
        if set(pair) != set(SOURCES):
            lines.append(f"Seed {seed}: only the {', '.join(pair)} run is done so far.")
            continue
        a, b = pair["registry"]["test_accuracy"], pair["folder"]["test_accuracy"]
        lines.append(f"Seed {seed}: test accuracy {a:.2f}% from the registry, {b:.2f}% from the folder "
                     f"(difference {b - a:+.2f} points).")
    lines += noise_sentence(by_seed)
    ordered = sorted(runs, key=lambda r: (r["seed"], SOURCES.index(r["source"])))
    lines += ["", "Commands:", ""] + [f"    {r['command']}" for r in ordered] + [""]
    folder = [r for r in ordered if r["source"] == "folder" and "confusion" in r]
    if folder:
        lines += confusion_table(folder[0])
    return lines


def noise_sentence(by_seed: dict[int, dict[str, dict]]) -> list[str]:
    """The registry-folder gap set against the seed-to-seed spread of each source, once
    two seeds of both are done."""
    full = {seed: pair for seed, pair in by_seed.items() if set(pair) == set(SOURCES)}
    if len(full) < 2:
        return ["", "Seed noise: one seed per source so far; the comparison with the seed-to-seed spread needs "
                "a second (`compare --seeds 0,1`)."]
    acc = {src: [full[s][src]["test_accuracy"] for s in sorted(full)] for src in SOURCES}
    spread = max(max(v) - min(v) for v in acc.values())
    means = {src: sum(v) / len(v) for src, v in acc.items()}
    gap = means["folder"] - means["registry"]
    verdict = "within" if abs(gap) <= spread else "outside"
    return ["", f"Over seeds {', '.join(map(str, sorted(full)))}: mean test accuracy {means['registry']:.2f}% "
            f"(registry) and {means['folder']:.2f}% (folder), a gap of {gap:+.2f} points, {verdict} the "
            f"largest seed-to-seed spread of either source ({spread:.2f} points)."]


def confusion_table(run: dict) -> list[str]:
    """The folder run's confusion matrix (rows: true class, columns: predicted), with the
    class names it read from the folder."""
    names = list(run.get("per_class") or {}) or [str(i) for i in range(len(run["confusion"]))]
    lines = [f"Confusion matrix of the folder run, seed {run['seed']} (rows: true class, columns: predicted; "
             f"{run['test_accuracy']:.2f}% on {run['test_images']:,} test images):", "",
             "| true \\ predicted | " + " | ".join(str(i) for i in range(len(names))) + " |",
             "|---|" + "---|" * len(names)]
    for i, (name, row) in enumerate(zip(names, run["confusion"])):
        lines.append(f"| {i} {name} | " + " | ".join(f"**{v}**" if j == i else str(v) for j, v in enumerate(row))
                     + " |")
    return lines + [""]


# --- command line -----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = parser("your_data_images", __doc__)
    sub = ap.add_subparsers(dest="command", required=True)
    w = sub.add_parser("write-tree", help="write Fashion-MNIST as a PNG tree and check it")
    w.add_argument("--tree", default="/work/imagetree", help="where (outside the repository)")
    w.add_argument("--force", action="store_true", help="replace a tree this script wrote before")
    c = sub.add_parser("compare", help="train the registry and folder runs that have no record")
    c.add_argument("--tree", default="/work/imagetree")
    c.add_argument("--seeds", default="0")
    c.add_argument("--steps", type=int, default=800)
    c.add_argument("--eval-every", type=int, default=200)
    c.add_argument("--device", default="auto")
    sub.add_parser("page", help="only rewrite images.md from the records")
    args = ap.parse_args(argv)
    if args.command == "write-tree":
        record = write_tree(Path(args.tree), args.force)
        RECORDS.mkdir(parents=True, exist_ok=True)
        TREE_RECORD.write_text(json.dumps(record, indent=1) + "\n")
        print(json.dumps({k: record[k] for k in ("tree", "images", "write_seconds", "read_seconds",
                                                 "identical_to_registry")}))
    elif args.command == "compare":
        tree = Path(args.tree).resolve()
        if not (tree / MARKER).is_file():
            raise SystemExit(f"{tree} holds no finished tree; run write-tree first")
        for seed in (int(s) for s in args.seeds.split(",")):
            train_pair(seed, tree, args.steps, args.eval_every, args.device)
    print(f"wrote {write_section().relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
