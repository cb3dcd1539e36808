"""``loopformer export`` and ``loopformer import``: checkpoints to and from other
ecosystems (Hugging Face folders, CTranslate2 and ONNX models). Each target lives in an
optional extra, imported only when its command runs."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

from ..errors import ConfigError
from .common import checkpoint_dir

#: target -> (module that needs to be installed, the extra that installs it)
NEEDS = {"hf": ("transformers", "hf"), "ctranslate2": ("ctranslate2", "deploy"), "onnx": ("onnx", "deploy")}


def add_parser(sub) -> None:
    p = sub.add_parser("export", help="write a checkpoint as a Hugging Face, CTranslate2 or ONNX model")
    p.add_argument("target", choices=sorted(NEEDS))
    p.add_argument("checkpoint")
    p.add_argument("out", help="output folder (must not exist or be empty)")
    p.add_argument("--quantization", default=None,
                   help="ctranslate2 only: weight type stored (e.g. int8); default float32")
    p.set_defaults(func=cmd_export)
    q = sub.add_parser("import", help="read an exported Hugging Face folder back into a checkpoint folder")
    q.add_argument("source", choices=["hf"])
    q.add_argument("folder")
    q.add_argument("out", help="checkpoint folder to write (must not exist or be empty)")
    q.set_defaults(func=cmd_import)


def require(target: str) -> None:
    module, extra = NEEDS[target]
    if importlib.util.find_spec(module) is None:
        raise ConfigError(f"{target} needs the {module} package: pip install 'loopformer[{extra}]'")


def fresh_folder(out: str) -> Path:
    path = Path(out)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise ConfigError(f"{out} already exists and is not an empty folder")
    return path


def cmd_export(args: argparse.Namespace) -> int:
    require(args.target)
    if args.quantization is not None and args.target != "ctranslate2":
        raise ConfigError("--quantization applies to ctranslate2 exports only")
    ckpt, out = checkpoint_dir(args.checkpoint), fresh_folder(args.out)
    if args.target == "hf":
        from ..hf.export import export_hf

        export_hf(ckpt, out)
    else:
        from ..deploy import export_model

        export_model(args.target, ckpt, out, quantization=args.quantization)
    print(f"wrote {out}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    require("hf")
    folder = Path(args.folder)
    if not (folder / "config.json").is_file():
        raise ConfigError(f"{folder} is not a Hugging Face folder: config.json is missing")
    from ..hf.export import import_hf

    import_hf(folder, fresh_folder(args.out))
    print(f"wrote {args.out}")
    return 0
