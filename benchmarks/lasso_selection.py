"""Time of the speech-token selection (bag of audio tokens -> TF-IDF -> max-abs scaling -> L1 logistic regression)
versus the number of clips.

The pipeline is built here from scikit-learn as Calbucura & Barriere describe it (TF-IDF over the bag of audio
tokens, `MaxAbsScaler`, L1 `LogisticRegression` with saga and balanced classes, then the tokens whose weight is
above the mean). It should switch to the project's own selector (`voxlm.processing.token_selection`) once that
module exists, so that the benchmark times the code users run.

The clips are synthetic: 2-6 s of 8-level RVQ codes (1024 codes each, 50 frames per second), with a few codes per
class and level drawn more often, so that the L1 model has something to find. C = 0.3 keeps tens of tokens on
this data; the paper's C of 0.0025-0.03 keeps almost none here (its data and vectoriser settings differ).
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MaxAbsScaler

from .timing import Cell

LEVELS = 8  # RVQ codebooks
CODES = 1024  # codes per codebook
FRAME_RATE = 50  # codec frames per second
INFORMATIVE_CODES = 12  # per class and level, drawn more often in that class's clips
C = 0.3
SEED = 0


def synthetic_token_clips(num_clips: int, num_classes: int = 3, seed: int = SEED) -> tuple[list[str], np.ndarray]:
    """Clips of 2-6 s as space-separated audio tokens `q{level}_{code}`; class-dependent code frequencies."""
    rng = np.random.default_rng(seed)
    base = 1.0 / np.arange(1, CODES + 1) ** 1.1  # Zipf-like code usage
    informative = rng.integers(0, CODES, size=(num_classes, LEVELS, INFORMATIVE_CODES))
    labels = rng.integers(0, num_classes, size=num_clips)
    documents = []
    for label in labels:
        frames = int(rng.uniform(2, 6) * FRAME_RATE)
        words = []
        for level in range(LEVELS):
            weights = base.copy()
            weights[informative[label, level]] *= 10
            codes = rng.choice(CODES, size=frames, p=weights / weights.sum())
            words.append(" ".join(f"q{level}_{code}" for code in codes))
        documents.append(" ".join(words))
    return documents, labels


def selection_pipeline(c: float = C):
    return make_pipeline(
        TfidfVectorizer(token_pattern=r"\S+", lowercase=False),
        MaxAbsScaler(),
        LogisticRegression(l1_ratio=1.0, solver="saga", C=c, class_weight="balanced", max_iter=200, tol=1e-3),
    )


def selected_tokens(pipeline) -> list[str]:
    """Tokens whose largest absolute weight (over classes) is above the mean of the non-zero ones."""
    vocabulary = pipeline[0].get_feature_names_out()
    weights = np.abs(pipeline[-1].coef_).max(axis=0)
    nonzero = weights[weights > 0]
    if nonzero.size == 0:
        return []
    return [str(token) for token in vocabulary[weights > nonzero.mean()]]


class SelectionBenchmark:
    """One timing cell per clip count: fit the whole pipeline and pick the tokens."""

    def __init__(self, clip_counts: list[int]):
        self.data = {count: synthetic_token_clips(count) for count in clip_counts}
        self.selected: dict[int, dict] = {}

    def cells(self) -> list[Cell]:
        return [Cell(("lasso", count), self._work(count)) for count in self.data]

    def _work(self, count: int):
        documents, labels = self.data[count]

        def fit():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)  # max_iter bounds the time; n_iter is reported
                pipeline = selection_pipeline().fit(documents, labels)
            self.selected[count] = {
                "selected_tokens": len(selected_tokens(pipeline)),
                "nonzero_weights": int((pipeline[-1].coef_ != 0).any(axis=0).sum()),
                "vocabulary": len(pipeline[0].vocabulary_),
                "saga_iterations": int(pipeline[-1].n_iter_.max()),
            }

        return fit
