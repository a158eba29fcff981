"""Open English text from offline Debian packages, for speech that is not generated from templates.

Sources (a missing package is skipped with a warning that names it):

| source | package | what | clean sentences |
|---|---|---|---|
| `fortunes` | `fortunes` | quotations, jokes, proverbs, song lines (minus ASCII art and code) | 13,603 |
| `gcide` | `dict-gcide` | quotations in the GNU Collaborative International Dictionary of English | 4,617 |
| `wordnet` | `wordnet-base` | WordNet's example sentences (everyday English) | 8,702 |

`open_sentences(source)` gives every cleaned sentence of a source in a fixed order; `TextFilter` removes texts that
repeat (exactly, or by a shared run of words) any text held out for evaluation, so that no evaluation sentence is
ever spoken in training. VoxLM's shipped recipe trains on `fortunes` and `gcide` and keeps `wordnet` whole for
evaluation (a text source the model never heard).
"""

import functools
import gzip
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from transformers.utils import logging

from .sentences import normalize_text

logger = logging.get_logger(__name__)

FORTUNES_DIR = Path("/usr/share/games/fortunes")
GCIDE_FILE = Path("/usr/share/dictd/gcide.dict.dz")
WORDNET_DIR = Path("/usr/share/wordnet")
SOURCES = {"fortunes": "fortunes", "gcide": "dict-gcide", "wordnet": "wordnet-base"}  # source -> Debian package
# Fortune files that are pictures, code, jargon or other languages rather than sentences to be spoken.
FORTUNE_FILES_SKIPPED = frozenset(
    {"art", "ascii-art", "perl", "linux", "linuxcookie", "computers", "debian", "translate-me", "zippy", "startrek",
     "disclaimer", "knghtbrd", "paradoxum"}
)  # fmt: skip
MIN_WORDS, MAX_WORDS = 4, 25
# Plain written English only: letters, digits and the punctuation a reader voices or ignores.
_SPEAKABLE = re.compile(r"[A-Za-z0-9 ,.;:!?'\"-]+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"])")
_TYPOGRAPHY = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2014": " - ", "\t": " "})


class MissingTextSourceError(FileNotFoundError):
    """A text source's Debian package is not installed; the message names it."""


def _clean(text: str, min_words: int = MIN_WORDS, max_words: int = MAX_WORDS) -> str | None:
    """One sentence as a reader would speak it, or None when it is not plain, complete English of a usable length."""
    text = re.sub(r"\s+", " ", text.translate(_TYPOGRAPHY)).strip()
    if len(text) > 1 and text[0] == text[-1] == '"':  # a quotation as a whole
        text = text[1:-1].strip()
    if text.count('"') % 2:  # an unbalanced quote: a fragment of a longer quotation
        return None
    words = text.split()
    if not min_words <= len(words) <= max_words or not _SPEAKABLE.fullmatch(text):
        return None
    if not text.lstrip('"')[:1].isupper() or text.isupper() or text.rstrip('"')[-1:] not in ".!?":
        return None
    if re.search(r"\b[A-Z]:|\.\.|--|\b[A-Z]{4,}\b", text):  # dialogue labels (Q:), elisions, dashes, shouting
        return None
    return text


def _sentences_of(paragraph: str) -> list[str]:
    return _SENTENCE_END.split(re.sub(r"\s+", " ", paragraph).strip())


def fortunes() -> list[str]:
    """Sentences of the fortune cookie files (attributions dropped)."""
    sentences = []
    for path in sorted(FORTUNES_DIR.iterdir()):
        if path.suffix or path.name in FORTUNE_FILES_SKIPPED or not path.is_file():
            continue
        for fortune in path.read_text(encoding="utf-8", errors="replace").split("\n%\n"):
            body = " ".join(line for line in fortune.splitlines() if not line.strip().startswith("--"))
            sentences += _sentences_of(body)
    return sentences


def gcide() -> list[str]:
    """Quotations of the dictionary (the text between quotes that precedes an author, `"..." --Author`)."""
    text = gzip.open(GCIDE_FILE, "rt", encoding="latin-1").read()
    quotations = re.findall(r'"([A-Z][^"]{10,300}?)" ?--', re.sub(r"\s*\n\s*", " ", text))
    return [sentence for quotation in quotations for sentence in _sentences_of(quotation)]


def wordnet() -> list[str]:
    """WordNet's example sentences (the quoted examples after each gloss), ending punctuation added."""
    sentences = []
    for part in ("noun", "verb", "adj", "adv"):
        for line in (WORDNET_DIR / f"data.{part}").read_text(encoding="latin-1").splitlines():
            if "|" not in line:
                continue
            for example in re.findall(r'"([^"]+)"', line.split("|", 1)[1]):
                example = example.strip().rstrip(";").strip()
                sentences.append(example if example[-1:] in ".!?" else example + ".")
    return sentences


_READERS = {"fortunes": (fortunes, FORTUNES_DIR), "gcide": (gcide, GCIDE_FILE), "wordnet": (wordnet, WORDNET_DIR)}


@functools.lru_cache
def open_sentences(source: str) -> tuple[str, ...]:
    """Every clean sentence of `source` (see the module table), deduplicated, in a fixed order."""
    if source not in _READERS:
        raise ValueError(f"Unknown text source {source!r}; choose from {sorted(_READERS)}.")
    reader, location = _READERS[source]
    if not location.exists():
        raise MissingTextSourceError(
            f"The text source {source!r} needs the Debian package {SOURCES[source]} ({location} is missing): "
            f"`sudo apt-get install {SOURCES[source]}`, or run `bash scripts/setup.sh` as root."
        )
    seen, kept = set(), []
    for sentence in map(_clean, reader()):
        key = sentence and normalize_text(sentence)
        if key and key not in seen:
            seen.add(key)
            kept.append(sentence)
    return tuple(kept)


def available_sources(sources: Iterable[str]) -> list[str]:
    """The sources whose packages are installed; a warning names the package of each missing one."""
    found = []
    for source in sources:
        try:
            open_sentences(source)
            found.append(source)
        except MissingTextSourceError as error:
            logger.warning(f"skipping text source: {error}")
    return found


class TextFilter:
    """Rejects texts that repeat a held-out text: the same words after normalisation, or any shared run of `ngram`
    consecutive words (near duplicates such as a quotation inside a longer one)."""

    def __init__(self, held_out: Iterable[str], ngram: int = 6):
        self.ngram = ngram
        self.exact, self.shingles = set(), set()
        for text in held_out:
            words = normalize_text(text).split()
            self.exact.add(" ".join(words))
            self.shingles.update(self._shingles(words))

    def _shingles(self, words: Sequence[str]) -> set[tuple[str, ...]]:
        return {tuple(words[i : i + self.ngram]) for i in range(len(words) - self.ngram + 1)}

    def __call__(self, text: str) -> bool:
        """True when `text` may be used for training."""
        words = normalize_text(text).split()
        return " ".join(words) not in self.exact and not (self._shingles(words) & self.shingles)

    def keep(self, texts: Iterable[str]) -> list[str]:
        return [text for text in texts if self(text)]


def vocabulary(texts: Iterable[str]) -> set[str]:
    """The distinct words of `texts` after normalisation (lower case, no punctuation)."""
    return {word for text in texts for word in normalize_text(text).split()}


# Questions written by hand, in free wording, for spoken-QA evaluation only (never training text): general knowledge
# a small instruction-tuned LLM may know, each with its short answer and accepted variants.
OPEN_QUESTIONS = (
    ("Which planet do we live on?", "earth", ()),
    ("How many legs does a spider have?", "eight", ()),
    ("What do bees make?", "honey", ()),
    ("Which animal is known as the king of the jungle?", "lion", ()),
    ("What is frozen water called?", "ice", ()),
    ("How many days are there in a week?", "seven", ()),
    ("What colour do you get when you mix blue and yellow?", "green", ()),
    ("Which is the largest ocean on Earth?", "pacific", ()),
    ("Who wrote Romeo and Juliet?", "shakespeare", ()),
    ("What is the tallest animal in the world?", "giraffe", ()),
    ("Which star is closest to our planet?", "sun", ()),
    ("How many hours are there in a day?", "twenty four", ("24",)),
    ("What gas do plants take in from the air?", "carbon dioxide", ("co2",)),
    ("Which organ pumps blood through the body?", "heart", ()),
    ("In which country are the pyramids of Giza?", "egypt", ()),
    ("What do caterpillars turn into?", "butterflies", ("butterfly", "moths", "moth")),
    ("Which musical instrument has black and white keys?", "piano", ()),
    ("How many continents are there?", "seven", ()),
    ("What is the boiling point of water in degrees Celsius?", "one hundred", ("100",)),
    ("Which bird is a symbol of peace?", "dove", ()),
    ("What is the main language spoken in Brazil?", "portuguese", ()),
    ("Which season comes after winter?", "spring", ()),
    ("What do you call a baby dog?", "puppy", ()),
    ("Which metal is liquid at room temperature?", "mercury", ()),
    ("How many wheels does a bicycle have?", "two", ()),
    ("What is the capital city of Australia?", "canberra", ()),
    ("Which sense do we use our nose for?", "smell", ("smelling",)),
    ("What is the largest mammal in the sea?", "whale", ("blue whale",)),
    ("Who painted the Mona Lisa?", "leonardo", ("da vinci", "leonardo da vinci")),
    ("What shape has three sides?", "triangle", ()),
    ("Which gas do we need to breathe to stay alive?", "oxygen", ()),
    ("How many minutes are in an hour?", "sixty", ("60",)),
    ("Which fruit keeps the doctor away if you eat one a day?", "apple", ("apples",)),
    ("What is the opposite of north?", "south", ()),
    ("What does a thermometer measure?", "temperature", ()),
    ("Which insect spins a web?", "spider", ()),
    ("What is the name of our galaxy?", "milky way", ()),
    ("How many sides does a square have?", "four", ()),
    ("Which planet is known as the red planet?", "mars", ()),
    ("What do you use to write on a blackboard?", "chalk", ()),
)


def open_questions() -> list:
    """`OPEN_QUESTIONS` as `SpokenQuestion`s (category "open"), scored with `sentences.answer_is_correct`."""
    from .sentences import SpokenQuestion

    return [SpokenQuestion(question, answer, "open", aliases) for question, answer, aliases in OPEN_QUESTIONS]


__all__ = [
    "SOURCES",
    "MissingTextSourceError",
    "TextFilter",
    "available_sources",
    "fortunes",
    "OPEN_QUESTIONS",
    "gcide",
    "open_questions",
    "open_sentences",
    "vocabulary",
    "wordnet",
]
