"""`voxlm demo`'s bookkeeping: cached steps, scoring and the rerun path (the full demo runs in `make demo`)."""

import argparse
import json

import pytest

from voxlm.train.offline import demo


class OverlapEmbedder:
    """Stands in for MiniLM: cosine is the mean fraction of reference words present in the prediction."""

    def cosine(self, predictions, references):
        shares = [len(set(p.split()) & set(r.split())) / len(set(r.split())) for p, r in zip(predictions, references)]
        return sum(shares) / len(shares)


def eval_data():
    return {
        "heldout": {"audio": [None, None], "text": ["the cat sat", "a red door"]},
        "real": {"audio": [None], "text": ["good morning to you"]},
        "questions": {
            "audio": [None, None],
            "text": ["what colour is the sky", "how many legs has a cat"],
            "answer": ["blue", "four"],
            "aliases": [[], ["4"]],
        },
    }


def test_workdir_remembers_finished_steps_across_instances(tmp_path):
    work = demo.Workdir(tmp_path / "demo")
    assert work.done("model") is None
    work.finish("model")
    work.finish("scores", {"VoxLM": {"qa_accuracy": 0.5}})
    again = demo.Workdir(tmp_path / "demo")
    assert again.done("model") is True
    assert again.done("scores") == {"VoxLM": {"qa_accuracy": 0.5}}
    assert not (tmp_path / "demo" / "state.tmp").exists()  # written atomically through a temporary file


def test_score_measures_repeat_wer_similarity_and_qa_accuracy():
    data = eval_data()
    reference = {"continue_heldout": ["x y", "p q"], "continue_real": ["m n"]}
    responses = {
        "repeat_heldout": ["The cat sat.", "a blue door"],  # 1 substitution in 6 words
        "repeat_real": ["good morning"],  # 2 deletions in 4 words
        "continue_heldout": ["x y", "p z"],
        "continue_real": ["nothing"],
        "answer": ["It is blue.", "4"],
    }
    scores = demo.score(responses, data, reference, OverlapEmbedder())
    assert scores["repeat_wer_heldout"] == pytest.approx(1 / 6)
    assert scores["repeat_wer_real"] == pytest.approx(0.5)
    assert scores["continuation_similarity"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert scores["qa_accuracy"] == 1.0
    responses["answer"] = ["green", "three"]
    assert demo.score(responses, data, reference, OverlapEmbedder())["qa_accuracy"] == 0.0


def test_table_lists_every_system_and_metric():
    scores = {"VoxLM": dict.fromkeys(("repeat_wer_heldout", "repeat_wer_real", "continuation_similarity"), 0.25)}
    scores["VoxLM"]["qa_accuracy"] = 0.875
    text = demo.table(scores)
    for _, title in demo.COLUMNS:
        assert title in text
    assert "VoxLM" in text and "0.250" in text and "0.875" in text


def test_rerun_reuses_every_finished_step_and_says_so(tmp_path, monkeypatch, capsys):
    workdir = tmp_path / "demo"
    (workdir / "model").mkdir(parents=True)
    (workdir / "model" / "config.json").write_text("{}")
    scores = {name: dict.fromkeys((key for key, _ in demo.COLUMNS), 0.5) for name in (demo.SHIPPED, "cascade")}
    after = dict.fromkeys((key for key, _ in demo.COLUMNS), 0.25)
    state = {"model": True, "data": True, "scores": scores, "finetune": True, "after": after}
    (workdir / "state.json").write_text(json.dumps(state))

    def must_not_run(*args, **kwargs):
        raise AssertionError("a finished step ran again")

    for step in ("save_shipped_folder", "save_untrained_folder", "build_eval_data", "speech_system", "finetune"):
        monkeypatch.setattr(demo, step, must_not_run)
    monkeypatch.setattr(demo, "load_eval_data", lambda folder: eval_data())
    monkeypatch.setenv("VOXLM_CACHE", str(tmp_path / "cache"))
    (tmp_path / "cache" / "whisper").mkdir(parents=True)  # converted by an earlier run
    monkeypatch.setattr("voxlm.train.offline.assets.whisper_tiny_en_dir", lambda: tmp_path / "cache" / "whisper")
    monkeypatch.setattr("voxlm.train.offline.assets.smollm2_dir", lambda: tmp_path / "smollm2")
    args = argparse.Namespace(workdir=workdir, audio_model=None, text_model=None, data=None, eval_size=2,
                              finetune_steps=3, finetune_sentences=4, quantize=None)  # fmt: skip
    assert demo.run(args) == 0
    out = capsys.readouterr().out
    assert "whisper (reusing the cached conversion)" in out and "smollm2 (reusing" not in out
    assert out.count("reusing") == 6  # Whisper, model, held-out speech, scores, fine-tuned model, its scores
    assert "0.500" in out and "0.250" in out and "VoxLM fine-tuned" in out


def test_ctrl_c_ends_with_a_hint_to_rerun_not_a_traceback(monkeypatch, capsys):
    from voxlm.train import cli

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(demo, "run", interrupted)
    assert cli.main(["demo", "--workdir", "unused"]) == 130
    assert "interrupted; run the same command again to continue" in capsys.readouterr().err
