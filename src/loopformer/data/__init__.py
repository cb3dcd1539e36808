"""Data: verified downloads with an offline mirror, tokenizers, batching, datasets."""

from .download import DATASETS, DataError, fetch

__all__ = ["DATASETS", "DataError", "fetch"]
