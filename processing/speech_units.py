"""Discrete speech units: audio -> tokens such as `<|a3_517|>` (level 3, code 517), in time order.

Two backends, one Hub-native model class (`SpeechUnitTokenizer`, saved as `config.json` + `model.safetensors`):

* `"codec"`: a transformers neural codec with residual codebooks (`EncodecModel`, `MimiModel`, `DacModel`, or any
  model whose `encode(...)` returns `audio_codes` of shape (batch, levels, frames)). Each frame gives one token per
  kept RVQ level (`config.levels`), frame by frame.
* `"kmeans"`: k-means units over one hidden layer of a transformers speech encoder (Whisper's encoder half,
  wav2vec2, HuBERT, WavLM, ...). Centroids are fitted with scikit-learn's `MiniBatchKMeans` on training audio
  (`fit_kmeans`) and stored as a buffer, so they travel in `model.safetensors` (never pickled).

Optionally, runs of identical consecutive frames are merged (`merge_repeats=True`, as in HuBERT-style units).
The vocabulary index of a token is `position_of_level * codebook_size + code`.

Flat imports only: this file travels to Hub repositories for `trust_remote_code`.
"""

from dataclasses import dataclass

import numpy as np
import torch
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel
from transformers.configuration_utils import SubConfigSpec
from transformers.models.whisper.modeling_whisper import WhisperEncoder
from transformers.utils import ModelOutput, logging

from .audio_checks import MIN_AUDIO_SECONDS, check_clip, is_single_clip
from .audio_lengths import encoder_output_lengths
from .encoder_sizes import audio_hidden_size, audio_num_layers
from .whisper_encoder import WHISPER_CONV_STAGES, whisper_hidden_states

logger = logging.get_logger(__name__)

BACKENDS = ("codec", "kmeans")
DEFAULT_CODEC_LEVELS = 8  # the recipe's codec: 8 RVQ levels


def codec_num_levels(codec_config) -> int:
    """How many residual codebooks a codec config has (Encodec/Mimi `num_quantizers`, DAC `n_codebooks`)."""
    for name in ("num_quantizers", "n_codebooks", "num_codebooks", "n_q"):
        value = getattr(codec_config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    raise ValueError(
        f"Cannot find the number of codebooks in the {codec_config.model_type!r} config (looked for num_quantizers, "
        "n_codebooks, num_codebooks); this codec is not supported by the 'codec' backend."
    )


class SpeechUnitConfig(PretrainedConfig):
    r"""
    Configuration of a [`SpeechUnitTokenizer`].

    Args:
        backbone_config (`dict` or `PretrainedConfig`, *optional*):
            The codec (backend `"codec"`: Encodec, Mimi, DAC, ...) or the speech encoder (backend `"kmeans"`:
            Whisper, wav2vec2, HuBERT, WavLM, ...). Defaults to a Whisper config.
        backend (`str`, *optional*, defaults to `"kmeans"`): `"codec"` or `"kmeans"`.
        levels (`list[int]`, *optional*):
            Codec only: the RVQ levels to keep, in the order their tokens follow each other within a frame
            (default: the first 8, or all if fewer). Always `[0]` for k-means.
        layer (`int`, *optional*, defaults to -1):
            K-means only: which encoder hidden state is clustered (0 = embeddings, -1 = last layer).
        num_units (`int`, *optional*, defaults to 500): K-means only: the number of clusters.
        merge_repeats (`bool`, *optional*, defaults to `False`): merge runs of identical consecutive frames.
        frame_pooling (`int`, *optional*, defaults to 1):
            K-means only: average non-overlapping groups of this many encoder frames before clustering (2 turns
            Whisper's 50 frames per second into 25 units per second).
        feature_extractor (`dict`, *optional*):
            K-means only: the encoder's feature extractor (`FeatureExtractionMixin.to_dict()`), rebuilt on load.
        kmeans_fitted (`bool`, *optional*, defaults to `False`): set once the centroids are fitted.
        token_template (`str`, *optional*, defaults to `"<|a{level}_{code}|>"`): how tokens are written.
    """

    model_type = "voxlm_speech_units"
    sub_configs_defaults = {"backbone_config": SubConfigSpec(config_class=AutoConfig, model_type="whisper")}

    backbone_config: dict | PretrainedConfig | None = None
    backend: str = "kmeans"
    levels: list[int] | None = None
    layer: int = -1
    num_units: int = 500
    merge_repeats: bool = False
    frame_pooling: int = 1
    feature_extractor: dict | None = None
    kmeans_fitted: bool = False
    token_template: str = "<|a{level}_{code}|>"

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if self.backend not in BACKENDS:
            raise ValueError(f"`backend` must be one of {BACKENDS}, got {self.backend!r}.")
        if "{level}" not in self.token_template or "{code}" not in self.token_template:
            raise ValueError(f"`token_template` needs `{{level}}` and `{{code}}` fields, got {self.token_template!r}.")
        if self.backend == "codec":
            self._check_codec()
        else:
            self._check_kmeans()

    def _check_codec(self) -> None:
        if getattr(self.backbone_config, "codebook_size", None) is None:
            raise ValueError(
                f"The 'codec' backend needs a codec with residual codebooks (Encodec, Mimi, DAC, ...); the "
                f"{self.backbone_config.model_type!r} config has no `codebook_size`. For a speech encoder use "
                "backend='kmeans'."
            )
        available = codec_num_levels(self.backbone_config)
        if self.levels is None:
            self.levels = list(range(min(DEFAULT_CODEC_LEVELS, available)))
        self.levels = [int(level) for level in self.levels]
        bad = [level for level in self.levels if not 0 <= level < available]
        if not self.levels or bad or len(set(self.levels)) != len(self.levels):
            raise ValueError(
                f"`levels` must be distinct RVQ levels in [0, {available}) for this "
                f"{self.backbone_config.model_type} codec, got {self.levels}."
            )

    def _check_kmeans(self) -> None:
        if getattr(self.backbone_config, "codebook_size", None) is not None:
            raise ValueError(
                f"The 'kmeans' backend clusters the hidden states of a speech encoder, but the "
                f"{self.backbone_config.model_type!r} config is a codec; use backend='codec'."
            )
        if self.levels not in (None, [0]):
            raise ValueError(f"K-means units have a single level; `levels` must be [0] or None, got {self.levels}.")
        self.levels = [0]
        if self.num_units < 2:
            raise ValueError(f"`num_units` must be at least 2, got {self.num_units}.")
        if self.frame_pooling < 1:
            raise ValueError(f"`frame_pooling` must be at least 1, got {self.frame_pooling}.")
        num_states = audio_num_layers(self.backbone_config) + 1
        if not -num_states <= self.layer < num_states:
            raise ValueError(
                f"`layer` must index the encoder's {num_states} hidden states (0 = embeddings, -1 = last), "
                f"got {self.layer}."
            )

    @property
    def codebook_size(self) -> int:
        return self.backbone_config.codebook_size if self.backend == "codec" else self.num_units

    @property
    def vocab_size(self) -> int:
        return len(self.levels) * self.codebook_size


@dataclass
class SpeechUnitOutput(ModelOutput):
    r"""
    unit_ids (`torch.LongTensor` of shape `(batch_size, max_units)`):
        Vocabulary indices of the units in time order (frame by frame, levels within a frame), padded with -100.
    unit_lengths (`torch.LongTensor` of shape `(batch_size,)`): the number of units of each clip.
    """

    unit_ids: torch.LongTensor | None = None
    unit_lengths: torch.LongTensor | None = None


class SpeechUnitTokenizer(PreTrainedModel):
    """Turns audio into discrete speech units (see the module docstring for the two backends).

    Build it from a config (random weights), from pretrained parts with `from_parts(codec_or_encoder, ...)`, or
    load a saved one with `from_pretrained`. Main methods: `tokenize(audio, sampling_rate)` -> token strings,
    `unit_ids(...)` -> vocabulary indices, `encode_frames(...)` -> (frames, levels) codes, and
    `fit_kmeans(audio, sampling_rate)` for the k-means backend.
    """

    config: SpeechUnitConfig
    config_class = SpeechUnitConfig
    base_model_prefix = "speech_units"
    main_input_name = "input_values"
    input_modalities = ("audio",)

    def __init__(self, config: SpeechUnitConfig):
        super().__init__(config)
        if config.backend == "kmeans" and config.backbone_config.model_type == "whisper":
            self.backbone = WhisperEncoder(config.backbone_config)  # only the encoder half
        else:
            self.backbone = AutoModel.from_config(config.backbone_config)
        if config.backend == "kmeans":
            # (num_units, hidden): fitted by `fit_kmeans`, saved in model.safetensors with the encoder weights
            width = audio_hidden_size(config.backbone_config)
            self.register_buffer("centroids", torch.zeros(config.num_units, width))
        self._feature_extractor = None
        self.post_init()

    def _init_weights(self, module):
        if module is self:
            return  # the centroids are data, not weights: keep them as loaded or fitted
        super()._init_weights(module)

    # ------------------------------------------------------------------------------------------ vocabulary
    @property
    def sampling_rate(self) -> int:
        if self.config.backend == "codec":
            return int(self.config.backbone_config.sampling_rate)
        return int(self.feature_extractor.sampling_rate)

    @property
    def frame_rate(self) -> float:
        """Frames per second before merging repeats (each frame gives `len(config.levels)` tokens)."""
        backbone = self.config.backbone_config
        if self.config.backend == "codec":
            rate = getattr(backbone, "frame_rate", None)
            return float(rate) if rate else backbone.sampling_rate / backbone.hop_length
        if backbone.model_type == "whisper":
            return self.sampling_rate / self.feature_extractor.hop_length / 2 / self.config.frame_pooling
        rate = float(self.sampling_rate)
        for stride in getattr(backbone, "conv_stride", []):
            rate /= stride
        return rate / self.config.frame_pooling

    def token(self, level: int, code: int) -> str:
        return self.config.token_template.format(level=level, code=code)

    @property
    def vocabulary(self) -> list[str]:
        """All tokens, in vocabulary-index order (level by level, code by code)."""
        size = self.config.codebook_size
        return [self.token(level, code) for level in self.config.levels for code in range(size)]

    def ids_to_tokens(self, unit_ids) -> list[str]:
        size, levels = self.config.codebook_size, self.config.levels
        return [self.token(levels[int(index) // size], int(index) % size) for index in unit_ids]

    # --------------------------------------------------------------------------------------- feature input
    @property
    def feature_extractor(self):
        """The k-means encoder's feature extractor, rebuilt from `config.feature_extractor`."""
        if self.config.backend != "kmeans":
            raise AttributeError("Codec backends take the raw waveform; they have no feature extractor.")
        if self._feature_extractor is None:
            spec = self.config.feature_extractor
            if not spec or "feature_extractor_type" not in spec:
                raise ValueError(
                    "The k-means backend needs the encoder's feature extractor in `config.feature_extractor`; build "
                    "the tokenizer with `SpeechUnitTokenizer.from_parts(encoder, feature_extractor=...)`."
                )
            import transformers

            self._feature_extractor = getattr(transformers, spec["feature_extractor_type"]).from_dict(spec)
        return self._feature_extractor

    def check_audio(self, audio, sampling_rate: int | None = None, resample: bool = False) -> list[np.ndarray]:
        """Validate clips (one clip or a list) and return them as mono float32 arrays at `self.sampling_rate`."""
        clips = [audio] if is_single_clip(audio) else list(audio)
        if sampling_rate is None:
            logger.warning_once(
                f"No `sampling_rate` given; assuming {self.sampling_rate} Hz. Pass `sampling_rate=` to have it checked."
            )
            sampling_rate = self.sampling_rate
        return [
            check_clip(
                index,
                clip,
                sampling_rate,
                self.sampling_rate,
                resample=resample,
                min_seconds=MIN_AUDIO_SECONDS,
                owner="the speech unit tokenizer",
                rate_owner=f"the {self.config.backbone_config.model_type} {self.config.backend} backbone",
            )
            for index, clip in enumerate(clips)
        ]

    # ------------------------------------------------------------------------------------------- encoding
    @torch.inference_mode()
    def encoder_frames(self, clip: np.ndarray) -> torch.Tensor:
        """K-means backend: hidden states of `config.layer` for one checked clip, (frames, hidden), averaged over
        groups of `config.frame_pooling` frames (the last group may be shorter)."""
        frames = self._layer_states(clip)
        pool = self.config.frame_pooling
        if pool == 1:
            return frames
        groups = torch.arange(len(frames), device=frames.device) // pool  # frame -> its group
        sums = frames.new_zeros(int(groups[-1]) + 1, frames.shape[1]).index_add_(0, groups, frames)
        return sums / torch.bincount(groups).to(frames.dtype)[:, None]

    def _layer_states(self, clip: np.ndarray) -> torch.Tensor:
        config = self.config.backbone_config
        features = self.feature_extractor(
            clip, sampling_rate=self.sampling_rate, padding="longest", truncation=False, return_tensors="pt"
        )
        num_states = audio_num_layers(config) + 1
        layer = self.config.layer % num_states
        if config.model_type == "whisper":
            mels = features["input_features"].to(self.device, self.dtype)  # (1, n_mels, T)
            lengths = torch.tensor([mels.shape[-1]], device=self.device)
            # -1 means "after the final LayerNorm", as for VoxLM's `audio_layer`
            num_layers = num_states - 1 if self.config.layer == -1 else layer
            states = whisper_hidden_states(self.backbone, mels, lengths, num_layers)
            formula = {"chunk_size": 2 * config.max_source_positions, "encoder": WHISPER_CONV_STAGES}
            num_frames = int(encoder_output_lengths(mels.shape[-1], formula))
            return states[-1][0, :num_frames].float()
        input_name = self.feature_extractor.model_input_names[0]
        inputs = features[input_name].to(self.device, self.dtype)
        outputs = self.backbone(**{input_name: inputs}, output_hidden_states=True)
        return outputs.hidden_states[layer][0].float()

    @torch.inference_mode()
    def _codec_codes(self, clip: np.ndarray) -> torch.Tensor:
        """Codec backend: (frames, levels) codes of the kept levels for one checked clip."""
        waveform = torch.from_numpy(clip).to(self.device, self.dtype)[None, None, :]  # (1, 1, T)
        needed = max(self.config.levels) + 1
        model_type = self.config.backbone_config.model_type
        if model_type == "encodec":
            encoded = self.backbone.encode(waveform, bandwidth=self._encodec_bandwidth(needed))
            chunks = encoded.audio_codes[:, 0]  # (chunks, levels, frames)
            codes = torch.cat(list(chunks), dim=-1)
            if encoded.last_frame_pad_length:
                codes = codes[:, : codes.shape[-1] - encoded.last_frame_pad_length]
        elif model_type == "mimi":
            codes = self.backbone.encode(waveform, num_quantizers=needed).audio_codes[0]
        elif model_type == "dac":
            codes = self.backbone.encode(waveform, n_quantizers=needed).audio_codes[0]
        else:  # other transformers codecs: `encode` returning `audio_codes` (batch, levels, frames)
            codes = self.backbone.encode(waveform).audio_codes[0]
        if codes.ndim != 2 or codes.shape[0] < needed:
            raise ValueError(
                f"The {model_type} codec returned codes of shape {tuple(codes.shape)}; expected (levels >= {needed}, "
                "frames)."
            )
        return codes[self.config.levels].T  # (frames, kept levels)

    def _encodec_bandwidth(self, needed_levels: int) -> float:
        quantizer = self.backbone.quantizer
        for bandwidth in sorted(self.config.backbone_config.target_bandwidths):
            if quantizer.get_num_quantizers_for_bandwidth(bandwidth) >= needed_levels:
                return bandwidth
        raise ValueError(
            f"No target bandwidth of this Encodec model uses {needed_levels} codebooks "
            f"(bandwidths {self.config.backbone_config.target_bandwidths}); keep fewer levels."
        )

    def _clip_codes(self, clip: np.ndarray) -> torch.Tensor:
        if self.config.backend == "codec":
            return self._codec_codes(clip)
        if not self.config.kmeans_fitted:
            raise ValueError(
                "The k-means centroids are not fitted yet; call `fit_kmeans(training_audio, sampling_rate)` first."
            )
        frames = self.encoder_frames(clip)
        return torch.cdist(frames, self.centroids.float()).argmin(-1)[:, None]  # (frames, 1)

    def encode_frames(self, audio, sampling_rate: int | None = None, resample: bool = False) -> list[np.ndarray]:
        """Codes of each clip as an int array (frames, levels), repeats merged if `config.merge_repeats`."""
        codes = []
        for clip in self.check_audio(audio, sampling_rate, resample):
            frames = self._clip_codes(clip).cpu().numpy().astype(np.int64)
            if self.config.merge_repeats and len(frames) > 1:
                changed = np.any(frames[1:] != frames[:-1], axis=1)
                frames = frames[np.concatenate([[True], changed])]
            codes.append(frames)
        return codes

    def unit_ids(self, audio, sampling_rate: int | None = None, resample: bool = False) -> list[np.ndarray]:
        """Vocabulary indices of each clip's tokens in time order (frame by frame, levels within a frame)."""
        offsets = np.arange(len(self.config.levels)) * self.config.codebook_size
        return [(frames + offsets).reshape(-1) for frames in self.encode_frames(audio, sampling_rate, resample)]

    def tokenize(self, audio, sampling_rate: int | None = None, resample: bool = False) -> list[list[str]]:
        """Token strings of each clip (e.g. `["<|a0_17|>", "<|a1_902|>", ...]`), in time order."""
        return [self.ids_to_tokens(ids) for ids in self.unit_ids(audio, sampling_rate, resample)]

    def forward(self, input_values: torch.Tensor, attention_mask: torch.Tensor | None = None) -> SpeechUnitOutput:
        """input_values: (N, T) waveforms at `self.sampling_rate`; attention_mask: (N, T) valid samples.

        Each clip is encoded alone at its real length, so a clip gives the same units alone or in a batch.
        """
        if attention_mask is None:
            attention_mask = torch.ones_like(input_values, dtype=torch.long)
        rows = [values[: int(mask.sum())].float().cpu().numpy() for values, mask in zip(input_values, attention_mask)]
        ids = self.unit_ids(rows, sampling_rate=self.sampling_rate)
        lengths = torch.tensor([len(row) for row in ids])
        padded = torch.full((len(ids), int(lengths.max())), -100, dtype=torch.long)
        for row, row_ids in enumerate(ids):
            padded[row, : len(row_ids)] = torch.from_numpy(row_ids)
        return SpeechUnitOutput(unit_ids=padded, unit_lengths=lengths)

    # ------------------------------------------------------------------------------------------- k-means
    def fit_kmeans(
        self,
        audio,
        sampling_rate: int | None = None,
        resample: bool = False,
        max_frames: int | None = 200_000,
        batch_size: int = 1024,
        n_init: int = 1,
        seed: int = 0,
    ) -> "SpeechUnitTokenizer":
        """Fit the k-means centroids on the encoder frames of `audio` (scikit-learn `MiniBatchKMeans`).

        At most `max_frames` frames, drawn at random with `seed`, are clustered.
        """
        if self.config.backend != "kmeans":
            raise ValueError("`fit_kmeans` is for the 'kmeans' backend; codec units come from the codec itself.")
        try:
            from sklearn.cluster import MiniBatchKMeans
        except ImportError as error:  # pragma: no cover
            raise ImportError("Fitting k-means units needs scikit-learn: pip install scikit-learn") from error
        clips = self.check_audio(audio, sampling_rate, resample)
        frames = torch.cat([self.encoder_frames(clip) for clip in clips]).cpu().numpy()
        if len(frames) < self.config.num_units:
            raise ValueError(
                f"{len(frames)} encoder frames cannot be clustered into {self.config.num_units} units; give more "
                "audio or lower `num_units`."
            )
        rng = np.random.default_rng(seed)
        if max_frames is not None and len(frames) > max_frames:
            frames = frames[rng.choice(len(frames), max_frames, replace=False)]
        kmeans = MiniBatchKMeans(
            n_clusters=self.config.num_units, batch_size=batch_size, n_init=n_init, random_state=seed
        ).fit(frames)
        self.centroids.copy_(torch.from_numpy(kmeans.cluster_centers_).to(self.centroids))
        self.config.kmeans_fitted = True
        return self

    # ------------------------------------------------------------------------------------------- assembly
    @classmethod
    def from_parts(
        cls,
        backbone,
        feature_extractor=None,
        backend: str | None = None,
        levels: list[int] | None = None,
        layer: int = -1,
        num_units: int = 500,
        merge_repeats: bool = False,
        frame_pooling: int = 1,
        **config_kwargs,
    ) -> "SpeechUnitTokenizer":
        """Assemble a tokenizer around a pretrained codec or speech encoder.

        Args:
            backbone: a loaded codec (`EncodecModel`, `MimiModel`, `DacModel`, ...) or speech encoder (Whisper,
                wav2vec2, HuBERT, WavLM, ...), or a Hub id / folder of one.
            feature_extractor: k-means only: the encoder's feature extractor (loaded from `backbone` when that is
                a path).
            backend: `"codec"` or `"kmeans"`; by default `"codec"` when the backbone has codebooks.
            levels, layer, num_units, merge_repeats, frame_pooling: see [`SpeechUnitConfig`].
        """
        if isinstance(backbone, str):
            if feature_extractor is None and backend != "codec":
                from transformers import AutoFeatureExtractor

                feature_extractor = AutoFeatureExtractor.from_pretrained(backbone)
            backbone = AutoModel.from_pretrained(backbone)
        if backbone.config.model_type == "whisper" and not isinstance(backbone, WhisperEncoder):
            backbone = backbone.get_encoder()
        if backend is None:
            backend = "codec" if getattr(backbone.config, "codebook_size", None) is not None else "kmeans"
        if backend == "kmeans" and feature_extractor is None:
            raise ValueError(
                "The k-means backend needs the encoder's `feature_extractor` (e.g. a WhisperFeatureExtractor)."
            )
        config = SpeechUnitConfig(
            backbone_config=backbone.config.to_dict(),
            backend=backend,
            levels=levels,
            layer=layer,
            num_units=num_units,
            merge_repeats=merge_repeats,
            frame_pooling=frame_pooling,
            feature_extractor=feature_extractor.to_dict() if feature_extractor is not None else None,
            **config_kwargs,
        )
        with torch.device("meta"):
            model = cls(config)
        model.backbone = backbone
        if backend == "kmeans":
            model.register_buffer("centroids", torch.zeros(config.num_units, audio_hidden_size(backbone.config)))
        return model.eval()


__all__ = ["SpeechUnitConfig", "SpeechUnitOutput", "SpeechUnitTokenizer"]
