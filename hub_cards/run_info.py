"""`run_info.json`: what a training run records for its model card (see the package docstring for the layout)."""

import dataclasses
import json
import os
import platform
from pathlib import Path
from typing import Any

from transformers.utils import logging

logger = logging.get_logger(__name__)

RUN_INFO_NAME = "run_info.json"


@dataclasses.dataclass
class RunInfo:
    """What the weights do not say about a run. Every field is optional; the card says "not recorded" for gaps.

    Fields:
        kind: which publisher handles the folder (`"voxlm"`, `"speech-token-classifier"`); inferred from
            config.json when absent.
        recipe: `"speechverse"`, `"blsp"`, `"speech-tokens"`, or a free description.
        base_models: `{"audio": <Hub id or path>, "text": <Hub id or path>}` the model was assembled from.
        stages: one dict per training stage: `name`, and any of `description`, `trained` (module names, e.g.
            `["projector", "layer_mix"]`), `tasks`, `steps`, `epochs`, `learning_rate`, `trainable_parameters`.
        datasets: Hub ids or dicts `{"id", "config", "split", "description"}`.
        metrics: dicts `{"task", "metric", "value"}` plus optional `task_type` (Hub task id), `dataset` (Hub id),
            `dataset_name`, `dataset_config`, `split`, `metric_name`.
        training: `{"seconds", "hardware", "seed", ...}`; see `describe_hardware()`.
        trainable_parameters: trainable parameters of the run (default: the largest count over its stages).
        license, language: card metadata (`"apache-2.0"`, `["en"]`).
        instruction: the instruction used in the card's usage example (e.g. "Transcribe the audio.").
        sample_audio: an audio file (relative to the run folder) shipped as `sample.<ext>` for the usage example;
            default: a 3 s LibriVox clip. sample_transcript: its transcript (classifier examples use it).
        limitations: extra lines for the card's limitations section.
        extra_files: files (relative to the run folder) that travel to the repository unchanged.
        notes: free Markdown added to the card.
    """

    kind: str | None = None
    recipe: str | None = None
    base_models: dict[str, str] = dataclasses.field(default_factory=dict)
    stages: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    datasets: list[str | dict[str, Any]] = dataclasses.field(default_factory=list)
    metrics: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    training: dict[str, Any] = dataclasses.field(default_factory=dict)
    trainable_parameters: int | None = None
    license: str | None = None
    language: list[str] = dataclasses.field(default_factory=list)
    instruction: str | None = None
    sample_audio: str | None = None
    sample_transcript: str | None = None
    limitations: list[str] = dataclasses.field(default_factory=list)
    extra_files: list[str] = dataclasses.field(default_factory=list)
    notes: str | None = None

    def __post_init__(self):
        for index, metric in enumerate(self.metrics):
            missing = {"task", "metric", "value"} - set(metric)
            if missing:
                raise ValueError(
                    f"{RUN_INFO_NAME}: metric {index} lacks {sorted(missing)}; each metric needs `task`, `metric` "
                    "and `value`, e.g. {'task': 'asr', 'metric': 'wer', 'value': 7.1}."
                )
        for index, stage in enumerate(self.stages):
            if "name" not in stage:
                raise ValueError(f"{RUN_INFO_NAME}: stage {index} has no `name`.")
        if isinstance(self.language, str):
            self.language = [self.language]

    @property
    def trainable(self) -> int | None:
        """Trainable parameters of the run: recorded, or the largest count over the stages."""
        if self.trainable_parameters is not None:
            return self.trainable_parameters
        counts = [stage["trainable_parameters"] for stage in self.stages if "trainable_parameters" in stage]
        return max(counts) if counts else None

    def add_stage(self, name: str, model=None, **fields) -> dict[str, Any]:
        """Record a training stage; with `model`, its current trainable parameter count is recorded too."""
        stage = {"name": name, **fields}
        if model is not None:
            stage["trainable_parameters"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
        self.stages.append(stage)
        return stage

    # ---------------------------------------------------------------------------------------------- files
    @classmethod
    def load(cls, run_dir: str | os.PathLike) -> "RunInfo":
        """Read `run_dir/run_info.json`; an absent file gives an empty record (with a warning)."""
        path = Path(run_dir) / RUN_INFO_NAME
        if not path.is_file():
            logger.warning(f"{path} not found: the model card will say 'not recorded' for the run's details.")
            return cls()
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"{path} is not valid JSON: {error}") from error
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{path} has unknown keys {unknown}; known keys: {sorted(known)}.")
        return cls(**data)

    def save(self, run_dir: str | os.PathLike) -> Path:
        path = Path(run_dir) / RUN_INFO_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {key: value for key, value in dataclasses.asdict(self).items() if value not in (None, [], {})}
        path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        return path


def describe_hardware() -> str:
    """A one-line description of the accelerators (or CPU) of this machine, for `training["hardware"]`."""
    import torch

    if torch.cuda.is_available():
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        memory = torch.cuda.get_device_properties(0).total_memory / 2**30
        return f"{len(names)} x {names[0]} ({memory:.0f} GB)"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return f"Apple MPS ({platform.machine()})"
    return f"CPU only: {os.cpu_count()} cores ({platform.machine()})"


def save_run(run_dir: str | os.PathLike, model, processor, run_info: RunInfo) -> Path:
    """Write a run folder: the model and processor (`save_pretrained`) and `run_info.json`.

    Training recipes call this at the end of a run; `voxlm push <run_dir> <repo_id>` publishes the folder.
    """
    run_dir = Path(run_dir)
    model.save_pretrained(run_dir)
    processor.save_pretrained(run_dir)
    run_info.save(run_dir)
    return run_dir


__all__ = ["RUN_INFO_NAME", "RunInfo", "describe_hardware", "save_run"]
