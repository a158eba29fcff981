"""Word error rate after Whisper-style text normalisation, as an `evaluate` metric module.

Load it offline from its folder: `evaluate.load("/path/to/voxlm/train/core/metrics/wer")` (or
`voxlm.train.core.metrics.load_metric("wer")`).
"""

import datasets
import evaluate
import jiwer
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS
from transformers.models.whisper.english_normalizer import BasicTextNormalizer, EnglishTextNormalizer

_DESCRIPTION = """
Word error rate, (substitutions + deletions + insertions) / reference words, summed over the corpus. Both sides are
normalised first, as in Whisper's evaluation: `normalizer="english"` (transformers' `EnglishTextNormalizer`:
lower case, no punctuation, numbers as digits, contractions and common spellings unified), `"basic"`
(`BasicTextNormalizer`: lower case, no punctuation or diacritics, any language) or `"none"`.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[str]`): transcripts to score.
    references (`list[str]`): reference transcripts.
    normalizer (`str`, defaults to `"english"`): `"english"`, `"basic"` or `"none"`.
    spelling_mapping (`dict`, *optional*): British -> American spellings for the English normaliser (Whisper's
        `normalizer.json`); none by default.
Returns:
    `wer` (float), `cer` (float, character error rate on the normalised text), `words` (reference words),
    `substitutions`, `deletions`, `insertions` (counts), and `hallucination_rate`: the share of predictions that
    share no content word (a word outside scikit-learn's English stop words) with their reference, among the
    references that have one: answers about something that was not said.
Example:
    >>> metric = evaluate.load("path/to/metrics/wer")
    >>> metric.compute(predictions=["Hello, world!"], references=["hello world"])["wer"]
    0.0
"""

_CITATION = """
@inproceedings{radford2023whisper,
  title={Robust Speech Recognition via Large-Scale Weak Supervision},
  author={Radford, Alec and Kim, Jong Wook and Xu, Tao and Brockman, Greg and McLeavey, Christine and Sutskever, Ilya},
  booktitle={ICML},
  year={2023}
}
"""


def _normalizer(kind, spelling_mapping):
    if kind == "english":
        return EnglishTextNormalizer(spelling_mapping or {})
    if kind == "basic":
        return BasicTextNormalizer()
    if kind in (None, "none"):
        return lambda text: " ".join(text.split())
    raise ValueError(f"`normalizer` must be 'english', 'basic' or 'none', got {kind!r}.")


def _error_counts(references, predictions, unit):
    """(substitutions, deletions, insertions, reference units) summed over pairs; empty references are allowed."""
    process = jiwer.process_words if unit == "words" else jiwer.process_characters
    size = (lambda text: len(text.split())) if unit == "words" else len
    scored = [(r, p) for r, p in zip(references, predictions) if r.strip()]
    substitutions = deletions = insertions = total = 0
    if scored:
        output = process([r for r, _ in scored], [p for _, p in scored])
        substitutions, deletions, insertions = output.substitutions, output.deletions, output.insertions
        total = sum(size(r) for r, _ in scored)
    # An empty reference has no words to hit: every predicted unit is an insertion.
    insertions += sum(size(p) for r, p in zip(references, predictions) if not r.strip())
    return substitutions, deletions, insertions, total


def _content_words(text):
    return set(text.split()) - ENGLISH_STOP_WORDS


def _hallucination_rate(references, predictions):
    pairs = [(_content_words(r), _content_words(p)) for r, p in zip(references, predictions)]
    pairs = [(r, p) for r, p in pairs if r]
    return sum(not (r & p) for r, p in pairs) / len(pairs) if pairs else 0.0


def _rate(errors, total):
    if total == 0:
        return 0.0 if errors == 0 else float("inf")
    return errors / total


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Wer(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
            reference_urls=["https://github.com/openai/whisper/blob/main/whisper/normalizers/english.py"],
        )

    def _compute(self, predictions, references, normalizer="english", spelling_mapping=None):
        normalize = _normalizer(normalizer, spelling_mapping)
        references = [normalize(text) for text in references]
        predictions = [normalize(text) for text in predictions]
        substitutions, deletions, insertions, words = _error_counts(references, predictions, "words")
        char_errors = _error_counts(references, predictions, "characters")
        return {
            "wer": _rate(substitutions + deletions + insertions, words),
            "cer": _rate(sum(char_errors[:3]), char_errors[3]),
            "words": words,
            "substitutions": substitutions,
            "deletions": deletions,
            "insertions": insertions,
            "hallucination_rate": _hallucination_rate(references, predictions),
        }
