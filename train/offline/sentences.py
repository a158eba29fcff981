"""Offline English text for synthetic speech: varied sentences and spoken questions with short answers.

`sentences(n, split, seed)` draws statements, questions, commands, numbers, times, names and places from templates
and word lists. `spoken_questions(split)` is a fixed set of questions with one-word answers (arithmetic, capitals,
colours, opposites, ...) for spoken-QA evaluation, scored with `answer_is_correct`.

Splits are disjoint by construction: a stable hash of the text decides whether a sentence or question belongs to
`"train"` or `"held_out"`, whatever the seed or the number asked for.
"""

import dataclasses
import functools
import random
import zlib
from collections.abc import Callable

SPLITS = ("train", "held_out")
HELD_OUT_SENTENCE_SHARE = 0.1
HELD_OUT_QUESTION_SHARE = 0.3

# --------------------------------------------------------------------------------------------- word lists
NAMES = (
    "Alice", "Ben", "Carla", "David", "Emma", "Farid", "Grace", "Hugo", "Irene", "Jack", "Kara", "Leo", "Maria",
    "Noah", "Olivia", "Peter", "Quinn", "Rosa", "Sam", "Tara", "Umar", "Vera", "William", "Yusuf", "Zoe", "Anna",
    "Brian", "Chloe", "Daniel", "Elena", "George", "Hannah", "Isaac", "Julia", "Kevin", "Laura", "Martin", "Nina",
    "Oscar", "Paula", "Ryan", "Sofia", "Thomas", "Lucy", "Victor", "Helen", "Mark", "Susan", "James", "Amy",
)  # fmt: skip
CITIES = (
    "London", "Paris", "Berlin", "Madrid", "Rome", "Tokyo", "Boston", "Chicago", "Toronto", "Sydney", "Dublin",
    "Lisbon", "Vienna", "Prague", "Oslo", "Cairo", "Seattle", "Denver", "Mumbai", "Seoul", "Athens", "Warsaw",
)  # fmt: skip
NOUNS = (
    "book", "lamp", "chair", "letter", "bottle", "basket", "blanket", "camera", "candle", "guitar", "hammer",
    "jacket", "kettle", "ladder", "mirror", "notebook", "pencil", "pillow", "radio", "suitcase", "ticket",
    "umbrella", "wallet", "window", "bicycle", "carpet", "clock", "cup", "key", "map", "box", "phone", "picture",
    "plant", "scarf", "shoe", "spoon", "table", "towel", "drawer",
)  # fmt: skip
ANIMALS = ("dog", "cat", "horse", "rabbit", "fox", "bird", "duck", "sheep", "goat", "mouse", "owl", "bear", "frog")
FOODS = (
    "bread", "cheese", "soup", "rice", "pasta", "salad", "coffee", "tea", "apples", "oranges", "carrots", "eggs",
    "milk", "butter", "honey", "chocolate", "pizza", "potatoes", "grapes", "lemons",
)  # fmt: skip
ADJECTIVES = (
    "old", "new", "small", "large", "heavy", "light", "bright", "dark", "quiet", "noisy", "clean", "dirty", "warm",
    "cold", "soft", "hard", "strange", "beautiful", "broken", "empty", "famous", "tiny", "huge", "lovely",
)  # fmt: skip
COLOURS = ("red", "blue", "green", "yellow", "black", "white", "orange", "purple", "brown", "pink", "grey")
PLACES = (
    "kitchen", "garden", "office", "library", "station", "market", "park", "school", "hospital", "museum", "bakery",
    "airport", "beach", "hotel", "garage", "cinema", "bank", "church", "bridge", "harbour",
)  # fmt: skip
ROOMS = ("kitchen", "bedroom", "bathroom", "living room", "hallway", "office", "garage", "basement")
APPLIANCES = ("lights", "heating", "radio", "television", "fan", "oven", "music", "alarm", "computer", "dishwasher")
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November",
    "December",
)  # fmt: skip
WEATHER = ("sunny", "rainy", "windy", "cloudy", "snowy", "foggy", "warm", "cold", "stormy", "dry")
PAST_VERBS = (
    "found", "lost", "painted", "repaired", "bought", "sold", "borrowed", "carried", "cleaned", "opened", "moved",
    "dropped", "hid", "washed", "wrapped", "forgot",
)  # fmt: skip
COMMAND_VERBS = ("bring", "move", "clean", "open", "close", "check", "find", "pack", "wrap", "hide", "fetch")
PREPOSITIONS = ("on", "under", "behind", "next to", "near", "in front of", "beside", "inside")
CONTAINERS = ("box", "basket", "bag", "drawer", "jar", "bowl", "cupboard", "fridge")
RELATIVES = ("sister", "brother", "mother", "father", "aunt", "uncle", "cousin", "grandmother", "friend")
EMOTIONS = ("happy", "tired", "excited", "nervous", "calm", "hungry", "proud", "surprised", "bored", "curious")
VEHICLES = ("train", "bus", "ferry", "plane", "tram", "coach")
ACTIVITIES = (
    "play tennis", "go swimming", "read a book", "bake a cake", "watch a film", "visit the museum", "cook dinner",
    "go for a walk", "learn to dance", "write a letter", "plant some flowers", "ride a bicycle",
)  # fmt: skip

ONES = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
    "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen",
)  # fmt: skip
TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")


def number_words(number: int) -> str:
    """English words for 0 <= number < 1,000,000 ("three hundred and twelve")."""
    if not 0 <= number < 1_000_000:
        raise ValueError(f"number_words handles 0 to 999999, got {number}")
    if number < 20:
        return ONES[number]
    if number < 100:
        tens, ones = divmod(number, 10)
        return TENS[tens] + (f" {ONES[ones]}" if ones else "")
    if number < 1000:
        hundreds, rest = divmod(number, 100)
        return f"{ONES[hundreds]} hundred" + (f" and {number_words(rest)}" if rest else "")
    thousands, rest = divmod(number, 1000)
    joiner = " and " if 0 < rest < 100 else " "
    return f"{number_words(thousands)} thousand" + (joiner + number_words(rest) if rest else "")


def _plural(noun: str) -> str:
    if noun.endswith(("s", "x", "ch", "sh")):
        return noun + "es"
    if noun.endswith("y") and noun[-2] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + "s"


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _time(rng: random.Random) -> str:
    hour, minute = rng.randint(1, 12), rng.choice((0, 0, 5, 10, 15, 20, 30, 40, 45, 50))
    style = rng.random()
    if minute == 0:
        return f"{number_words(hour)} o'clock" if style < 0.5 else f"{hour} {rng.choice(('am', 'pm'))}"
    if style < 0.5:
        return f"{hour}:{minute:02d}"
    return f"{number_words(minute)} past {number_words(hour)}" if minute <= 30 else f"{hour}:{minute:02d}"


def _count(rng: random.Random, low: int = 2, high: int = 40) -> str:
    """A count as digits or words: speech models must cope with both spellings."""
    number = rng.randint(low, high)
    return str(number) if rng.random() < 0.5 else number_words(number)


# ---------------------------------------------------------------------------------------------- templates
def _statement(rng: random.Random) -> str:
    noun, adj = rng.choice(NOUNS), rng.choice(ADJECTIVES)
    forms = (
        lambda: f"{rng.choice(NAMES)} {rng.choice(PAST_VERBS)} the {adj} {noun} in the {rng.choice(PLACES)}.",
        lambda: f"The {rng.choice(COLOURS)} {noun} is {rng.choice(PREPOSITIONS)} the {rng.choice(NOUNS)}.",
        lambda: f"My {rng.choice(RELATIVES)} keeps {_article(adj)} {adj} {noun} {rng.choice(PREPOSITIONS)} the bed.",
        lambda: f"The {rng.choice(ANIMALS)} slept {rng.choice(PREPOSITIONS)} the {rng.choice(NOUNS)} all afternoon.",
        lambda: f"We had {rng.choice(FOODS)} and {rng.choice(FOODS)} for lunch on {rng.choice(DAYS)}.",
        lambda: f"The {rng.choice(PLACES)} was {rng.choice(ADJECTIVES)} and {rng.choice(ADJECTIVES)} this morning.",
        lambda: f"I feel {rng.choice(EMOTIONS)} because the {noun} finally arrived.",
        lambda: f"Nobody knew why the {rng.choice(ANIMALS)} was hiding {rng.choice(PREPOSITIONS)} the {noun}.",
    )
    return rng.choice(forms)()


def _question(rng: random.Random) -> str:
    noun = rng.choice(NOUNS)
    forms = (
        lambda: f"Where did {rng.choice(NAMES)} put the {rng.choice(ADJECTIVES)} {noun}?",
        lambda: f"What time does the {rng.choice(VEHICLES)} to {rng.choice(CITIES)} leave?",
        lambda: f"How many {_plural(noun)} are in the {rng.choice(CONTAINERS)}?",
        lambda: f"Can you tell me the way to the {rng.choice(PLACES)}?",
        lambda: f"Why is the {noun} so {rng.choice(ADJECTIVES)} today?",
        lambda: f"Did {rng.choice(NAMES)} remember to buy {rng.choice(FOODS)}?",
        lambda: f"Is it going to be {rng.choice(WEATHER)} in {rng.choice(CITIES)} on {rng.choice(DAYS)}?",
        lambda: f"Who left the {rng.choice(COLOURS)} {noun} in the {rng.choice(ROOMS)}?",
        lambda: f"Would you like to {rng.choice(ACTIVITIES)} with {rng.choice(NAMES)} this weekend?",
    )
    return rng.choice(forms)()


def _command(rng: random.Random) -> str:
    forms = (
        lambda: f"Please {rng.choice(COMMAND_VERBS)} the {rng.choice(NOUNS)} in the {rng.choice(ROOMS)}.",
        lambda: f"Turn {rng.choice(('on', 'off'))} the {rng.choice(APPLIANCES)} in the {rng.choice(ROOMS)}.",
        lambda: f"Set an alarm for {_time(rng)} on {rng.choice(DAYS)}.",
        lambda: f"Call {rng.choice(NAMES)} at {_time(rng)}.",
        lambda: f"Add {_count(rng, 2, 12)} {rng.choice(FOODS)} to the shopping list.",
        lambda: f"Remind me to {rng.choice(ACTIVITIES)} next {rng.choice(DAYS)}.",
        lambda: f"Send a message to {rng.choice(NAMES)} saying I will be late.",
        lambda: (
            f"Play some {rng.choice(('quiet', 'happy', 'old', 'new', 'relaxing'))} music in the {rng.choice(ROOMS)}."
        ),
    )
    return rng.choice(forms)()


def _numbers(rng: random.Random) -> str:
    forms = (
        lambda: f"The meeting starts at {_time(rng)}.",
        lambda: f"There are {_count(rng)} {_plural(rng.choice(ANIMALS))} on the farm.",
        lambda: f"The train leaves from platform {_count(rng, 1, 12)}.",
        lambda: f"It costs {_count(rng, 3, 99)} dollars.",
        lambda: f"My room number is {rng.randint(100, 999)}.",
        lambda: f"The recipe needs {_count(rng, 2, 8)} cups of {rng.choice(('flour', 'sugar', 'milk', 'water'))}.",
        lambda: f"{rng.choice(NAMES)} was born in {rng.randint(1950, 2015)}.",
        lambda: f"We walked {_count(rng, 2, 30)} miles on {rng.choice(DAYS)}.",
        lambda: f"The shop is open from {rng.randint(7, 10)} until {rng.randint(5, 9)} in the evening.",
    )
    return rng.choice(forms)()


def _people_and_places(rng: random.Random) -> str:
    first, second = rng.sample(NAMES, 2)
    forms = (
        lambda: f"{first} lives in {rng.choice(CITIES)} with {rng.choice(('her', 'his'))} {rng.choice(RELATIVES)}.",
        lambda: f"{first} and {second} went to {rng.choice(CITIES)} last {rng.choice(MONTHS)}.",
        lambda: f"It will be {rng.choice(WEATHER)} in {rng.choice(CITIES)} on {rng.choice(DAYS)}.",
        lambda: f"{first} met {second} at the {rng.choice(PLACES)} on {rng.choice(DAYS)} morning.",
        lambda: f"{first} wants to {rng.choice(ACTIVITIES)} in {rng.choice(MONTHS)}.",
        lambda: f"The flight from {rng.choice(CITIES)} to {rng.choice(CITIES)} was {rng.choice(ADJECTIVES)}.",
    )
    return rng.choice(forms)()


SENTENCE_KINDS: dict[str, Callable[[random.Random], str]] = {
    "statement": _statement,
    "question": _question,
    "command": _command,
    "numbers": _numbers,
    "people_and_places": _people_and_places,
}


def _split_of(text: str, held_out_share: float) -> str:
    """A stable split for `text` (crc32, not Python's salted `hash`), so splits never overlap."""
    return "held_out" if zlib.crc32(text.lower().encode()) % 1000 < held_out_share * 1000 else "train"


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")


def sentences(n: int, split: str = "train", seed: int = 0, kinds: tuple[str, ...] | None = None) -> list[str]:
    """`n` distinct English sentences of `split` ("train" or "held_out"), the same for the same arguments.

    Sentences mix the `kinds` (default: all of `SENTENCE_KINDS`) evenly. About 10% of all sentences the templates
    can make belong to "held_out"; no sentence is in both splits.
    """
    _check_split(split)
    kinds = kinds or tuple(SENTENCE_KINDS)
    unknown = set(kinds) - set(SENTENCE_KINDS)
    if unknown:
        raise ValueError(f"Unknown sentence kinds {sorted(unknown)}; choose from {list(SENTENCE_KINDS)}.")
    rng = random.Random(f"{seed}-{split}")
    found: dict[str, None] = {}  # insertion-ordered set
    attempts = 0
    while len(found) < n:
        attempts += 1
        if attempts > 200 * n + 10_000:
            raise ValueError(f"Could only make {len(found)} distinct {split} sentences of kinds {kinds}, not {n}.")
        text = SENTENCE_KINDS[kinds[len(found) % len(kinds)]](rng)
        if _split_of(text, HELD_OUT_SENTENCE_SHARE) == split:
            found[text] = None
    return list(found)


# ------------------------------------------------------------------------------------------ spoken QA
@dataclasses.dataclass(frozen=True)
class SpokenQuestion:
    """A question to ask aloud and its short reference answer (`aliases` are other accepted spellings)."""

    question: str
    answer: str
    category: str
    aliases: tuple[str, ...] = ()


CAPITALS = {
    "France": "Paris", "Germany": "Berlin", "Italy": "Rome", "Spain": "Madrid", "Japan": "Tokyo",
    "England": "London", "Russia": "Moscow", "Egypt": "Cairo", "Greece": "Athens", "Portugal": "Lisbon",
    "Ireland": "Dublin", "Austria": "Vienna", "Norway": "Oslo", "Poland": "Warsaw", "China": "Beijing",
    "Canada": "Ottawa", "Kenya": "Nairobi", "Peru": "Lima", "Sweden": "Stockholm", "Finland": "Helsinki",
    "Denmark": "Copenhagen", "Belgium": "Brussels", "Hungary": "Budapest", "Thailand": "Bangkok",
    "Argentina": "Buenos Aires", "Cuba": "Havana", "Turkey": "Ankara", "Mexico": "Mexico City",
}  # fmt: skip
COLOUR_FACTS = {
    "the sky on a clear day": "blue", "grass": "green", "a banana": "yellow", "snow": "white", "coal": "black",
    "a ripe tomato": "red", "an orange": "orange", "a lemon": "yellow", "milk": "white", "a strawberry": "red",
    "a frog": "green", "chocolate": "brown", "the sun": "yellow", "a lime": "green", "an elephant": "grey",
}  # fmt: skip
OPPOSITES = {
    "hot": "cold", "big": "small", "up": "down", "fast": "slow", "happy": "sad", "light": "dark", "open": "closed",
    "early": "late", "full": "empty", "old": "young", "wet": "dry", "hard": "soft", "high": "low", "left": "right",
    "day": "night", "black": "white", "in": "out", "yes": "no", "win": "lose", "thick": "thin", "long": "short",
    "rich": "poor", "clean": "dirty", "loud": "quiet", "strong": "weak", "first": "last", "push": "pull",
}  # fmt: skip
ANIMAL_SOUNDS = {"moo": "cow", "woof": "dog", "meow": "cat", "quack": "duck", "oink": "pig", "baa": "sheep",
                 "neigh": "horse", "hoot": "owl", "roar": "lion", "hiss": "snake"}  # fmt: skip
COLOUR_ALIASES = {"grey": ("gray",)}
OPPOSITE_ALIASES = {"closed": ("shut",), "small": ("little",), "dark": ("darkness",), "quiet": ("silent",)}


def _arithmetic_questions() -> list[SpokenQuestion]:
    items = []
    for a in range(1, 11):
        for b in range(1, 11):
            words_a, words_b = number_words(a), number_words(b)
            items.append(SpokenQuestion(f"What is {words_a} plus {words_b}?", number_words(a + b), "arithmetic"))
            if a > b:
                items.append(SpokenQuestion(f"What is {words_a} minus {words_b}?", number_words(a - b), "arithmetic"))
            if a <= 5 and b <= 5:
                items.append(SpokenQuestion(f"What is {words_a} times {words_b}?", number_words(a * b), "arithmetic"))
    return items


def _sequence_questions() -> list[SpokenQuestion]:
    items = []
    for names, kind in ((DAYS, "day"), (MONTHS, "month")):
        for index, name in enumerate(names):
            following = names[(index + 1) % len(names)]
            items.append(SpokenQuestion(f"What {kind} comes after {name}?", following, "sequence"))
    for number in range(1, 20):
        question = f"What number comes after {number_words(number)}?"
        items.append(SpokenQuestion(question, number_words(number + 1), "sequence"))
    return items


def _all_questions() -> list[SpokenQuestion]:
    items = _arithmetic_questions() + _sequence_questions()
    items += [SpokenQuestion(f"What is the capital of {c}?", city, "capital") for c, city in CAPITALS.items()]
    items += [
        SpokenQuestion(f"What colour is {thing}?", colour, "colour", COLOUR_ALIASES.get(colour, ()))
        for thing, colour in COLOUR_FACTS.items()
    ]
    items += [
        SpokenQuestion(f"What is the opposite of {word}?", opposite, "opposite", OPPOSITE_ALIASES.get(opposite, ()))
        for word, opposite in OPPOSITES.items()
    ]
    items += [
        SpokenQuestion(f"Which animal says {sound}?", animal, "animal", (_plural(animal),))
        for sound, animal in ANIMAL_SOUNDS.items()
    ]
    return items


def spoken_questions(split: str | None = None, categories: tuple[str, ...] | None = None) -> list[SpokenQuestion]:
    """Questions with short answers, in a fixed order; `split` ("train"/"held_out", disjoint) or all of them."""
    if split is not None:
        _check_split(split)
    items = [
        item
        for item in _all_questions()
        if (split is None or _split_of(item.question, HELD_OUT_QUESTION_SHARE) == split)
        and (categories is None or item.category in categories)
    ]
    return items


def answer_is_correct(prediction: str, item: SpokenQuestion) -> bool:
    """Whether `prediction` contains the answer (or an alias) as whole words, after Whisper's English normalizer
    (so "5", "five" and "Five." all match "five")."""
    words = f" {normalize_text(prediction)} "
    return any(f" {normalize_text(answer)} " in words for answer in (item.answer, *item.aliases))


# ------------------------------------------------------------------------------------------ scoring text
@functools.lru_cache
def _english_normalizer():
    from transformers.models.whisper.english_normalizer import EnglishTextNormalizer

    # Whisper's own normalizer (case, punctuation, contractions, "mr" -> "mister", number words -> digits); the
    # British -> American spelling table is a Hub file, so spellings are left as they are.
    return EnglishTextNormalizer({})


def normalize_text(text: str) -> str:
    """Whisper's English text normalization, used before every word error rate and answer comparison."""
    return _english_normalizer()(text)
