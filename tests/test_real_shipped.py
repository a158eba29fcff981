"""The shipped checkpoint (Whisper tiny.en -> trained BLSP adapter -> SmolLM2-135M-Instruct) on real weights."""

import pytest
import torch

pytestmark = pytest.mark.real

REPEAT = "Repeat exactly what was said."
# The card records 0.158 on 40 held-out template clips and 0.400 on the 22 real recordings (the cascade: 1.00, 1.45).
WER_HELDOUT = 0.35
WER_REAL, UNRELATED_REAL = 0.6, 0.3


@pytest.fixture(scope="module")
def shipped():
    from voxlm.train.offline.shipped import assemble

    torch.set_num_threads(1)
    return assemble()


def repeat(model, processor, clips) -> list[str]:
    from voxlm.train.core.evaluate import generate_answers

    examples = [{"audio": clip, "instruction": REPEAT} for clip in clips]
    return generate_answers(model, processor, examples, batch_size=4, max_new_tokens=40, progress=False)


def test_shipped_files_hold_only_what_the_base_assets_lack():
    from safetensors import safe_open

    from voxlm.hub_cards import RunInfo
    from voxlm.train.offline.shipped import ADAPTER_FILE, TRAINED_PREFIXES, shipped_dir

    folder = shipped_dir()
    weights = folder / ADAPTER_FILE
    assert weights.stat().st_size < 30 * 2**20  # a few MB, not a model
    with safe_open(str(weights), "pt") as tensors:
        names = list(tensors.keys())
        assert all(tensors.get_tensor(name).dtype == torch.float16 for name in names)
    assert names and all(name.startswith(TRAINED_PREFIXES) or ".lora_" in name for name in names)
    info = RunInfo.load(folder)
    assert info.training["seconds"] > 3600  # the card records the real training cost
    assert "voxlm.train.offline.shipped train" in (folder / "README.md").read_text()


def test_shipped_model_keeps_the_base_weights_and_loads_the_adapter(shipped):
    from safetensors.torch import load_file

    from voxlm.train.offline.shipped import ADAPTER_FILE, TRAINED_PREFIXES, shipped_dir, untrained

    model, _ = shipped
    adapter = load_file(str(shipped_dir() / ADAPTER_FILE))
    state = model.state_dict()
    for name, tensor in adapter.items():
        assert torch.equal(state[name], tensor.float()), name
    fresh, _ = untrained()
    fresh_state = fresh.state_dict()
    for name in ("language_model.model.embed_tokens.weight", "audio_tower.conv1.weight"):
        assert torch.equal(state[name], fresh_state[name]), name
    trained = next(name for name in adapter if name.startswith(TRAINED_PREFIXES))  # the adapter, not the LoRA
    assert not torch.equal(state[trained], fresh_state[trained].float())


def test_shipped_model_repeats_speech_in_voices_it_never_heard(shipped):
    from voxlm.train.core.metrics import word_error_rate
    from voxlm.train.offline.sentences import sentences
    from voxlm.train.offline.speech import audio_of, synthetic_speech_dataset, voices

    texts = sentences(6, "held_out", seed=101)
    table = synthetic_speech_dataset(texts, voices("held_out", max_wer=0.3), seed=101, progress=False)
    answers = repeat(*shipped, [audio_of(row) for row in table])
    assert word_error_rate(texts, answers) < WER_HELDOUT, list(zip(texts, answers))


def test_shipped_model_repeats_real_recordings(shipped):
    from voxlm.train.core.metrics import compute_metric
    from voxlm.train.offline.speech import real_recordings

    recordings = real_recordings()
    answers = repeat(*shipped, [recording.audio for recording in recordings])
    scores = compute_metric("wer", answers, [recording.text for recording in recordings])
    pairs = list(zip([recording.text for recording in recordings], answers))
    assert scores["wer"] < WER_REAL and scores["hallucination_rate"] < UNRELATED_REAL, pairs


@pytest.mark.slow
def test_the_readme_example_answers_a_spoken_question(tmp_path, monkeypatch):
    """The Python example at the top of README.md, run as written against the folder `make demo` saves."""
    import re
    from pathlib import Path

    from voxlm.train.offline.shipped import hub_folder

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    example = re.search(r"```python\n(.*?)```", readme, re.S).group(1)
    assert len(example.strip().splitlines()) <= 15 and 'folder = "runs/demo/model"' in example
    monkeypatch.chdir(tmp_path)
    hub_folder(Path("runs/demo/model"))
    printed = []
    exec(compile(example, "README.md", "exec"), {"print": printed.append})
    assert len(printed) == 1 and "Paris" in printed[0]  # the question is "What is the capital of France?"


def test_a_snapshot_of_the_last_finished_stage_restores_on_another_machine(tmp_path):
    import json

    from voxlm.train.curriculum.recipe import STAGE_DONE
    from voxlm.train.offline.shipped import restore, snapshot, trained_state, untrained

    run = tmp_path / "run"
    assert snapshot(run, tmp_path / "state") is None  # nothing finished yet
    for number, name in enumerate(["align", "behave"], start=1):
        stage = run / f"{number:02d}-{name}"
        model, processor = untrained(seed=number)
        if name == "behave":  # the later stages add speech-only LoRA: it travels with the adapter
            model.add_lora(4, 8, 0.0, ["q_proj", "v_proj"], speech_only=True)
            for parameter_name, parameter in model.named_parameters():
                if "lora_B" in parameter_name:
                    parameter.data.normal_(0, 0.02)
            last = model
        model.save_pretrained(stage / "model")
        processor.save_pretrained(stage / "model")
        (stage / STAGE_DONE).write_text(json.dumps({"name": name, "steps": 10 * number}))
    (run / "03-polish").mkdir()  # an unfinished stage is not kept
    (run / "timings.json").write_text('{"wall_seconds": 7, "cpu_seconds": 9}')
    kept = snapshot(run, tmp_path / "state")
    assert kept == tmp_path / "state" / "02-behave"
    assert sorted(p.name for p in kept.iterdir()) == [
        "01-align.json", "02-behave.json", "adapter.safetensors", "config.json", "timings.json"
    ]  # fmt: skip

    elsewhere = tmp_path / "elsewhere"
    assert restore(tmp_path / "state", elsewhere) == ["01-align", "02-behave"]
    assert json.loads((elsewhere / "01-align" / STAGE_DONE).read_text())["steps"] == 10
    assert json.loads((elsewhere / "timings.json").read_text())["cpu_seconds"] == 9
    from voxlm.modeling import VoxLMForConditionalGeneration

    reloaded = VoxLMForConditionalGeneration.from_pretrained(elsewhere / "02-behave" / "model")
    assert reloaded.config.llm_lora["speech_only"] is True
    restored, original = trained_state(reloaded), trained_state(last)
    assert restored.keys() == original.keys() and any(".lora_B." in name for name in original)
    for name, tensor in original.items():  # the adapter and LoRA as trained, rounded to float16
        assert torch.equal(restored[name], tensor.to(torch.float16).to(torch.float32))
    with pytest.raises(FileNotFoundError, match="expected one"):
        restore(tmp_path / "nothing", elsewhere)
