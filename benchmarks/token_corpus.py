"""The synthetic corpus of speech units that the token-selection benchmarks fit on.

Codec units stand in for real ones: per clip, `frames` frames at 50 per second with one code per RVQ level
(Zipf-distributed codes, level `l` offset by `l * codes` so that every level has its own ids), and a label. A few
tokens per class carry the label: `3 * informative` positions of each clip are overwritten with tokens of its
class, so the L1 model has something to find. Used by `lasso_selection` (the `lasso` section of `compare_peers`)
and by `token_selection_speed`.
"""

from __future__ import annotations

import numpy as np

LEVELS = 8  # RVQ codebooks
CODES = 1024  # codes per codebook
FRAME_RATE = 50  # codec frames per second


def unit_vocabulary(levels: int = LEVELS, codes: int = CODES) -> list[str]:
    """Audio tokens in vocabulary-index order: `<|a{level}_{code}|>`, id `level * codes + code`."""
    return [f"<|a{level}_{code}|>" for level in range(levels) for code in range(codes)]


def synthetic_units(
    clips: int, levels: int, codes: int, frames: int, informative: int, seed: int, classes: int = 2
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit ids (clips, frames * levels) frame by frame, labels in `range(classes)`, and the ids that carry the label.

    `informative` label-carrying ids per class; the ids of class `k` are `carriers[k * informative:(k + 1) *
    informative]`.
    """
    rng = np.random.default_rng(seed)
    zipf = 1.0 / np.arange(1, codes + 1) ** 0.9
    zipf /= zipf.sum()
    ids = rng.choice(codes, size=(clips, frames, levels), p=zipf) + np.arange(levels) * codes
    labels = rng.integers(0, classes, clips)
    carriers = rng.choice(levels * codes, size=classes * informative, replace=False)
    for clip, label in enumerate(labels):  # a few frames of each clip use its class's tokens
        chosen = carriers[label * informative : (label + 1) * informative]
        frame_ids = ids[clip].reshape(-1)
        frame_ids[rng.choice(frame_ids.size, 3 * informative, replace=False)] = rng.choice(chosen, 3 * informative)
    return ids.reshape(clips, -1), labels, carriers
