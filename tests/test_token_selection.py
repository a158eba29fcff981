"""Lasso token selection, the random / all / none baselines, the bag of tokens and the saved JSON."""

import json

import numpy as np
import pytest
from tiny_speechtok import synthetic_corpus

from voxlm.processing import SpeechTokenSelector, bag_of_tokens
from voxlm.processing.token_selection import SELECTION_FILE

VOCABULARY = [f"<|a{level}_{code}|>" for level in range(2) for code in range(60)]
BINARY_SIGNAL = {0: ["<|a0_3|>", "<|a1_7|>"], 1: ["<|a0_50|>", "<|a1_22|>"]}
THREE_CLASSES = {0: ["<|a0_3|>"], 1: ["<|a1_40|>"], 2: ["<|a0_11|>", "<|a1_2|>"]}


def signal_tokens(signal: dict) -> set[str]:
    return {token for tokens in signal.values() for token in tokens}


@pytest.mark.parametrize("signal", [BINARY_SIGNAL, THREE_CLASSES])
def test_lasso_recovers_the_tokens_that_carry_the_label(signal):
    clips, labels, _ = synthetic_corpus(300, VOCABULARY, signal)
    selector = SpeechTokenSelector(VOCABULARY, C=0.1).fit(clips, labels)
    assert set(selector.kept_tokens) == signal_tokens(signal)
    assert selector.kept_tokens == sorted(selector.kept_tokens, key=VOCABULARY.index)
    assert set(selector.weights) == set(selector.kept_tokens)
    if len(signal) == 2:  # signed weights: class-1 tokens push towards class 1
        assert all(selector.weights[token] > 0 for token in BINARY_SIGNAL[1])
        assert all(selector.weights[token] < 0 for token in BINARY_SIGNAL[0])


def test_lasso_with_text_top_k_and_cross_validated_C():
    clips, labels, texts = synthetic_corpus(300, VOCABULARY, BINARY_SIGNAL)
    with_text = SpeechTokenSelector(VOCABULARY, C=0.1, use_text=True).fit(clips, labels, texts=texts)
    assert set(with_text.kept_tokens) == signal_tokens(BINARY_SIGNAL)
    top = SpeechTokenSelector(VOCABULARY, C=0.1, top_k=2).fit(clips, labels)
    assert len(top.kept_tokens) == 2 and set(top.kept_tokens) <= signal_tokens(BINARY_SIGNAL)
    searched = SpeechTokenSelector(VOCABULARY, Cs=[0.0001, 0.1], cv=3).fit(clips, labels)
    assert searched.report["C"] == 0.1
    assert searched.report["cv_macro_f1"]["0.1"] > searched.report["cv_macro_f1"]["0.0001"]
    with pytest.raises(ValueError, match="one text per clip"):
        SpeechTokenSelector(VOCABULARY, use_text=True).fit(clips, labels)


def test_random_selection_is_reproducible_per_seed_and_draws_seen_tokens():
    clips, labels, _ = synthetic_corpus(50, VOCABULARY[:80], BINARY_SIGNAL)  # most level-1 codes never occur
    draws = [
        SpeechTokenSelector(VOCABULARY, method="random", num_tokens=12, seed=s).fit(clips, labels) for s in (0, 0, 1)
    ]
    assert draws[0].kept_tokens == draws[1].kept_tokens
    assert draws[0].kept_tokens != draws[2].kept_tokens
    seen = {token for clip in clips for token in clip}
    assert all(len(draw.kept_tokens) == 12 and set(draw.kept_tokens) <= seen for draw in draws)
    with pytest.raises(ValueError, match="needs `num_tokens`"):
        SpeechTokenSelector(VOCABULARY, method="random")
    assert len(seen) < len(VOCABULARY)
    with pytest.raises(ValueError, match=f"only {len(seen)} occur"):
        SpeechTokenSelector(VOCABULARY, method="random", num_tokens=len(seen) + 1).fit(clips, labels)


def test_all_and_none_baselines():
    assert SpeechTokenSelector(VOCABULARY, method="all").fit([], []).kept_tokens == VOCABULARY
    assert SpeechTokenSelector(VOCABULARY, method="none").fit([], []).kept_tokens == []


def test_bag_of_tokens_counts_ids_and_strings_like_a_dense_reference():
    rng = np.random.default_rng(0)
    sequences = [rng.integers(0, len(VOCABULARY), size) for size in (0, 5, 300)]
    reference = np.zeros((3, len(VOCABULARY)))
    for row, sequence in enumerate(sequences):
        np.add.at(reference[row], sequence, 1)
    from_ids = bag_of_tokens(sequences, VOCABULARY)
    from_strings = bag_of_tokens([[VOCABULARY[i] for i in sequence] for sequence in sequences], VOCABULARY)
    assert from_ids.format == "csr" and from_strings.format == "csr"
    np.testing.assert_array_equal(from_ids.toarray(), reference)
    np.testing.assert_array_equal(from_strings.toarray(), reference)
    with pytest.raises(ValueError, match="'<\\|zz\\|>' is not in the selector's vocabulary"):
        bag_of_tokens([["<|zz|>"]], VOCABULARY)


def test_selector_round_trips_through_json(tmp_path):
    clips, labels, _ = synthetic_corpus(200, VOCABULARY, THREE_CLASSES)
    selector = SpeechTokenSelector(VOCABULARY, C=0.1, seed=3).fit(clips, labels)
    selector.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / SELECTION_FILE).read_text())
    assert [item["token"] for item in saved["kept_tokens"]] == selector.kept_tokens
    assert all(item["weight"] > 0 for item in saved["kept_tokens"])
    reloaded = SpeechTokenSelector.from_pretrained(tmp_path)
    assert reloaded.kept_tokens == selector.kept_tokens
    assert reloaded.weights == selector.weights
    assert [reloaded.filter(clip) for clip in clips] == [selector.filter(clip) for clip in clips]
    assert reloaded.to_dict() == selector.to_dict()
    with pytest.raises(ValueError, match="not fitted"):
        SpeechTokenSelector(VOCABULARY).filter(clips[0])
