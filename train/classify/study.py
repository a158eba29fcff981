"""Speech tokens for classification: select audio tokens, adapt their embeddings, fine-tune with LoRA.

    accelerate launch -m voxlm.train.classify --config train/configs/classify_offline.yaml

For every seed and condition (the ablation in one command):

* `text`: the text alone (`<|text|> … <|text_end|>`);
* `selected`: plus the audio tokens kept by Lasso selection on the training split (`SpeechTokenSelector`);
* `random`: plus as many audio tokens drawn at random (seeded) from those seen in training;
* `all`: plus every audio token of the vocabulary.

Each run (1) selects, (2) adds the tokens to the LM's tokenizer and adapts only their embedding rows with the LM's
self-supervised loss (causal for decoder LMs, masked for encoder LMs) on the unlabelled sequences, (3) fine-tunes
`AutoModelForSequenceClassification` with LoRA and class-weighted cross-entropy, and scores the test split
(macro-F1, and F1 of class 1 for binary detection). Runs are appended to `results.jsonl` as they finish, so an
interrupted study resumes where it stopped; `summary.md`/`summary.json` average them over seeds.

The data is a `datasets` dataset (a `load_from_disk` folder or anything `load_dataset` reads) with a text column, a
label column, and per clip either the unit tokens (`audio_tokens_column`, lists of strings such as `<|a0_17|>`) or
the audio (`audio_column`, turned into units by the `SpeechUnitTokenizer` at `units`).
"""

import argparse
import dataclasses
import json
import os
import time
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
from transformers import AutoTokenizer, set_seed
from transformers.utils import logging

from voxlm.processing import SpeechTokenProcessor, SpeechTokenSelector, SpeechUnitTokenizer
from voxlm.train.core.config import from_dict, load_config
from voxlm.train.core.tables import render_table

from .adaptation import adapt_new_embeddings, lm_objective, load_language_model
from .classification import add_lora, finetune_and_evaluate, load_classifier

logger = logging.get_logger(__name__)

CONDITIONS = ("text", "selected", "random", "all")
NO_STREAMING = (
    "`streaming: true` does not fit this recipe: the Lasso selection fits on the bag-of-tokens matrix of the whole "
    "training split, so the splits are read into memory once and reused by every seed and condition. Remove "
    "`streaming` and give a `save_to_disk` folder or a data set whose splits fit in memory (a sample of a larger "
    "corpus, for instance)."
)


# ---------------------------------------------------------------------------------------------------- config
@dataclass
class DataConfig:
    path: str
    text_column: str = "text"
    label_column: str = "label"
    audio_tokens_column: str | None = "audio_tokens"
    audio_column: str | None = None
    sampling_rate: int = 16000
    train_split: str = "train"
    test_split: str = "test"
    unlabelled_split: str | None = None  # more sequences for the adaptation step, beside the training split
    streaming: bool = False  # accepted so that `true` is refused with the reason (NO_STREAMING), not as a typo

    def __post_init__(self):
        if self.streaming:
            raise ValueError(f"config.data: {NO_STREAMING}")


@dataclass
class SelectionConfig:
    C: float = 0.01
    Cs: list[float] | None = None
    cv: int = 5
    top_k: int | None = None
    use_text: bool = False
    max_iter: int = 1000
    tol: float = 1e-3


@dataclass
class AdaptationConfig:
    objective: str = "auto"  # causal | masked | auto (masked for encoder LMs)
    epochs: float = 1.0
    learning_rate: float = 3e-4
    batch_size: int = 16
    mlm_probability: float = 0.15
    max_steps: int = -1


@dataclass
class LoraSettings:
    r: int = 64
    alpha: int = 128
    dropout: float = 0.05
    target_modules: str | list[str] = "auto"


@dataclass
class FinetuneConfig:
    lora: LoraSettings = field(default_factory=LoraSettings)
    epochs: float = 3.0
    learning_rate: float = 2e-4
    batch_size: int = 16
    class_weighted: bool = True
    max_steps: int = -1


@dataclass
class ClassifyConfig:
    model: str
    data: DataConfig
    output_dir: str = "runs/classify"
    units: str | None = None
    conditions: list[str] = field(default_factory=lambda: list(CONDITIONS))
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    max_length: int = 256
    save_models: bool = False
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    adaptation: AdaptationConfig = field(default_factory=AdaptationConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)

    @classmethod
    def from_dict(cls, raw: dict) -> "ClassifyConfig":
        """The study from its YAML mapping, every key checked (see `voxlm.train.core.config.from_dict`)."""
        if isinstance(raw, dict) and raw.get("streaming"):  # written beside `data:` rather than in it
            raise ValueError(f"config: {NO_STREAMING}")
        return from_dict(cls, "config", raw)

    def __post_init__(self):
        self.model = os.path.expanduser(self.model)
        self.output_dir = os.path.expanduser(self.output_dir)
        self.units = os.path.expanduser(self.units) if self.units else None
        self.data.path = os.path.expanduser(self.data.path)
        unknown = sorted(set(self.conditions) - set(CONDITIONS))
        if unknown:
            raise ValueError(f"Unknown conditions {unknown}; choose among {list(CONDITIONS)}.")
        if "random" in self.conditions and "selected" not in self.conditions:
            logger.info("The `random` condition draws as many tokens as the Lasso selection keeps.")


# ------------------------------------------------------------------------------------------------------ data
@dataclass
class Split:
    texts: list[str]
    audio_tokens: list[list[str]]
    labels: list[int]


def load_splits(config: ClassifyConfig) -> tuple[dict[str, Split], list[str], list[str]]:
    """The splits as plain lists, the label names, and the audio vocabulary (the unit tokenizer's, or the sorted
    tokens seen in the data)."""
    from datasets import load_dataset, load_from_disk

    data = config.data
    dataset = load_from_disk(data.path) if os.path.isdir(data.path) else load_dataset(data.path)
    units = SpeechUnitTokenizer.from_pretrained(config.units).eval() if config.units else None
    names = _label_names(dataset[data.train_split], data.label_column)
    wanted = [data.train_split, data.test_split] + ([data.unlabelled_split] if data.unlabelled_split else [])
    splits = {}
    for name in wanted:
        if name not in dataset:
            raise ValueError(f"The dataset has no split {name!r}; it has {list(dataset)}.")
        splits[name] = _read_split(dataset[name], data, names, units, labelled=name != data.unlabelled_split)
    if units is not None:
        vocabulary = units.vocabulary
    else:
        vocabulary = sorted({token for split in splits.values() for row in split.audio_tokens for token in row})
    return splits, names, vocabulary


def _label_names(dataset, column: str) -> list[str]:
    feature = dataset.features[column]
    if hasattr(feature, "names"):
        return list(feature.names)
    return [str(value) for value in sorted(set(dataset[column]))]


def _read_split(dataset, data: DataConfig, names: list[str], units, labelled: bool) -> Split:
    texts = list(dataset[data.text_column])
    if data.audio_tokens_column and data.audio_tokens_column in dataset.column_names:
        tokens = [list(row) for row in dataset[data.audio_tokens_column]]
    elif data.audio_column and units is not None:
        clips = [np.asarray(row["array"] if isinstance(row, dict) else row) for row in dataset[data.audio_column]]
        tokens = units.tokenize(clips, sampling_rate=data.sampling_rate, resample=True)
    else:
        raise ValueError(
            f"Split {dataset.split} has neither the unit column {data.audio_tokens_column!r} nor an audio column "
            "with a unit tokenizer; set `data.audio_tokens_column`, or `data.audio_column` and `units`."
        )
    labels = []
    if labelled:
        index = {name: i for i, name in enumerate(names)}
        raw = dataset[data.label_column]
        is_class_label = hasattr(dataset.features[data.label_column], "names")
        labels = [int(value) if is_class_label else index[str(value)] for value in raw]
    return Split(texts, tokens, labels)


# ------------------------------------------------------------------------------------------------------ runs
def select_tokens(condition: str, splits, vocabulary, config: ClassifyConfig, seed: int, lasso_count: int | None):
    """The selector of one condition, fitted on the training split."""
    train = splits[config.data.train_split]
    settings = dataclasses.asdict(config.selection)
    if condition == "text":
        selector = SpeechTokenSelector(vocabulary, method="none")
    elif condition == "all":
        selector = SpeechTokenSelector(vocabulary, method="all")
    elif condition == "random":
        selector = SpeechTokenSelector(vocabulary, method="random", num_tokens=lasso_count, seed=seed)
    else:
        selector = SpeechTokenSelector(vocabulary, method="lasso", seed=seed, **settings)
    return selector.fit(train.audio_tokens, train.labels, texts=train.texts)


def encode_split(processor: SpeechTokenProcessor, split: Split, with_audio: bool, special_mask: bool) -> list[dict]:
    batch = processor(
        text=split.texts,
        audio_tokens=split.audio_tokens if with_audio else None,
        padding=False,
        return_special_tokens_mask=special_mask,
        return_tensors=None,
    )
    rows = [dict(zip(batch.keys(), values)) for values in zip(*batch.values())]
    for row, label in zip(rows, split.labels):
        row["labels"] = label
    return rows


def run_one(config: ClassifyConfig, splits, names, vocabulary, condition: str, seed: int, lasso_count: int | None):
    """One condition and seed: select -> adapt new rows -> LoRA fine-tune -> test metrics."""
    started = time.perf_counter()
    set_seed(seed)
    run_dir = os.path.join(config.output_dir, condition, f"seed{seed}")
    selector = select_tokens(condition, splits, vocabulary, config, seed, lasso_count)
    tokenizer = AutoTokenizer.from_pretrained(config.model)
    processor = SpeechTokenProcessor.from_parts(tokenizer, selector.kept_tokens, max_length=config.max_length)
    objective = lm_objective(config.model, config.adaptation.objective)
    with_audio = condition != "text"
    train_split, test_split = splits[config.data.train_split], splits[config.data.test_split]
    unlabelled = [train_split] + ([splits[config.data.unlabelled_split]] if config.data.unlabelled_split else [])
    sequences = []
    for split in unlabelled:
        for row in encode_split(processor, split, with_audio, special_mask=objective == "masked"):
            row.pop("labels", None)
            sequences.append(row)

    set_seed(seed)
    language_model = load_language_model(config.model, objective, len(processor.tokenizer))
    adapted, adaptation = adapt_new_embeddings(
        language_model,
        processor.tokenizer,
        sequences,
        processor.added_token_ids,
        objective,
        output_dir=os.path.join(run_dir, "adaptation"),
        seed=seed,
        **_adaptation_kwargs(config.adaptation),
    )
    embeddings = adapted.get_input_embeddings().weight
    new_rows = {token_id: embeddings[token_id].detach().clone() for token_id in processor.added_token_ids}
    del adapted, language_model

    set_seed(seed)
    classifier = load_classifier(config.model, len(names), processor.tokenizer, new_rows)
    lora = config.finetune.lora
    classifier = add_lora(classifier, lora.r, lora.alpha, lora.dropout, lora.target_modules)
    train_rows = [_without_mask(row) for row in encode_split(processor, train_split, with_audio, False)]
    test_rows = [_without_mask(row) for row in encode_split(processor, test_split, with_audio, False)]
    finetune = config.finetune
    metrics, trained = finetune_and_evaluate(
        classifier,
        processor.tokenizer,
        train_rows,
        test_rows,
        len(names),
        output_dir=os.path.join(run_dir, "finetune"),
        epochs=finetune.epochs,
        learning_rate=finetune.learning_rate,
        batch_size=finetune.batch_size,
        class_weighted=finetune.class_weighted,
        max_steps=finetune.max_steps,
        seed=seed,
    )
    result = {
        "condition": condition,
        "seed": seed,
        **metrics,
        "num_audio_tokens": len(selector.kept_tokens),
        "mean_length": float(np.mean([len(row["input_ids"]) for row in test_rows])),
        **adaptation,
        "seconds": round(time.perf_counter() - started, 1),
    }
    if config.save_models:
        save_classifier(trained, processor, selector, os.path.join(run_dir, "model"), names, config, result)
    return result


def _adaptation_kwargs(adaptation: AdaptationConfig) -> dict:
    return {
        "epochs": adaptation.epochs,
        "learning_rate": adaptation.learning_rate,
        "batch_size": adaptation.batch_size,
        "mlm_probability": adaptation.mlm_probability,
        "max_steps": adaptation.max_steps,
    }


def _without_mask(row: dict) -> dict:
    row.pop("special_tokens_mask", None)
    return row


def save_classifier(
    model, processor, selector, directory: str, names: list[str], config: ClassifyConfig, result: dict
) -> None:
    """Merge LoRA and write a run folder `voxlm push` publishes: the classifier, the processor (with its unit
    tokenizer), the kept audio vocabulary with its weights (`audio_vocabulary.json`) and `run_info.json`."""
    from voxlm.hub_cards.run_info import RunInfo, describe_hardware, save_run

    merged = model.merge_and_unload() if hasattr(model, "merge_and_unload") else model
    merged.config.id2label = dict(enumerate(names))
    merged.config.label2id = {name: i for i, name in enumerate(names)}
    if config.units:
        processor.speech_units = SpeechUnitTokenizer.from_pretrained(config.units)
    lora = config.finetune.lora
    run_info = RunInfo(
        kind="speech-token-classifier",
        recipe="speech-tokens",
        base_models={"text": config.model, **({"audio": config.units} if config.units else {})},
        stages=[
            {"name": "selection", "description": f"{result['condition']}: {len(selector.kept_tokens)} audio tokens"},
            {"name": "adaptation", "trained": ["new embedding rows"], "steps": result.get("adaptation_steps")},
            {"name": "fine-tuning", "trained": [f"LoRA r={lora.r} on {lora.target_modules}", "classification head"]},
        ],
        datasets=[{"id": config.data.path, "split": config.data.train_split}],
        metrics=[
            {"task": "classification", "metric": metric, "value": result[metric], "split": config.data.test_split}
            for metric in ("macro_f1", "positive_f1", "accuracy")
            if metric in result
        ],
        training={"seconds": result["seconds"], "hardware": describe_hardware(), "seed": result["seed"]},
    )
    save_run(directory, merged, processor, run_info)
    selector.save_pretrained(directory)


# --------------------------------------------------------------------------------------------------- results
def load_results(path: str) -> list[dict]:
    if not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8") as file:
        return [json.loads(line) for line in file if line.strip()]


def summarize(results: list[dict], conditions: list[str]) -> list[dict]:
    """Mean and standard deviation over seeds of each condition's metrics."""
    grouped = defaultdict(list)
    for result in results:
        grouped[result["condition"]].append(result)
    rows = []
    for condition in conditions:
        runs = grouped.get(condition)
        if not runs:
            continue
        row = {"condition": condition, "seeds": len(runs)}
        for metric in ("macro_f1", "positive_f1", "accuracy", "num_audio_tokens", "mean_length", "seconds"):
            values = [run[metric] for run in runs if run.get(metric) is not None]
            if values:
                row[metric] = float(np.mean(values))
                row[f"{metric}_std"] = float(np.std(values))
        rows.append(row)
    return rows


def summary_table(rows: list[dict]) -> str:
    """A markdown table of `summarize` rows."""
    binary = any("positive_f1" in row for row in rows)
    header = ["condition", "seeds", "macro-F1", *(["positive F1"] if binary else []), "audio tokens", "length"]
    body = []
    for row in rows:
        cells = [row["condition"], row["seeds"], f"{row['macro_f1']:.3f} ± {row['macro_f1_std']:.3f}"]
        if binary:
            cells.append(f"{row['positive_f1']:.3f} ± {row['positive_f1_std']:.3f}")
        body.append([*cells, f"{row['num_audio_tokens']:.0f}", f"{row['mean_length']:.1f}"])
    return render_table(header, body, markdown=True)


def run_study(config: ClassifyConfig) -> list[dict]:
    """Every seed x condition not yet in `results.jsonl`; returns the summary rows."""
    os.makedirs(config.output_dir, exist_ok=True)
    with open(os.path.join(config.output_dir, "config.json"), "w", encoding="utf-8") as file:
        json.dump(dataclasses.asdict(config), file, indent=1)
    results_path = os.path.join(config.output_dir, "results.jsonl")
    results = load_results(results_path)
    done = {(result["condition"], result["seed"]) for result in results}
    splits, names, vocabulary = load_splits(config)
    todo = [(seed, condition) for seed in config.seeds for condition in config.conditions]
    for number, (seed, condition) in enumerate(todo, start=1):
        if (condition, seed) in done:
            continue
        lasso_count = None
        if condition == "random":
            lasso_count = len(select_tokens("selected", splits, vocabulary, config, seed, None).kept_tokens)
        print(f"[{number}/{len(todo)}] {condition} seed {seed} ...", flush=True)
        result = run_one(config, splits, names, vocabulary, condition, seed, lasso_count)
        print(f"[{number}/{len(todo)}] {json.dumps(result)}", flush=True)
        results.append(result)
        if _is_main_process():
            with open(results_path, "a", encoding="utf-8") as file:
                file.write(json.dumps(result) + "\n")
    rows = summarize(results, config.conditions)
    if _is_main_process():
        with open(os.path.join(config.output_dir, "summary.json"), "w", encoding="utf-8") as file:
            json.dump({"labels": names, "rows": rows}, file, indent=1)
        with open(os.path.join(config.output_dir, "summary.md"), "w", encoding="utf-8") as file:
            file.write(summary_table(rows) + "\n")
    return rows


def _is_main_process() -> bool:
    from accelerate import PartialState

    return PartialState().is_main_process


def run_from_args(args: argparse.Namespace) -> list[dict]:
    """The study of `--config`, with `--output_dir`, `--conditions` and `--seeds` over the file's values."""
    overrides = {key: getattr(args, key) for key in ("output_dir", "conditions", "seeds")}
    rows = run_study(ClassifyConfig.from_dict(load_config(args.config, overrides)))
    print(summary_table(rows))
    return rows


def main(argv=None) -> list[dict]:
    """`python -m voxlm.train.classify --config <yaml>` (or `accelerate launch -m ...`, or `voxlm classify`)."""
    from .command import register

    subparsers = argparse.ArgumentParser(prog="voxlm.train").add_subparsers()
    register(subparsers)
    parser = subparsers.choices["classify"]
    parser.prog = "voxlm.train.classify"
    return run_from_args(parser.parse_args(argv))


if __name__ == "__main__":
    main()
