"""Metric modules shipped with VoxLM, loaded offline with `evaluate` from their folders.

`evaluate.load("wer")` fetches the module from the Hub; these folders (`wer/wer.py`, ...) work without network:
`load_metric("wer")` is `evaluate.load("<this folder>/wer")`.

| name | use | keys |
|---|---|---|
| `wer` | ASR (Whisper-style normalisation) | `wer`, `cer`, counts |
| `bleu` | speech translation (sacrebleu) | `bleu`, `chrf` |
| `classification` | intent, emotion, speaker traits | `accuracy`, `macro_f1` |
| `overlap_f1` | slot filling, keywords (items), spoken QA (words) | `f1`, `precision`, `recall`, `exact_match` |
"""

import functools
from collections.abc import Sequence
from pathlib import Path

METRICS_DIR = Path(__file__).resolve().parent
METRICS = ("wer", "bleu", "classification", "overlap_f1")


def metric_path(name: str) -> str:
    """The folder of a shipped metric module, or `name` itself if it is a folder or script path."""
    if name in METRICS:
        return str(METRICS_DIR / name)
    if Path(name).exists():
        return str(Path(name).resolve())
    raise ValueError(
        f"Unknown metric {name!r}. Shipped metrics: {', '.join(METRICS)}; or give the path of an `evaluate` "
        "metric module folder."
    )


@functools.cache
def load_metric(name: str):
    """`evaluate.load` of a shipped metric (or a local metric module path), without network access; loaded once
    per process (loading copies and imports the module, ~0.5 s)."""
    import evaluate

    return evaluate.load(metric_path(name))


def compute_metric(name: str, predictions: list[str], references: list[str], **options) -> dict:
    """Load metric `name` and compute it; `options` are the metric's keyword arguments (e.g. `normalizer`)."""
    return load_metric(name).compute(predictions=list(predictions), references=list(references), **options)


def word_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Corpus WER of `hypotheses` against `references` after Whisper's English normaliser (the `wer` module)."""
    if len(references) != len(hypotheses):
        raise ValueError(f"Got {len(references)} references but {len(hypotheses)} hypotheses.")
    scores = compute_metric("wer", hypotheses, references)
    if scores["words"] == 0:
        raise ValueError("The references are empty after normalization; WER is undefined.")
    return scores["wer"]


def hallucination_rate(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """The share of `hypotheses` that share no content word with their reference (after Whisper's English
    normaliser; stop words do not count): answers about something that was not said (the `wer` module)."""
    if len(references) != len(hypotheses):
        raise ValueError(f"Got {len(references)} references but {len(hypotheses)} hypotheses.")
    return compute_metric("wer", hypotheses, references)["hallucination_rate"]


__all__ = [
    "METRICS",
    "METRICS_DIR",
    "compute_metric",
    "hallucination_rate",
    "load_metric",
    "metric_path",
    "word_error_rate",
]
