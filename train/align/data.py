"""Data and text-normalisation helpers of the alignment recipe, on top of `voxlm.train.core.data`.

What the recipe adds: the output folder of `align continuations` loads as a table, and relative audio paths of a
data file are read from the file's folder.
"""

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from transformers.utils import logging

from voxlm.train.core.audio import audio_seconds, read_audio
from voxlm.train.core.data import DatasetSpec, check_columns, load_dataset_spec

logger = logging.get_logger(__name__)


# ------------------------------------------------------------------------------------------------- tables
def load_table(source: str, split: str = "train", limit: int | None = None, streaming: bool = False):
    """A `datasets.Dataset` (an `IterableDataset` when `streaming`) from a `save_to_disk` folder, a data file or
    folder of them, or a Hub data set name (see `DatasetSpec`); the output folder of `align continuations` stands
    for its `dataset` folder."""
    path = Path(source)
    if (path / "dataset" / "state.json").is_file() and not (path / "state.json").is_file():
        path = path / "dataset"
    if not path.exists() and source.startswith((".", "/")):
        raise ValueError(f"{source} does not exist; pass a `save_to_disk` folder, a data file or a Hub name.")
    return load_dataset_spec(
        DatasetSpec(path=str(path) if path.exists() else source, split=split, max_samples=limit, streaming=streaming)
    )


def data_root(source: str) -> Path | None:
    """The folder relative audio paths of a data file are resolved against."""
    path = Path(source)
    return path.parent.resolve() if path.is_file() else path.resolve() if path.is_dir() else None


def check_table_columns(table, columns: list[str | None], source: str) -> None:
    """Raise if the table read from `source` lacks one of `columns` (the recipe's `--*_column` options)."""
    check_columns(table, columns, source, "Name the right ones with the --*_column options.")


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


@dataclass
class ContinuationExamples:
    """A table of clips, transcripts and continuations read as training examples of `SpeechTaskCollator`.

    `example(row)` is `{"audio", "instruction", "target", "transcript"}`: the row's clip (relative paths read from
    `audio_root`), the `{transcript}` instruction, the continuation to learn and the transcript a teacher reads.
    `seconds` and `target_texts()` give budgeted batching its costs (`batching.example_costs`); a streamed `table`
    has neither, its examples are costed one by one (`batching.ExampleCost`).
    """

    table: object  # datasets.Dataset
    instruction: str
    audio_column: str = "audio"
    transcript_column: str = "transcript"
    continuation_column: str = "continuation"
    audio_root: Path | None = None

    def example(self, row: dict) -> dict:
        return {
            "audio": read_row_audio(row, self.audio_column, self.audio_root),
            "instruction": self.instruction,
            "target": row[self.continuation_column],
            "transcript": row.get(self.transcript_column),
        }

    @functools.cached_property
    def seconds(self) -> np.ndarray:
        """Audio seconds of every row (file headers only)."""
        rates = self.table["sampling_rate"] if "sampling_rate" in self.table.column_names else [None] * len(self.table)
        cells = [absolute_audio_reference(reference, self.audio_root) for reference in self.table[self.audio_column]]
        return np.array([audio_seconds(cell, rate) for cell, rate in zip(cells, rates)])

    def target_texts(self) -> list[str]:
        return list(self.table[self.continuation_column])


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
