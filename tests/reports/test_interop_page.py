"""The interoperability page is built from its records, whatever subset exists."""

import json

from reports.interop_page import write_page


def _speed():
    rows = [{"engine": e, "dtype": d, "beam": b, "seconds": s, "new_tokens_per_s": 1024 / s}
            for e, d, b, s in [("loopformer", "float32", 1, 1.0), ("loopformer", "float32", 4, 3.0),
                               ("loopformer", "bfloat16", 1, 0.8), ("loopformer", "bfloat16", 4, 2.0),
                               ("ctranslate2", "float32", 1, 1.25), ("ctranslate2", "float32", 4, 2.5),
                               ("ctranslate2", "int8", 1, 0.5), ("ctranslate2", "int8", 4, 1.0)]]
    return {"preset": "vanilla-mt-base", "batch": 32, "src_len": 32, "new_tokens": 32, "threads": 2, "repeats": 3,
            "fp32_greedy_identical": True, "rows": rows}


def test_page_from_no_record_and_from_a_speed_record(tmp_path):
    folder = tmp_path / "interop"
    folder.mkdir()
    text = write_page(folder).read_text()
    assert text.count("No record yet") == 4
    (folder / "speed-vanilla-mt-base.json").write_text(json.dumps(_speed()))
    text = write_page(folder).read_text()
    assert "loopformer fp32 is **1.25×** CTranslate2 fp32" in text  # greedy: 1.25 s against 1.0 s
    assert "beam 4: loopformer fp32 is **0.83×**" in text
    assert "beam 4 costs loopformer (float32) 3.00× its greedy time" in text
