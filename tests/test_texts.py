"""Open English text: clean sentences from the Debian sources, and held-out texts kept out of training."""

import re

import pytest

from voxlm.train.offline import texts
from voxlm.train.offline.sentences import normalize_text


def _installed(source: str) -> bool:
    try:
        texts.open_sentences(source)
        return True
    except texts.MissingTextSourceError:
        return False


@pytest.mark.parametrize("source", sorted(texts.SOURCES))
def test_every_sentence_is_plain_complete_english(source):
    if not _installed(source):
        pytest.skip(f"Debian package {texts.SOURCES[source]} is not installed")
    sentences = texts.open_sentences(source)
    assert len(sentences) > 3000
    for sentence in sentences:
        assert texts.MIN_WORDS <= len(sentence.split()) <= texts.MAX_WORDS, sentence
        assert re.fullmatch(r"\"?[A-Z][A-Za-z0-9 ,.;:!?'\"-]*[.!?]\"?", sentence), sentence
    keys = [normalize_text(sentence) for sentence in sentences]
    assert len(set(keys)) == len(keys)  # no two sentences say the same words


def test_cleaning_drops_what_a_reader_would_not_say():
    assert texts._clean("  A  light wife doth make\na heavy husband. ") == "A light wife doth make a heavy husband."
    assert texts._clean("\u201cIt\u2019s late,\u201d she said.") == '"It\'s late," she said.'
    for bad in (
        "Too short.",
        "Q: What is it?",
        "lowercase start is a fragment.",
        "No final punctuation here",
        "SHOUTING IS NOT A SENTENCE.",
        "Call 555-0100 or visit http://x.org now.",
        'He said "go and left.',
    ):
        assert texts._clean(bad) is None, bad


def test_missing_source_names_its_package(monkeypatch, tmp_path):
    monkeypatch.setitem(texts._READERS, "gcide", (texts.gcide, tmp_path / "nowhere.dz"))
    texts.open_sentences.cache_clear()
    try:
        with pytest.raises(texts.MissingTextSourceError, match=r"apt-get install dict-gcide"):
            texts.open_sentences("gcide")
        assert texts.available_sources(["gcide"]) == []
    finally:
        texts.open_sentences.cache_clear()
    with pytest.raises(ValueError, match="Unknown text source 'news'"):
        texts.open_sentences("news")


def test_filter_rejects_exact_and_near_duplicates_of_held_out_texts():
    keep = texts.TextFilter(["I pulled a muscle in my leg when I jumped up.", "Which planet do we live on?"], ngram=6)
    assert not keep("i pulled a muscle in my leg when i jumped up")  # same words, other case and punctuation
    assert not keep("Yesterday I pulled a muscle in my leg when I jumped up high.")  # contains a 6-word run
    assert keep("I pulled a muscle in the back.")  # shares only 5 words in a row
    assert keep("Which planet is the largest?")
    assert texts.vocabulary(["The cat sat.", "the Dog sat"]) == {"the", "cat", "dog", "sat"}


def test_open_questions_are_answered_by_their_own_answers():
    from voxlm.train.offline.sentences import answer_is_correct

    questions = texts.open_questions()
    assert len(questions) == len({q.question for q in questions}) >= 40
    for item in questions:
        assert item.question.endswith("?") and answer_is_correct(f"It is {item.answer}.", item)
