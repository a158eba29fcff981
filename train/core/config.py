"""YAML recipe configuration shared by the training recipes: reading, checking, model and batch settings.

Every string in a recipe YAML may use `${ENV_VAR}` (expanded when read), so one file serves several machines.
Unknown keys are errors that list the allowed ones: a typo never silently falls back to a default.
"""

import os
from dataclasses import dataclass, field, fields

import numpy as np
from transformers.utils import logging

logger = logging.get_logger(__name__)


def expand_env(value):
    """Expand `${VAR}` in every string of a nested YAML value; an unset variable is an error."""
    if isinstance(value, str):
        expanded = os.path.expandvars(value)
        if "${" in expanded:
            start = expanded.index("${")
            name = expanded[start + 2 : expanded.index("}", start)]
            raise ValueError(f"The config uses ${{{name}}} but the environment variable {name} is not set.")
        return expanded
    if isinstance(value, dict):
        return {key: expand_env(item) for key, item in value.items()}
    if isinstance(value, list):
        return [expand_env(item) for item in value]
    return value


def load_yaml(path: str) -> dict:
    import yaml

    if not os.path.isfile(path):
        raise FileNotFoundError(f"Config file {path!r} does not exist.")
    with open(path) as handle:
        config = yaml.safe_load(handle) or {}
    if not isinstance(config, dict):
        raise ValueError(f"{path} must hold a mapping of settings at the top level.")
    return expand_env(config)


def check_keys(where: str, values: dict, allowed) -> None:
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; allowed keys are {sorted(allowed)}.")


def from_dict(cls, where: str, values: dict | None):
    """Build dataclass `cls` from a YAML mapping, rejecting unknown keys."""
    values = dict(values or {})
    check_keys(where, values, [f.name for f in fields(cls)])
    return cls(**values)


def use_cpu() -> bool:
    """Train on CPU when there is no GPU, or when `accelerate launch --cpu` asked for it."""
    import torch
    from accelerate.utils import parse_flag_from_env

    return parse_flag_from_env("ACCELERATE_USE_CPU") or not torch.cuda.is_available()


def distributed_state():
    """accelerate's process state, created with `cpu=True` on CPU machines.

    accelerate only sets up CPU data parallelism (gloo) when its state is created with `cpu=True` under a
    multi-process launcher (`accelerate launch --multi_gpu --num_processes N` or `torchrun`, which start N
    processes even without GPUs); otherwise every process would train alone. The state is a singleton, so this
    must run before anything else creates it.
    """
    from accelerate import PartialState

    return PartialState(cpu=use_cpu())


# ----------------------------------------------------------------------------------------------------- model
@dataclass
class ModelSpec:
    """Where the starting model comes from.

    Either `pretrained` (a saved VoxLM folder or Hub id with model and processor), or `audio_model` + `text_model`
    (a speech encoder and an LLM, Hub ids or folders) assembled with a fresh `adapter`, reading encoder layer
    `audio_layer` (`"mix"` for SpeechVerse's learnable mix of all layers).
    """

    pretrained: str | None = None
    audio_model: str | None = None
    text_model: str | None = None
    text_model_kwargs: dict = field(default_factory=dict)
    adapter: str | dict = "speechverse"
    audio_layer: int | str = -1
    dtype: str = "float32"

    def __post_init__(self):
        if bool(self.pretrained) == bool(self.audio_model and self.text_model):
            raise ValueError(
                "model: give either `pretrained` (a saved VoxLM folder) or both `audio_model` and `text_model` "
                "(a speech encoder and a language model to assemble)."
            )


def _dtype(name: str):
    import torch

    if not hasattr(torch, name) or not isinstance(getattr(torch, name), torch.dtype):
        raise ValueError(f"model.dtype {name!r} is not a torch dtype; use float32, bfloat16 or float16.")
    return getattr(torch, name)


def prepare_model_folder(spec: ModelSpec, folder: str, seed: int = 0) -> str:
    """The folder to load the starting model and processor from.

    A `pretrained` model is used where it is. Parts are assembled once, on the main process, and saved to `folder`
    (the fresh adapter's random initialisation is then the same for every process and every resumed run).
    """
    if spec.pretrained:
        return spec.pretrained
    state = distributed_state()
    if state.is_main_process and not os.path.isfile(os.path.join(folder, "config.json")):
        from transformers import set_seed

        from voxlm.modeling import VoxLMForConditionalGeneration
        from voxlm.processing import VoxLMProcessor

        set_seed(seed)
        model = VoxLMForConditionalGeneration.from_parts(
            spec.audio_model,
            spec.text_model,
            adapter=spec.adapter,
            audio_layer=spec.audio_layer,
            dtype=_dtype(spec.dtype),
            **spec.text_model_kwargs,
        )
        tokenizer_kwargs = {k: v for k, v in spec.text_model_kwargs.items() if k == "gguf_file"}
        processor = VoxLMProcessor.from_parts(spec.audio_model, spec.text_model, model.config, **tokenizer_kwargs)
        model.save_pretrained(folder)
        processor.save_pretrained(folder)
        logger.info(f"Assembled the starting model from {spec.audio_model} and {spec.text_model} into {folder}.")
    state.wait_for_everyone()
    return folder


# --------------------------------------------------------------------------------------------------- batching
@dataclass
class BatchingSpec:
    """Budgeted length-grouped batches (see `batching.BudgetBatchSampler`).

    `max_seconds`: padded audio seconds per batch (batch size x longest clip); `max_tokens`: padded language-model
    positions per batch (audio positions + prompt + target, estimated); either or both. `max_batch_size` caps the
    number of examples; `sort_window` is how many shuffled examples are sorted together.
    """

    max_seconds: float | None = 120.0
    max_tokens: int | None = None
    max_batch_size: int | None = 64
    sort_window: int | None = 1000
    drop_last: bool = False

    def __post_init__(self):
        if self.max_seconds is None and self.max_tokens is None:
            raise ValueError("batching: set `max_seconds` and/or `max_tokens` (the padded budget of one batch).")


def estimated_tokens(seconds, target_tokens, positions_per_second: float, prompt_tokens: int = 32):
    """Language-model positions of an example: its audio positions, the prompt and the target (+ EOS)."""
    return seconds * positions_per_second + prompt_tokens + target_tokens + 1


def _budgets(spec: BatchingSpec) -> np.ndarray:
    return np.array([b for b in (spec.max_seconds, spec.max_tokens) if b is not None], dtype=np.float64)


def _check_token_inputs(spec: BatchingSpec, processor, positions_per_second) -> None:
    if spec.max_tokens is not None and (processor is None or positions_per_second is None):
        raise ValueError("A `max_tokens` budget needs the processor and the model's audio positions per second.")


def example_costs(
    mixture, spec: BatchingSpec, processor=None, positions_per_second: float | None = None, prompt_tokens: int = 32
) -> tuple[np.ndarray, np.ndarray]:
    """Per-example costs `(n, k)` and budgets `(k,)` of a `TaskMixture` under `spec` (seconds, then tokens)."""
    _check_token_inputs(spec, processor, positions_per_second)
    columns = []
    if spec.max_seconds is not None:
        columns.append(mixture.seconds)
    if spec.max_tokens is not None:
        encoded = processor.tokenizer(mixture.target_texts(), add_special_tokens=False)["input_ids"]
        target_tokens = np.array([len(ids) for ids in encoded])
        columns.append(estimated_tokens(mixture.seconds, target_tokens, positions_per_second, prompt_tokens))
    return np.stack(columns, axis=1), _budgets(spec)


class ExampleCost:
    """The cost of one example dict from a stream, as `example_costs` computes it for map-style data."""

    def __init__(
        self,
        spec: BatchingSpec,
        processor=None,
        positions_per_second=None,
        prompt_tokens: int = 32,
        sampling_rate: int = 16000,
    ):
        _check_token_inputs(spec, processor, positions_per_second)
        self.spec, self.processor, self.positions_per_second = spec, processor, positions_per_second
        self.prompt_tokens, self.sampling_rate = prompt_tokens, sampling_rate
        self.budget = _budgets(spec)

    def __call__(self, example: dict) -> list[float]:
        seconds = len(example["audio"]) / self.sampling_rate
        costs = [seconds] if self.spec.max_seconds is not None else []
        if self.spec.max_tokens is not None:
            target = len(self.processor.tokenizer(example["target"], add_special_tokens=False)["input_ids"])
            costs.append(estimated_tokens(seconds, target, self.positions_per_second, self.prompt_tokens))
        return costs


__all__ = [
    "BatchingSpec",
    "ExampleCost",
    "ModelSpec",
    "check_keys",
    "distributed_state",
    "estimated_tokens",
    "example_costs",
    "expand_env",
    "from_dict",
    "load_yaml",
    "prepare_model_folder",
    "use_cpu",
]
