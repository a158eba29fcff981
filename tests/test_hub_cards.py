"""Model cards and run_info.json: metadata, validation, the card's variants, and their code examples."""

import contextlib
import io
import json

import pytest
import torch
from hub_helpers import INSTRUCTION, distinct_tiny_voxlm, example_run_info, generate_ids, write_run
from tiny import tiny_voxlm, tone

from voxlm.hub_cards import RunInfo, check_card, export_folder, python_blocks
from voxlm.hub_cards.card import eval_results, format_count, format_duration

REPO_ID = "voxlm-test/card-variant"


def test_number_and_duration_formats():
    assert format_count(135_000_000) == "135,000,000 (135.0 M)"
    assert format_count(7920) == "7,920 (7.9 k)"
    assert format_count(12) == "12"
    assert format_count(None) == "not recorded"
    assert format_duration(42) == "42 s"
    assert format_duration(5400) == "1 h 30 min"
    assert format_duration(600) == "10 min"


def test_eval_results_map_tasks_to_hub_task_ids():
    metrics = [
        {"task": "asr", "metric": "wer", "value": 7.1, "dataset": "openslr/librispeech_asr", "split": "test"},
        {"task": "st", "metric": "bleu", "value": 21.0, "dataset_name": "CoVoST 2 en-de"},
        {"task": "keywords", "metric": "f1", "value": 0.5, "task_type": "text-generation"},
    ]
    results = eval_results(metrics, "m")
    assert [r.task_type for r in results] == ["automatic-speech-recognition", "translation", "text-generation"]
    assert [(r.dataset_type, r.dataset_name) for r in results] == [
        ("openslr/librispeech_asr", "openslr/librispeech_asr"),
        ("CoVoST 2 en-de", "CoVoST 2 en-de"),
        ("custom", "custom"),
    ]
    assert results[0].dataset_split == "test" and results[1].metric_value == 21.0


def test_check_card_rejects_what_the_hub_would():
    good = "---\nlicense: mit\nlibrary_name: transformers\npipeline_tag: audio-text-to-text\n---\n# m\n"
    assert check_card(good).data.license == "mit"
    with pytest.raises(ValueError, match="no YAML metadata"):
        check_card("# no metadata\n")
    with pytest.raises(ValueError, match="lacks `license`"):
        check_card("---\nlibrary_name: transformers\npipeline_tag: audio-text-to-text\n---\n")
    broken_index = good.replace("---\n# m", "model-index:\n- name: m\n  results:\n  - task: {}\n---\n# m")
    with pytest.raises(ValueError, match="model_index"):
        check_card(broken_index)


def test_python_blocks_extracts_code_in_order():
    text = "a\n```python\nx = 1\n```\nb\n```bash\nls\n```\n```python\nprint(x)\n```\n"
    assert python_blocks(text) == ["x = 1", "print(x)"]


def test_run_info_round_trip_and_clear_errors(tmp_path):
    info = example_run_info()
    model, _ = tiny_voxlm()
    model.train_adapter_only()
    stage = info.add_stage("1", model=model, trained=["projector"])
    assert stage["trainable_parameters"] == sum(p.numel() for p in model.projector.parameters())
    info.save(tmp_path)
    assert RunInfo.load(tmp_path) == info
    assert info.trainable == stage["trainable_parameters"]

    (tmp_path / "run_info.json").write_text(json.dumps({"recipe": "blsp", "epochs": 3}))
    with pytest.raises(ValueError, match=r"unknown keys \['epochs'\]"):
        RunInfo.load(tmp_path)
    with pytest.raises(ValueError, match=r"metric 0 lacks \['value'\]"):
        RunInfo(metrics=[{"task": "asr", "metric": "wer"}])
    (tmp_path / "run_info.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        RunInfo.load(tmp_path)


def _run_snippets(readme: str, folder) -> list[str]:
    """Run the card's code blocks in this process, with the repository id pointing at the exported folder."""
    outputs = []
    for code in python_blocks(readme):
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile(code.replace(REPO_ID, str(folder)), "card", "exec"), {"__name__": "__main__"})
        outputs.append(printed.getvalue().strip())
    return outputs


def test_card_without_run_info_says_not_recorded(tmp_path):
    model, processor = distinct_tiny_voxlm(lora=False)
    model.save_pretrained(tmp_path / "run")
    processor.save_pretrained(tmp_path / "run")
    result = export_folder(tmp_path / "run", tmp_path / "out", REPO_ID)
    readme = (tmp_path / "out" / "README.md").read_text()
    card = check_card(readme)
    assert card.data.license == "other" and card.data.base_model is None and card.data.eval_results is None
    assert "**Recipe:** not recorded" in readme and "Not recorded for this run." in readme
    assert "**LoRA:** none." in readme
    assert result.lora == "none"
    assert "The licence was not recorded" in readme


def test_card_example_without_chat_template_runs(tmp_path):
    model, processor = distinct_tiny_voxlm(lora=False)
    processor.tokenizer.chat_template = None
    processor.chat_template = None
    write_run(tmp_path / "run", model, processor)
    export_folder(tmp_path / "run", tmp_path / "out", REPO_ID)
    readme = (tmp_path / "out" / "README.md").read_text()
    assert "apply_chat_template" not in python_blocks(readme)[0]
    usage, pipeline_output = _run_snippets(readme, tmp_path / "out")
    inputs = processor(text=f"<|audio|>\n{INSTRUCTION}", audio=_sample(), sampling_rate=16000)
    output = model.generate(**inputs, max_new_tokens=64, do_sample=False)
    expected = processor.batch_decode(output[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)[0]
    assert usage == expected.strip()
    assert pipeline_output == repr({"generated_text": expected})


def test_card_example_for_an_encoder_decoder_language_model_runs(tmp_path):
    model, processor = tiny_voxlm("whisper", "t5", "blsp")
    write_run(tmp_path / "run", model, processor, example_run_info(recipe="blsp"))
    export_folder(tmp_path / "run", tmp_path / "out", REPO_ID)
    readme = (tmp_path / "out" / "README.md").read_text()
    assert "behaviour alignment (BLSP" in readme and "6.25 language-model positions per second" in readme
    usage, _ = _run_snippets(readme, tmp_path / "out")
    expected = processor.batch_decode(
        [generate_ids(model, processor, _sample(), max_new_tokens=64)], skip_special_tokens=True
    )[0]
    assert usage == expected.strip()


def test_card_describes_kept_lora(tmp_path):
    model, processor = distinct_tiny_voxlm(lora=True)
    write_run(tmp_path / "run", model, processor)
    result = export_folder(tmp_path / "run", tmp_path / "out", REPO_ID, keep_lora=True, license="mit")
    readme = (tmp_path / "out" / "README.md").read_text()
    assert result.lora == "kept"
    assert "kept as peft LoRA layers (r=4, alpha=8, on q_proj, v_proj)" in readme
    assert check_card(readme).data.license == "mit"


def test_speech_only_lora_is_kept_and_the_card_example_runs_with_it(tmp_path):
    # Merging speech-only LoRA would change text-only answers, so publishing keeps it without --keep-lora.
    model, processor = distinct_tiny_voxlm(lora=True, speech_only=True)
    write_run(tmp_path / "run", model, processor)
    result = export_folder(tmp_path / "run", tmp_path / "out", REPO_ID)
    readme = (tmp_path / "out" / "README.md").read_text()
    assert result.lora == "kept"
    assert "speech-only LoRA" in readme and "never merged" in readme
    assert "kept as peft LoRA layers (r=4, alpha=8, on q_proj, v_proj)" in readme
    usage, _ = _run_snippets(readme, tmp_path / "out")
    expected = processor.batch_decode(
        [generate_ids(model, processor, _sample(), max_new_tokens=64)], skip_special_tokens=True
    )[0]
    assert usage == expected.strip()


def test_export_refuses_a_non_empty_folder(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        export_folder(tmp_path, tmp_path / "out", REPO_ID)


def _sample():
    from importlib import resources

    import soundfile

    audio, _ = soundfile.read(str(resources.files("voxlm.hub_cards") / "shipped" / "sample.wav"), dtype="float32")
    return audio


def test_clip_reference_depends_on_audio():
    """Guard for the tests above: the tiny model's text changes with the audio, so equal outputs mean something."""
    model, processor = distinct_tiny_voxlm(lora=False)
    assert generate_ids(model, processor, tone(1.0)) != generate_ids(model, processor, _sample())


def test_speech_token_classifier_travels_with_its_vocabulary(tmp_path):
    """The classifier publisher, on a stand-in run (tiny BERT; a plain tokenizer as processor)."""
    from tiny import tiny_tokenizer
    from transformers import AutoModelForSequenceClassification, BertConfig, BertForSequenceClassification

    tokenizer = tiny_tokenizer()
    labels = {0: "statement", 1: "question"}
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        id2label=labels,
        label2id={name: i for i, name in labels.items()},
    )
    model = BertForSequenceClassification(config).eval()
    run = tmp_path / "run"
    model.save_pretrained(run)
    tokenizer.save_pretrained(run)
    kept = [{"token": "<|a0_17|>", "weight": 0.9}, {"token": "<|a0_3|>", "weight": 0.4}]
    selection = {"settings": {"method": "lasso"}, "report": {}, "vocabulary": ["<|a0_3|>", "<|a0_17|>"]}
    (run / "audio_vocabulary.json").write_text(json.dumps({**selection, "kept_tokens": kept}))
    metric = {"task": "classification", "metric": "macro_f1", "value": 0.71, "dataset_name": "espeak questions"}
    RunInfo(
        recipe="speech-tokens",
        base_models={"text": "sentence-transformers/all-MiniLM-L6-v2", "audio": "openai/whisper-tiny"},
        metrics=[metric],
        license="mit",
    ).save(run)

    result = export_folder(run, tmp_path / "out", "voxlm-test/speech-tokens-tiny")
    assert set(result.files) == {
        "README.md",
        "audio_vocabulary.json",
        "chat_template.jinja",
        "config.json",
        "model.safetensors",
        "sample.wav",
        "tokenizer.json",
        "tokenizer_config.json",
    }
    readme = (tmp_path / "out" / "README.md").read_text()
    card = check_card(readme)
    assert card.data.pipeline_tag == "audio-classification"
    assert [(r.task_type, r.metric_type, r.metric_value) for r in card.data.eval_results] == [
        ("audio-classification", "macro_f1", 0.71)
    ]
    assert "**Audio tokens kept:** 2 (selection: lasso); the heaviest: `<|a0_17|>`, `<|a0_3|>`" in readme
    assert "`statement`, `question`" in readme and "speech tokens for classification" in readme
    assert 'processor(text=["he was not an ill disposed young man"], audio=[audio]' in python_blocks(readme)[0]
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path / "out").eval()
    ids = torch.tensor([[1, 5, 9, 3]])
    torch.testing.assert_close(reloaded(ids).logits, model(ids).logits)


def test_classifier_run_saved_as_a_peft_adapter_is_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["BertForSequenceClassification"]}))
    (tmp_path / "adapter_config.json").write_text("{}")
    with pytest.raises(ValueError, match="holds a peft adapter, not a full model"):
        export_folder(tmp_path, tmp_path / "out", "voxlm-test/x")


def test_unknown_kinds_are_named(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "architectures": ["BertModel"]}))
    with pytest.raises(ValueError, match=r"No publisher recognises .*config.json \(model_type 'bert'\); known kinds"):
        export_folder(tmp_path, tmp_path / "out", "voxlm-test/x")
    RunInfo(kind="speech-token-regressor").save(tmp_path)
    with pytest.raises(ValueError, match="names kind 'speech-token-regressor', which cannot be published"):
        export_folder(tmp_path, tmp_path / "out2", "voxlm-test/x")


def test_lora_description_names_a_peft_shorthand_whole():
    from types import SimpleNamespace

    from voxlm.hub_cards.card import _lora_description

    config = SimpleNamespace(llm_lora={"r": 16, "lora_alpha": 32, "target_modules": "all-linear", "speech_only": True})
    assert "(r=16, alpha=32, on all-linear)" in _lora_description(config, "kept")
