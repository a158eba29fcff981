"""Recipes, launches and parameter comparisons shared by the curriculum tests."""

from pathlib import Path

import torch
import yaml
from safetensors.torch import load_file
from tiny import tiny_voxlm
from tiny_data import tiny_spoken_dataset

from voxlm.train.core.launch import run_accelerate

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
        "keep_checkpoints": True,
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


def launch(config: Path, *args: str, processes: int = 2, env: dict | None = None, timeout: int = 600):
    """Run the curriculum under `accelerate launch` with `processes` real DDP processes on CPU (gloo)."""
    extra = {"HF_HUB_OFFLINE": "1", "PYTHONPATH": str(TESTS), **(env or {})}
    arguments = ["--config", str(config), *args]
    return run_accelerate(
        "voxlm.train.curriculum",
        arguments,
        processes,
        cpu=True,
        env=extra,
        capture_output=True,
        text=True,
        timeout=timeout,
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
