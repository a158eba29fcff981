"""Recipes, launches and parameter comparisons shared by the curriculum tests."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import torch
import yaml
from safetensors.torch import load_file
from tiny import tiny_voxlm
from tiny_data import tiny_spoken_dataset

TESTS = Path(__file__).parent


def write_recipe(root: Path, text_family: str = "llama", stages=None, **overrides) -> Path:
    """A tiny starting model, a tiny spoken data set (train/dev) and a three-stage recipe in `root`."""
    root.mkdir(parents=True, exist_ok=True)
    model, processor = tiny_voxlm("whisper", text_family, audio_layer="mix")
    model.save_pretrained(root / "start")
    processor.save_pretrained(root / "start")
    tiny_spoken_dataset(32, seed=0).save_to_disk(str(root / "train"))
    tiny_spoken_dataset(8, seed=1).save_to_disk(str(root / "dev"))
    config = {
        "output_dir": str(root / "run"),
        "seed": 0,
        "model": {"pretrained": str(root / "start")},
        "datasets": {
            "asr": {"path": str(root / "train"), "task": "asr"},
            "intent": {"path": str(root / "train"), "task": "intent", "weight": 0.5},
            "st": {"path": str(root / "train"), "task": "st", "fields": {"language": "German"}, "weight": 0.5},
            "asr_dev": {"path": str(root / "dev"), "task": "asr"},
            "intent_dev": {"path": str(root / "dev"), "task": "intent"},
        },
        "batching": {"max_seconds": 8.0, "max_batch_size": 8},
        "training": {"learning_rate": 1e-2, "logging_steps": 2, "save_steps": 3, "eval_steps": 3},
        "evaluation": {"examples": 2, "max_new_tokens": 4},
        "stages": stages
        or [
            {"name": "adapter", "datasets": ["asr"], "eval_datasets": ["asr_dev"], "max_steps": 4},
            {"name": "lora_asr", "datasets": ["asr"], "lora": {"r": 4, "alpha": 8}, "max_steps": 4},
            {
                "name": "multitask",
                "datasets": {"asr": 1.0, "intent": 0.5, "st": 0.5},
                "eval_datasets": ["asr_dev", "intent_dev"],
                "max_steps": 6,
                "early_stopping_patience": 4,
            },
        ],
    }
    config.update(overrides)
    path = root / "recipe.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(config: Path, *args: str, processes: int = 2, env: dict | None = None, timeout: int = 600):
    """`accelerate launch` the curriculum with `processes` real DDP processes on CPU (gloo).

    accelerate's `--cpu` flag starts a single process (its multi-CPU mode needs MPI); `--multi_gpu` starts
    `processes` workers through torchrun, and `ACCELERATE_USE_CPU` keeps them on the CPU.
    """
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--num_processes",
        str(processes),
    ]
    if processes > 1:
        command += ["--multi_gpu", "--main_process_port", str(free_port())]
    else:
        command += ["--cpu"]
    command += ["-m", "voxlm.train.curriculum", "--config", str(config), *args]
    full_env = {
        **os.environ,
        "ACCELERATE_USE_CPU": "true",
        "HF_HUB_OFFLINE": "1",
        "OMP_WAIT_POLICY": "PASSIVE",
        "PYTHONPATH": str(TESTS),
        **(env or {}),
    }
    return subprocess.run(
        command, env=full_env, capture_output=True, text=True, timeout=timeout, start_new_session=True
    )


def weights(folder: Path) -> dict[str, torch.Tensor]:
    """A saved model's tensors; a LoRA-wrapped layer's `base_layer.weight` is named like the plain layer's."""
    return {
        name.replace(".base_layer.", "."): tensor
        for name, tensor in load_file(str(Path(folder) / "model.safetensors")).items()
    }


def changed(before: dict, after: dict, atol: float = 0.0) -> set[str]:
    """Names of tensors that are new in `after` or differ from `before`."""
    return {
        name
        for name, tensor in after.items()
        if name not in before or not torch.allclose(before[name], tensor, atol=atol, rtol=0)
    }
