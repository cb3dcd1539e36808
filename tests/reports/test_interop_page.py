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
    assert "beam 4 costs loopformer (fp32) 3.00× its greedy time" in text
    assert "before" not in text


def test_speed_record_with_an_earlier_version_beside_it(tmp_path):
    folder = tmp_path / "interop"
    folder.mkdir()
    rec = _speed()
    rec["rows"] += [{**r, "engine": "loopformer (before)", "seconds": 2 * r["seconds"],
                     "new_tokens_per_s": r["new_tokens_per_s"] / 2} for r in rec["rows"] if r["engine"] == "loopformer"]
    rec["before"] = {"tree": "old/src", "commit": "abc1234", "fp32_greedy_identical": True}
    rec["machine"] = {"cpu": "Some CPU", "torch": "2.13.0", "ctranslate2": "4.8.5"}
    rec["rows"][1]["split"] = {"total": 3.0, "encode": 0.25, "decode": 2.0, "reorder": 0.5, "search": 0.25}
    (folder / "speed-vanilla-mt-base.json").write_text(json.dumps(rec))
    text = write_page(folder).read_text()
    assert "commit `abc1234`" in text and "on Some CPU (torch 2.13.0, CTranslate2 4.8.5)" in text
    assert "beam 4: loopformer (before) fp32 is **0.42×** CTranslate2 fp32" in text  # 6 s against 2.5 s
    assert "beam 4 costs ctranslate2 (fp32) 2.00× its greedy time" in text
    assert "| loopformer | float32 | 4 | 0.250 | 2.000 | 0.500 | 0.250 | 3.000 |" in text


def test_beams_record_lists_identical_hypotheses(tmp_path):
    folder = tmp_path / "interop"
    folder.mkdir()
    rec = {"checkpoint": "vanilla-6x6-s0", "before": {"tree": "old/src", "commit": "abc1234"}, "threads": 2,
           "rows": [{"dtype": "bfloat16", "beam": 4, "length_penalty": 0.6, "bleu": 38.29, "bleu_before": 38.3,
                     "same": 990, "sentences": 1000}]}
    (folder / "beams-vanilla-6x6-s0.json").write_text(json.dumps(rec))
    text = write_page(folder).read_text()
    assert "commit `abc1234`" in text
    assert "| vanilla-6x6-s0 | bfloat16 | 4 | 0.6 | 990 / 1000 | 38.29 | 38.30 |" in text
