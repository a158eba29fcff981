"""VoxLM processor: a speech feature extractor and a text tokenizer, with audio placeholder expansion."""

import os

import numpy as np
from transformers import AutoFeatureExtractor, AutoTokenizer, BatchFeature, ProcessorMixin
from transformers.utils import logging

from .audio_checks import MIN_AUDIO_SECONDS, check_clip, is_single_clip, load_audio
from .audio_lengths import audio_output_lengths

logger = logging.get_logger(__name__)


class VoxLMProcessor(ProcessorMixin):
    r"""
    Turns prompts with `<|audio|>` placeholders plus audio clips into VoxLM model inputs.

    Each placeholder is expanded to exactly the number of positions the model produces for its clip, computed with
    the model's length formula (`audio_length_formula`, serialised here and in the model config). Features are
    extracted clip by clip at their real length and padded afterwards, so a clip gives the same features alone or
    in a batch.

    Args:
        feature_extractor: the speech encoder's feature extractor (Whisper, wav2vec2, wav2vec2-BERT).
        tokenizer: the language model's tokenizer, with `audio_token` added as a special token.
        chat_template (`str`, *optional*): a chat template; by default the tokenizer's own is used, with
            `{"type": "audio"}` content items rendered as `audio_token`.
        audio_token (`str`, defaults to `"<|audio|>"`): the placeholder.
        audio_length_formula (`dict`): the model config's `audio_length_formula`.
        padding_side (`str`, defaults to `"left"`): padding of `__call__` outputs; left suits batched generation.
            Training batches from `prepare_for_training`/`encode_segments` are always right-padded, so that position
            ids count from the first real token without extra bookkeeping.
    """

    def __init__(
        self,
        feature_extractor=None,
        tokenizer=None,
        chat_template: str | None = None,
        audio_token: str = "<|audio|>",
        audio_length_formula: dict | None = None,
        padding_side: str = "left",
    ):
        if audio_length_formula is None:
            raise ValueError(
                "VoxLMProcessor needs the model's `audio_length_formula` (from `VoxLMConfig`); build it with "
                "`VoxLMProcessor.from_parts(..., config=model.config)` or load a saved VoxLM folder."
            )
        if audio_token not in tokenizer.get_vocab():
            raise ValueError(
                f"The tokenizer has no {audio_token!r} token; add it with "
                f"`tokenizer.add_special_tokens({{'additional_special_tokens': [{audio_token!r}]}})`."
            )
        self.audio_token = audio_token
        self.audio_token_id = tokenizer.convert_tokens_to_ids(audio_token)
        self.audio_length_formula = audio_length_formula
        if padding_side not in ("left", "right"):
            raise ValueError(f"`padding_side` must be 'left' or 'right', got {padding_side!r}.")
        self.padding_side = padding_side
        super().__init__(feature_extractor, tokenizer, chat_template=chat_template)

    # ----------------------------------------------------------------------------------------------- assembly
    @classmethod
    def from_parts(cls, audio_model: str, text_model, config, **tokenizer_kwargs) -> "VoxLMProcessor":
        """Build a processor from an encoder's feature extractor and an LLM's tokenizer for a VoxLM `config`.

        `audio_model`/`text_model` are Hub ids or folders, or a loaded feature extractor / tokenizer. The audio token
        is added to the tokenizer; if its id differs from `config.audio_token_id`, the config is updated to match.
        """
        feature_extractor = (
            AutoFeatureExtractor.from_pretrained(audio_model)
            if isinstance(audio_model, (str, os.PathLike))
            else audio_model
        )
        tokenizer = (
            AutoTokenizer.from_pretrained(text_model, **tokenizer_kwargs)
            if isinstance(text_model, (str, os.PathLike))
            else text_model
        )
        tokenizer.add_special_tokens({"additional_special_tokens": [config.audio_token]})
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        token_id = tokenizer.convert_tokens_to_ids(config.audio_token)
        if config.audio_token_id != token_id:
            logger.info(f"Setting config.audio_token_id to the tokenizer's id {token_id}.")
            config.audio_token_id = token_id
        return cls(
            feature_extractor,
            tokenizer,
            audio_token=config.audio_token,
            audio_length_formula=config.audio_length_formula,
        )

    # ----------------------------------------------------------------------------------------- audio checks
    @property
    def sampling_rate(self) -> int:
        return self.feature_extractor.sampling_rate

    def num_audio_positions(self, input_lengths):
        """Language-model positions for clips of `input_lengths` feature frames (the model's length formula)."""
        return audio_output_lengths(input_lengths, self.audio_length_formula)

    def check_audio(
        self, audio, sampling_rate: int | None = None, resample: bool = False, downmix: bool = False
    ) -> list[np.ndarray]:
        """Validate clips and return them as mono float32 arrays at the feature extractor's rate.

        Raises `ValueError` naming the clip and the fix for: a wrong sampling rate (unless `resample=True`),
        several channels (unless `downmix=True`), integer PCM, empty, too short, or non-finite audio.
        """
        if audio is None:
            return []
        clips = [audio] if is_single_clip(audio) else list(audio)
        if sampling_rate is None:
            logger.warning_once(
                f"No `sampling_rate` given; assuming {self.sampling_rate} Hz. Pass `sampling_rate=` to have it checked."
            )
            sampling_rate = self.sampling_rate
        checked = []
        for index, clip in enumerate(clips):
            checked.append(self._check_clip(index, clip, sampling_rate, resample, downmix))
        return checked

    def _check_clip(self, index: int, clip, sampling_rate: int, resample: bool, downmix: bool) -> np.ndarray:
        return check_clip(
            index,
            clip,
            sampling_rate,
            self.sampling_rate,
            resample=resample,
            downmix=downmix,
            min_seconds=MIN_AUDIO_SECONDS,
            empty_hint=f"remove it and its {self.audio_token} placeholder",
            owner="VoxLM",
            rate_owner="the feature extractor",
        )

    # ---------------------------------------------------------------------------------------- features
    def _feature_time_axis(self) -> int:
        """Time axis of one clip's features: Whisper's (n_mels, T) is last, waveforms and filter banks first."""
        return -1 if type(self.feature_extractor).__name__.startswith("Whisper") else 0

    def extract_features(self, clips: list[np.ndarray]) -> dict[str, np.ndarray]:
        """Features of each clip at its real length, then padded: `input_features` (N, ...) and
        `input_features_mask` (N, T)."""
        per_clip = []
        for clip in clips:
            out = self.feature_extractor(
                clip, sampling_rate=self.sampling_rate, padding="longest", truncation=False, return_tensors="np"
            )
            per_clip.append((out["input_features"] if "input_features" in out else out["input_values"])[0])
        axis = self._feature_time_axis()
        lengths = np.array([features.shape[axis] for features in per_clip])
        longest = int(lengths.max())
        batch = np.zeros((len(per_clip), *_with_time(per_clip[0].shape, axis, longest)), dtype=np.float32)
        for row, features in enumerate(per_clip):
            index = [row] + [slice(None)] * features.ndim
            index[1 + axis % features.ndim] = slice(0, features.shape[axis])
            batch[tuple(index)] = features
        mask = (np.arange(longest)[None, :] < lengths[:, None]).astype(np.int64)
        return {"input_features": batch, "input_features_mask": mask}

    # -------------------------------------------------------------------------------------------- calling
    def __call__(
        self,
        text: str | list[str] | None = None,
        audio=None,
        sampling_rate: int | None = None,
        resample: bool = False,
        downmix: bool = False,
        return_tensors: str | None = "pt",
        **tokenizer_kwargs,
    ) -> BatchFeature:
        """Tokenize `text` (each `<|audio|>` expanded for its clip) and extract features of `audio`.

        `audio` holds one clip per placeholder, in the order the placeholders appear (row-major over the batch).
        Returns `input_ids`, `attention_mask`, and with audio `input_features` and `input_features_mask`.
        """
        if text is None:
            raise ValueError("VoxLMProcessor needs `text`: a prompt with one audio placeholder per clip.")
        texts = [text] if isinstance(text, str) else list(text)
        clips = self.check_audio(audio, sampling_rate, resample, downmix)
        self._check_placeholder_count(texts, len(clips))
        data = {}
        if clips:
            data = self.extract_features(clips)
            positions = self.num_audio_positions(data["input_features_mask"].sum(-1)).tolist()
            texts = self.expand_audio_placeholders(texts, positions)
        tokenizer_kwargs.setdefault("padding", True)
        tokenizer_kwargs.setdefault("padding_side", self.padding_side)
        encoded = self.tokenizer(texts, return_tensors=return_tensors, **tokenizer_kwargs)
        return BatchFeature({**encoded, **data}, tensor_type=return_tensors)

    def _check_placeholder_count(self, texts: list[str], num_clips: int) -> None:
        num_placeholders = sum(text.count(self.audio_token) for text in texts)
        if num_placeholders != num_clips:
            raise ValueError(
                f"The text contains {num_placeholders} {self.audio_token} placeholders but {num_clips} audio clips "
                f"were given; put exactly one {self.audio_token} where each clip belongs."
            )

    def expand_audio_placeholders(self, texts: list[str], positions: list[int]) -> list[str]:
        """Replace the i-th placeholder (row-major over `texts`) with `positions[i]` copies of it."""
        expanded, clip = [], 0
        for text in texts:
            pieces = text.split(self.audio_token)
            out = [pieces[0]]
            for piece in pieces[1:]:
                out.append(self.audio_token * positions[clip] + piece)
                clip += 1
            expanded.append("".join(out))
        return expanded

    # -------------------------------------------------------------------------------------- training data
    def prepare_for_training(
        self,
        prompts: str | list[str],
        responses: str | list[str],
        audio=None,
        sampling_rate: int | None = None,
        add_eos: bool = True,
        **audio_kwargs,
    ) -> BatchFeature:
        """Inputs and `labels` for supervised training: loss on each response (+ EOS), nothing else.

        `prompts` are full prompt strings (e.g. from `apply_chat_template(..., add_generation_prompt=True)`), each
        with its `<|audio|>` placeholders. Prompt and response are tokenized separately, as at generation time.
        """
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        responses = [responses] if isinstance(responses, str) else list(responses)
        if len(prompts) != len(responses):
            raise ValueError(f"Got {len(prompts)} prompts but {len(responses)} responses.")
        eos = self.tokenizer.eos_token if add_eos else ""
        segments = [[(prompt, False), (response + eos, True)] for prompt, response in zip(prompts, responses)]
        return self.encode_segments(segments, audio, sampling_rate, **audio_kwargs)

    def encode_segments(
        self, samples: list[list[tuple[str, bool]]], audio=None, sampling_rate: int | None = None, **audio_kwargs
    ) -> BatchFeature:
        """Tokenize samples given as `(text, is_target)` segments; `labels` keep only the target segments."""
        clips = self.check_audio(audio, sampling_rate, **audio_kwargs)
        self._check_placeholder_count([text for sample in samples for text, _ in sample], len(clips))
        data, positions = {}, []
        if clips:
            data = self.extract_features(clips)
            positions = self.num_audio_positions(data["input_features_mask"].sum(-1)).tolist()
        prefix = self._special_prefix_ids()
        rows, clip = [], 0
        for sample in samples:
            ids, labels = list(prefix), [-100] * len(prefix)
            for text, is_target in sample:
                count = text.count(self.audio_token)
                text = self.expand_audio_placeholders([text], positions[clip : clip + count])[0]
                clip += count
                piece = self.tokenizer(text, add_special_tokens=False)["input_ids"]
                ids += piece
                labels += piece if is_target else [-100] * len(piece)
            rows.append((ids, labels))
        return BatchFeature({**self._pad(rows), **data}, tensor_type="pt")

    def _special_prefix_ids(self) -> list[int]:
        """Ids the tokenizer puts before text (e.g. BOS); suffixes such as EOS are left out on purpose."""
        with_special = self.tokenizer("a", add_special_tokens=True)["input_ids"]
        bare = self.tokenizer("a", add_special_tokens=False)["input_ids"]
        start = next((i for i in range(len(with_special)) if with_special[i : i + len(bare)] == bare), 0)
        return with_special[:start]

    def _pad(self, rows: list[tuple[list[int], list[int]]]) -> dict[str, np.ndarray]:
        longest = max(len(ids) for ids, _ in rows)
        pad_id = self.tokenizer.pad_token_id
        input_ids = np.full((len(rows), longest), pad_id, dtype=np.int64)
        labels = np.full((len(rows), longest), -100, dtype=np.int64)
        attention = np.zeros((len(rows), longest), dtype=np.int64)
        for row, (ids, target) in enumerate(rows):
            input_ids[row, : len(ids)], labels[row, : len(ids)], attention[row, : len(ids)] = ids, target, 1
        return {"input_ids": input_ids, "attention_mask": attention, "labels": labels}

    # --------------------------------------------------------------------------------------- chat templates
    def apply_chat_template(
        self,
        conversation: list[dict] | list[list[dict]],
        chat_template: str | None = None,
        add_generation_prompt: bool = False,
        tokenize: bool = False,
        return_labels: bool = False,
        sampling_rate: int | None = None,
        **kwargs,
    ):
        """Render conversations whose content items may be `{"type": "audio", "audio": array | "path"}`.

        Audio items become the audio placeholder; text items are joined. With `tokenize=True` the rendered text
        and the collected audio go through `__call__` (or, with `return_labels=True`, labels are built so that
        only the assistant turns are trained on). Audio of several turns is taken in order. `sampling_rate` is the
        rate of the arrays; an item may give its own (`{"type": "audio", "audio": array, "sampling_rate": 8000}`),
        and files are read at the processor's rate.
        """
        batched = bool(conversation) and isinstance(conversation[0], (list, tuple))
        conversations = conversation if batched else [conversation]
        template = chat_template or self.chat_template
        flat, clips, rates = [], [], []
        for messages in conversations:
            messages, audio, audio_rates = self._flatten_messages(messages)
            flat.append(messages)
            clips += audio
            rates += audio_rates
        if return_labels or tokenize:
            clips, sampling_rate = self._clips_at_one_rate(clips, rates, sampling_rate, **kwargs)
        if return_labels:
            samples = [self._assistant_segments(messages, template) for messages in flat]
            return self.encode_segments(samples, clips or None, sampling_rate=sampling_rate, **kwargs)
        texts = [self._render(messages, template, add_generation_prompt) for messages in flat]
        if not tokenize:
            return texts if batched else texts[0]
        return self(text=texts, audio=clips or None, sampling_rate=sampling_rate, **kwargs)

    def _render(self, messages: list[dict], template: str | None, add_generation_prompt: bool) -> str:
        return self.tokenizer.apply_chat_template(
            messages, chat_template=template, add_generation_prompt=add_generation_prompt, tokenize=False
        )

    def _flatten_messages(self, messages: list[dict]) -> tuple[list[dict], list, list[int | None]]:
        """Content lists -> strings with audio placeholders, the audio they reference, in order, and each clip's
        sampling rate where known (files are read at the processor's rate; an item may name its own).

        An audio item followed by text is separated from it by a line break (`"<|audio|>\\nTranscribe..."`), the
        layout VoxLM's training recipes use.
        """
        flat, audio, rates = [], [], []
        for message in messages:
            content = message.get("content")
            if isinstance(content, str) or content is None:
                flat.append(dict(message))
                continue
            parts = []
            for item in content:
                if item.get("type") == "audio":
                    source = next((item[key] for key in ("audio", "path", "url") if key in item), None)
                    if source is None:
                        raise ValueError("An audio content item needs an `audio` array or a `path`/`url`.")
                    if isinstance(source, str):
                        audio.append(load_audio(source, self.sampling_rate))
                        rates.append(self.sampling_rate)
                    else:
                        audio.append(source)
                        rates.append(item.get("sampling_rate"))
                    parts.append(self.audio_token)
                elif item.get("type") == "text":
                    parts.append(item["text"])
                else:
                    raise ValueError(f"Unsupported content item type {item.get('type')!r}; use 'text' or 'audio'.")
            text = "".join(
                part + ("\n" if part == self.audio_token and following != self.audio_token else "")
                for part, following in zip(parts, [*parts[1:], self.audio_token])
            )
            flat.append({**message, "content": text})
        return flat, audio, rates

    def _clips_at_one_rate(
        self,
        clips: list,
        rates: list[int | None],
        sampling_rate: int | None,
        resample: bool = False,
        downmix: bool = False,
        **kwargs,
    ) -> tuple[list, int | None]:
        """Clips of different known rates (a file beside an array, items naming their rates) -> clips checked one
        by one at their own rate, all at the processor's rate; otherwise unchanged. No clip is resampled twice."""
        given = sampling_rate or self.sampling_rate
        if all(rate is None or rate == given for rate in rates):
            return clips, sampling_rate
        checked = [
            self._check_clip(index, clip, rate or given, resample, downmix)
            for index, (clip, rate) in enumerate(zip(clips, rates))
        ]
        return checked, self.sampling_rate

    def _assistant_segments(self, messages: list[dict], template: str | None) -> list[tuple[str, bool]]:
        """Split a rendered conversation into non-target and assistant (target) segments."""
        full = self._render(messages, template, add_generation_prompt=False)
        segments, cursor = [], 0
        for index, message in enumerate(messages):
            if message["role"] != "assistant":
                continue
            prompt = self._render(messages[:index], template, add_generation_prompt=True)
            turn = self._render(messages[: index + 1], template, add_generation_prompt=False)
            if not (full.startswith(prompt) and full.startswith(turn) and len(prompt) >= cursor):
                raise ValueError(
                    "The chat template does not render conversations as prefixes of each other, so assistant turns "
                    "cannot be located; build labels with `prepare_for_training(prompts, responses, audio)` instead."
                )
            segments += [(full[cursor : len(prompt)], False), (full[len(prompt) : len(turn)], True)]
            cursor = len(turn)
        segments.append((full[cursor:], False))
        return [segment for segment in segments if segment[0]]

    @property
    def model_input_names(self) -> list[str]:
        return ["input_ids", "attention_mask", "input_features", "input_features_mask"]


def _with_time(shape: tuple[int, ...], axis: int, length: int) -> tuple[int, ...]:
    shape = list(shape)
    shape[axis] = length
    return tuple(shape)


__all__ = ["VoxLMProcessor"]
