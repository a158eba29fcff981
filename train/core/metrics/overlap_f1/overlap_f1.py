"""Precision/recall/F1 of overlapping items (slots, keywords, answer words), as an `evaluate` metric module."""

import collections
import re
import string

import datasets
import evaluate

_DESCRIPTION = """
Micro-averaged precision, recall and F1 of the items a prediction shares with its reference, plus exact match.
Items are the pieces between `separator` (e.g. "; " for slot filling "date: monday; city: paris", ", " for
keyword lists), or with `separator=None` the words of the text (SQuAD-style answer F1). Items are compared after
lower-casing, dropping punctuation at their ends and collapsing spaces; repeated items count as often as they occur.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[str]`): generated item lists or answers.
    references (`list[str]`): the reference item lists or answers.
    separator (`str`, *optional*): item separator; `None` splits into words.
Returns:
    `precision`, `recall`, `f1`, `exact_match` (all 0-1).
Example:
    >>> metric = evaluate.load("path/to/metrics/overlap_f1")
    >>> metric.compute(predictions=["city: paris; date: monday"], references=["date: Monday; city: Paris"],
    ...                separator=";")["f1"]
    1.0
"""

_CITATION = """
@inproceedings{rajpurkar2016squad,
  title={{SQuAD}: 100,000+ Questions for Machine Comprehension of Text},
  author={Rajpurkar, Pranav and Zhang, Jian and Lopyrev, Konstantin and Liang, Percy},
  booktitle={EMNLP},
  year={2016}
}
"""


def split_items(text, separator):
    pieces = text.split(separator) if separator else text.split()
    items = [" ".join(piece.strip().strip(string.punctuation).lower().split()) for piece in pieces]
    if not separator:
        items = [re.sub(r"\b(a|an|the)\b", "", item).strip() for item in items]
    return collections.Counter(item for item in items if item)


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class OverlapF1(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _compute(self, predictions, references, separator=None):
        shared = predicted = expected = exact = 0
        for prediction, reference in zip(predictions, references):
            predicted_items, reference_items = split_items(prediction, separator), split_items(reference, separator)
            shared += sum((predicted_items & reference_items).values())
            predicted += sum(predicted_items.values())
            expected += sum(reference_items.values())
            exact += int(predicted_items == reference_items)
        precision = shared / predicted if predicted else float(expected == 0)
        recall = shared / expected if expected else float(predicted == 0)
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return {
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "exact_match": exact / len(predictions) if predictions else 0.0,
        }
