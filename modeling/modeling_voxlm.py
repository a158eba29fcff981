"""VoxLM: a speech encoder, a downsampler/adapter and a language model, in one transformers model.

audio --encoder (real length, windowed)--> (N, T_enc, d_audio) --layer choice/mix-->
      --adapter (stack, convs, bottleneck, projector)--> (N, T_llm, d_text)
      --masked_scatter into the `<|audio|>` placeholder embeddings--> language model
"""

import copy
import glob
import inspect
import os

import torch
from torch import nn
from torch.nn import functional as F
from transformers import AutoModel, AutoModelForCausalLM, AutoModelForSeq2SeqLM, GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.dynamic_module_utils import custom_object_save
from transformers.models.whisper.modeling_whisper import WhisperEncoder
from transformers.utils import logging

from .audio_lengths import apply_length_stages, audio_output_lengths, encoder_output_lengths
from .configuration_voxlm import VoxLMConfig
from .encoder_sizes import audio_hidden_size, audio_num_layers
from .quantization_voxlm import VoxLMQuantizationConfig  # noqa: F401 (registers `quant_method="voxlm"`)
from .whisper_encoder import valid_mask as _valid_mask
from .whisper_encoder import whisper_hidden_states

logger = logging.get_logger(__name__)


def _norm(kind: str | None, width: int) -> nn.Module:
    if kind == "layernorm":
        return nn.LayerNorm(width)
    if kind == "rmsnorm":
        return nn.RMSNorm(width, eps=1e-6)
    return nn.Identity()


class VoxLMConvBlock(nn.Module):
    """Conv1d (padding k//2) -> activation (none | GELU | GLU) -> optional LayerNorm, on (N, T, C) frames."""

    def __init__(self, in_channels: int, block: dict):
        super().__init__()
        self.activation = block["activation"]
        out_channels = block["channels"] * (2 if self.activation == "glu" else 1)
        self.stage = [block["kernel"], block["stride"], 2 * (block["kernel"] // 2)]
        self.conv = nn.Conv1d(in_channels, out_channels, block["kernel"], block["stride"], block["kernel"] // 2)
        self.norm = nn.LayerNorm(block["channels"]) if block["layer_norm"] else nn.Identity()

    def forward(self, frames: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # Zero the padding first so that a padded clip sees exactly the zeros a lone clip sees at its end.
        frames = frames * _valid_mask(lengths, frames.shape[1])[..., None].to(frames.dtype)
        hidden = self.conv(frames.transpose(1, 2)).transpose(1, 2)  # (N, T', C_out)
        if self.activation == "glu":
            hidden = F.glu(hidden, dim=-1)
        elif self.activation == "gelu":
            hidden = F.gelu(hidden)
        return self.norm(hidden), apply_length_stages(lengths, [self.stage])


class VoxLMBottleneck(nn.Module):
    """Residual bottleneck d -> b -> d with GELU and no biases (BLSP)."""

    def __init__(self, width: int, bottleneck: int):
        super().__init__()
        self.down = nn.Linear(width, bottleneck, bias=False)
        self.up = nn.Linear(bottleneck, width, bias=False)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden + self.up(F.gelu(self.down(hidden)))


class VoxLMProjector(nn.Module):
    """Per-frame projection to the language model's width: linear, MLP (GELU) or SwiGLU."""

    def __init__(self, kind: str, in_width: int, out_width: int, hidden: int | None):
        super().__init__()
        self.kind = kind
        hidden = hidden or out_width
        if kind == "linear":
            self.linear_1 = nn.Linear(in_width, out_width)
        elif kind in ("mlp", "swiglu"):
            self.linear_1 = nn.Linear(in_width, hidden)
            self.linear_2 = nn.Linear(hidden // 2 if kind == "swiglu" else hidden, out_width)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        if self.kind == "none":
            return hidden
        hidden = self.linear_1(hidden)
        if self.kind == "linear":
            return hidden
        if self.kind == "swiglu":
            gate, value = hidden.chunk(2, dim=-1)
            hidden = F.silu(gate) * value
        else:
            hidden = F.gelu(hidden)
        return self.linear_2(hidden)


class VoxLMAdapter(nn.Module):
    """The downsampler/adapter described by `config.adapter`: (N, T_enc, d_audio) -> (N, T_llm, d_text)."""

    def __init__(self, config: VoxLMConfig):
        super().__init__()
        spec = config.adapter
        self.stack = spec["stack"]
        width = audio_hidden_size(config.audio_config) * self.stack
        self.pre_norm = _norm(spec["pre_norm"], width)
        blocks = []
        for block in spec["conv_blocks"]:
            blocks.append(VoxLMConvBlock(width, block))
            width = block["channels"]
        self.conv_blocks = nn.ModuleList(blocks)
        self.bottleneck = VoxLMBottleneck(width, spec["bottleneck"]) if spec["bottleneck"] else None
        text_width = config.text_config.hidden_size
        self.projector = VoxLMProjector(spec["projector"], width, text_width, spec["projector_hidden"])
        self.final_norm = _norm(spec["final_norm"], text_width)

    def forward(self, frames: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.stack > 1:
            # Concatenate `stack` consecutive frames, zero-padding the tail: (N, T, C) -> (N, ceil(T/k), k*C).
            frames = frames * _valid_mask(lengths, frames.shape[1])[..., None].to(frames.dtype)
            batch, time, channels = frames.shape
            frames = F.pad(frames, (0, 0, 0, (-time) % self.stack))
            frames = frames.reshape(batch, -1, self.stack * channels)
            lengths = apply_length_stages(lengths, [[self.stack, self.stack, self.stack - 1]])
        hidden = self.pre_norm(frames)
        for block in self.conv_blocks:
            hidden, lengths = block(hidden, lengths)
        if self.bottleneck is not None:
            hidden = self.bottleneck(hidden)
        return self.final_norm(self.projector(hidden)), lengths


class VoxLMLayerMix(nn.Module):
    """Learnable softmax-weighted sum of all encoder hidden states (SpeechVerse)."""

    def __init__(self, num_states: int):
        super().__init__()
        self.weights = nn.Parameter(torch.zeros(num_states))

    def forward(self, states: list[torch.Tensor]) -> torch.Tensor:
        weights = self.weights.softmax(-1).to(states[0].dtype)
        return torch.einsum("l,lntd->ntd", weights, torch.stack(states))


class VoxLMPreTrainedModel(PreTrainedModel):
    config: VoxLMConfig
    config_class = VoxLMConfig
    base_model_prefix = "voxlm"
    input_modalities = ("audio", "text")
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _no_split_modules = ["VoxLMAdapter"]
    _skip_keys_device_placement = ["past_key_values"]
    _supports_flash_attn = True
    _supports_sdpa = True
    _supports_flex_attn = True
    _supports_attention_backend = True
    _can_compile_fullgraph = False

    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, VoxLMLayerMix):
            init.zeros_(module.weights)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs):
        """`PreTrainedModel.from_pretrained`, strict about the checkpoint.

        A VoxLM checkpoint holds every weight it needs, so a weight file that cannot be read, and tensors that are
        missing, unexpected or of the wrong shape, are errors naming the file, never silently random weights. Pass
        `output_loading_info=True` to load an incomplete checkpoint anyway and inspect the returned info yourself.
        """
        wants_info = kwargs.pop("output_loading_info", False)
        ignores_shapes = kwargs.pop("ignore_mismatched_sizes", False)
        try:
            # Shape mismatches are collected (not raised by transformers, whose error names no file) and reported below.
            model, info = super().from_pretrained(
                pretrained_model_name_or_path,
                *model_args,
                output_loading_info=True,
                ignore_mismatched_sizes=True,
                **kwargs,
            )
        except Exception as error:
            # safetensors raises its own exception type (no common base with OSError) for truncated or foreign files
            if type(error).__name__ != "SafetensorError":
                raise
            raise OSError(_unreadable_weights_message(pretrained_model_name_or_path, error)) from error
        if wants_info:
            return model, info
        kinds = ("missing_keys", "unexpected_keys") + (() if ignores_shapes else ("mismatched_keys",))
        problems = {key: sorted(map(_describe_key, info.get(key) or ())) for key in kinds}
        problems = {key: keys for key, keys in problems.items() if keys}
        if problems:
            details = "; ".join(
                f"{len(keys)} {key.replace('_keys', '')} tensors (e.g. {', '.join(keys[:3])})"
                for key, keys in problems.items()
            )
            raise OSError(
                f"The weights in {_weights_location(pretrained_model_name_or_path)} do not match the model described "
                f"by its config.json: {details}. The checkpoint is incomplete or belongs to another config; save "
                "it again with `save_pretrained`, or pass `output_loading_info=True` to load it anyway."
            )
        return model

    def save_pretrained(self, save_directory, *args, state_dict: dict | None = None, **kwargs):
        """`PreTrainedModel.save_pretrained`, writing the same self-contained folder from a sharded model.

        Under FSDP2 or DeepSpeed, Trainer gathers the full `state_dict` and passes it here. Its tied weights are
        separate tensors then (safetensors could not tell them apart from the embeddings): the copies are dropped,
        as for an unsharded model. FSDP2 also swaps the model's class for a subclass torch defines (`FSDP<Name>`):
        the folder gets VoxLM's own code files and `auto_map`, not torch's files.
        """
        if state_dict is not None:
            tied = getattr(self, "all_tied_weights_keys", None) or {}
            state_dict = {
                name: tensor for name, tensor in state_dict.items() if not (name in tied and tied[name] in state_dict)
            }
        code_class = _code_class(type(self))
        if code_class is type(self) or not self.is_remote_code():
            return super().save_pretrained(save_directory, *args, state_dict=state_dict, **kwargs)
        is_main_process = kwargs.get("is_main_process", args[0] if args else True)
        if self.should_save_on_this_rank(is_main_process):
            os.makedirs(save_directory, exist_ok=True)
            # An instance is only needed for its class: the code files and `auto_map` entry are the class's.
            custom_object_save(code_class.__new__(code_class), save_directory, config=self.config)
        wrapper = type(self)
        wrapper._auto_class = None  # the wrapper's own code is torch's
        try:
            return super().save_pretrained(save_directory, *args, state_dict=state_dict, **kwargs)
        finally:
            del wrapper._auto_class


class VoxLMForConditionalGeneration(VoxLMPreTrainedModel, GenerationMixin):
    """A language model with ears: speech encoder + adapter + (causal or encoder-decoder) language model.

    Sub-models are built from their configs here; `from_parts` assembles one from pretrained encoder and LLM
    checkpoints. Audio enters at the positions of `config.audio_token_id`, one position per audio frame after
    the adapter; the processor expands each placeholder with the same length formula the model uses.
    """

    accepts_loss_kwargs = True

    @property
    def _no_split_modules(self) -> set[str]:
        """Classes to keep whole when sharding or placing the model (FSDP auto-wrap, `device_map`): the adapter and
        the repeated blocks of the encoder and the language model, as built (`_repeated_block_classes`)."""
        names = {"VoxLMAdapter"}
        for part in (self._modules.get("audio_tower"), self._modules.get("language_model")):
            if part is not None:
                names |= _repeated_block_classes(part)
        return names

    @_no_split_modules.setter
    def _no_split_modules(self, value) -> None:
        # `post_init` stores (and updates) the union of the sub-models' lists, which names classes VoxLM does not
        # build (Whisper's list has its decoder layer) and misses others (wav2vec2 lists none): the getter derives
        # the set instead.
        pass

    def __init__(self, config: VoxLMConfig):
        super().__init__(config)
        audio_config = config.audio_config
        if audio_config.model_type == "whisper":
            self.audio_tower = WhisperEncoder(audio_config)  # only the encoder half
        else:
            self.audio_tower = AutoModel.from_config(audio_config)
        num_states = audio_num_layers(audio_config) + 1
        self.layer_mix = VoxLMLayerMix(num_states) if config.audio_layer == "mix" else None
        self.projector = VoxLMAdapter(config)
        auto_lm = AutoModelForSeq2SeqLM if config.is_encoder_decoder else AutoModelForCausalLM
        self.language_model = auto_lm.from_config(config.text_config)
        # Set with speech-only LoRA: where each forward's LoRA acts (see `add_lora`).
        self._speech_gate = (
            _inject_lora(self.language_model, config.llm_lora, config.audio_token_id) if config.llm_lora else None
        )
        self.post_init()
        self.generation_config = self.language_model.generation_config

    # ----------------------------------------------------------------------------------------------- plumbing
    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.language_model.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module:
        return self.language_model.get_output_embeddings()

    def get_encoder(self, modality: str | None = None):
        return self.audio_tower if modality == "audio" else self.language_model.get_encoder()

    def get_decoder(self):
        return self.language_model.get_decoder()

    # --------------------------------------------------------------------------------------------- freezing
    def freeze_audio_encoder(self) -> None:
        self.audio_tower.requires_grad_(False)

    def freeze_language_model(self) -> None:
        self.language_model.requires_grad_(False)

    def train_adapter_only(self) -> None:
        """Freeze encoder and language model; train the adapter and the layer weights (if any)."""
        self.requires_grad_(False)
        self.projector.requires_grad_(True)
        if self.layer_mix is not None:
            self.layer_mix.requires_grad_(True)

    def add_lora(
        self,
        r: int = 8,
        lora_alpha: int = 16,
        lora_dropout: float = 0.0,
        target_modules=None,
        speech_only: bool = False,
    ) -> None:
        """Add peft LoRA layers to the language model (trainable; everything else keeps its `requires_grad`).

        The settings are recorded in `config.llm_lora`, so a saved model with unmerged LoRA reloads with the LoRA
        layers in place; `merge_lora()` folds them into the base weights.

        With `speech_only`, LoRA acts only at the positions from a row's first audio clip on (and at the positions
        generated after them): prompts without audio, and the text before the first clip, are computed by the
        language model's own weights, so text-only answers stay exactly the language model's. Such LoRA cannot be
        merged.
        """
        if self.config.llm_lora:
            raise ValueError("This model already has LoRA layers; call `merge_lora()` before adding new ones.")
        spec = {
            "r": r,
            "lora_alpha": lora_alpha,
            "lora_dropout": lora_dropout,
            "target_modules": target_modules or ["q_proj", "v_proj"],
            "speech_only": speech_only,
        }
        self._speech_gate = _inject_lora(self.language_model, spec, self.config.audio_token_id)
        self.config.llm_lora = spec

    def merge_lora(self) -> None:
        """Fold the LoRA layers into the language model's weights and drop them."""
        if not self.config.llm_lora:
            return
        if self.config.llm_lora.get("speech_only"):
            raise ValueError(
                "Speech-only LoRA cannot be merged: merged weights would also change text-only answers. Save the "
                "model with its LoRA layers unmerged (they reload with it)."
            )
        try:
            from peft.tuners.lora import LoraLayer
        except ImportError as error:  # pragma: no cover
            raise ImportError("Merging LoRA needs `peft`: pip install peft") from error

        for name, module in list(self.language_model.named_modules()):
            if isinstance(module, LoraLayer):
                module.merge()
                parent_name, _, child = name.rpartition(".")
                setattr(self.language_model.get_submodule(parent_name), child, module.get_base_layer())
        self.config.llm_lora = None

    # ------------------------------------------------------------------------------------------ audio path
    def _encoder_states_needed(self) -> int:
        """How many encoder layers must run: all for the last layer or the mix, fewer for an earlier layer."""
        num_layers = audio_num_layers(self.config.audio_config)
        layer = self.config.audio_layer
        if layer == "mix":
            return num_layers
        return layer % (num_layers + 1)

    def _encode_audio(
        self, input_features: torch.Tensor, input_lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder frames of the chosen layer (or layer mix): (N, T_enc, d_audio) and their valid lengths (N,)."""
        num_layers = self._encoder_states_needed()
        if self.config.audio_config.model_type == "whisper":
            states = whisper_hidden_states(self.audio_tower, input_features, input_lengths, num_layers, self.training)
        else:
            input_name = "input_features" if self.config.audio_config.model_type == "wav2vec2-bert" else "input_values"
            outputs = self.audio_tower(
                **{input_name: input_features},
                attention_mask=_valid_mask(input_lengths, input_features.shape[1]).long(),
                output_hidden_states=self.config.audio_layer != -1,
            )
            states = list(outputs.hidden_states) if self.config.audio_layer != -1 else [outputs.last_hidden_state]
        frame_lengths = encoder_output_lengths(input_lengths, self.config.audio_length_formula)
        if self.layer_mix is not None:
            frames = self.layer_mix(states)
        elif self.config.audio_layer == -1:
            frames = states[-1]
        else:
            frames = states[self.config.audio_layer]
        return frames[:, : int(frame_lengths.max())], frame_lengths

    def get_audio_features(self, input_features: torch.Tensor, input_features_mask: torch.Tensor) -> torch.Tensor:
        """Audio embeddings for the language model, all clips concatenated: (sum of positions, d_text).

        input_features: (N, ...) padded encoder inputs (log-mel (N, n_mels, T) for Whisper, waveform (N, T) for
        wav2vec2-style encoders, filter banks (N, T, 160) for wav2vec2-BERT); input_features_mask: (N, T).
        """
        input_lengths = input_features_mask.sum(-1).long()
        if bool((input_lengths <= 0).any()):
            raise ValueError("An audio clip has no valid frames (`input_features_mask` sums to 0); drop empty clips.")
        # Drop padding beyond the longest clip: the time axis is last for Whisper's (N, n_mels, T), second otherwise.
        max_length = int(input_lengths.max())
        if self.config.audio_config.model_type == "whisper":
            input_features = input_features[..., :max_length]
        else:
            input_features = input_features[:, :max_length]
        input_features = input_features.to(self.audio_tower.dtype)
        frames, frame_lengths = self._encode_audio(input_features, input_lengths)
        embeds, lengths = self.projector(frames, frame_lengths)  # (N, T_llm, d_text)
        expected = audio_output_lengths(input_lengths, self.config.audio_length_formula)
        if embeds.shape[1] != int(expected.max()):
            raise ValueError(
                f"The adapter produced {embeds.shape[1]} positions for the longest clip but the length formula "
                f"{self.config.audio_length_formula} gives {int(expected.max())}: the config and modules disagree."
            )
        return embeds[_valid_mask(lengths, embeds.shape[1])]

    def _merge_audio(self, input_ids: torch.Tensor, input_features, input_features_mask, labels=None):
        """Embed `input_ids` and scatter the audio embeddings into the placeholder positions."""
        audio_mask = input_ids == self.config.audio_token_id  # (B, L)
        num_placeholders = int(audio_mask.sum())
        if input_features is None:
            if num_placeholders:
                raise ValueError(
                    f"The prompts contain {num_placeholders} audio placeholder tokens but no audio was given; "
                    "pass `input_features` and `input_features_mask` from the processor."
                )
            return self.get_input_embeddings()(input_ids), labels
        if input_features_mask is None:
            raise ValueError("`input_features_mask` is required with `input_features` (the processor returns it).")
        audio_embeds = self.get_audio_features(input_features, input_features_mask)
        if num_placeholders != audio_embeds.shape[0]:
            lengths = audio_output_lengths(input_features_mask.sum(-1).long(), self.config.audio_length_formula)
            raise ValueError(
                f"The prompts contain {num_placeholders} audio placeholder tokens but the audio gives "
                f"{audio_embeds.shape[0]} positions (per clip: {lengths.tolist()}). Build the inputs with "
                f"VoxLMProcessor, which expands each {self.config.audio_token} with the model's length formula."
            )
        # The placeholder id may lie past the LLM's vocabulary: look up a valid id, then overwrite.
        inputs_embeds = self.get_input_embeddings()(input_ids.masked_fill(audio_mask, 0))
        scatter_mask = audio_mask[..., None].expand_as(inputs_embeds)
        inputs_embeds = inputs_embeds.masked_scatter(scatter_mask, audio_embeds.to(inputs_embeds.dtype))
        # Decoder-only: labels align with the input and audio positions are never targets. Encoder-decoder: labels
        # are the decoder's, unrelated to encoder positions even when the shapes happen to agree.
        if labels is not None and not self.config.is_encoder_decoder and labels.shape == input_ids.shape:
            labels = labels.masked_fill(audio_mask, -100)
        return inputs_embeds, labels

    # --------------------------------------------------------------------------------------------- forward
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        input_features: torch.Tensor | None = None,
        input_features_mask: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values=None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs,
    ):
        r"""
        input_ids: (B, L) token ids with each audio clip expanded to its positions of `config.audio_token_id`.
        input_features / input_features_mask: (N, ...) / (N, T) padded encoder inputs of the N clips, in the order
            their placeholders appear (row-major over the batch).
        labels: (B, L) targets; audio positions are ignored (-100) automatically.
        Returns the language model's output (`CausalLMOutputWithPast` or `Seq2SeqLMOutput`).

        In training mode with `labels` (and the default `logits_to_keep=0`), a causal language model computes its
        LM head only at the positions that predict a label: `logits` is then `(B, K, vocab)` for those K positions
        (see `_forward_logits_at_labels`). The loss is the same as with full logits; `model.eval()` (as Trainer's
        evaluation does) or `model.logits_at_labels_only = False` gives full logits.
        """
        lm_kwargs = {"attention_mask": attention_mask, "labels": labels, "use_cache": use_cache, **kwargs}
        # Newer transformers generate with `cache=` (in kwargs) and warn at every step when `past_key_values=None`
        # is passed beside it; forward the old name only when a caller actually set it.
        if past_key_values is not None:
            lm_kwargs["past_key_values"] = past_key_values
        if not self.config.is_encoder_decoder:
            lm_kwargs.update(position_ids=position_ids, logits_to_keep=logits_to_keep)
        gate = self._speech_gate
        if gate is not None:
            gate.update(
                input_ids, past_key_values if past_key_values is not None else kwargs.get("cache"), inputs_embeds
            )
        outputs = self._language_model_forward(
            input_ids, input_features, input_features_mask, inputs_embeds, labels, logits_to_keep, lm_kwargs
        )
        if gate is not None:
            # `cache` in current transformers outputs, `past_key_values` before (a dict lookup: no deprecation warning)
            gate.record(outputs.get("cache", outputs.get("past_key_values")) if hasattr(outputs, "get") else None)
        return outputs

    def _language_model_forward(
        self, input_ids, input_features, input_features_mask, inputs_embeds, labels, logits_to_keep, lm_kwargs
    ):
        if inputs_embeds is None and input_features is None and input_ids is not None:
            if bool((input_ids == self.config.audio_token_id).any()):
                self._merge_audio(input_ids, None, None)  # raises: placeholders without audio
            # Text only: exactly the bare language model.
            return self.language_model(input_ids=input_ids, **lm_kwargs)
        if inputs_embeds is None:
            inputs_embeds, lm_kwargs["labels"] = self._merge_audio(
                input_ids, input_features, input_features_mask, labels
            )
        if self._use_logits_at_labels(lm_kwargs["labels"], logits_to_keep):
            return self._forward_logits_at_labels(inputs_embeds, lm_kwargs)
        return self.language_model(inputs_embeds=inputs_embeds, **lm_kwargs)

    # Training computes the LM head only where the loss needs it (see `forward`); set False for full logits.
    logits_at_labels_only = True

    def _use_logits_at_labels(self, labels, logits_to_keep) -> bool:
        return (
            self.training
            and self.logits_at_labels_only
            and labels is not None
            and not self.config.is_encoder_decoder
            and isinstance(logits_to_keep, int)
            and logits_to_keep == 0
            and "logits_to_keep" in inspect.signature(self.language_model.forward).parameters
        )

    def _forward_logits_at_labels(self, inputs_embeds: torch.Tensor, lm_kwargs: dict):
        """Language model with its head (and loss) only at the positions that predict a label.

        In training most positions carry no label (audio, prompt, padding), yet the LM head (hidden -> vocabulary)
        and the log-softmax are the costliest per-position operations of a small LLM: on short clips they took
        ~40% of a training step. Position t predicts label t + 1, so the positions kept are those t where some row
        has a label at t + 1 (one index set for the batch: the LLM's own `logits_to_keep` slicing needs that).
        """
        labels = lm_kwargs.pop("labels")
        shift_labels = F.pad(labels, (0, 1), value=-100)[:, 1:]  # (B, L): the label each position predicts
        positions = (shift_labels != -100).any(dim=0).nonzero().squeeze(-1)  # (K,)
        if positions.numel() == 0:
            return self.language_model(inputs_embeds=inputs_embeds, labels=labels, **lm_kwargs)
        lm_kwargs["logits_to_keep"] = positions
        outputs = self.language_model(inputs_embeds=inputs_embeds, **lm_kwargs)  # logits: (B, K, vocab)
        loss_kwargs = {key: lm_kwargs[key] for key in ("num_items_in_batch", "ignore_index") if key in lm_kwargs}
        loss = self.language_model.loss_function(
            logits=outputs.logits,
            labels=None,
            vocab_size=outputs.logits.shape[-1],
            shift_labels=shift_labels[:, positions],
            **loss_kwargs,
        )
        return type(outputs)(loss=loss, **outputs)  # rebuilt so that `loss` comes first, as `outputs[0]`

    # `generate` keeps the language model's cache of the text before the first audio clip (the system prompt and the
    # turn's header) and starts the next single-prompt generation with that prefix from it; set False to prefill
    # every prompt whole.
    reuse_prompt_prefix = True

    @torch.no_grad()
    def generate(self, *args, **kwargs):
        """`GenerationMixin.generate`; audio enters at prefill only. Encoder-decoder LMs get the merged embeddings.

        A decoder-only model given one prompt (no padding, no cache of the caller's) starts from its cache of the
        prompt's text before the first audio placeholder when the previous prompt began with the same text: only the
        audio and what follows it are prefilled (see `reuse_prompt_prefix`).
        """
        if not self.config.is_encoder_decoder:
            prefix_cache = self._prompt_prefix_cache(args[0] if args else kwargs.get("input_ids"), kwargs)
            if prefix_cache is not None:
                kwargs["cache"] = prefix_cache
            return super().generate(*args, **kwargs)
        input_ids = args[0] if args else kwargs.pop("input_ids")
        inputs_embeds, _ = self._merge_audio(
            input_ids, kwargs.pop("input_features", None), kwargs.pop("input_features_mask", None)
        )
        return self.language_model.generate(inputs_embeds=inputs_embeds, **kwargs)

    def _prompt_prefix_cache(self, input_ids: torch.Tensor | None, kwargs: dict):
        """A copy of the cached prefix of `input_ids` (text before the first audio placeholder), computed and kept if
        it is new; None when reuse does not apply (batched or padded prompts, a cache or embeddings passed, no
        audio, a cache implementation other than the default, or reuse switched off)."""
        if (
            not self.reuse_prompt_prefix
            or self.training
            or input_ids is None
            or input_ids.shape[0] != 1
            or kwargs.get("cache") is not None
            or kwargs.get("past_key_values") is not None
            or kwargs.get("inputs_embeds") is not None
            or kwargs.get("cache_implementation") is not None
            or getattr(kwargs.get("generation_config"), "cache_implementation", None) is not None
            or self.generation_config.cache_implementation is not None
        ):
            return None
        attention_mask = kwargs.get("attention_mask")
        if attention_mask is not None and not bool(attention_mask.all()):
            return None
        audio_positions = (input_ids[0] == self.config.audio_token_id).nonzero()
        if audio_positions.numel() == 0 or int(audio_positions[0]) < 2:
            return None
        prefix = input_ids[:, : int(audio_positions[0])]
        # The cache is valid for these tokens and these weights: in-place updates (an optimizer step, `load_state_dict`)
        # bump a tensor's version, and replacing (quantizing) or moving layers changes the tensors themselves.
        # Quantized weights are buffers. Inference tensors keep no version: they change only in inference mode.
        weights = tuple(
            (id(t), None if t.is_inference() else t._version, t.dtype, t.device)
            for t in (*self.language_model.parameters(), *self.language_model.buffers())
        )
        key = (tuple(prefix[0].tolist()), weights)
        cached = getattr(self, "_prefix_cache", None)
        if cached is None or cached[0] != key:
            from transformers import DynamicCache

            cache = DynamicCache(config=self.language_model.config)
            if self._speech_gate is not None:
                self._speech_gate.update(prefix, cache)  # text before the first clip: no speech-only LoRA
                self._speech_gate.record(cache)
            self.language_model(input_ids=prefix, cache=cache, use_cache=True, logits_to_keep=1)
            self._prefix_cache = cached = (key, cache)
        return copy.deepcopy(cached[1])

    # ------------------------------------------------------------------------------------------- assembly
    @classmethod
    def from_parts(
        cls,
        audio_model,
        text_model,
        adapter: str | dict = "speechverse",
        audio_layer: int | str = -1,
        audio_token_id: int | None = None,
        audio_token: str = "<|audio|>",
        dtype: torch.dtype | None = None,
        **text_model_kwargs,
    ) -> "VoxLMForConditionalGeneration":
        """Assemble a VoxLM model from a pretrained speech encoder and language model.

        Args:
            audio_model: a Hub id or folder (`str` or `Path`) of a supported speech model (e.g.
                `"openai/whisper-small"`), or a loaded model (for Whisper, a `WhisperForConditionalGeneration`,
                `WhisperModel` or `WhisperEncoder`).
            text_model: a Hub id or folder of a causal (or encoder-decoder) LM, or a loaded model.
            adapter, audio_layer, audio_token: see [`VoxLMConfig`]; the adapter is freshly initialised.
            audio_token_id: the placeholder's id in the processor's tokenizer (`VoxLMProcessor.from_parts` adds the
                token and reports it); by default the first id past the language model's vocabulary.
            text_model_kwargs: passed to the language model's `from_pretrained` (e.g. `gguf_file=`).
        """
        if isinstance(audio_model, (str, os.PathLike)):
            audio_model = AutoModel.from_pretrained(audio_model, dtype=dtype)
        audio_encoder = (
            audio_model.get_encoder()
            if hasattr(audio_model, "get_encoder")
            and audio_model.config.model_type == "whisper"
            and not isinstance(audio_model, WhisperEncoder)
            else audio_model
        )
        if isinstance(text_model, (str, os.PathLike)):
            text_config = _load_text_config(text_model, text_model_kwargs)
            auto_lm = (
                AutoModelForSeq2SeqLM if getattr(text_config, "is_encoder_decoder", False) else AutoModelForCausalLM
            )
            text_model = auto_lm.from_pretrained(text_model, dtype=dtype, **text_model_kwargs)
        text_config = text_model.config
        if getattr(text_config, "quantization_config", None) is not None:
            raise ValueError(
                "The language model is quantized; dequantize it first (e.g. load GGUF weights into a plain model) "
                "so that the assembled checkpoint is self-contained."
            )
        if audio_token_id is None:
            audio_token_id = text_model.get_input_embeddings().num_embeddings
        config = cls.config_class(
            audio_config=audio_encoder.config.to_dict(),
            text_config=text_config.to_dict(),
            adapter=adapter,
            audio_layer=audio_layer,
            audio_token=audio_token,
            audio_token_id=audio_token_id,
        )
        with torch.device("meta"):
            model = cls(config)
        model.audio_tower = audio_encoder
        model.language_model = text_model
        model.projector.to_empty(device="cpu")
        if model.layer_mix is not None:
            model.layer_mix.to_empty(device="cpu")
        model.projector.apply(_reset_module)
        if model.layer_mix is not None:
            nn.init.zeros_(model.layer_mix.weights)
        model.generation_config = text_model.generation_config
        if dtype is not None:
            model.to(dtype)
        return model


def _code_class(cls: type) -> type:
    """The model class whose code a saved folder carries. FSDP2's `fully_shard` turns a model's class into
    `FSDP<Name>(FSDPModule, <Name>)`, created at run time in torch's files."""
    try:
        from torch.distributed.fsdp import FSDPModule
    except ImportError:  # pragma: no cover - torch built without distributed support
        return cls
    if not issubclass(cls, FSDPModule):
        return cls
    return next(base for base in cls.__mro__ if not issubclass(base, FSDPModule))


def _describe_key(key) -> str:
    """A loading-info entry: a tensor name, or (name, checkpoint shape, model shape) for a shape mismatch."""
    if isinstance(key, (tuple, list)):
        name, checkpoint_shape, model_shape = key
        return f"{name} of shape {tuple(checkpoint_shape)} instead of {tuple(model_shape)}"
    return str(key)


def _weights_location(source) -> str:
    source = str(source)
    if not os.path.isdir(source):
        return repr(source)
    files = sorted(glob.glob(os.path.join(source, "*.safetensors")))
    return ", ".join(files) if files else source


def _unreadable_weights_message(source, error: Exception) -> str:
    """Say which weight file of `source` cannot be read, and why (when `source` is a local folder)."""
    reasons = []
    source = str(source)
    for path in sorted(glob.glob(os.path.join(source, "*.safetensors"))) if os.path.isdir(source) else []:
        with open(path, "rb") as handle:
            head = handle.read(64)
        if head.startswith(b"version https://git-lfs"):
            reasons.append(f"{path} is a Git LFS pointer, not the weights (run `git lfs pull`)")
            continue
        try:
            from safetensors import safe_open

            with safe_open(path, "pt") as weights:
                weights.keys()
        except Exception as file_error:
            reasons.append(f"{path} ({file_error})")
    where = "; ".join(reasons) or f"a weight file of {source!r} ({error})"
    return (
        f"Cannot read the weights: {where}. The file is truncated or is not a safetensors file; download or save "
        "the checkpoint again."
    )


# Attribute names of the `nn.ModuleList`s holding transformers models' repeated blocks (encoder and decoder layers;
# GPT-2's `h`, T5's `block`).
_LAYER_LISTS = ("layers", "h", "block")


def _repeated_block_classes(model: nn.Module) -> set[str]:
    """Class names of the blocks a sub-model repeats: the classes of its own `_no_split_modules` that it actually
    contains, and the classes in its list of `num_hidden_layers` layers (some encoders, e.g. wav2vec2, declare
    none; the length tells the layers from other lists, e.g. data2vec-audio's positional convolutions)."""
    built = {type(module).__name__ for module in model.modules()}
    names = {name for name in getattr(model, "_no_split_modules", None) or () if name in built}
    num_layers = getattr(getattr(model, "config", None), "num_hidden_layers", None)
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and name.rpartition(".")[2] in _LAYER_LISTS and len(module) == num_layers:
            names.update(type(block).__name__ for block in module)
    return names


def _reset_module(module: nn.Module) -> None:
    if hasattr(module, "reset_parameters"):
        module.reset_parameters()


def _load_text_config(name_or_path: str, kwargs: dict):
    from transformers import AutoConfig

    config_kwargs = {k: v for k, v in kwargs.items() if k in ("gguf_file", "revision", "token", "trust_remote_code")}
    return AutoConfig.from_pretrained(name_or_path, **config_kwargs)


def _inject_lora(language_model: nn.Module, spec: dict, audio_token_id: int) -> "_SpeechGate | None":
    try:
        from peft import LoraConfig, inject_adapter_in_model
    except ImportError as error:  # pragma: no cover - peft is a dependency of the voxlm package
        raise ImportError("LoRA on the language model needs `peft`: pip install peft") from error
    lora_config = LoraConfig(
        r=spec["r"],
        lora_alpha=spec["lora_alpha"],
        lora_dropout=spec["lora_dropout"],
        target_modules=spec["target_modules"],
    )
    inject_adapter_in_model(lora_config, language_model)
    return _SpeechGate(language_model, audio_token_id) if spec.get("speech_only") else None


class _SpeechGate:
    """Speech-only LoRA: LoRA acts at the positions from a row's first audio placeholder on, nowhere else.

    peft's LoRA adds `lora_B(lora_A(x))` to a layer's output; a pre-hook on every `lora_A` multiplies `x` by a
    (B, L, 1) mask of those positions, so elsewhere the addition is exactly zero (LoRA has no bias). Which rows
    already hold speech is kept on the cache object between forward calls (decoding steps carry no placeholders).
    When no position of a call holds speech, the LoRA layers are switched off outright. peft has no per-position
    adapter switch, hence the hooks.
    """

    def __init__(self, language_model: nn.Module, audio_token_id: int):
        from peft.tuners.lora import LoraLayer

        self.audio_token_id = audio_token_id
        self.mask: torch.Tensor | None = None
        self.rows: torch.Tensor | None = None  # (B,) of the last call
        self.all_speech = False
        self.enabled = True  # peft's LoRA layers start switched on
        self.layers = [module for module in language_model.modules() if isinstance(module, LoraLayer)]
        for layer in self.layers:
            for lora_a in layer.lora_A.values():
                lora_a.register_forward_pre_hook(self._gate)

    def update(self, input_ids: torch.Tensor | None, cache, inputs_embeds: torch.Tensor | None = None) -> None:
        """Set the mask of the next language-model call from its `input_ids` and the rows of `cache` that already
        hold speech (embeddings without ids: LoRA everywhere)."""
        if input_ids is None:
            speech = None
            self.rows = None if inputs_embeds is None else torch.ones(inputs_embeds.shape[0], dtype=torch.bool)
        else:
            speech = (input_ids == self.audio_token_id).cumsum(dim=1) > 0  # (B, L)
            earlier = getattr(cache, "voxlm_speech_rows", None)  # (B,)
            if earlier is not None and earlier.shape[0] == speech.shape[0]:
                speech = speech | earlier.to(speech.device)[:, None]
            self.rows = speech[:, -1] if speech.shape[1] else earlier
        self.mask = None if speech is None or bool(speech.all()) else speech[..., None]
        enabled = speech is None or bool(speech.any())
        self.all_speech = enabled and self.mask is None  # quantized layers may use LoRA merged into their weights
        if enabled != self.enabled:  # every decoding step calls this: touch the layers only when the state changes
            for layer in self.layers:
                layer._disable_adapters = not enabled
            self.enabled = enabled

    def record(self, cache) -> None:
        """Note on the cache a call returned which of its rows hold speech, for the calls that continue it."""
        if cache is not None and self.rows is not None:
            cache.voxlm_speech_rows = self.rows

    def _gate(self, module: nn.Module, args: tuple):
        hidden = args[0]
        if self.mask is None or self.mask.shape[:2] != hidden.shape[:2]:
            return None
        return (hidden * self.mask.to(hidden.dtype),) + args[1:]


__all__ = ["VoxLMPreTrainedModel", "VoxLMForConditionalGeneration"]
