"""Speech-token classification training: new-row adaptation, weighted loss, metrics and the ablation command."""

import json

import numpy as np
import pytest
import torch
import yaml
from datasets import Dataset, DatasetDict
from tiny_speechtok import save_tiny_lm, synthetic_corpus
from transformers import AutoModelForSequenceClassification, AutoProcessor, AutoTokenizer

from voxlm.hub_cards.push import export_folder
from voxlm.processing import SpeechTokenProcessor
from voxlm.train import classify
from voxlm.train.classify.adaptation import adapt_new_embeddings, lm_objective, load_language_model
from voxlm.train.classify.classification import balanced_class_weights, classification_metrics, weighted_cross_entropy

torch.set_num_threads(1)
VOCABULARY = [f"<|a0_{code}|>" for code in range(30)]
SIGNAL = {0: ["<|a0_1|>", "<|a0_2|>"], 1: ["<|a0_28|>", "<|a0_29|>"]}


@pytest.fixture(scope="module")
def lm_paths(tmp_path_factory):
    root = tmp_path_factory.mktemp("lms")
    return {kind: save_tiny_lm(kind, str(root / kind)) for kind in ("causal", "masked")}


@pytest.mark.parametrize("kind", ["causal", "masked"])
def test_adaptation_changes_only_the_new_embedding_rows(kind, lm_paths, tmp_path):
    path = lm_paths[kind]
    assert lm_objective(path) == kind
    processor = SpeechTokenProcessor.from_parts(AutoTokenizer.from_pretrained(path), VOCABULARY[:6], max_length=64)
    clips, _, texts = synthetic_corpus(24, VOCABULARY[:6], {0: [VOCABULARY[0]]}, length=12)
    sequences = classify.encode_split(processor, classify.Split(texts, clips, []), True, special_mask=True)
    model = load_language_model(path, kind, len(processor.tokenizer))
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    new_ids = processor.added_token_ids
    adapted, stats = adapt_new_embeddings(
        model, processor.tokenizer, sequences, new_ids, kind, str(tmp_path), max_steps=4, learning_rate=0.05
    )
    after = adapted.state_dict()
    assert stats["adaptation_steps"] == 4 and stats["adaptation_loss"] > 0
    assert set(after) == set(before)
    vocab_rows = len(processor.tokenizer)
    old = torch.ones(vocab_rows, dtype=torch.bool)
    old[new_ids] = False
    changed_embeddings = 0
    for name, tensor in before.items():
        if tensor.ndim == 2 and tensor.shape[0] == vocab_rows:  # input embeddings and the tied output rows
            assert torch.equal(after[name][old], tensor[old]), name  # old rows bit-identical
            changed_embeddings += not torch.equal(after[name][~old], tensor[~old])
        else:
            assert torch.equal(after[name], tensor), name
    assert changed_embeddings >= 1
    assert adapted.get_input_embeddings().weight.data_ptr() == adapted.get_output_embeddings().weight.data_ptr()


def test_class_weighted_cross_entropy_matches_a_reference():
    labels = [0, 0, 0, 1]
    weights = balanced_class_weights(labels, 3)
    assert weights.tolist() == pytest.approx([4 / 6, 2.0, 0.0])  # n / (classes present * count)
    logits = torch.tensor([[2.0, -1.0, 0.0], [0.5, 0.2, 0.1]])
    targets = torch.tensor([1, 0])
    loss = weighted_cross_entropy(weights)({"logits": logits}, targets)
    log_probs = logits.log_softmax(-1)
    reference = -(weights[1] * log_probs[0, 1] + weights[0] * log_probs[1, 0]) / (weights[1] + weights[0])
    assert loss.item() == pytest.approx(reference.item(), rel=1e-6)


def test_metrics_macro_f1_and_positive_class_f1():
    metrics = classification_metrics([0, 0, 1, 1], [0, 1, 1, 1], num_labels=2)
    assert metrics["accuracy"] == 0.75
    assert metrics["positive_f1"] == pytest.approx(0.8)  # precision 2/3, recall 1
    assert metrics["macro_f1"] == pytest.approx((0.8 + 2 / 3) / 2)
    assert "positive_f1" not in classification_metrics([0, 1, 2], [0, 1, 2], num_labels=3)


def write_study(tmp_path, model_path: str, **overrides) -> str:
    splits = {}
    for name, size, seed in (("train", 48, 0), ("test", 24, 1)):
        clips, labels, texts = synthetic_corpus(size, VOCABULARY, SIGNAL, length=10, seed=seed)
        splits[name] = Dataset.from_dict({"text": texts, "audio_tokens": clips, "label": labels})
    DatasetDict(splits).save_to_disk(str(tmp_path / "data"))
    config = {
        "model": model_path,
        "data": {"path": str(tmp_path / "data")},
        "output_dir": str(tmp_path / "runs"),
        "seeds": [0, 1],
        "max_length": 48,
        "selection": {"C": 0.5},
        "adaptation": {"max_steps": 2, "batch_size": 8},
        "finetune": {"max_steps": 2, "batch_size": 8, "lora": {"r": 4, "alpha": 8}},
        **overrides,
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_classify_runs_the_four_conditions_and_resumes_over_seeds(lm_paths, tmp_path):
    config_path = write_study(tmp_path, lm_paths["causal"], seeds=[0])
    rows = classify.main(["--config", config_path])
    results_path = tmp_path / "runs" / "results.jsonl"
    results = {(r["condition"], r["seed"]): r for r in map(json.loads, results_path.read_text().splitlines())}
    assert sorted(results) == sorted((condition, 0) for condition in classify.CONDITIONS)
    assert results[("text", 0)]["num_audio_tokens"] == 0
    assert results[("all", 0)]["num_audio_tokens"] == len(VOCABULARY)
    assert results[("selected", 0)]["num_audio_tokens"] == results[("random", 0)]["num_audio_tokens"] > 0
    assert all(0.0 <= r["macro_f1"] <= 1.0 and "positive_f1" in r for r in results.values())
    assert [row["condition"] for row in rows] == list(classify.CONDITIONS)
    # A second call with another seed runs only what is missing and averages over seeds.
    rows = classify.main(["--config", config_path, "--seeds", "0", "1", "--conditions", "text", "random"])
    results = {(r["condition"], r["seed"]): r for r in map(json.loads, results_path.read_text().splitlines())}
    assert len(results) == 6 and ("random", 1) in results and ("selected", 1) not in results
    assert [(row["condition"], row["seeds"]) for row in rows] == [("text", 2), ("random", 2)]
    expected = np.mean([results[("random", seed)]["macro_f1"] for seed in (0, 1)])
    assert rows[1]["macro_f1"] == pytest.approx(expected)
    assert "| random | 2 |" in (tmp_path / "runs" / "summary.md").read_text()


def test_saved_classifier_reloads_as_plain_transformers_with_the_remote_processor(lm_paths, tmp_path):
    config_path = write_study(tmp_path, lm_paths["masked"], seeds=[0], conditions=["selected"], save_models=True)
    classify.main(["--config", config_path])
    folder = tmp_path / "runs" / "selected" / "seed0" / "model"
    selection = json.loads((folder / "audio_vocabulary.json").read_text())
    processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
    assert processor.audio_vocabulary == [item["token"] for item in selection["kept_tokens"]]
    assert set(processor.audio_vocabulary) <= set(SIGNAL[0] + SIGNAL[1])
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    assert model.get_input_embeddings().num_embeddings == len(processor.tokenizer)
    batch = processor(text=["hello world"], audio_tokens=[SIGNAL[1] * 3])
    with torch.no_grad():
        assert model(**batch).logits.shape == (1, 2)
    # The run folder is what `voxlm push` publishes.
    run_info = json.loads((folder / "run_info.json").read_text())
    assert run_info["kind"] == "speech-token-classifier" and run_info["recipe"] == "speech-tokens"
    result = json.loads((tmp_path / "runs" / "results.jsonl").read_text().splitlines()[0])
    assert {m["metric"]: m["value"] for m in run_info["metrics"]}["macro_f1"] == result["macro_f1"]
    exported = export_folder(folder, tmp_path / "export", "voxlm-test/speech-tokens-tiny")
    assert {"audio_vocabulary.json", "processing_speech_tokens.py", "speech_units.py", "model.safetensors"} <= set(
        exported.files
    )
    assert "**Audio tokens kept:**" in (tmp_path / "export" / "README.md").read_text()


def test_config_errors_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match=r"config.finetune: unknown key\(s\) \['lora_rank'\]"):
        classify.ClassifyConfig.from_dict({"model": "m", "data": {"path": "d"}, "finetune": {"lora_rank": 8}})
    with pytest.raises(ValueError, match="Unknown conditions"):
        classify.ClassifyConfig.from_dict({"model": "m", "data": {"path": "d"}, "conditions": ["audio"]})


@pytest.mark.parametrize("where", ["data", "top"])
def test_streaming_is_refused_before_anything_loads_saying_why(where, tmp_path):
    raw = {"model": "m", "data": {"path": str(tmp_path / "missing")}}
    (raw["data"] if where == "data" else raw)["streaming"] = True
    with pytest.raises(ValueError, match=r"`streaming: true` does not fit this recipe: the Lasso selection") as error:
        classify.ClassifyConfig.from_dict(raw)
    assert "Remove `streaming`" in str(error.value) and "fit in memory" in str(error.value)
    assert str(error.value).startswith("config.data: " if where == "data" else "config: ")
    raw = {"model": "m", "data": {"path": "d", "streaming": False}}
    assert classify.ClassifyConfig.from_dict(raw).data.streaming is False


def test_the_example_config_parses():
    from pathlib import Path

    path = Path(__file__).parent.parent / "train" / "configs" / "classify_offline.yaml"
    config = classify.ClassifyConfig.from_dict(yaml.safe_load(path.read_text()))
    assert config.conditions == list(classify.CONDITIONS) and config.seeds == [0, 1, 2]
    assert config.finetune.lora.r == 64 and not config.model.startswith("~")
