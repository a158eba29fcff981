"""Processor for text LMs that read speech units: `<|text|> words <|text_end|> <|audio|> units <|audio_end|>`.

The text tokenizer is extended with four special markers and, as added tokens, the audio tokens kept by the
selection (`SpeechTokenSelector`). A clip's units are filtered to those tokens, keeping their time order; when a
sequence is too long, both the text and the audio part are truncated so that each keeps its share. An optional
`SpeechUnitTokenizer` (`speech_units`, saved in the `speech_units/` subfolder) turns raw audio into units, so one
folder goes from audio and text to model inputs:

    processor = AutoProcessor.from_pretrained(repo, trust_remote_code=True)
    batch = processor(text=["so you are going home"], audio=[waveform], sampling_rate=16000)

Flat imports only: this file travels to Hub repositories for `trust_remote_code`.
"""

import os
from collections.abc import Sequence

from transformers import AutoTokenizer, BatchFeature, ProcessorMixin
from transformers.utils import logging

from .speech_units import SpeechUnitTokenizer

logger = logging.get_logger(__name__)

SPEECH_UNITS_FOLDER = "speech_units"


class SpeechTokenProcessor(ProcessorMixin):
    r"""
    Renders text and speech units as one token sequence for a text LM (decoder or encoder).

    Args:
        tokenizer: the LM's tokenizer. The markers and `audio_vocabulary` are added to it if missing.
        audio_vocabulary (`list[str]`, *optional*): the audio tokens the LM knows (e.g. a Lasso selection); units
            outside it are dropped. Empty for a text-only model.
        text_start, text_end, audio_start, audio_end (`str`): the markers around the two parts.
        max_length (`int`, *optional*, defaults to 512): the longest sequence, special tokens included.
        text_share (`float`, *optional*, defaults to 0.5): the share of the budget the text keeps when both parts
            are too long; a part shorter than its share leaves the rest to the other.
        chat_template (`str`, *optional*): unused, kept for the `ProcessorMixin` interface.
    """

    def __init__(
        self,
        tokenizer=None,
        audio_vocabulary: Sequence[str] | None = None,
        text_start: str = "<|text|>",
        text_end: str = "<|text_end|>",
        audio_start: str = "<|audio|>",
        audio_end: str = "<|audio_end|>",
        max_length: int | None = 512,
        text_share: float = 0.5,
        chat_template: str | None = None,
    ):
        if tokenizer is None:
            raise ValueError("SpeechTokenProcessor needs the language model's tokenizer.")
        if not 0.0 <= text_share <= 1.0:
            raise ValueError(f"`text_share` must lie in [0, 1], got {text_share}.")
        self.audio_vocabulary = list(audio_vocabulary or [])
        self.text_start, self.text_end = text_start, text_end
        self.audio_start, self.audio_end = audio_start, audio_end
        self.max_length = max_length
        self.text_share = text_share
        self.speech_units = None
        _extend_tokenizer(tokenizer, self.markers, self.audio_vocabulary)
        self.marker_ids = dict(zip(self.markers, tokenizer.convert_tokens_to_ids(self.markers)))
        self.unit_token_ids = dict(
            zip(self.audio_vocabulary, tokenizer.convert_tokens_to_ids(self.audio_vocabulary) or [])
        )
        super().__init__(tokenizer, chat_template=chat_template)
        self.prefix_ids, self.suffix_ids = _special_affixes(tokenizer)
        if max_length is not None and max_length < len(self.prefix_ids) + len(self.suffix_ids) + len(self.markers):
            raise ValueError(f"`max_length={max_length}` leaves no room for the text and the audio tokens.")

    # ---------------------------------------------------------------------------------------------- parts
    @property
    def markers(self) -> list[str]:
        return [self.text_start, self.text_end, self.audio_start, self.audio_end]

    @property
    def added_token_ids(self) -> list[int]:
        """Ids of every token this processor adds to the LM: the markers, then the audio vocabulary."""
        return list(self.marker_ids.values()) + list(self.unit_token_ids.values())

    @classmethod
    def from_parts(
        cls, tokenizer, audio_vocabulary: Sequence[str] | None = None, speech_units=None, **kwargs
    ) -> "SpeechTokenProcessor":
        """Build a processor from a tokenizer (or its Hub id/folder), the kept audio tokens and, optionally, a
        `SpeechUnitTokenizer` (or its path) that turns raw audio into units."""
        if isinstance(tokenizer, (str, os.PathLike)):
            tokenizer = AutoTokenizer.from_pretrained(tokenizer)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        processor = cls(tokenizer, audio_vocabulary=audio_vocabulary, **kwargs)
        if isinstance(speech_units, (str, os.PathLike)):
            speech_units = SpeechUnitTokenizer.from_pretrained(speech_units)
        processor.speech_units = speech_units
        return processor

    # ------------------------------------------------------------------------------------------- encoding
    def __call__(
        self,
        text: str | Sequence[str] | None = None,
        audio_tokens: Sequence[Sequence[str]] | None = None,
        audio=None,
        sampling_rate: int | None = None,
        resample: bool = False,
        labels=None,
        max_length: int | None = None,
        truncation: bool = True,
        padding: bool | str = True,
        return_special_tokens_mask: bool = False,
        return_tensors: str | None = "pt",
    ) -> BatchFeature:
        """Encode a batch: `text` (one string per example) and/or the units of one clip per example.

        Units come as `audio_tokens` (token strings per clip, e.g. from `SpeechUnitTokenizer.tokenize`) or as raw
        `audio` clips, turned into units by `self.speech_units`. Returns `input_ids`, `attention_mask` (and
        `labels`, `special_tokens_mask` when asked), padded as the tokenizer pads. With `truncation`, sequences
        longer than `max_length` (default: `self.max_length`) lose text and audio tokens by `text_share`.
        """
        if audio is not None:
            if audio_tokens is not None:
                raise ValueError("Pass either `audio` or `audio_tokens`, not both.")
            if self.speech_units is None:
                raise ValueError(
                    "This processor has no speech unit tokenizer to turn `audio` into units; pass `audio_tokens`, or "
                    "build it with `SpeechTokenProcessor.from_parts(..., speech_units=SpeechUnitTokenizer)`."
                )
            audio_tokens = self.speech_units.tokenize(audio, sampling_rate=sampling_rate, resample=resample)
        texts = [text] if isinstance(text, str) else (list(text) if text is not None else None)
        if texts is None and audio_tokens is None:
            raise ValueError("SpeechTokenProcessor needs `text`, `audio_tokens` or `audio`.")
        if texts is not None and audio_tokens is not None and len(texts) != len(audio_tokens):
            raise ValueError(
                f"Got {len(texts)} texts but units of {len(audio_tokens)} clips; give one of each per example."
            )
        size = len(texts) if texts is not None else len(audio_tokens)
        text_ids = self.tokenizer(texts, add_special_tokens=False)["input_ids"] if texts is not None else [None] * size
        max_length = (max_length if max_length is not None else self.max_length) if truncation else None
        rows = [
            self._encode_one(text_ids[i], audio_tokens[i] if audio_tokens is not None else None, max_length)
            for i in range(size)
        ]
        features = {"input_ids": rows}
        if return_special_tokens_mask:
            special = set(self.tokenizer.all_special_ids) | set(self.marker_ids.values())
            features["special_tokens_mask"] = [[int(token in special) for token in row] for row in rows]
        batch = self.tokenizer.pad(features, padding=padding, return_tensors=return_tensors)
        if labels is not None:
            batch["labels"] = labels
        return BatchFeature(dict(batch), tensor_type=return_tensors)

    def audio_ids(self, tokens: Sequence[str]) -> list[int]:
        """Ids of a clip's units that are in the audio vocabulary, in time order."""
        known = self.unit_token_ids
        return [known[token] for token in tokens if token in known]

    def _encode_one(self, text_ids: list[int] | None, tokens: Sequence[str] | None, max_length: int | None):
        audio_ids = self.audio_ids(tokens) if tokens is not None else None
        if max_length is not None:
            fixed = len(self.prefix_ids) + len(self.suffix_ids) + 2 * ((text_ids is not None) + (audio_ids is not None))
            text_keep, audio_keep = self._split_budget(
                len(text_ids or []), len(audio_ids or []), max(max_length - fixed, 0)
            )
            text_ids = text_ids[:text_keep] if text_ids is not None else None
            audio_ids = audio_ids[:audio_keep] if audio_ids is not None else None
        ids = list(self.prefix_ids)
        if text_ids is not None:
            ids += [self.marker_ids[self.text_start], *text_ids, self.marker_ids[self.text_end]]
        if audio_ids is not None:
            ids += [self.marker_ids[self.audio_start], *audio_ids, self.marker_ids[self.audio_end]]
        return ids + list(self.suffix_ids)

    def _split_budget(self, text_length: int, audio_length: int, budget: int) -> tuple[int, int]:
        """How many text and audio tokens to keep: each part keeps at least its share of `budget` (or all of
        itself, if shorter) and the rest goes to the part that still needs it."""
        if text_length + audio_length <= budget:
            return text_length, audio_length
        text_keep = min(text_length, max(budget - audio_length, int(budget * self.text_share)))
        audio_keep = min(audio_length, budget - text_keep)
        return min(text_length, budget - audio_keep), audio_keep

    def render(self, text: str | None = None, audio_tokens: Sequence[str] | None = None) -> str:
        """The sequence as a string (no truncation); tokenizing it gives the same ids as `__call__`."""
        rendered = ""
        if text is not None:
            rendered += f"{self.text_start}{text}{self.text_end}"
        if audio_tokens is not None:
            kept = "".join(token for token in audio_tokens if token in self.unit_token_ids)
            rendered += f"{self.audio_start}{kept}{self.audio_end}"
        return rendered

    # -------------------------------------------------------------------------------------------- saving
    def to_dict(self):
        # The speech unit tokenizer is a model saved in its own subfolder: keep it out of the JSON (and the
        # deep copy `ProcessorMixin.to_dict` makes of every attribute).
        speech_units = self.__dict__.pop("speech_units", None)
        try:
            return super().to_dict()
        finally:
            self.speech_units = speech_units

    def save_pretrained(self, save_directory, push_to_hub: bool = False, **kwargs):
        files = super().save_pretrained(save_directory, push_to_hub=False)
        if self.speech_units is not None:
            self.speech_units.save_pretrained(os.path.join(save_directory, SPEECH_UNITS_FOLDER))
        if push_to_hub:  # one upload for the processor files and the unit tokenizer's subfolder
            from huggingface_hub import create_repo, upload_folder

            repo_id = kwargs.pop("repo_id", os.path.basename(os.path.normpath(save_directory)))
            repo_id = create_repo(repo_id, exist_ok=True, private=kwargs.pop("private", None)).repo_id
            upload_folder(repo_id=repo_id, folder_path=str(save_directory), **kwargs)
        return files

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        processor = super().from_pretrained(pretrained_model_name_or_path, **kwargs)
        hub_keys = ("revision", "token", "cache_dir", "local_files_only")
        hub_kwargs = {key: kwargs[key] for key in hub_keys if key in kwargs}
        local = os.path.isdir(pretrained_model_name_or_path)
        if local and not os.path.isdir(os.path.join(pretrained_model_name_or_path, SPEECH_UNITS_FOLDER)):
            return processor
        try:
            processor.speech_units = SpeechUnitTokenizer.from_pretrained(
                pretrained_model_name_or_path, subfolder=SPEECH_UNITS_FOLDER, **hub_kwargs
            )
        except OSError:
            if local:
                raise
            logger.info("No speech unit tokenizer in this repository; pass `audio_tokens` to the processor.")
        return processor

    @property
    def model_input_names(self) -> list[str]:
        return ["input_ids", "attention_mask"]


def _extend_tokenizer(tokenizer, markers: list[str], audio_vocabulary: list[str]) -> None:
    """Add the markers (special) and the audio tokens (plain added tokens, never split or normalised)."""
    from tokenizers import AddedToken

    vocab = tokenizer.get_vocab()
    missing_markers = [marker for marker in markers if marker not in vocab]
    if missing_markers:
        tokenizer.add_special_tokens({"additional_special_tokens": missing_markers}, replace_extra_special_tokens=False)
    missing = [token for token in audio_vocabulary if token not in vocab]
    if missing:
        tokenizer.add_tokens([AddedToken(token, normalized=False, special=False) for token in missing])


def _special_affixes(tokenizer) -> tuple[list[int], list[int]]:
    """The ids the tokenizer puts around a text (e.g. `[CLS]` ... `[SEP]`, or a BOS)."""
    with_special = tokenizer("a", add_special_tokens=True)["input_ids"]
    bare = tokenizer("a", add_special_tokens=False)["input_ids"]
    for start in range(len(with_special) - len(bare) + 1):
        if with_special[start : start + len(bare)] == bare:
            return with_special[:start], with_special[start + len(bare) :]
    return [], []


__all__ = ["SpeechTokenProcessor"]
