import evaluate
import jiwer
import numpy as np
import pytest
import sacrebleu
from sklearn.metrics import f1_score

from voxlm.train.core.metrics import METRICS, METRICS_DIR, compute_metric, load_metric, metric_path, word_error_rate


@pytest.mark.parametrize("name", METRICS)
def test_metric_modules_load_offline_from_their_folder(name):
    module = evaluate.load(str(METRICS_DIR / name))
    assert module.name == name  # loaded from the folder, without the Hub
    assert set(module.features) == {"predictions", "references"}


def test_wer_normalises_like_whisper_and_equals_jiwer_on_normalised_text():
    predictions = ["Hello, World!", "the cat sat on a mat", "twenty five percent", ""]
    references = ["hello world", "The cat sat on the mat.", "25%", "nothing was said"]
    result = compute_metric("wer", predictions, references)
    expected = jiwer.wer(
        ["hello world", "the cat sat on the mat", "25%", "nothing was said"],
        ["hello world", "the cat sat on a mat", "25%", ""],
    )
    assert result["wer"] == pytest.approx(expected)
    assert result["words"] == 12 and result["substitutions"] == 1 and result["deletions"] == 3
    raw = compute_metric("wer", predictions, references, normalizer="none")
    assert raw["wer"] > result["wer"]
    assert compute_metric("wer", ["un deux"], [""])["insertions"] == 2  # empty references are allowed
    with pytest.raises(ValueError, match="'english', 'basic' or 'none'"):
        compute_metric("wer", ["a"], ["a"], normalizer="french")


def test_word_error_rate_helper_scores_through_the_wer_module():
    assert word_error_rate(["Mr. Smith has ten apples."], ["mister smith has 10 apples"]) == 0.0
    assert word_error_rate(["the cat sat down"], ["the cat sad"]) == 0.5
    assert word_error_rate(["a b", ""], ["a b", "extra words"]) == 1.0  # insertions against an empty ref
    with pytest.raises(ValueError, match="2 references but 1 hypotheses"):
        word_error_rate(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="empty after normalization"):
        word_error_rate(["", "Uh, um."], ["a", "b"])  # fillers are normalised away


def test_bleu_equals_sacrebleu():
    predictions = ["the cat is on the mat", "a dog barks loudly at night"]
    references = ["the cat sat on the mat", "the dog barks loudly at night"]
    result = compute_metric("bleu", predictions, references)
    assert result["bleu"] == pytest.approx(sacrebleu.corpus_bleu(predictions, [references]).score)
    assert result["chrf"] == pytest.approx(sacrebleu.corpus_chrf(predictions, [references]).score)


def test_classification_accuracy_and_macro_f1():
    predictions = ["Happy.", "sad", "happy", "angry", "bored"]
    references = ["happy", "angry", "happy", "angry", "sad"]
    result = compute_metric("classification", predictions, references)
    normalised = ["happy", "sad", "happy", "angry", "bored"]
    assert result["accuracy"] == pytest.approx(3 / 5)
    assert result["macro_f1"] == pytest.approx(
        f1_score(references, normalised, labels=["angry", "happy", "sad"], average="macro", zero_division=0)
    )


def test_overlap_f1_on_items_and_words():
    slots = compute_metric(
        "overlap_f1",
        ["city: paris; date: monday", "city: rome"],
        ["date: Monday; city: Paris.", "city: oslo; time: noon"],
        separator=";",
    )
    assert slots["precision"] == pytest.approx(2 / 3) and slots["recall"] == pytest.approx(2 / 4)
    assert slots["f1"] == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))
    assert slots["exact_match"] == 0.5
    words = compute_metric("overlap_f1", ["the Eiffel tower"], ["Eiffel Tower, in Paris"])
    assert words["precision"] == 1.0 and words["recall"] == pytest.approx(0.5)


def test_unknown_metric_names_the_choices(tmp_path):
    with pytest.raises(ValueError, match="Shipped metrics: wer, bleu"):
        metric_path("rouge")
    assert load_metric(str(METRICS_DIR / "wer")).compute(predictions=["a b"], references=["a b"])["wer"] == 0.0
    assert np.isinf(compute_metric("wer", ["a"], [""])["wer"])


def test_hallucination_rate_counts_answers_with_no_content_word_of_the_reference():
    from voxlm.train.core.metrics import hallucination_rate

    references = ["He was not an ill disposed young man.", "Go forward ten meters.", "It is what it is.", "Paris"]
    hypotheses = ["He was not an angel of God.", "The company has a new project.", "Anything at all.", "paris!"]
    # 1 and 2 share only stop words ("he", "was", "not", "an") or nothing; 3's reference is all stop words and is left
    # out; 4 shares "paris".
    assert hallucination_rate(references, hypotheses) == pytest.approx(2 / 3)
    assert hallucination_rate(["the red kettle"], ["a kettle"]) == 0.0
    with pytest.raises(ValueError, match="2 references but 1 hypotheses"):
        hallucination_rate(["a b", "c d"], ["a b"])
