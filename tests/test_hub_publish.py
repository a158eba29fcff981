"""Acceptance: `voxlm push --dry-run` writes a folder that a fresh interpreter without voxlm loads and runs.

One fresh process (HF_HUB_OFFLINE=1, empty HF_MODULES_CACHE, `sys.modules["voxlm"] = None`) loads the exported
folders with AutoModel/AutoProcessor and `pipeline`, runs the card's code blocks, and loads broken copies.
"""

import ast
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile
from hub_helpers import INSTRUCTION, distinct_tiny_voxlm, generate_ids, run_fresh_process, write_run
from safetensors.torch import load_file, save_file
from tiny import tone

from voxlm.hub_cards import check_card, python_blocks
from voxlm.train.cli import main

REPO_ID = "voxlm-test/tiny-voxlm"
SNIPPET_TOKENS = 64  # what the card's examples ask for
EXPECTED_FILES = {
    "README.md",
    "audio_checks.py",
    "audio_lengths.py",
    "chat_template.jinja",
    "config.json",
    "configuration_voxlm.py",
    "encoder_sizes.py",
    "generation_config.json",
    "model.safetensors",
    "modeling_voxlm.py",
    "pipeline_voxlm.py",
    "processing_voxlm.py",
    "processor_config.json",
    "quantization_voxlm.py",  # lets a quantization_config load through remote code
    "sample.wav",
    "tokenizer.json",
    "tokenizer_config.json",
    "whisper_encoder.py",
}


def _decode(processor, ids: list[int]) -> str:
    return processor.batch_decode([ids], skip_special_tokens=True)[0]


def _broken_copies(folder: Path, root: Path) -> dict[str, Path]:
    """Copies of an exported folder with one thing wrong each."""
    broken = {name: root / name for name in ("no_weights", "truncated", "lfs_pointer", "missing_tensor", "preset")}
    for path in broken.values():
        shutil.copytree(folder, path)
    (broken["no_weights"] / "model.safetensors").unlink()
    weights = (folder / "model.safetensors").read_bytes()
    (broken["truncated"] / "model.safetensors").write_bytes(weights[: len(weights) // 2])
    (broken["lfs_pointer"] / "model.safetensors").write_text(
        "version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 538824\n"
    )
    state = load_file(folder / "model.safetensors")
    del state["projector.projector.linear_1.weight"]
    save_file(state, broken["missing_tensor"] / "model.safetensors", metadata={"format": "pt"})
    config = json.loads((folder / "config.json").read_text())
    config["adapter"] = "speechverse-xl"
    (broken["preset"] / "config.json").write_text(json.dumps(config))
    return broken


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    root = tmp_path_factory.mktemp("publish")
    model, processor = distinct_tiny_voxlm(lora=True)
    run_dir = write_run(root / "run", model, processor)
    clip = tone(1.3, frequency=180.0, seed=3)
    np.save(root / "clip.npy", clip)
    sample, rate = soundfile.read(Path(__file__).parents[1] / "hub_cards" / "shipped" / "sample.wav", dtype="float32")
    assert rate == 16000
    reference = {
        "clip": generate_ids(model, processor, clip),
        "sample": generate_ids(model, processor, sample),
        "sample_long": generate_ids(model, processor, sample, max_new_tokens=SNIPPET_TOKENS),
    }
    assert main(["push", str(run_dir), REPO_ID, "--dry-run", str(root / "merged")]) == 0
    assert main(["push", str(run_dir), REPO_ID, "--dry-run", str(root / "kept"), "--keep-lora"]) == 0
    readme = (root / "merged" / "README.md").read_text()
    snippets = [block.replace(REPO_ID, str(root / "merged")) for block in python_blocks(readme)]
    broken = _broken_copies(root / "merged", root)
    job = {"audio": str(root / "clip.npy"), "instruction": INSTRUCTION, "max_new_tokens": 12}
    spec = {
        "generate": [
            {"name": "merged", "folder": str(root / "merged"), **job},
            {"name": "kept", "folder": str(root / "kept"), **job},
        ],
        "snippets": [{"name": f"card block {i}", "code": code} for i, code in enumerate(snippets)],
        "pipelines": [{"name": "merged", "folder": str(root / "merged"), **job}],
        "errors": [{"name": name, "folder": str(path)} for name, path in broken.items()],
    }
    fresh = run_fresh_process(spec, root)
    return SimpleNamespace(
        root=root, model=model, processor=processor, reference=reference, readme=readme, fresh=fresh, broken=broken
    )


def test_fresh_process_runs_the_folders_own_code(published):
    assert published.fresh["voxlm_importable"] is False
    for result in published.fresh["generate"].values():
        assert result["model_module"].startswith("transformers_modules.")
        assert result["processor_module"].startswith("transformers_modules.")


def test_exported_folder_holds_exactly_what_travels(published):
    for name in ("merged", "kept"):
        files = {path.name for path in (published.root / name).iterdir()}
        assert files == EXPECTED_FILES


def test_merged_folder_generates_like_the_trained_model(published):
    result = published.fresh["generate"]["merged"]
    assert result["lora_layers"] == 0
    assert result["tokens"] == published.reference["clip"]
    assert len(set(result["tokens"])) > 3  # the tiny model's output depends on its input, not one repeated token
    config = json.loads((published.root / "merged" / "config.json").read_text())
    assert config["llm_lora"] is None


def test_kept_lora_folder_reloads_its_lora_layers(published):
    result = published.fresh["generate"]["kept"]
    assert result["lora_layers"] > 0
    assert result["tokens"] == published.reference["clip"]
    config = json.loads((published.root / "kept" / "config.json").read_text())
    assert config["llm_lora"]["r"] == 4


def test_card_yaml_validates(published):
    card = check_card(published.readme)
    data = card.data
    assert data.license == "apache-2.0" and data.pipeline_tag == "audio-text-to-text"
    assert data.base_model == ["openai/whisper-tiny", "HuggingFaceTB/SmolLM2-135M-Instruct"]
    assert data.datasets == ["openslr/librispeech_asr"]  # the local data set is named in the text only
    assert "`espeak-commands` (synthetic, espeak-ng)" in published.readme
    assert [(r.task_type, r.metric_type, r.metric_value) for r in data.eval_results] == [
        ("automatic-speech-recognition", "wer", 31.5),
        ("audio-classification", "accuracy", 0.82),
    ]
    assert "12.5 language-model positions per second" in published.readme
    assert "**Training time:** 1 h 30 min" in published.readme
    assert "**CPU time:** 2 h 45 min (all cores added up)" in published.readme


def test_card_usage_snippets_run_as_written(published):
    outputs = list(published.fresh["snippets"].values())
    assert len(outputs) == 2
    usage, pipeline_output = outputs
    expected = _decode(published.processor, published.reference["sample_long"])
    assert len(expected.split()) > 5
    assert usage.strip() == expected.strip()
    assert ast.literal_eval(pipeline_output.strip()) == {"generated_text": expected}


def test_pipeline_from_folder_takes_audio_and_instruction(published):
    result = published.fresh["pipelines"]["merged"]
    assert result["class"] == "VoxLMSpokenPromptPipeline"
    assert result["module"].startswith("transformers_modules.")
    clip_text = _decode(published.processor, published.reference["clip"])
    assert result["single"] == {"generated_text": clip_text}
    assert result["batch"] == [
        {"generated_text": clip_text},
        {"generated_text": _decode(published.processor, published.reference["sample"])},
    ]


@pytest.mark.parametrize(
    "name, reason",
    [
        ("no_weights", "no file named model.safetensors"),
        ("truncated", "incomplete metadata, file not fully covered"),
        ("lfs_pointer", "is a Git LFS pointer, not the weights"),
        ("missing_tensor", "1 missing tensors (e.g. projector.projector.linear_1.weight)"),
        ("preset", "Unknown adapter preset 'speechverse-xl'"),
    ],
)
def test_broken_folders_fail_naming_file_and_reason(published, name, reason):
    error = published.fresh["errors"][name]
    assert error["type"] in ("OSError", "ValueError"), error
    folder = str(published.broken[name])
    expected_file = folder + ("/config.json" if name == "preset" else "")
    assert expected_file in error["message"]
    assert reason in error["message"]
