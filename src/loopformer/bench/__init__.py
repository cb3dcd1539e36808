"""``loopformer bench``: throughput, latency and memory of models side by side.

Models are timed alternately in one process (A B A B ...), so that machine noise and
frequency changes hit all of them alike and ratios are meaningful even when absolute
figures drift. The matmul peak is measured in the same run, for model FLOPs utilisation.
"""

from .entries import Entry, Shape, parse_entry
from .runner import BenchResult, format_results, run_bench

__all__ = ["BenchResult", "Entry", "Shape", "format_results", "parse_entry", "run_bench"]
