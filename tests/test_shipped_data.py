"""The shipped checkpoint's data: held-out engine and texts kept out of training, weighted engines, resumable shards."""

import collections

import datasets
import numpy as np
import pytest

from voxlm.train.offline import shipped_data
from voxlm.train.offline.engines import Rendition


def test_the_held_out_engine_never_speaks_training_text():
    with pytest.raises(ValueError, match="held-out voice engine"):
        shipped_data.training_voice_specs(shipped_data.HELD_OUT_ENGINE)
    renditions = shipped_data.weighted_renditions(400, shipped_data.ENGINE_SHARES, seed=3)
    engines = collections.Counter(r.engine for r in renditions)
    assert shipped_data.HELD_OUT_ENGINE not in engines and sum(engines.values()) == 400
    installed = {engine for engine in shipped_data.ENGINE_SHARES if shipped_data.training_voice_specs(engine)}
    assert set(engines) == installed
    total = sum(shipped_data.ENGINE_SHARES[engine] for engine in installed)
    for engine in installed:  # shares of the installed engines, renormalised
        assert engines[engine] == pytest.approx(400 * shipped_data.ENGINE_SHARES[engine] / total, abs=1)
    assert renditions == shipped_data.weighted_renditions(400, shipped_data.ENGINE_SHARES, seed=3)


def test_espeak_training_voices_are_not_its_held_out_voices():
    from voxlm.train.offline import speech

    held_out = {voice.name for voice in speech.voices("held_out")}
    training = {spec.voice for spec in shipped_data.training_voice_specs("espeak-ng")}
    assert training and not training & held_out
    assert {spec.voice for spec in shipped_data.heldout_espeak_voices()} <= held_out


def test_interleave_keeps_each_order_and_mixes_every_prefix():
    merged = shipped_data._interleave([f"a{i}" for i in range(6)], ["b0", "b1"])
    assert [t for t in merged if t[0] == "a"] == [f"a{i}" for i in range(6)]
    assert [t for t in merged if t[0] == "b"] == ["b0", "b1"]
    assert "b0" in merged[:4] and "b1" in merged[4:]


def test_speech_is_built_in_shards_and_a_killed_build_resumes(tmp_path, monkeypatch):
    calls = []

    def fake_synthesis(texts, renditions):  # one tone per text, its length from the text
        calls.append(list(texts))
        return [np.sin(np.arange(800 * len(text)) / 7).astype(np.float32) * 0.3 for text in texts]

    monkeypatch.setattr("voxlm.train.offline.engines.synthesize_renditions", fake_synthesis)
    texts = [f"sentence number {i} " * (1 + i % 3) for i in range(7)]
    renditions = [Rendition("flite", "slt", 1.0, 1.0, i) for i in range(7)]
    built = shipped_data.speak(tmp_path, "probe", texts, renditions, {"answer": list("abcdefg")}, shard_size=3)
    assert [len(c) for c in calls] == [3, 3, 1] and built["text"] == texts and built["answer"] == list("abcdefg")
    assert built["duration"] == [800 * len(t) / 16000 for t in texts]
    assert built.column_names[:7] == ["audio", "text", "duration", "engine", "voice", "rate", "pitch"]
    # A kill after the first shard: the finished shards stay, only the missing one is spoken again.
    import shutil

    shutil.rmtree(tmp_path / "probe")
    shutil.rmtree(tmp_path / "shards" / "probe" / "00001")
    calls.clear()
    again = shipped_data.speak(tmp_path, "probe", texts, renditions, {"answer": list("abcdefg")}, shard_size=3)
    assert calls == [texts[3:6]] and again.to_list() == built.to_list()
    calls.clear()  # a finished data set is reused as it is
    assert shipped_data.speak(tmp_path, "probe", texts, renditions, shard_size=3).to_list() == built.to_list()
    assert calls == [] and datasets.load_from_disk(str(tmp_path / "probe"))["text"] == texts


def test_summary_counts_rows_hours_engines_vocabulary_and_heldout_overlap(tmp_path, monkeypatch):
    monkeypatch.setattr(
        "voxlm.train.offline.engines.synthesize_renditions",
        lambda texts, renditions: [np.zeros(16000 * 60 * (1 + i), np.float32) for i in range(len(texts))],
    )
    monkeypatch.setattr(shipped_data, "heldout_texts", lambda seed=0: ["the quick brown fox jumps over the lazy dog"])
    train = ["A cat sat here.", "The quick brown fox jumps over the lazy dog today", "a dog ran"]
    engines = [Rendition("flite", "slt", 1.0, 1.0, 0), Rendition("festival", "kal", 1.0, 1.0, 1)] * 2
    shipped_data.speak(tmp_path, "asr_train", train, engines[:3])
    shipped_data.speak(tmp_path, "eval_real", ["not counted as training"], engines[:1])
    summary = shipped_data.summarize_data(tmp_path)
    assert summary["sets"] == {"asr_train": {"rows": 3, "hours": 0.1}, "eval_real": {"rows": 1, "hours": 0.017}}
    assert summary["training_hours_per_engine"] == {"flite": 0.067, "festival": 0.033}
    # a, cat, sat, here, the, quick, brown, fox, jumps, over, lazy, dog, today, ran
    assert summary["training_vocabulary"] == 14
    assert summary["training_texts_sharing_a_heldout_text"] == 1
    assert (tmp_path / "summary.json").is_file()


def test_the_shipped_recipe_plans_its_stages_and_describes_its_card(monkeypatch):
    from voxlm.hub_cards import RunInfo
    from voxlm.train.core.tasks import build_tasks
    from voxlm.train.curriculum.recipe import CurriculumConfig, plan_stages
    from voxlm.train.offline.shipped import RECIPE, _recipe_card_fields

    for name in ("VOXLM_DATA", "VOXLM_WHISPER", "VOXLM_SMOLLM2", "VOXLM_RUN"):
        monkeypatch.setenv(name, f"/nowhere/{name}")
    config = CurriculumConfig.from_yaml(str(RECIPE))
    plans = plan_stages(config, build_tasks(config.tasks))
    assert [plan.spec.name for plan in plans] == ["align", "behave", "behave_more", "behave_last"]
    assert [("lora" in plan.train) for plan in plans] == [False, False, True, True]
    assert plans[2].lora.speech_only  # text-only prompts must stay SmolLM2's
    fields = _recipe_card_fields()
    card = RunInfo(**fields)  # every field is one the card knows
    used = {name for plan in plans for name in plan.weights}
    assert {dataset["id"] for dataset in card.datasets} == used and all(d["description"] for d in card.datasets)
