"""The starting models of the recipes: a saved VoxLM folder, or a speech encoder and an LLM assembled with a fresh
adapter, and the plain language model a recipe may need on its own.

- [`ModelSpec`] says where the starting model comes from (the curriculum's `model:` YAML section);
  [`assemble_voxlm`] builds model and processor from its parts, [`prepare_model_folder`] saves that assembly once
  for every process of a run.
- [`is_voxlm_folder`], [`load_voxlm`] and [`load_causal_lm`] load what a folder or Hub id holds.
"""

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from transformers.utils import logging

from .launch import distributed_state

logger = logging.get_logger(__name__)


@dataclass
class ModelSpec:
    """Where the starting model comes from.

    Either `pretrained` (a saved VoxLM folder or Hub id with model and processor), or `audio_model` + `text_model`
    (a speech encoder and an LLM, Hub ids or folders) assembled with a fresh `adapter` (a preset name or a dict of
    conv blocks), reading encoder layer `audio_layer` (`"mix"` for SpeechVerse's learnable mix of all layers).
    `text_model_kwargs` go to the LLM's `from_pretrained` (e.g. `gguf_file`, which the tokenizer gets too);
    `dtype` is that of the loaded parts (`None`: what `from_pretrained` picks for each checkpoint).
    """

    pretrained: str | None = None
    audio_model: str | None = None
    text_model: str | None = None
    text_model_kwargs: dict = field(default_factory=dict)
    adapter: str | dict = "speechverse"
    audio_layer: int | str = -1
    dtype: str | None = "float32"

    def __post_init__(self):
        if bool(self.pretrained) == bool(self.audio_model and self.text_model):
            raise ValueError(
                "model: give either `pretrained` (a saved VoxLM folder) or both `audio_model` and `text_model` "
                "(a speech encoder and a language model to assemble)."
            )


def torch_dtype(name: str | None):
    """`torch.<name>` (`None` stays `None`), with an error naming the choices."""
    import torch

    if name is None:
        return None
    if not hasattr(torch, name) or not isinstance(getattr(torch, name), torch.dtype):
        raise ValueError(f"model.dtype {name!r} is not a torch dtype; use float32, bfloat16 or float16.")
    return getattr(torch, name)


def assemble_voxlm(spec: ModelSpec, seed: int | None = None):
    """A VoxLM model with a fresh adapter, and its processor, from `spec.audio_model` and `spec.text_model`.

    With a `seed`, the adapter's random initialisation is the same on every run.
    """
    from transformers import set_seed

    from voxlm.modeling import VoxLMForConditionalGeneration
    from voxlm.processing import VoxLMProcessor

    if seed is not None:
        set_seed(seed)
    model = VoxLMForConditionalGeneration.from_parts(
        spec.audio_model,
        spec.text_model,
        adapter=spec.adapter,
        audio_layer=spec.audio_layer,
        dtype=torch_dtype(spec.dtype),
        **spec.text_model_kwargs,
    )
    tokenizer_kwargs = {key: value for key, value in spec.text_model_kwargs.items() if key == "gguf_file"}
    processor = VoxLMProcessor.from_parts(spec.audio_model, spec.text_model, model.config, **tokenizer_kwargs)
    return model, processor


def prepare_model_folder(spec: ModelSpec, folder: str, seed: int = 0) -> str:
    """The folder to load the starting model and processor from.

    A `pretrained` model is used where it is. Parts are assembled once, on the main process, and saved to `folder`
    (the fresh adapter's random initialisation is then the same for every process and every resumed run).
    """
    if spec.pretrained:
        return spec.pretrained
    state = distributed_state()
    if state.is_main_process and not os.path.isfile(os.path.join(folder, "config.json")):
        model, processor = assemble_voxlm(spec, seed)
        model.save_pretrained(folder)
        processor.save_pretrained(folder)
        logger.info(f"Assembled the starting model from {spec.audio_model} and {spec.text_model} into {folder}.")
    state.wait_for_everyone()
    return folder


def is_voxlm_folder(path: str) -> bool:
    """Whether `path` is a local folder holding a saved VoxLM model."""
    config = Path(path) / "config.json"
    return config.is_file() and json.loads(config.read_text()).get("model_type") == "voxlm"


def load_voxlm(path: str, dtype=None):
    """A saved VoxLM model and its processor."""
    from voxlm.modeling import VoxLMForConditionalGeneration
    from voxlm.processing import VoxLMProcessor

    model = VoxLMForConditionalGeneration.from_pretrained(path, dtype=dtype)
    processor = VoxLMProcessor.from_pretrained(path)
    return model, processor


def load_causal_lm(path: str, gguf_file: str | None = None, dtype=None):
    """A language model and its tokenizer: the `language_model` of a VoxLM folder, or any causal LM."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if is_voxlm_folder(path):
        model, processor = load_voxlm(path, dtype=dtype)
        return model.language_model, processor.tokenizer
    kwargs = {"gguf_file": gguf_file} if gguf_file else {}
    tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, **kwargs)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


__all__ = [
    "ModelSpec",
    "assemble_voxlm",
    "is_voxlm_folder",
    "load_causal_lm",
    "load_voxlm",
    "prepare_model_folder",
    "torch_dtype",
]
