"""The engine behind `voxlm chat`: a VoxLM model (and optionally the Whisper -> LLM cascade) answering a multi-turn
conversation, token by token, with timings.

A conversation is kept per browser session ([`Conversation`]); the model is shared. Each answer streams through
transformers' `TextIteratorStreamer` while `generate` runs in a thread, and ends with [`Timings`]: the clip's length,
the audio positions the language model read for it, the time to the first token and the decoding speed.

This file travels to Hugging Face Spaces beside `app.py` (`voxlm push --space`): it imports only numpy, torch,
transformers and soundfile, and the model is loaded the way a Hub user loads it (`trust_remote_code=True`).
"""

import copy
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModel, AutoProcessor, StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

# Instructions the page offers; the first three are prompts the shipped model was trained with.
PRESETS = {
    "Repeat what was said": "Repeat exactly what was said.",
    "Answer the question": "Answer the spoken question.",
    "Continue": "Continue the following text in a coherent and engaging style with less than 40 words.",
    "Summarise": "Summarise what was said in one sentence.",
}
STREAM_TIMEOUT = 600.0  # seconds without a new token before the page gives up on a generation


def load_model(name_or_path: str | Path, **load_kwargs):
    """A VoxLM model and its processor from a folder or Hub id, as a Hub user loads them (`trust_remote_code`).

    `load_kwargs` go to `AutoModel.from_pretrained` (e.g. `dtype=torch.bfloat16`, or a quantization option).
    """
    name_or_path = str(name_or_path)
    looks_local = name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1
    if looks_local and not Path(name_or_path).expanduser().exists():
        raise FileNotFoundError(f"{name_or_path} does not exist; pass a VoxLM folder or a Hub id such as user/model.")
    if Path(name_or_path).exists() and not (Path(name_or_path) / "config.json").is_file():
        raise FileNotFoundError(
            f"{name_or_path} has no config.json: it is not a saved model. Pass a VoxLM folder (a training run's "
            "final folder, a `voxlm push --dry-run` export) or a Hub id."
        )
    load_kwargs.setdefault("trust_remote_code", True)
    model = AutoModel.from_pretrained(name_or_path, **load_kwargs).eval()
    processor = AutoProcessor.from_pretrained(name_or_path, trust_remote_code=load_kwargs["trust_remote_code"])
    if not hasattr(processor, "audio_token") or not hasattr(model, "get_audio_features"):
        raise ValueError(
            f"{name_or_path} is a {type(model).__name__} with a {type(processor).__name__}, not a VoxLM model; "
            "`voxlm chat` needs a model whose processor takes audio in the chat template."
        )
    return model, processor


@dataclass
class Settings:
    """Generation settings of the page's collapsed panel. `temperature=0` means greedy decoding (the default)."""

    max_new_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0
    system_prompt: str = ""
    seed: int = 0

    def generate_kwargs(self) -> dict:
        if self.max_new_tokens < 1:
            raise ValueError(f"max new tokens must be at least 1, got {self.max_new_tokens}.")
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise ValueError(f"temperature must be >= 0 and top-p in (0, 1]; got {self.temperature}, {self.top_p}.")
        if self.temperature == 0:
            return {"max_new_tokens": int(self.max_new_tokens), "do_sample": False}
        return {
            "max_new_tokens": int(self.max_new_tokens),
            "do_sample": True,
            "temperature": float(self.temperature),
            "top_p": float(self.top_p),
        }


@dataclass
class Timings:
    """How fast one answer came. Times count from the moment the turn was handed to the system, so the time to the
    first token includes feature extraction, the speech encoder and the prefill (and, for the cascade, Whisper)."""

    first_token_seconds: float
    tokens: int
    tokens_per_second: float  # decoding speed: tokens after the first over the time since the first
    seconds: float
    clip_seconds: float | None = None
    audio_positions: int | None = None  # language-model positions this turn's clip took
    transcribe_seconds: float | None = None  # cascade only: Whisper's share of the time to the first token

    def describe(self) -> str:
        parts = []
        if self.clip_seconds is not None:
            parts.append(f"clip {self.clip_seconds:.1f} s")
        if self.audio_positions is not None:
            parts.append(f"{self.audio_positions} audio positions")
        if self.transcribe_seconds is not None:
            parts.append(f"Whisper {self.transcribe_seconds:.2f} s")
        parts.append(f"first token {self.first_token_seconds:.2f} s")
        parts.append(f"{self.tokens_per_second:.1f} tokens/s")
        return " · ".join(parts)


@dataclass
class Reply:
    """One streamed update: the answer so far; `timings` is set on the last update only."""

    text: str
    timings: Timings | None = None
    transcript: str | None = None  # cascade: what Whisper heard


@dataclass
class Conversation:
    """One session's conversation: VoxLM's messages (audio items) and the cascade's (Whisper's transcripts instead).

    Messages use the processor's chat format; a turn is added only once it has been answered, so an error leaves the
    conversation as it was.
    """

    messages: list[dict] = field(default_factory=list)
    cascade_messages: list[dict] = field(default_factory=list)

    def add(self, user: dict, answer: str, cascade_user: dict | None = None, cascade_answer: str | None = None):
        self.messages += [user, {"role": "assistant", "content": answer}]
        if cascade_user is not None:
            self.cascade_messages += [cascade_user, {"role": "assistant", "content": cascade_answer or ""}]

    def copy(self) -> "Conversation":
        return copy.deepcopy(self)


def user_message(clip: np.ndarray | None, text: str) -> dict:
    """A user turn: the clip first, then the text on its own line (the layout VoxLM's recipes train with)."""
    content = [{"type": "audio", "audio": clip}] if clip is not None else []
    if text:
        content.append({"type": "text", "text": text})
    if not content:
        raise ValueError("Nothing to send: record or upload a clip, or type a message.")
    return {"role": "user", "content": content}


def cascade_message(transcript: str | None, text: str) -> dict:
    """The same user turn for the cascade: Whisper's transcript where the clip was."""
    return {"role": "user", "content": "\n".join(part for part in (transcript, text) if part)}


class _TimedStreamer(TextIteratorStreamer):
    """`TextIteratorStreamer` that also records when each new token arrives (a token may decode to no text yet, so
    the text queue alone cannot count tokens)."""

    def __init__(self, tokenizer, timeout: float):
        super().__init__(tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=timeout)
        self.token_times: list[float] = []

    def put(self, value):
        if not (self.skip_prompt and self.next_tokens_are_prompt):
            self.token_times += [time.perf_counter()] * int(value.numel())
        super().put(value)


class _StopWhenSet(StoppingCriteria):
    """Ends a generation whose reader went away (a closed page), so that it does not hold the model."""

    def __init__(self, event: threading.Event):
        self.event = event

    def __call__(self, input_ids, scores, **kwargs) -> torch.BoolTensor:
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


class ChatEngine:
    """A VoxLM model answering conversations, optionally beside the Whisper -> LLM cascade.

    Args:
        model, processor: a VoxLM model and its processor (see [`load_model`]).
        asr_model, asr_processor: a Whisper model (`WhisperForConditionalGeneration`) and its processor for the
            cascade; the cascade's LLM is the VoxLM model's own language model, given Whisper's transcript.
        name: how the page names the model.
    """

    def __init__(self, model, processor, asr_model=None, asr_processor=None, name: str | None = None):
        self.model = model
        self.processor = processor
        self.asr_model = asr_model
        self.asr_processor = asr_processor
        self.name = name or getattr(model.config, "_name_or_path", "") or type(model).__name__
        # One generation at a time: the model is shared by every session, and the cores by both systems.
        self._lock = threading.Lock()

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, asr_model: str | Path | None = None, **load_kwargs):
        """Load a VoxLM folder or Hub id (`load_kwargs` as in [`load_model`]) and, with `asr_model`, the cascade's
        Whisper model (a folder or Hub id)."""
        model, processor = load_model(name_or_path, **load_kwargs)
        asr, asr_processor = (None, None) if asr_model is None else load_whisper(asr_model)
        return cls(model, processor, asr, asr_processor, name=str(name_or_path))

    @property
    def has_cascade(self) -> bool:
        return self.asr_model is not None

    @property
    def sampling_rate(self) -> int:
        return self.processor.feature_extractor.sampling_rate

    # -------------------------------------------------------------------------------------------------- audio
    def read_audio(self, source, sampling_rate: int | None = None) -> np.ndarray:
        """A clip for the model: a file path (any format soundfile reads, any rate, any channels) or an array at
        `sampling_rate`. Resampled and down-mixed by the processor, which also rejects empty, too short and
        non-finite audio with its own message (`ValueError`)."""
        if isinstance(source, (str, Path)):
            source, sampling_rate = _read_file(source)
        return self.processor.check_audio(source, sampling_rate, resample=True, downmix=True)[0]

    def audio_positions(self, clip: np.ndarray) -> int:
        """Language-model positions the model gives a clip (the processor's length formula)."""
        frames = self.processor.extract_features([clip])["input_features_mask"].sum(-1)
        return int(self.processor.num_audio_positions(frames)[0])

    def transcribe(self, clip: np.ndarray) -> str:
        """Whisper's transcript of a clip; clips longer than its 30 s window are transcribed window after window
        (Whisper's long-form generation with timestamps), never cut."""
        # Not `voxlm.train.offline.speech.transcribe`: that one cuts at 30 s (short-form), and a Space has no voxlm.
        if not self.has_cascade:
            raise ValueError("No cascade: load the engine with `asr_model=` (`voxlm chat --cascade`).")
        extractor = self.asr_processor.feature_extractor
        long_form = len(clip) > extractor.n_samples
        features = extractor(
            clip,
            sampling_rate=self.sampling_rate,
            return_tensors="pt",
            return_attention_mask=True,
            **({"truncation": False, "padding": "longest"} if long_form else {}),
        )
        with self._lock, torch.inference_mode():
            tokens = self.asr_model.generate(
                features.input_features.to(self.asr_model.dtype),
                attention_mask=features.attention_mask,
                **({"return_timestamps": True} if long_form else {}),
            )
        return self.asr_processor.batch_decode(tokens, skip_special_tokens=True)[0].strip()

    # ---------------------------------------------------------------------------------------------- answering
    def stream(
        self, conversation: Conversation, user: dict, settings: Settings | None = None, clip: np.ndarray | None = None
    ) -> Iterator[Reply]:
        """VoxLM's answer to `user` (see [`user_message`]) after `conversation`, streamed; the conversation is not
        changed. `clip` (the turn's audio, if any) only feeds the timings."""
        settings = settings or Settings()
        started = time.perf_counter()
        messages = _with_system(conversation.messages + [user], settings.system_prompt)
        inputs = self.processor.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=True, sampling_rate=self.sampling_rate
        )
        extra = {}
        if clip is not None:
            extra = {
                "clip_seconds": len(clip) / self.sampling_rate,
                "audio_positions": int(self.processor.num_audio_positions(inputs["input_features_mask"].sum(-1))[-1]),
            }
        yield from self._generate(inputs, settings, started, extra)

    def stream_cascade(
        self, conversation: Conversation, text: str, settings: Settings | None = None, clip: np.ndarray | None = None
    ) -> Iterator[Reply]:
        """The cascade's answer to the same turn: Whisper transcribes `clip`, the language model answers the
        transcript (followed by `text`) after `conversation.cascade_messages`."""
        settings = settings or Settings()
        started = time.perf_counter()
        transcript = self.transcribe(clip) if clip is not None else None
        heard = time.perf_counter()
        user = cascade_message(transcript, text)
        messages = _with_system(conversation.cascade_messages + [user], settings.system_prompt)
        inputs = self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        extra = {"transcribe_seconds": heard - started} if clip is not None else {}
        for reply in self._generate(inputs, settings, started, extra):
            reply.transcript = transcript
            yield reply

    def _generate(self, inputs, settings: Settings, started: float, extra: dict) -> Iterator[Reply]:
        """Run `generate` in a thread and stream its text; the last reply carries the timings."""
        self._check_length(inputs["input_ids"].shape[1])
        inputs = inputs.to(self.model.device)
        if "input_features" in inputs:
            inputs["input_features"] = inputs["input_features"].to(self.model.dtype)
        tokenizer = self.processor.tokenizer
        streamer = _TimedStreamer(tokenizer, timeout=STREAM_TIMEOUT)
        abandoned = threading.Event()
        kwargs = {
            **inputs,
            **settings.generate_kwargs(),
            "streamer": streamer,
            "pad_token_id": tokenizer.pad_token_id,
            "stopping_criteria": StoppingCriteriaList([_StopWhenSet(abandoned)]),
        }
        errors: list[BaseException] = []

        def run() -> None:
            try:
                with self._lock, torch.inference_mode():
                    if kwargs["do_sample"]:
                        torch.manual_seed(settings.seed)  # under the lock: sampling is reproducible per seed
                    self.model.generate(**kwargs)
            except BaseException as error:  # shown in the page; the streamer must still end
                errors.append(error)
                streamer.end()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        text = ""
        try:
            for piece in streamer:
                text += piece
                yield Reply(text)
        finally:  # also when the reader closes this generator early
            abandoned.set()
            thread.join()
        if errors:
            raise errors[0]
        yield Reply(text.strip(), _timings(streamer.token_times, started, **extra))

    def _check_length(self, prompt_length: int) -> None:
        config = getattr(self.model.config, "text_config", self.model.config)
        limit = getattr(config, "max_position_embeddings", None)
        if limit is not None and prompt_length >= limit:
            raise ValueError(
                f"The conversation is {prompt_length} positions long but the language model reads at most {limit}; "
                "start a new conversation or send a shorter clip."
            )


def load_whisper(name_or_path: str | Path):
    """A Whisper model and processor for the cascade."""
    from transformers import WhisperForConditionalGeneration

    model = WhisperForConditionalGeneration.from_pretrained(str(name_or_path)).eval()
    return model, AutoProcessor.from_pretrained(str(name_or_path))


def _read_file(path) -> tuple[np.ndarray, int]:
    try:
        import soundfile
    except ImportError as error:  # pragma: no cover - a dependency of voxlm and of the Space
        raise ImportError("Reading audio files needs soundfile: pip install soundfile") from error
    try:
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=False)
    except (RuntimeError, TypeError) as error:  # soundfile's errors for unknown formats
        raise ValueError(
            f"Cannot read {Path(path).name} as audio ({error}); use WAV, FLAC, OGG or MP3, or record with the "
            "microphone."
        ) from error
    return data, rate


def _with_system(messages: list[dict], system_prompt: str) -> list[dict]:
    return [{"role": "system", "content": system_prompt}] + messages if system_prompt.strip() else messages


def _timings(token_times: list[float], started: float, **extra) -> Timings:
    if not token_times:
        return Timings(0.0, 0, 0.0, time.perf_counter() - started, **extra)
    first = token_times[0] - started
    decoding = token_times[-1] - token_times[0]
    rate = (len(token_times) - 1) / decoding if decoding > 0 else len(token_times) / max(first, 1e-9)
    return Timings(first, len(token_times), rate, token_times[-1] - started, **extra)


__all__ = [
    "PRESETS",
    "ChatEngine",
    "Conversation",
    "Reply",
    "Settings",
    "Timings",
    "cascade_message",
    "load_model",
    "load_whisper",
    "user_message",
]
