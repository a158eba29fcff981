"""A tiny generated spoken data set: every word is a short voiced burst whose pitch depends on the word.

It is not speech, but it is deterministic, varies in length like utterances do, and carries the columns of every
built-in task (ASR, translation, intent, slots, keywords, emotion, spoken QA), so training tests run in seconds.
"""

import zlib

import numpy as np

from voxlm.processing.audio_checks import SAMPLING_RATE

WORDS = ["play", "some", "music", "turn", "the", "lights", "off", "on", "what", "time", "is", "it", "set", "alarm"]
INTENTS = {"play": "play_music", "turn": "lights", "what": "ask_time", "set": "set_alarm"}
EMOTIONS = ["happy", "sad", "angry"]
GERMAN = {
    "play": "spiele",
    "some": "etwas",
    "music": "musik",
    "turn": "schalte",
    "the": "das",
    "lights": "licht",
    "off": "aus",
    "on": "an",
    "what": "wie",
    "time": "zeit",
    "is": "ist",
    "it": "es",
    "set": "stelle",
    "alarm": "wecker",
}


def word_audio(word: str, seconds: float = 0.18, rng: np.random.Generator | None = None) -> np.ndarray:
    """A voiced burst for one word: a pitch from the word's hash, harmonics and a short fade."""
    pitch = 120 + zlib.crc32(word.encode()) % 200
    t = np.arange(int(seconds * SAMPLING_RATE)) / SAMPLING_RATE
    wave = sum(np.sin(2 * np.pi * pitch * k * t) / k for k in range(1, 4))
    fade = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.02)
    noise = 0.01 * (rng.standard_normal(t.size) if rng is not None else 0)
    return (0.3 * wave * fade + noise).astype(np.float32)


def utterance(words: list[str], rng: np.random.Generator) -> np.ndarray:
    gap = np.zeros(int(0.05 * SAMPLING_RATE), dtype=np.float32)
    pieces = [gap]
    for word in words:
        pieces += [word_audio(word, rng=rng), gap]
    return np.concatenate(pieces)


def tiny_spoken_rows(count: int, seed: int = 0) -> dict[str, list]:
    """Columns for `datasets.Dataset.from_dict`: audio (`{array, sampling_rate}`), text and one column per task."""
    rng = np.random.default_rng(seed)
    rows = {
        key: []
        for key in ("audio", "text", "translation", "intent", "slots", "keywords", "label", "question", "answer")
    }
    for _ in range(count):
        head = str(rng.choice(list(INTENTS)))
        words = [head] + [str(w) for w in rng.choice(WORDS, size=int(rng.integers(1, 7)))]
        rows["audio"].append({"array": utterance(words, rng), "sampling_rate": SAMPLING_RATE})
        rows["text"].append(" ".join(words))
        rows["translation"].append(" ".join(GERMAN[w] for w in words))
        rows["intent"].append(INTENTS[head])
        rows["slots"].append([f"word: {words[-1]}", f"count: {len(words)}"])
        rows["keywords"].append(sorted(set(words[:3])))
        rows["label"].append(EMOTIONS[len(words) % 3])
        rows["question"].append("What is the first word?")
        rows["answer"].append(head)
    return rows


def tiny_spoken_dataset(count: int = 24, seed: int = 0):
    import datasets

    return datasets.Dataset.from_dict(tiny_spoken_rows(count, seed))
