"""K-means speech units over the real Whisper tiny.en on real LibriVox speech, and the processor on MiniLM."""

import math

import pytest
import torch

pytestmark = pytest.mark.real


@pytest.fixture(scope="module")
def librivox():
    from voxlm.train.offline.speech import real_recordings

    return [recording.audio for recording in real_recordings(["librivox"])[:4]]


@pytest.fixture(scope="module")
def units(librivox):
    from voxlm.processing import SpeechUnitTokenizer
    from voxlm.train.offline.assets import whisper_tiny_en_dir

    torch.set_num_threads(1)
    tokenizer = SpeechUnitTokenizer.from_parts(str(whisper_tiny_en_dir()), layer=2, num_units=32, frame_pooling=2)
    return tokenizer.fit_kmeans(librivox, sampling_rate=16000, seed=0)


def test_whisper_tiny_en_units_cover_every_frame_and_use_many_clusters(units, librivox):
    assert units.config.backbone_config.d_model == 384 and units.frame_rate == 25.0
    for clip, ids in zip(librivox, units.unit_ids(librivox, sampling_rate=16000)):
        mels = units.feature_extractor(clip, sampling_rate=16000, padding="longest", return_tensors="np")
        encoder_frames = math.ceil(mels["input_features"].shape[-1] / 2)  # conv2 has stride 2
        assert len(ids) == math.ceil(encoder_frames / 2)  # no merging: one unit per pair of frames
    used = {int(i) for ids in units.unit_ids(librivox, sampling_rate=16000) for i in ids}
    assert len(used) >= 24  # speech spreads over most of the 32 clusters


def test_real_units_and_processor_round_trip(units, librivox, tmp_path):
    from transformers import AutoProcessor

    from voxlm.processing import SpeechTokenProcessor
    from voxlm.train.offline.assets import minilm_dir

    kept = units.vocabulary[::2]
    processor = SpeechTokenProcessor.from_parts(str(minilm_dir()), kept, speech_units=units, max_length=256)
    expected = processor(text=["a short sentence", "another one"], audio=librivox[:2], sampling_rate=16000)
    processor.save_pretrained(tmp_path)
    reloaded = AutoProcessor.from_pretrained(tmp_path, trust_remote_code=True)
    again = reloaded(text=["a short sentence", "another one"], audio=librivox[:2], sampling_rate=16000)
    assert torch.equal(again["input_ids"], expected["input_ids"])
    assert reloaded.tokenizer.cls_token_id == expected["input_ids"][0, 0]
    audio_ids = set(processor.unit_token_ids.values())
    assert sum(int(i) in audio_ids for i in expected["input_ids"][0]) > 10
