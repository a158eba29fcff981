"""Time of `SpeechTokenSelector.fit` (the project's Lasso speech-token selection) versus the number of clips.

One round is the whole fit as `voxlm classify` calls it: `SpeechTokenSelector(vocabulary, C=C).fit(tokens, labels)`
on the token strings of each clip, i.e. token strings -> sparse bag of audio tokens -> TF-IDF -> max-abs scaling ->
L1 logistic regression (saga, class-balanced, the selector's default `max_iter` and `tol`) -> the tokens whose
weight is above the mean. Building the corpus is not timed.

The clips come from `benchmarks/token_corpus.py`: 4 s of 8-level RVQ codes (1024 codes each, 50 frames per
second), 3 classes, 8 label-carrying tokens per class. C = 0.3 keeps most of the 24 label-carrying tokens, and
nothing else, from 125 clips up; the paper's C of 0.0025-0.03 keeps none on a few hundred clips of this data
(C = 0.03: none from 250 clips, 7 from 500).
"""

from __future__ import annotations

import numpy as np

from voxlm.processing import SpeechTokenSelector

from .timing import Cell
from .token_corpus import CODES, FRAME_RATE, LEVELS, synthetic_units, unit_vocabulary

CLIP_SECONDS = 4.0
CLASSES = 3
INFORMATIVE = 8  # label-carrying tokens per class
C = 0.3
SEED = 0


class SelectionBenchmark:
    """One timing cell per clip count: `SpeechTokenSelector.fit` on that many clips."""

    def __init__(self, clip_counts: list[int], c: float = C, seed: int = SEED):
        self.vocabulary = unit_vocabulary(LEVELS, CODES)
        self.c, self.seed = c, seed
        frames = int(CLIP_SECONDS * FRAME_RATE)
        self.data = {
            count: synthetic_units(count, LEVELS, CODES, frames, INFORMATIVE, seed, classes=CLASSES)
            for count in clip_counts
        }
        self.token_types = {count: int(np.unique(ids).size) for count, (ids, _, _) in self.data.items()}
        self.selectors: dict[int, SpeechTokenSelector] = {}  # the last fitted selector per clip count

    def warm_up(self) -> None:
        """One untimed fit, so that no timed round pays the first import of scikit-learn and scipy."""
        self._work(min(self.data))()
        self.selectors.clear()

    def cells(self) -> list[Cell]:
        return [Cell(("lasso", count), self._work(count)) for count in self.data]

    def _work(self, count: int):
        ids, labels, _ = self.data[count]
        # Token strings per clip, as `voxlm classify` passes them (`SpeechUnitTokenizer.tokenize`, or a dataset's
        # token column); mapping them to vocabulary indices is part of the fit.
        sequences = np.asarray(self.vocabulary, dtype=object)[ids].tolist()

        def fit():
            self.selectors[count] = SpeechTokenSelector(self.vocabulary, C=self.c, seed=self.seed).fit(
                sequences, labels
            )

        return fit

    def summary(self, count: int) -> dict:
        """What the last fit on `count` clips selected (empty before the first fit)."""
        selector = self.selectors.get(count)
        if selector is None:
            return {}
        label_tokens = {self.vocabulary[i] for i in self.data[count][2]}
        return {
            "C": selector.report["C"],
            "max_iter": selector.max_iter,
            "token_types": self.token_types[count],  # distinct tokens in the clips, of len(vocabulary)
            "nonzero_weights": selector.report["nonzero_audio_weights"],
            "selected_tokens": len(selector.kept_tokens),
            "label_tokens_recovered": f"{len(label_tokens & set(selector.kept_tokens))}/{len(label_tokens)}",
        }
