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
    questions = {
        "audio": [None, None],
        "text": ["what colour is the sky", "how many legs has a cat"],
        "answer": ["blue", "four"],
        "aliases": [[], ["4"]],
    }
    return {
        "heldout_engine": {"audio": [None, None], "text": ["the cat sat", "a red door"]},
        "real": {"audio": [None], "text": ["good morning to you"]},
        "templates": {"audio": [None], "text": ["open the window"]},
        "open_questions": questions,
        "template_questions": {**questions, "answer": ["green", "four"]},
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


def test_score_measures_repeat_wer_unrelated_answers_similarity_and_qa_accuracy():
    data = eval_data()
    reference = {"continue_templates": ["x y"], "continue_real": ["m n"]}
    responses = {
        "repeat_heldout_engine": ["The cat sat.", "a blue lamp"],  # 2 substitutions in 6 words; one shares nothing
        "repeat_real": ["good morning"],  # 2 deletions in 4 words
        "repeat_templates": ["open the window"],
        "continue_templates": ["x y"],
        "continue_real": ["nothing"],
        "answer_open": ["It is blue.", "4"],
        "answer_templates": ["blue", "four"],
        demo.TEXT_ONLY: ["Blue.", "Four legs."],
    }
    reference[demo.TEXT_ONLY] = ["Blue.", "Four."]
    scores = demo.score(responses, eval_data(), reference, OverlapEmbedder())
    assert scores["text_only_identical"] == 0.5
    assert scores["wer_heldout_engine"] == pytest.approx(2 / 6)
    assert scores["hallucination_heldout_engine"] == pytest.approx(1 / 2)
    assert scores["wer_real"] == pytest.approx(0.5) and scores["hallucination_real"] == 0.0
    assert scores["wer_templates"] == 0.0
    assert scores["continuation_similarity"] == pytest.approx((1 + 0) / 2)
    assert scores["qa_open"] == 1.0 and scores["qa_templates"] == 0.5
    # Whisper's transcripts alone: WER columns only; a set that was not built is left out.
    heard = demo.transcript_scores({"real": ["good morning to you"]}, data)
    assert heard == {"wer_real": 0.0, "hallucination_real": 0.0}


def test_table_lists_every_system_and_metric_and_marks_missing_ones():
    scores = {"VoxLM": dict.fromkeys((key for key, _ in demo.COLUMNS), 0.25), "Whisper": {"wer_real": 0.875}}
    text = demo.table(scores)
    for _, title in demo.COLUMNS:
        assert title in text
    assert "0.250" in text and "0.875" in text
    whisper_row = next(line for line in text.splitlines() if line.startswith("Whisper"))
    assert whisper_row.split().count("-") == len(demo.COLUMNS) - 1


def test_card_metrics_carry_the_shipped_scores_and_need_a_finished_demo(tmp_path):
    from voxlm.hub_cards import RunInfo

    with pytest.raises(FileNotFoundError, match="voxlm demo --workdir"):
        demo.card_metrics(tmp_path / "demo")
    demo.Workdir(tmp_path / "demo").finish("scores", {"VoxLM": {"wer_real": 0.31234, "qa_open": 0.5}, "cascade": {}})
    metrics = demo.card_metrics(tmp_path / "demo")
    assert [(m["task"], m["metric"], m["value"]) for m in metrics] == [
        ("repeat", "wer", 0.312),
        ("spoken_question", "accuracy", 0.5),
    ]
    assert metrics[0]["dataset_name"] == "voxlm demo: real recordings"
    RunInfo(metrics=metrics).save(tmp_path / "card")  # the card's record accepts them
    assert RunInfo.load(tmp_path / "card").metrics == metrics


def test_rerun_reuses_every_finished_step_and_says_so(tmp_path, monkeypatch, capsys):
    workdir = tmp_path / "demo"
    (workdir / "model").mkdir(parents=True)
    (workdir / "model" / "config.json").write_text("{}")
    scores = {name: dict.fromkeys((key for key, _ in demo.COLUMNS), 0.5) for name in (demo.SHIPPED, demo.CASCADE)}
    after = dict.fromkeys((key for key, _ in demo.COLUMNS), 0.25)
    state = {"model": True, "data": True, "scores": scores, "finetune": True, "after": after}
    (workdir / "state.json").write_text(json.dumps(state))

    def must_not_run(*args, **kwargs):
        raise AssertionError("a finished step ran again")

    for step in ("save_shipped_folder", "build_eval_data", "evaluate_systems", "speech_system", "finetune"):
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


def test_text_only_answers_of_a_speech_lora_model_equal_its_language_models():
    from hub_helpers import distinct_tiny_voxlm

    model, processor = distinct_tiny_voxlm(lora=True, speech_only=True)
    bare, _ = distinct_tiny_voxlm(lora=False)  # the same language model weights, without LoRA
    questions = ["what colour is the sky", "how many legs has a cat"]
    ours = demo.text_only_answers(model, processor.tokenizer, questions)
    assert ours == demo.text_only_answers(bare.language_model, processor.tokenizer, questions)
    assert all(ours)  # answers were written (random weights write something)
    # The comparison can fail: LoRA that also acts on text changes these answers.
    everywhere, _ = distinct_tiny_voxlm(lora=True)
    assert demo.text_only_answers(everywhere, processor.tokenizer, questions) != ours
