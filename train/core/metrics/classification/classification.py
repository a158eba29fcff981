"""Accuracy and macro-F1 over text labels (intent, emotion, speaker traits), as an `evaluate` metric module."""

import datasets
import evaluate
from sklearn.metrics import accuracy_score, f1_score

_DESCRIPTION = """
Accuracy and macro-averaged F1 for classification answered in words. Labels are compared after lower-casing,
trimming and dropping a final full stop, so "Happy." matches "happy". Macro-F1 averages over the labels that
occur in the references; a prediction outside them counts as wrong.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[str]`): predicted labels (generated text).
    references (`list[str]`): true labels.
    normalize (`bool`, defaults to `True`): case- and punctuation-insensitive comparison.
Returns:
    `accuracy` (0-1), `macro_f1` (0-1), `labels` (number of reference labels).
Example:
    >>> metric = evaluate.load("path/to/metrics/classification")
    >>> metric.compute(predictions=["Happy.", "sad"], references=["happy", "angry"])["accuracy"]
    0.5
"""

_CITATION = """
@article{pedregosa2011scikit,
  title={Scikit-learn: Machine Learning in {P}ython},
  author={Pedregosa, F. and others},
  journal={JMLR},
  volume={12},
  pages={2825--2830},
  year={2011}
}
"""


def normalize_label(text):
    return " ".join(text.strip().lower().rstrip(".!").split())


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Classification(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _compute(self, predictions, references, normalize=True):
        if normalize:
            predictions = [normalize_label(text) for text in predictions]
            references = [normalize_label(text) for text in references]
        labels = sorted(set(references))
        return {
            "accuracy": float(accuracy_score(references, predictions)),
            "macro_f1": float(f1_score(references, predictions, labels=labels, average="macro", zero_division=0)),
            "labels": len(labels),
        }
