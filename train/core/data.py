"""Spoken data sets for VoxLM training: loading from YAML specs, task mixtures and collation.

The pieces, each usable on its own:

- [`DatasetSpec`] / [`load_dataset_spec`]: a data set described in YAML (a Hub name, a `save_to_disk` folder or
  local data files; split; column mapping; constant fields; streaming) loaded with `datasets`, its columns renamed
  to the names the task expects.
- [`TaskMixture`]: map-style mixture of several data sets, each with a task, turned into examples
  `{"audio", "instruction", "target", "task"}`; per-epoch index lists realise per-task weights
  ([`TaskMixture.epoch_indices`], used by `batching.BudgetBatchSampler`). [`StreamingTaskMixture`] does the same
  for streamed corpora.
- [`SpeechTaskCollator`]: examples -> model inputs with `VoxLMProcessor`; loss on the target (+ EOS) only, and,
  for distillation, a teacher's inputs with the transcript in place of the audio. For encoder-decoder language
  models (T5) the prompt with its audio goes to the encoder and the target is `labels`.
"""

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields

import numpy as np
import torch
from transformers.utils import logging

from .audio import SAMPLING_RATE, audio_seconds, read_audio
from .prompts import build_prompt, build_text_prompt

logger = logging.get_logger(__name__)

AUDIO = "audio"
DURATION = "duration"


# ------------------------------------------------------------------------------------------- data set specs
@dataclass
class DatasetSpec:
    """A data set as written in YAML.

    Args:
        path: a Hub data set name, a folder written by `Dataset.save_to_disk`, a folder of data files or one file
            (csv/json/jsonl/parquet/arrow).
        task: the task its rows are used for (see `voxlm.train.core.tasks`).
        split: the split to read (`train`, `validation`, a slice such as `train[:1000]`, ...).
        config: the Hub data set's configuration name, if it has several.
        columns: canonical column name -> the data set's column name, e.g. `{audio: speech, text: sentence}`.
        fields: constants usable in prompts and targets as if they were columns, e.g. `{language: German}`.
        weight: the share of this data set in a training mixture (normalised over the stage's data sets).
        streaming: read lazily (`datasets` streaming) instead of loading the split; needs `max_steps`.
        max_samples: keep only the first `max_samples` rows.
        sampling_rate: the rate of bare audio arrays (cells that are plain float lists without a rate).
        data_files: passed to `datasets.load_dataset` with local files.
        augment: acoustic augmentation of this data set when it trains (`voxlm.train.core.augment.AugmentSpec`
            as a dict, e.g. `{noise: {p: 0.3}}`); `{}` turns a recipe-wide `augment:` off for this data set.
    """

    path: str
    task: str = "asr"
    split: str = "train"
    config: str | None = None
    columns: dict[str, str] = field(default_factory=dict)
    fields: dict[str, str] = field(default_factory=dict)
    weight: float = 1.0
    streaming: bool = False
    max_samples: int | None = None
    sampling_rate: int | None = None
    data_files: str | list | dict | None = None
    augment: dict | None = None
    name: str = ""

    @classmethod
    def from_dict(cls, name: str, values: dict) -> "DatasetSpec":
        known = {f.name for f in fields(cls)} - {"name"}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"Data set {name!r}: unknown keys {sorted(unknown)}; allowed keys are {sorted(known)}.")
        if "path" not in values:
            raise ValueError(f"Data set {name!r} needs `path`: a Hub data set name or a local folder/file.")
        spec = cls(name=name, **values)
        if spec.augment:
            from .augment import AugmentSpec

            AugmentSpec.from_dict(spec.augment)  # fails now, naming the bad key, rather than when training starts
        if spec.weight <= 0:
            raise ValueError(f"Data set {name!r}: `weight` must be > 0, got {spec.weight}.")
        return spec

    def require_columns(self, dataset, required: Sequence[str]) -> None:
        """Raise if `dataset` (renamed by `load_dataset_spec`) lacks a column its task needs, naming the YAML fix."""
        fix = (
            "Map them in the YAML, e.g. `columns: {{{column}: <column of the data set>}}`, or give a constant with "
            "`fields: {{{column}: <value>}}`."
        )
        check_columns(dataset, required, f"Data set {self.name!r} ({self.path}, task {self.task!r})", fix, self.fields)


def _is_saved_dataset(path: str) -> bool:
    """A folder written by `Dataset.save_to_disk` (or `DatasetDict.save_to_disk`)."""
    return os.path.isdir(path) and any(
        os.path.exists(os.path.join(path, marker)) for marker in ("state.json", "dataset_dict.json")
    )


FILE_BUILDERS = {".csv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet", ".arrow": "arrow"}


def load_dataset_spec(spec: DatasetSpec):
    """Load `spec` as a `datasets.Dataset` (or `IterableDataset` when streaming) with canonical column names.

    Audio columns typed `datasets.Audio` are cast to `decode=False`, class-label columns become their label
    names, `columns` renames the data set's columns to the names the task uses and a `duration` column (seconds)
    is kept if present.
    """
    import datasets

    if _is_saved_dataset(spec.path):
        dataset = datasets.load_from_disk(spec.path)
        if isinstance(dataset, datasets.DatasetDict):
            dataset = _pick_split(dataset, spec)
        elif spec.split not in ("train", None):
            dataset = _slice_split(dataset, spec.split)
        if spec.streaming:
            dataset = dataset.to_iterable_dataset()
    else:
        builder, data_files = spec.path, spec.data_files
        extension = os.path.splitext(spec.path)[1].lower()
        if os.path.isfile(spec.path) and extension in FILE_BUILDERS:
            builder, data_files = FILE_BUILDERS[extension], {"train": spec.path}
        dataset = datasets.load_dataset(
            builder, spec.config, split=spec.split, data_files=data_files, streaming=spec.streaming
        )
    if spec.max_samples is not None:
        streamed = isinstance(dataset, datasets.IterableDataset)
        dataset = (
            dataset.take(spec.max_samples) if streamed else dataset.select(range(min(spec.max_samples, len(dataset))))
        )
    return _canonical_columns(dataset, spec)


def _pick_split(dataset_dict, spec: DatasetSpec):
    base = spec.split.split("[")[0]
    if base not in dataset_dict:
        raise ValueError(
            f"Data set {spec.name!r} ({spec.path}) has no split {base!r}; its splits are {list(dataset_dict)}. "
            "Set `split:` to one of them."
        )
    return _slice_split(dataset_dict[base], spec.split[len(base) :])


def _slice_split(dataset, split: str):
    """Apply a `[start:stop]` slice (rows or `%`) to a loaded split; a plain split name is left alone."""
    if "[" not in split:
        return dataset
    start, _, stop = split[split.index("[") + 1 : split.rindex("]")].partition(":")

    def position(text: str, default: int) -> int:
        text = text.strip()
        if not text:
            return default
        if text.endswith("%"):
            return round(len(dataset) * float(text[:-1]) / 100)
        value = int(text)
        return value if value >= 0 else len(dataset) + value

    return dataset.select(range(position(start, 0), min(position(stop, len(dataset)), len(dataset))))


def _canonical_columns(dataset, spec: DatasetSpec):
    import datasets

    features = dataset.features or {}
    renames = {source: target for target, source in spec.columns.items() if source != target}
    missing = [source for source in renames if features and source not in features]
    if missing:
        raise ValueError(
            f"Data set {spec.name!r} ({spec.path}) has no column(s) {missing} named in `columns`; its columns are "
            f"{list(features)}. Fix the mapping `columns: {{canonical_name: data_set_column}}`."
        )
    for column, feature in features.items():
        if isinstance(feature, datasets.Audio) and feature.decode:
            dataset = dataset.cast_column(column, datasets.Audio(decode=False))
        elif isinstance(feature, datasets.ClassLabel):
            dataset = _label_names(dataset, column, feature)
    if renames:
        dataset = dataset.rename_columns(renames)
    return dataset


def _label_names(dataset, column: str, feature):
    """Class-label ids -> their names (targets are text)."""
    import datasets

    streamed = isinstance(dataset, datasets.IterableDataset)  # lazy maps take no progress-bar description
    kwargs = {} if streamed else {"desc": f"Class labels of {column!r} to names"}
    return dataset.map(
        lambda batch: {column: feature.int2str(batch[column])},
        batched=True,
        features=_replace_feature(dataset.features, column),
        **kwargs,
    )


def _replace_feature(features, column: str):
    import datasets

    new = features.copy()
    new[column] = datasets.Value("string")
    return new


def check_columns(dataset, required: Sequence[str | None], where: str, fix: str, constants=()) -> None:
    """Raise if `dataset` lacks a `required` column (empty names are skipped; `constants` count as columns).

    The message names `where` the data comes from, the missing columns, those there are, and `fix`, in which
    `{column}` stands for the first missing column.
    """
    available = set(dataset.column_names or []) | set(constants)
    if not dataset.column_names:  # streamed data without known features: look at one row
        available |= set(next(iter(dataset)))
    missing = [column for column in required if column and column not in available]
    if missing:
        raise ValueError(
            f"{where} lacks column(s) {missing}; it has {sorted(available)}. {fix.format(column=missing[0])}"
        )


def _inline_audio(dataset) -> bool:
    """Whether the audio column holds the samples themselves (a float list or an `{array, sampling_rate}` struct)."""
    import datasets

    feature = (dataset.features or {}).get(AUDIO)
    return isinstance(feature, (datasets.List, datasets.Sequence)) or (isinstance(feature, dict) and "array" in feature)


def durations(dataset, spec: DatasetSpec, batch_size: int = 1000) -> np.ndarray:
    """Audio seconds of every row: the `duration` column if there is one, else measured.

    Inline arrays are measured from their Arrow list lengths without copying samples; files and bytes from their
    headers (soundfile). Large corpora of files should carry a `duration` column.
    """
    if DURATION in dataset.column_names:
        return np.asarray(dataset[DURATION], dtype=np.float64)
    import pyarrow.compute as pc
    from tqdm.auto import tqdm

    inline = _inline_audio(dataset)
    rates = np.full(len(dataset), spec.sampling_rate or SAMPLING_RATE, dtype=np.float64)
    if inline and "sampling_rate" in dataset.column_names:
        rates = np.asarray(dataset["sampling_rate"], dtype=np.float64)
    measured = []
    table = dataset.select_columns([AUDIO]).with_format("arrow")
    for start in tqdm(range(0, len(dataset), batch_size), desc=f"Measuring audio of {spec.name or spec.path}"):
        column = table[start : start + batch_size].column(AUDIO).combine_chunks()
        if inline and hasattr(column, "field"):  # struct {array, sampling_rate}
            lengths = pc.list_value_length(column.field("array")).to_numpy(zero_copy_only=False)
            rates = column.field("sampling_rate").to_numpy(zero_copy_only=False)
            measured.append(lengths / rates)
        elif inline:  # bare float lists, at a per-row `sampling_rate` column's rate or the spec's
            lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False)
            measured.append(lengths / rates[start : start + batch_size])
        else:
            measured.append(np.array([audio_seconds(value, spec.sampling_rate) for value in column.to_pylist()]))
    return np.concatenate(measured).astype(np.float64) if measured else np.zeros(0)


# ------------------------------------------------------------------------------------------------ mixtures
@dataclass
class Source:
    """One data set of a mixture, bound to the task that turns its rows into examples."""

    spec: DatasetSpec
    dataset: object  # datasets.Dataset or IterableDataset with canonical columns
    task: object  # voxlm.train.core.tasks.Task (None when a `StreamingTaskMixture(to_example=...)` reads the rows)
    weight: float = 1.0
    augment: object = None  # voxlm.train.core.augment.AugmentSpec: applied when examples are drawn for training


def _clip(source: Source, values: dict, sampling_rate: int) -> np.ndarray:
    rate = values.get("sampling_rate") or source.spec.sampling_rate  # a per-row rate column beside bare arrays
    return read_audio(values[AUDIO], sampling_rate, int(rate) if rate else None)


def _example(
    source: Source,
    row: dict,
    rng: np.random.Generator,
    sampling_rate: int,
    augment_rng: np.random.Generator | None = None,
    babble_pool: Callable[[np.random.Generator], list[np.ndarray]] | None = None,
) -> dict:
    """One example of `source`; with `source.augment`, its audio is augmented with `augment_rng` (and a babble pool of
    other clips of the source, drawn by `babble_pool(rng)` only when babble is chosen)."""
    values = {**source.spec.fields, **row}
    audio = _clip(source, values, sampling_rate)
    if source.augment is not None:
        from .augment import augment

        pool = babble_pool(augment_rng) if babble_pool is not None and source.augment.babble.p > 0 else None
        audio, _ = augment(audio, augment_rng, source.augment, babble_pool=pool)
    return {
        "audio": audio,
        "instruction": source.task.sample_prompt(values, rng),
        "target": source.task.format_target(values),
        "task": source.task.name,
        "source": source.spec.name,
    }


class TaskMixture(torch.utils.data.Dataset):
    """Several map-style data sets, each with a task, as one index space of examples.

    `mixture[i]` is `{"audio": float32 (T,), "instruction": str, "target": str, "task": str, "source": str}` (source:
    the data set's name); the instruction is
    drawn from the task's prompt pool with a generator seeded by `(seed, i)`, so an example always gets the same
    prompt for a given seed (and a resumed run sees the same data). `seconds[i]` is its audio duration.

    Weights are realised per epoch by [`epoch_indices`]: each source contributes `weight / sum(weights)` of
    `examples_per_epoch` rows (default: the total number of rows), drawn without replacement and cycling through
    fresh permutations when a small source is up-sampled.
    """

    def __init__(
        self,
        sources: Sequence[Source],
        seed: int = 0,
        sampling_rate: int = SAMPLING_RATE,
        examples_per_epoch: int | None = None,
    ):
        if not sources:
            raise ValueError("A TaskMixture needs at least one data set.")
        self.sources = list(sources)
        self.seed = seed
        self.sampling_rate = sampling_rate
        self.sizes = np.array([len(source.dataset) for source in self.sources])
        if (self.sizes == 0).any():
            empty = [s.spec.name for s, n in zip(self.sources, self.sizes) if n == 0]
            raise ValueError(f"Data set(s) {empty} are empty; check their `split` and `max_samples`.")
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)])
        self.examples_per_epoch = examples_per_epoch or int(self.sizes.sum())
        # Inline samples are read as numpy arrays (10x faster than Python lists); files and bytes stay as they are.
        self._formatted = [
            source.dataset.with_format("numpy", columns=[AUDIO], output_all_columns=True)
            if _inline_audio(source.dataset)
            else source.dataset
            for source in self.sources
        ]
        self._seconds = None
        self.epoch = 0  # set by the trainer at each epoch: augmentation differs from epoch to epoch

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def locate(self, index: int) -> tuple[int, int]:
        """Global index -> (source number, row in that source)."""
        source = int(np.searchsorted(self.offsets, index, side="right") - 1)
        return source, int(index - self.offsets[source])

    def __getitem__(self, index: int) -> dict:
        source_index, row = self.locate(index)
        rng = np.random.default_rng([self.seed, int(index)])
        # Augmentation is seeded by the example and the epoch: the same in a resumed run, new in every epoch.
        augment_rng = np.random.default_rng([self.seed, int(index), self.epoch, 1])
        return _example(
            self.sources[source_index],
            self._formatted[source_index][row],
            rng,
            self.sampling_rate,
            augment_rng,
            lambda pool_rng: self._babble_pool(source_index, pool_rng),
        )

    def _babble_pool(self, source_index: int, rng: np.random.Generator, size: int = 8) -> list[np.ndarray]:
        """Other clips of the same data set, chosen by `rng` (babble is made of them)."""
        source, table = self.sources[source_index], self._formatted[source_index]
        rows = rng.choice(int(self.sizes[source_index]), size=min(size, int(self.sizes[source_index])), replace=False)
        return [_clip(source, {**source.spec.fields, **table[int(row)]}, self.sampling_rate) for row in rows]

    @property
    def seconds(self) -> np.ndarray:
        """Audio seconds of every example (measured once)."""
        if self._seconds is None:
            self._seconds = np.concatenate([durations(source.dataset, source.spec) for source in self.sources])
        return self._seconds

    def target_texts(self) -> list[str]:
        """The target of every example, in index order (reads the text columns only)."""
        texts = []
        for source in self.sources:
            table = source.dataset.remove_columns([AUDIO]) if AUDIO in source.dataset.column_names else source.dataset
            texts += [source.task.format_target({**source.spec.fields, **row}) for row in table]
        return texts

    @property
    def tasks(self) -> list[str]:
        """The task of every example, as names."""
        return [source.task.name for source, size in zip(self.sources, self.sizes) for _ in range(size)]

    def epoch_indices(self, epoch: int) -> np.ndarray:
        """The examples of one epoch, mixing the sources by weight (deterministic per seed and epoch)."""
        weights = np.array([source.weight for source in self.sources], dtype=np.float64)
        counts = _apportion(self.examples_per_epoch, weights / weights.sum())
        chosen = []
        for number, (count, size) in enumerate(zip(counts, self.sizes)):
            rng = np.random.default_rng([self.seed, epoch, number])
            rows = np.concatenate([rng.permutation(size) for _ in range(-(-count // size))])[:count]
            chosen.append(rows + self.offsets[number])
        return np.concatenate(chosen).astype(np.int64)


def _apportion(total: int, shares: np.ndarray) -> np.ndarray:
    """Split `total` into integer counts proportional to `shares` (largest remainders)."""
    exact = total * shares
    counts = np.floor(exact).astype(np.int64)
    remainder = total - counts.sum()
    counts[np.argsort(-(exact - counts), kind="stable")[:remainder]] += 1
    return counts


class StreamingTaskMixture(torch.utils.data.IterableDataset):
    """Streamed data sets mixed by weight, yielding examples like [`TaskMixture`] without end.

    Every process (and every data loader worker) reads its own shard of each source
    (`datasets.distributed.split_dataset_by_node`); each source is shuffled with a buffer of `shuffle_buffer` rows
    and starts a new, reshuffled epoch when it runs out. Sources are drawn by weight with a seeded generator, so
    the stream is the same on every run. Training on it needs `max_steps`; `batching.BudgetBatchedStream.from_spec`
    groups the examples into budgeted batches.

    Args:
        to_example: turns each row into an example in place of the sources' tasks (their `task` may then be None),
            e.g. `voxlm.train.align.data.ContinuationExamples.example`; it should give `audio` and `target`.
    """

    def __init__(
        self,
        sources: Sequence[Source],
        seed: int = 0,
        sampling_rate: int = SAMPLING_RATE,
        shuffle_buffer: int = 1000,
        rank: int = 0,
        world_size: int = 1,
        to_example: Callable[[dict], dict] | None = None,
    ):
        if not sources:
            raise ValueError("A StreamingTaskMixture needs at least one data set.")
        self.to_example = to_example
        self.sources = list(sources)
        self.seed = seed
        self.sampling_rate = sampling_rate
        self.shuffle_buffer = shuffle_buffer
        self.rank, self.world_size = rank, world_size
        weights = np.array([source.weight for source in self.sources], dtype=np.float64)
        self.probabilities = weights / weights.sum()

    def _shard(self) -> tuple[int, int]:
        """This reader's shard among all processes x data loader workers."""
        worker = torch.utils.data.get_worker_info()
        workers, worker_id = (worker.num_workers, worker.id) if worker is not None else (1, 0)
        return self.rank * workers + worker_id, self.world_size * workers

    def _epoch(self, number: int, epoch: int, shard: int, num_shards: int) -> Iterator[dict]:
        from datasets.distributed import split_dataset_by_node

        stream = self.sources[number].dataset
        if num_shards > 1:
            stream = split_dataset_by_node(stream, rank=shard, world_size=num_shards)
        if self.shuffle_buffer:
            stream = stream.shuffle(seed=self.seed + epoch, buffer_size=self.shuffle_buffer)
        return iter(stream)

    def __iter__(self) -> Iterator[dict]:
        shard, num_shards = self._shard()
        epochs = [0] * len(self.sources)
        iterators = [self._epoch(number, 0, shard, num_shards) for number in range(len(self.sources))]
        rng = np.random.default_rng([self.seed, shard])
        position = 0
        while True:
            number = int(rng.choice(len(self.sources), p=self.probabilities))
            row = next(iterators[number], None)
            if row is None:
                epochs[number] += 1
                iterators[number] = self._epoch(number, epochs[number], shard, num_shards)
                row = next(iterators[number], None)
                if row is None:
                    raise ValueError(f"Streamed data set {self.sources[number].spec.name!r} yields no rows.")
            if self.to_example is not None:  # the rows' own reader: no task prompts, no augmentation
                yield self.to_example(row)
                continue
            example_rng = np.random.default_rng([self.seed, shard, position])
            augment_rng = np.random.default_rng([self.seed, shard, position, 1])
            position += 1
            # No babble in streams: other rows cannot be read at random (the effect is skipped).
            yield _example(self.sources[number], row, example_rng, self.sampling_rate, augment_rng)


# ---------------------------------------------------------------------------------------------- collation
TEACHER_PREFIX = "teacher_"  # the keys of a teacher's inputs in a batch (`SpeechTaskCollator(with_teacher=True)`)


@dataclass
class SpeechTaskCollator:
    """Examples `{"audio", "instruction", "target"}` -> VoxLM training inputs, loss on the target (+ EOS) only.

    Each prompt is `prompts.build_prompt` of the example's instruction: the audio in its `{transcript}` slot, or
    before it. Decoder-only language models get `processor.prepare_for_training` (right padding, prompt positions
    -100). Encoder-decoder language models (`model.config.is_encoder_decoder`) get the prompt with its audio as
    encoder input (`input_ids`, `attention_mask`, audio features) and the tokenized target as `labels` (padding -100).

    Args:
        with_teacher: also give a teacher's inputs (BLSP-KD), under `teacher_*` keys: the text prompt with the
            example's `transcript` in place of the audio, no audio, the same target.
        to_example: turns each item the data loader yields into an example first (e.g. a table row whose clip it
            reads, `voxlm.train.align.data.ContinuationExamples.example`).
    """

    processor: object
    is_encoder_decoder: bool = False
    prompt_format: str = "chat"
    system_prompt: str | None = None
    sampling_rate: int = SAMPLING_RATE
    max_target_tokens: int | None = None
    with_teacher: bool = False
    to_example: Callable[[dict], dict] | None = None

    def __post_init__(self):
        if self.with_teacher and self.is_encoder_decoder:
            raise ValueError("Teacher inputs (with_teacher=True) are for decoder-only language models.")

    def prompts(self, examples: Sequence[dict]) -> list[str]:
        return [
            build_prompt(self.processor, example["instruction"], self.prompt_format, self.system_prompt)
            for example in examples
        ]

    def __call__(self, examples: Sequence[dict]) -> dict:
        if self.to_example is not None:
            examples = [self.to_example(item) for item in examples]
        prompts = self.prompts(examples)
        targets = [self._truncate(example["target"]) for example in examples]
        audio = [example["audio"] for example in examples]
        if not self.is_encoder_decoder:
            batch = self.processor.prepare_for_training(prompts, targets, audio, sampling_rate=self.sampling_rate)
            return {**batch, **(self._teacher_inputs(examples, targets) if self.with_teacher else {})}
        batch = self.processor(text=prompts, audio=audio, sampling_rate=self.sampling_rate, padding_side="right")
        labels = self.processor.tokenizer(text_target=targets, padding=True, return_tensors="pt")
        batch["labels"] = labels["input_ids"].masked_fill(labels["attention_mask"] == 0, -100)
        return dict(batch)

    def _teacher_inputs(self, examples: Sequence[dict], targets: list[str]) -> dict:
        prompts = [
            build_text_prompt(
                self.processor, example["instruction"], example["transcript"], self.prompt_format, self.system_prompt
            )
            for example in examples
        ]
        teacher = self.processor.prepare_for_training(prompts, targets)
        return {TEACHER_PREFIX + key: teacher[key] for key in ("input_ids", "attention_mask", "labels")}

    def _truncate(self, target: str) -> str:
        if self.max_target_tokens is None:
            return target
        tokenizer = self.processor.tokenizer
        ids = tokenizer(target, add_special_tokens=False)["input_ids"]
        return target if len(ids) <= self.max_target_tokens else tokenizer.decode(ids[: self.max_target_tokens])


__all__ = [
    "DatasetSpec",
    "Source",
    "TEACHER_PREFIX",
    "SpeechTaskCollator",
    "StreamingTaskMixture",
    "TaskMixture",
    "check_columns",
    "durations",
    "load_dataset_spec",
]
