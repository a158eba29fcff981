"""Speech unit tokenizer: codec and k-means backends, naming, merging, save/load, errors."""

import json
import os

import numpy as np
import pytest
import torch
from safetensors import safe_open
from tiny import tone
from tiny_speechtok import CODECS, kmeans_units, tiny_codec, tones

from voxlm.processing import SpeechUnitConfig, SpeechUnitTokenizer

torch.set_num_threads(1)


def codec_reference_codes(codec, family: str, clip: np.ndarray, num_levels: int) -> np.ndarray:
    """The codec's own `encode` output, (levels, frames), for one clip."""
    waveform = torch.from_numpy(clip)[None, None]
    with torch.no_grad():
        if family == "encodec":
            return codec.encode(waveform, bandwidth=3.0).audio_codes[0, 0, :num_levels].numpy()
        if family == "mimi":
            return codec.encode(waveform, num_quantizers=num_levels).audio_codes[0].numpy()
        return codec.encode(waveform, n_quantizers=num_levels).audio_codes[0].numpy()


@pytest.mark.parametrize("family", CODECS)
def test_codec_units_are_the_codecs_codes_by_level_and_frame(family):
    codec = tiny_codec(family)
    units = SpeechUnitTokenizer.from_parts(codec, levels=[0, 1, 3])
    clip = tones(1)[0]
    reference = codec_reference_codes(codec, family, clip, 4)  # (levels, frames)
    tokens = units.tokenize(clip, sampling_rate=16000)[0]
    expected = [f"<|a{level}_{reference[level, frame]}|>" for frame in range(reference.shape[1]) for level in (0, 1, 3)]
    assert tokens == expected
    ids = units.unit_ids(clip, sampling_rate=16000)[0]
    assert units.ids_to_tokens(ids) == tokens
    assert [units.vocabulary[i] for i in ids] == tokens
    assert len(units.vocabulary) == 3 * codec.config.codebook_size
    assert units.frame_rate * len(clip) / 16000 == pytest.approx(reference.shape[1], abs=1)


@pytest.mark.parametrize("family", CODECS)
def test_codec_units_round_trip_through_save_and_load(family, tmp_path):
    units = SpeechUnitTokenizer.from_parts(tiny_codec(family), levels=[1, 0])
    units.save_pretrained(tmp_path)
    assert not [name for name in os.listdir(tmp_path) if name.endswith((".bin", ".pt", ".pkl"))]
    reloaded = SpeechUnitTokenizer.from_pretrained(tmp_path)
    assert reloaded.config.levels == [1, 0]
    assert reloaded.tokenize(tones(3), 16000) == units.tokenize(tones(3), 16000)


def test_codec_levels_default_to_the_first_eight_and_are_checked():
    codec = tiny_codec("dac")
    assert SpeechUnitTokenizer.from_parts(codec).config.levels == [0, 1, 2, 3]  # only 4 codebooks
    with pytest.raises(ValueError, match=r"levels.*\[0, 4\)"):
        SpeechUnitTokenizer.from_parts(codec, levels=[0, 4])
    with pytest.raises(ValueError, match="use backend='kmeans'"):
        SpeechUnitConfig(backbone_config={"model_type": "whisper"}, backend="codec")
    with pytest.raises(ValueError, match="use backend='codec'"):
        SpeechUnitConfig(backbone_config=codec.config.to_dict(), backend="kmeans")


@pytest.mark.parametrize("family", ["whisper", "wav2vec2"])
def test_kmeans_units_are_the_nearest_centroid_of_each_encoder_frame(family):
    units = kmeans_units(family, num_units=6, layer=1)
    clip = tone(1.0, frequency=180.0)
    frames = units.encoder_frames(units.check_audio(clip, 16000)[0]).numpy()
    assert frames.shape[0] == 50  # 1 s at 50 frames per second, on the real clip length
    distances = ((frames[:, None, :] - units.centroids.numpy()[None]) ** 2).sum(-1)
    assert units.tokenize(clip, 16000)[0] == [f"<|a0_{code}|>" for code in distances.argmin(1)]
    assert units.vocabulary == [f"<|a0_{code}|>" for code in range(6)]


def test_kmeans_centroids_travel_in_safetensors(tmp_path):
    units = kmeans_units(num_units=5)
    units.save_pretrained(tmp_path)
    with safe_open(os.path.join(tmp_path, "model.safetensors"), "pt") as file:
        assert torch.equal(file.get_tensor("centroids"), units.centroids)
    config = json.loads((tmp_path / "config.json").read_text())
    assert (
        config["kmeans_fitted"] and config["feature_extractor"]["feature_extractor_type"] == "WhisperFeatureExtractor"
    )
    reloaded = SpeechUnitTokenizer.from_pretrained(tmp_path)
    clips = tones(3, seconds=1.3)
    assert reloaded.tokenize(clips, 16000) == units.tokenize(clips, 16000)


def test_merge_repeats_collapses_runs_of_identical_frames():
    plain, merged = kmeans_units(num_units=4), kmeans_units(num_units=4, merge_repeats=True)
    clip = np.concatenate([tone(0.5, frequency=110.0), tone(0.5, frequency=440.0)])
    tokens, merged_tokens = plain.tokenize(clip, 16000)[0], merged.tokenize(clip, 16000)[0]
    runs = [token for i, token in enumerate(tokens) if i == 0 or token != tokens[i - 1]]
    assert merged_tokens == runs
    assert len(merged_tokens) < len(tokens)


def test_forward_batch_equals_clip_by_clip():
    units = kmeans_units(num_units=4)
    clips = [tone(0.7), tone(0.4, frequency=300.0)]
    batch = torch.zeros(2, len(clips[0]))
    batch[0], batch[1, : len(clips[1])] = torch.from_numpy(clips[0]), torch.from_numpy(clips[1])
    mask = torch.zeros_like(batch, dtype=torch.long)
    mask[0], mask[1, : len(clips[1])] = 1, 1
    output = units(batch, attention_mask=mask)
    for row, ids in enumerate(units.unit_ids(clips, 16000)):
        assert output.unit_lengths[row] == len(ids)
        assert output.unit_ids[row, : len(ids)].tolist() == ids.tolist()
        assert (output.unit_ids[row, len(ids) :] == -100).all()


def test_bad_audio_and_unfitted_kmeans_get_clear_errors():
    config = SpeechUnitConfig(
        backbone_config=kmeans_units().config.backbone_config.to_dict(),
        num_units=4,
        feature_extractor=kmeans_units().config.feature_extractor,
    )
    with pytest.raises(ValueError, match="call `fit_kmeans"):
        SpeechUnitTokenizer(config).tokenize(tone(0.5), 16000)
    units = kmeans_units()
    with pytest.raises(ValueError, match="8000 Hz.*16000 Hz.*resample=True"):
        units.tokenize(tone(0.5, sampling_rate=8000), sampling_rate=8000)
    assert len(units.tokenize(tone(0.5, sampling_rate=8000), sampling_rate=8000, resample=True)[0]) == 25
    with pytest.raises(ValueError, match="NaN"):
        units.tokenize(np.full(8000, np.nan, dtype=np.float32), 16000)
    with pytest.raises(ValueError, match="cannot be clustered into 500 units"):
        SpeechUnitTokenizer(config.__class__(**{**config.to_dict(), "num_units": 500})).fit_kmeans(tone(0.2), 16000)


def test_frame_pooling_averages_groups_of_encoder_frames():
    units = kmeans_units(num_units=4)
    pooled = SpeechUnitTokenizer(SpeechUnitConfig(**{**units.config.to_dict(), "frame_pooling": 3})).eval()
    pooled.load_state_dict(units.state_dict())
    clip = units.check_audio(tone(0.5), 16000)[0]  # 25 frames -> 8 groups of 3 and one of 1
    frames, groups = units.encoder_frames(clip), pooled.encoder_frames(clip)
    assert groups.shape == (9, frames.shape[1])
    torch.testing.assert_close(groups[0], frames[:3].mean(0))
    torch.testing.assert_close(groups[-1], frames[24])
    assert pooled.frame_rate == units.frame_rate / 3
    assert len(pooled.tokenize(clip, 16000)[0]) == 9
