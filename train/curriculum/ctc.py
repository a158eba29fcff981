"""CTC alignment warm-up: pull the adapter's output towards the frozen LLM's input embeddings of the transcript.

This stage objective (`objective: ctc` in a curriculum stage) is VoxLM's own addition, not part of SpeechVerse. It
is a cheap way to give a fresh adapter a sense of *what* is said before the language-model stages:

    adapter output h (N, T, d)  ->  logits = [h @ w_blank + b_blank ; h @ E.T]      (N, T, 1 + V)
    loss = CTC(log_softmax(logits), transcript token ids + 1, blank = 0)

where `E` (V, d) is the frozen input-embedding table of the LLM and `w_blank`, `b_blank` a learned blank logit.
The LLM never runs, so a step costs the encoder, the adapter and one (T x d) @ (d x V) product: with a
Whisper-tiny encoder, SmolLM2's 49k vocabulary and 8 clips of 3 s, about 0.7 s of (frozen) encoder and 1.6 s of
adapter + CTC forward/backward on one CPU thread. Caching encoder outputs would therefore save under a third of a
step (and would need every layer's states for a layer mix), so they are recomputed. Only the adapter, the layer
weights and the blank logit train; the blank is dropped when the stage ends.
"""

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.rnn import pad_sequence
from transformers.utils import logging

from voxlm.train.core.audio import SAMPLING_RATE

logger = logging.get_logger(__name__)


class CTCAlignmentModel(nn.Module):
    """Wraps a VoxLM model for the CTC warm-up; `voxlm` is the wrapped model (saved at the end of the stage).

    Its `state_dict` holds only the trainable tensors (adapter, layer weights, blank), so checkpoints stay small
    and never duplicate the frozen encoder and LLM; a resumed run gets those from the stage's starting model.
    """

    def __init__(self, voxlm, vocabulary: str = "all"):
        super().__init__()
        if vocabulary not in ("all", "batch"):
            raise ValueError(f"`ctc_vocabulary` must be 'all' or 'batch', got {vocabulary!r}.")
        self.voxlm = voxlm
        # "batch": the softmax runs over the tokens of the batch's transcripts only (a sampled softmax), which
        # makes a step several times cheaper with a large LLM vocabulary; the next, language-model stage
        # sees the full vocabulary anyway.
        self.vocabulary = vocabulary
        width = voxlm.config.text_config.hidden_size
        self.blank_weight = nn.Parameter(torch.zeros(width))
        self.blank_bias = nn.Parameter(torch.zeros(()))

    @property
    def config(self):
        return self.voxlm.config

    def _trainable_names(self) -> set[str]:
        return {name for name, parameter in self.named_parameters() if parameter.requires_grad}

    @property
    def _keys_to_ignore_on_save(self) -> list[str]:
        """Frozen tensors, left out of checkpoints (Trainer reads this to accept them as missing on resume)."""
        trainable = self._trainable_names()
        return [name for name in super().state_dict() if name not in trainable]

    def state_dict(self, *args, **kwargs):
        full = super().state_dict(*args, **kwargs)
        prefix = kwargs.get("prefix", "")
        trainable = {prefix + name for name in self._trainable_names()}
        return type(full)((key, value) for key, value in full.items() if key in trainable)

    def tie_weights(self) -> None:
        """Called by Trainer after loading a checkpoint without the frozen tensors: nothing to tie here."""

    def forward(self, input_features, input_features_mask, ctc_labels):
        r"""
        input_features / input_features_mask: (N, ...) / (N, T) padded encoder inputs.
        ctc_labels: (N, S) transcript token ids of the LLM's tokenizer, padded with -100.
        """
        flat = self.voxlm.get_audio_features(input_features, input_features_mask)  # (sum of T_i, d)
        lengths = self.voxlm.config.num_audio_positions(input_features_mask.sum(-1).long())  # (N,)
        hidden = pad_sequence(flat.split(lengths.tolist()), batch_first=True)  # (N, T, d)
        table = self.voxlm.get_input_embeddings().weight  # (V, d), frozen
        if self.vocabulary == "batch":
            classes = torch.unique(ctc_labels[ctc_labels != -100])  # (K,) sorted token ids of the batch
            table = table[classes]  # (K, d)
            ctc_labels = torch.where(ctc_labels == -100, -100, torch.searchsorted(classes, ctc_labels.clamp(min=0)))
        token_logits = hidden @ table.T.to(hidden.dtype)  # (N, T, V) or (N, T, K)
        blank_logits = hidden @ self.blank_weight.to(hidden.dtype) + self.blank_bias  # (N, T)
        log_probs = torch.cat([blank_logits[..., None], token_logits], dim=-1).float().log_softmax(-1)
        target_lengths = (ctc_labels != -100).sum(-1)
        targets = torch.where(ctc_labels == -100, 0, ctc_labels + 1)  # token v -> class v + 1; 0 is the blank
        loss = F.ctc_loss(
            log_probs.transpose(0, 1),  # (T, N, 1 + V)
            targets,
            lengths.to(log_probs.device),
            target_lengths,
            blank=0,
            reduction="mean",
            zero_infinity=True,  # a transcript longer than its audio positions contributes nothing
        )
        return {"loss": loss}


class CTCCollator:
    """Examples `{"audio", "target"}` -> encoder features and the transcript's token ids (`ctc_labels`)."""

    def __init__(self, processor, sampling_rate: int = SAMPLING_RATE):
        self.processor = processor
        self.sampling_rate = sampling_rate

    def __call__(self, examples) -> dict:
        clips = self.processor.check_audio([example["audio"] for example in examples], self.sampling_rate)
        features = self.processor.extract_features(clips)
        ids = [
            torch.tensor(
                self.processor.tokenizer(example["target"], add_special_tokens=False)["input_ids"], dtype=torch.long
            )
            for example in examples
        ]
        return {
            "input_features": torch.from_numpy(features["input_features"]),
            "input_features_mask": torch.from_numpy(features["input_features_mask"]),
            "ctc_labels": pad_sequence(ids, batch_first=True, padding_value=-100),
        }


__all__ = ["CTCAlignmentModel", "CTCCollator"]
