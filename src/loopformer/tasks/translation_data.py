"""Where a translation run's sentence pairs come from: Multi30k or the user's files.

The run names its data once (``data=multi30k``, a directory, or a ``split:path`` spec);
everything else asks this object for a split by name. ``val`` always means the
validation split, whatever the files call it (``valid``, ``dev``...). The files are
checked before any training (a missing test split found after an hour's training is an
hour lost), and what was skipped under ``bad_lines=skip`` is counted per split.
"""

from __future__ import annotations

import os
from typing import Any

from ..data.download import DataError
from ..data.lines import LinePolicy
from ..data.multi30k import load_multi30k
from ..data.parallel import SplitFiles, find_splits, read_split, scoring_splits, val_split_name

BUILTIN = "multi30k"
MULTI30K_TESTS = ("test2016", "test2017")


class TranslationData:
    def __init__(self, data: str, src_lang: str, tgt_lang: str, test_splits: list[str] | None,
                 bad_lines: str = "error", max_line_chars: int = 2000) -> None:
        self.data, self.src, self.tgt = data, src_lang, tgt_lang
        self.requested_tests = test_splits
        self.policy_args = (bad_lines, max_line_chars)
        self.skipped: dict[str, dict[str, int]] = {}
        self._files: dict[str, SplitFiles] | None = None

    @property
    def builtin(self) -> bool:
        return self.data == BUILTIN

    def files(self) -> dict[str, SplitFiles]:
        if self._files is None:
            self._files = find_splits(self.data, self.src, self.tgt)
        return self._files

    def test_splits(self) -> list[str]:
        """The splits a finished run is scored on: those asked for, or (None) all the data has."""
        if self.requested_tests is not None:
            return list(self.requested_tests)
        return list(MULTI30K_TESTS) if self.builtin else scoring_splits(self.files())

    def check(self) -> None:
        """Fail now, naming what is missing, if a split the run will need is absent."""
        if self.builtin:
            return
        files = self.files()
        if val_split_name(files) is None:
            raise DataError(f"data={self.data} has no validation split: add val.{self.src} + val.{self.tgt} "
                            "(or valid/dev, as .tsv or .jsonl too)")
        for name in self.test_splits():
            self.resolve(name)

    def resolve(self, name: str) -> SplitFiles:
        files = self.files()
        key = val_split_name(files) if name == "val" else name
        if key is None or key not in files:
            raise DataError(f"data={self.data} has no split {name!r}; it has {', '.join(sorted(files))}")
        return files[key]

    def split(self, name: str) -> tuple[list[str], list[str]]:
        """(sources, targets) of a split."""
        if self.builtin:
            return load_multi30k(name, self.src, self.tgt)
        policy = LinePolicy(*self.policy_args)
        pairs = read_split(self.resolve(name), self.src, self.tgt, policy)
        if policy.skipped:
            self.skipped[name] = dict(policy.skipped)
        return pairs

    def describe(self) -> dict[str, Any]:
        """What a run's results record about its data."""
        if self.builtin:
            return {"data": BUILTIN}
        layout = {name: {"layout": f.layout, "files": [str(p) for p in f.paths]} for name, f in self.files().items()}
        return {"data": self.data, "splits": layout, "skipped": self.skipped}


def absolute_data(settings: dict[str, Any]) -> dict[str, Any]:
    """Task settings with ``data`` naming absolute paths: a relative one would name other
    files when the run is evaluated or resumed from another directory."""
    data = settings.get("data")
    if not isinstance(data, str) or data == BUILTIN:
        return settings
    if os.path.isdir(data) or ":" not in data:
        return {**settings, "data": os.path.abspath(os.path.expanduser(data))}
    parts = []
    for item in data.split(","):
        name, colon, location = item.strip().partition(":")
        parts.append(f"{name}:{os.path.abspath(os.path.expanduser(location))}" if colon and location else item)
    return {**settings, "data": ",".join(parts)}

