"""Data, text-normalisation and model-loading helpers of the alignment recipe, on top of `voxlm.train.core.data`.

What the recipe adds: the output folder of `align continuations` loads as a table, relative audio paths of a data
file are read from the file's folder, and VoxLM models are loaded or assembled from a speech model and an LLM.
"""

import json
import os
from pathlib import Path

from transformers.utils import logging

from voxlm.train.core.data import DatasetSpec, load_dataset_spec, read_audio

logger = logging.get_logger(__name__)


# ------------------------------------------------------------------------------------------------- tables
def load_table(source: str, split: str = "train", limit: int | None = None):
    """A `datasets.Dataset` from a `save_to_disk` folder, a data file or a Hub data set name (see `DatasetSpec`);
    the output folder of `align continuations` stands for its `dataset` folder."""
    path = Path(source)
    if (path / "dataset" / "state.json").is_file() and not (path / "state.json").is_file():
        path = path / "dataset"
    if not path.exists() and source.startswith((".", "/")):
        raise ValueError(f"{source} does not exist; pass a `save_to_disk` folder, a data file or a Hub name.")
    return load_dataset_spec(DatasetSpec(path=str(path) if path.exists() else source, split=split, max_samples=limit))


def data_root(source: str) -> Path | None:
    """The folder relative audio paths of a data file are resolved against."""
    path = Path(source)
    return path.parent.resolve() if path.is_file() else path.resolve() if path.is_dir() else None


def check_columns(table, columns: list[str | None], source: str) -> None:
    missing = [column for column in columns if column and column not in table.column_names]
    if missing:
        raise ValueError(
            f"{source} has no column(s) {missing}; its columns are {table.column_names}. "
            "Name the right ones with the --*_column options."
        )


# -------------------------------------------------------------------------------------------------- audio
def absolute_audio_reference(reference, root: Path | None):
    """Make a relative path (alone or inside an `Audio(decode=False)` dict) absolute against `root`."""
    if root is None:
        return reference
    if isinstance(reference, str) and not os.path.isabs(reference):
        return str(root / reference)
    if isinstance(reference, dict) and reference.get("path") and not reference.get("bytes"):
        if not os.path.isabs(reference["path"]):
            return {**reference, "path": str(root / reference["path"])}
    return reference


def read_row_audio(row: dict, column: str, root: Path | None):
    """A row's clip at 16 kHz (its `sampling_rate` column, if any, gives the rate of bare arrays)."""
    return read_audio(absolute_audio_reference(row[column], root), source_rate=row.get("sampling_rate"))


# --------------------------------------------------------------------------------------------------- text
def normalize_transcripts(texts: list[str], mode: str) -> list[str]:
    """`none`: strip; `lower`: lower case and single spaces; `whisper`: Whisper's English normaliser."""
    if mode == "none":
        return [text.strip() for text in texts]
    if mode == "lower":
        return [" ".join(text.lower().split()) for text in texts]
    if mode == "whisper":
        from voxlm.train.offline.sentences import normalize_text

        return [normalize_text(text) for text in texts]
    raise ValueError(f"Unknown transcript normalisation {mode!r}; use none, lower or whisper.")


# ------------------------------------------------------------------------------------------------- models
def is_voxlm_folder(path: str) -> bool:
    config = Path(path) / "config.json"
    return config.is_file() and json.loads(config.read_text()).get("model_type") == "voxlm"


def load_voxlm(path: str, dtype=None):
    """A saved VoxLM model and its processor."""
    from voxlm.modeling import VoxLMForConditionalGeneration
    from voxlm.processing import VoxLMProcessor

    model = VoxLMForConditionalGeneration.from_pretrained(path, dtype=dtype)
    processor = VoxLMProcessor.from_pretrained(path)
    return model, processor


def assemble_voxlm(audio_model: str, text_model: str, adapter="blsp", audio_layer=-1, dtype=None):
    """A VoxLM model (fresh adapter) and processor from a speech model and a language model (Hub ids or folders)."""
    from voxlm.modeling import VoxLMForConditionalGeneration
    from voxlm.processing import VoxLMProcessor

    model = VoxLMForConditionalGeneration.from_parts(
        audio_model, text_model, adapter=adapter, audio_layer=audio_layer, dtype=dtype
    )
    processor = VoxLMProcessor.from_parts(audio_model, text_model, model.config)
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
