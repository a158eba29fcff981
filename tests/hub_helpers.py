"""Shared pieces of the publishing tests: a tiny model whose generations depend on its input, and run folders."""

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from tiny import tiny_voxlm

from voxlm.hub_cards import RunInfo, save_run

FRESH_SCRIPT = Path(__file__).with_name("hub_fresh_process.py")
INSTRUCTION = "transcribe the audio"


def distinct_tiny_voxlm(lora: bool = True, seed: int = 0, speech_only: bool = False):
    """A tiny VoxLM whose greedy generations vary with the audio (random init at std 0.02 repeats one token).

    The language model's matrices get std 0.3; with `lora`, LoRA layers with non-zero `lora_B` are added, so that
    merging them changes the weights (and the test sees whether the merge is faithful).
    """
    model, processor = tiny_voxlm(seed=seed)
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for parameter in model.language_model.parameters():
            if parameter.ndim == 2:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
        if lora:
            model.add_lora(r=4, lora_alpha=8, speech_only=speech_only)
            for name, parameter in model.language_model.named_parameters():
                if "lora_B" in name:
                    parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
    return model.eval(), processor


def chat_inputs(processor, audio, instruction: str = INSTRUCTION):
    conversation = [
        {"role": "user", "content": [{"type": "audio", "audio": audio}, {"type": "text", "text": instruction}]}
    ]
    return processor.apply_chat_template(
        conversation, add_generation_prompt=True, tokenize=True, sampling_rate=16000, resample=True
    )


def generate_ids(model, processor, audio, instruction: str = INSTRUCTION, max_new_tokens: int = 12) -> list[int]:
    """Greedy new tokens for one clip and instruction."""
    inputs = chat_inputs(processor, audio, instruction)
    output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    if model.config.is_encoder_decoder:
        return output[0].tolist()
    return output[0, inputs["input_ids"].shape[1] :].tolist()  # decoder-only: the prompt comes back too


def example_run_info(**overrides) -> RunInfo:
    fields = {
        "recipe": "speechverse",
        "base_models": {"audio": "openai/whisper-tiny", "text": "HuggingFaceTB/SmolLM2-135M-Instruct"},
        "datasets": ["openslr/librispeech_asr", {"id": "espeak-commands", "description": "synthetic, espeak-ng"}],
        "metrics": [
            {
                "task": "asr",
                "metric": "wer",
                "value": 31.5,
                "dataset": "openslr/librispeech_asr",
                "dataset_name": "LibriSpeech test-clean",
                "split": "test",
            },
            {"task": "intent", "metric": "accuracy", "value": 0.82, "dataset_name": "espeak commands"},
        ],
        "training": {"seconds": 5400, "cpu_seconds": 9900, "hardware": "CPU only: 2 cores (x86_64)", "seed": 0},
        "license": "apache-2.0",
        "language": ["en"],
        "instruction": INSTRUCTION,
    }
    return RunInfo(**{**fields, **overrides})


def write_run(run_dir: Path, model, processor, run_info: RunInfo | None = None) -> Path:
    run_info = run_info or example_run_info()
    if not run_info.stages:
        run_info.add_stage("1", trained=["projector"], tasks=["asr"], steps=100, trainable_parameters=7920)
        run_info.add_stage("2", trained=["projector", "lora"], tasks=["asr", "intent"], steps=200, model=model)
    return save_run(run_dir, model, processor, run_info)


def run_fresh_process(spec: dict, tmp_path: Path, timeout: int = 600) -> dict:
    """Run `hub_fresh_process.py` on `spec` in a new interpreter where voxlm is not importable."""
    spec_path, result_path = tmp_path / "fresh_spec.json", tmp_path / "fresh_result.json"
    spec_path.write_text(json.dumps(spec))
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_MODULES_CACHE": str(tmp_path / "hf_modules"),
        "OMP_WAIT_POLICY": "PASSIVE",
        "PYTHONPATH": "",
    }
    completed = subprocess.run(
        [sys.executable, str(FRESH_SCRIPT), str(spec_path), str(result_path)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert completed.returncode == 0, f"fresh process failed:\n{completed.stdout}\n{completed.stderr[-5000:]}"
    return json.loads(result_path.read_text())
