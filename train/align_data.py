"""Data, audio, text-normalisation, metric and model-loading helpers of the alignment recipe.

These are small on purpose: they cover what `voxlm.train.align` needs (tables from a folder, a file or the Hub;
audio references as paths, `Audio(decode=False)` dicts or arrays; BLEU and chrF through sacrebleu; VoxLM models
loaded or assembled) and keep one import point so that shared training infrastructure can replace them without
touching the recipe.
"""

import json
import os
from pathlib import Path

import numpy as np
from transformers.utils import logging

logger = logging.get_logger(__name__)

SAMPLING_RATE = 16000
DATA_FILE_LOADERS = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet", ".tsv": "csv"}


# ------------------------------------------------------------------------------------------------- tables
def load_table(source: str, split: str = "train"):
    """A `datasets.Dataset` from a `save_to_disk` folder, a json/jsonl/csv/parquet file, or a Hub data set name."""
    import datasets

    path = Path(source)
    if path.is_dir() and (path / "dataset").is_dir() and not (path / "state.json").exists():
        path = path / "dataset"  # the output folder of `align continuations`
    if path.is_dir() and ((path / "state.json").exists() or (path / "dataset_dict.json").exists()):
        table = datasets.load_from_disk(str(path))
        if isinstance(table, datasets.DatasetDict):
            if split not in table:
                raise ValueError(f"{source} has splits {list(table)}, not {split!r}; pass --split with one of them.")
            table = table[split]
        return table
    if path.is_file():
        loader = DATA_FILE_LOADERS.get(path.suffix.lower())
        if loader is None:
            raise ValueError(
                f"Cannot read {source}: expected a `save_to_disk` folder or a {'/'.join(DATA_FILE_LOADERS)} file."
            )
        kwargs = {"delimiter": "\t"} if path.suffix.lower() == ".tsv" else {}
        return datasets.load_dataset(loader, data_files=str(path), split="train", **kwargs)
    if path.exists() or source.startswith((".", "/")):
        raise ValueError(f"{source} is neither a `save_to_disk` folder nor a data file.")
    return datasets.load_dataset(source, split=split)


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


def read_audio(reference) -> tuple[np.ndarray, int]:
    """(waveform, sampling rate) from a path, an `Audio(decode=False)` dict, an `{array, sampling_rate}` dict or a
    bare array (taken to be 16 kHz). Soundfile reads files: `datasets`' own decoding needs torchcodec."""
    import soundfile

    if isinstance(reference, dict):
        if reference.get("array") is not None:
            return np.asarray(reference["array"], dtype=np.float32), int(reference.get("sampling_rate", SAMPLING_RATE))
        if reference.get("bytes"):
            import io

            data, rate = soundfile.read(io.BytesIO(reference["bytes"]), dtype="float32", always_2d=False)
            return data, rate
        reference = reference.get("path")
    if isinstance(reference, str):
        if not os.path.exists(reference):
            raise FileNotFoundError(f"Audio file {reference} does not exist; check the data set's audio column.")
        data, rate = soundfile.read(reference, dtype="float32", always_2d=False)
        return data, rate
    if reference is None:
        raise ValueError("A row has no audio; drop rows without audio first.")
    return np.asarray(reference, dtype=np.float32), SAMPLING_RATE


# --------------------------------------------------------------------------------------------------- text
def normalize_transcripts(texts: list[str], mode: str) -> list[str]:
    """`none`: strip; `lower`: lower case and single spaces; `whisper`: Whisper's English normaliser."""
    if mode == "none":
        return [text.strip() for text in texts]
    if mode == "lower":
        return [" ".join(text.lower().split()) for text in texts]
    if mode == "whisper":
        from .sentences import normalize_text

        return [normalize_text(text) for text in texts]
    raise ValueError(f"Unknown transcript normalisation {mode!r}; use none, lower or whisper.")


# ------------------------------------------------------------------------------------------------ metrics
def bleu_and_chrf(predictions: list[str], references: list[str]) -> dict[str, float]:
    import sacrebleu

    return {
        "bleu": float(sacrebleu.corpus_bleu(predictions, [references]).score),
        "chrf": float(sacrebleu.corpus_chrf(predictions, [references]).score),
    }


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
