"""Model cards and publishing: `voxlm push <run_dir> <repo_id>`.

Run folder convention
---------------------
A training run ends by writing one folder (`save_run(run_dir, model, processor, run_info)` does all of it):

    <run_dir>/
        config.json, model.safetensors, *.py      model.save_pretrained(run_dir); LoRA may be unmerged
                                                  (config.llm_lora), push merges it unless --keep-lora
                                                  (speech-only LoRA is always kept)
        processor_config.json, tokenizer files    processor.save_pretrained(run_dir)
        run_info.json                             RunInfo(...).save(run_dir): what the weights do not say
        (anything else)                           ignored, unless listed in run_info.json "extra_files"

`run_info.json` (every key optional; see `RunInfo` for the full list):

    {"recipe": "speechverse",
     "base_models": {"audio": "openai/whisper-small", "text": "HuggingFaceTB/SmolLM2-360M-Instruct"},
     "stages": [{"name": "1", "trained": ["projector", "layer_mix"], "tasks": ["asr"], "steps": 4000,
                 "trainable_parameters": 2400000}, ...],
     "datasets": ["openslr/librispeech_asr", {"id": "...", "split": "train", "description": "..."}],
     "metrics": [{"task": "asr", "metric": "wer", "value": 7.9, "dataset": "openslr/librispeech_asr",
                  "dataset_name": "LibriSpeech test-clean", "split": "test"}],
     "training": {"seconds": 5400, "hardware": "1 x NVIDIA A10G (24 GB)", "seed": 0},
     "license": "apache-2.0", "language": ["en"], "instruction": "Transcribe the audio."}

`voxlm push` loads the folder, merges LoRA (default), writes model + processor + code + the spoken-prompt pipeline
+ a sample clip + the card (`README.md`) into a fresh folder, checks it, and uploads it in one commit.
What travels for each kind of model is decided by a publisher (`publishers.py`).
"""

from .card import check_card, python_blocks, voxlm_card
from .publishers import PUBLISHERS, Publisher, VoxLMPublisher, find_publisher, register_publisher
from .push import export_folder, push, upload_folder
from .run_info import RUN_INFO_NAME, RunInfo, describe_hardware, save_run

__all__ = [
    "PUBLISHERS",
    "Publisher",
    "RUN_INFO_NAME",
    "RunInfo",
    "VoxLMPublisher",
    "check_card",
    "describe_hardware",
    "export_folder",
    "find_publisher",
    "push",
    "python_blocks",
    "register_publisher",
    "save_run",
    "upload_folder",
    "voxlm_card",
]
