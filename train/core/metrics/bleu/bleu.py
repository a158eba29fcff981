"""Corpus BLEU (and chrF) with sacrebleu, as an `evaluate` metric module loadable offline from its folder."""

import datasets
import evaluate
import sacrebleu

_DESCRIPTION = """
Corpus-level BLEU computed by sacrebleu (default 13a tokenisation, exponential smoothing), with chrF alongside.
One reference per prediction.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[str]`): translations to score.
    references (`list[str]`): one reference translation each.
    tokenize (`str`, defaults to `"13a"`): sacrebleu tokeniser (`"13a"`, `"intl"`, `"zh"`, `"ja-mecab"`, `"char"`,
        `"none"`, ...).
    lowercase (`bool`, defaults to `False`): case-insensitive BLEU.
Returns:
    `bleu` (0-100), `chrf` (0-100), `brevity_penalty`, `precisions` (1- to 4-gram, 0-100).
Example:
    >>> metric = evaluate.load("path/to/metrics/bleu")
    >>> round(metric.compute(predictions=["the cat sat on the mat"], references=["the cat sat on the mat"])["bleu"])
    100
"""

_CITATION = """
@inproceedings{post-2018-call,
  title={A Call for Clarity in Reporting {BLEU} Scores},
  author={Post, Matt},
  booktitle={Proceedings of the Third Conference on Machine Translation},
  year={2018}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Bleu(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
            reference_urls=["https://github.com/mjpost/sacrebleu"],
        )

    def _compute(self, predictions, references, tokenize="13a", lowercase=False):
        bleu = sacrebleu.corpus_bleu(predictions, [references], tokenize=tokenize, lowercase=lowercase)
        chrf = sacrebleu.corpus_chrf(predictions, [references])
        return {
            "bleu": bleu.score,
            "chrf": chrf.score,
            "brevity_penalty": bleu.bp,
            "precisions": list(bleu.precisions),
        }
