"""The results pages under ``docs/results/`` and the measurements behind them.

A table page (translation, vision, language, ablations) is a small page spec
(:class:`reports.spec.PageSpec`): its rows (name -> family, preset, per-row overrides),
the training recipe it reads from ``configs/tables/``, the folder of its JSON run records
and the page it writes. One runner (:mod:`reports.runner`) trains whatever record is
missing, resuming interrupted runs, and rewrites the page from the records after each
run; each page module renders its Markdown from the records alone, so a page can always
be rebuilt without training (``--page-only``). The speed and analysis modules and the
measurement modules (``signal_overhead``, ``activation_memory``, ...) write the other
JSONs the pages read.

Everything runs through one entry point, ``python -m reports <command> [options]``; run it
without a command for the list.
"""
