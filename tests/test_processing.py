import numpy as np
import pytest
import soundfile
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tiny import tiny_voxlm, tone
from transformers import AutoProcessor

from voxlm.processing import VoxLMProcessor

SR = 16000


@pytest.fixture(scope="module")
def whisper_pair():
    return tiny_voxlm("whisper", "llama", adapter="blsp")


@pytest.mark.parametrize("adapter", ["speechverse", "blsp", "ultravox"])
@pytest.mark.parametrize("audio_family, window", [("whisper", 1.0), ("wav2vec2", 30.0), ("wav2vec2-bert", 30.0)])
def test_processor_count_equals_model_count(adapter, audio_family, window):
    """Property: for any clip length, the placeholders the processor writes are the positions the model fills."""
    model, processor = tiny_voxlm(audio_family, "llama", adapter=adapter, window_seconds=window)

    @settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.lists(st.integers(min_value=400, max_value=int(2.7 * SR)), min_size=1, max_size=3))
    def check(sample_counts):
        clips = [tone(n / SR, seed=n) for n in sample_counts]
        inputs = processor(text=[" ".join(["<|audio|>"] * len(clips))], audio=clips, sampling_rate=SR)
        with torch.no_grad():
            features = model.get_audio_features(inputs["input_features"], inputs["input_features_mask"])
        assert int((inputs["input_ids"] == processor.audio_token_id).sum()) == features.shape[0]

    check()


def test_expansion_uses_the_length_formula(whisper_pair):
    _, processor = whisper_pair
    inputs = processor(text=["a <|audio|> b <|audio|>"], audio=[tone(1.0), tone(3.0)], sampling_rate=SR)
    ids = inputs["input_ids"][0].tolist()
    runs, count = [], 0
    for token in ids + [-1]:
        if token == processor.audio_token_id:
            count += 1
        elif count:
            runs.append(count)
            count = 0
    # 1 s = 100 mel frames -> 50 encoder frames -> 25 -> 13 -> 7; 3 s = 300 -> 150 -> 75 -> 38 -> 19 (BLSP: 6.25 Hz)
    assert runs == [7, 19]
    assert processor.num_audio_positions(np.array([100, 300])).tolist() == [7, 19]


@pytest.mark.parametrize(
    "audio, kwargs, message",
    [
        (tone(1.0), {"sampling_rate": 22050}, "sampled at 22050 Hz but the feature extractor expects 16000 Hz"),
        (
            np.stack([tone(1.0), tone(1.0)]),
            {"sampling_rate": SR},
            "has 2 channels (shape (2, 16000)); VoxLM expects mono",
        ),
        (np.zeros(0, np.float32), {"sampling_rate": SR}, "Audio clip 0 is empty"),
        (
            np.where(np.arange(800) == 7, np.nan, 0.1).astype(np.float32),
            {"sampling_rate": SR},
            "contains 1 NaN or infinite samples",
        ),
        ((tone(1.0) * 32767).astype(np.int16), {"sampling_rate": SR}, "holds integer samples (int16)"),
        (tone(0.01), {"sampling_rate": SR}, "has 160 samples (10.0 ms); VoxLM needs at least 400 samples"),
    ],
)
def test_bad_audio_gets_a_clear_error(whisper_pair, audio, kwargs, message):
    _, processor = whisper_pair
    with pytest.raises(ValueError) as error:
        processor(text=["<|audio|>"], audio=[audio], **kwargs)
    assert message in str(error.value)


def test_placeholder_count_mismatch_is_an_error(whisper_pair):
    _, processor = whisper_pair
    with pytest.raises(ValueError, match="contains 2 <\\|audio\\|> placeholders but 1 audio clips were given"):
        processor(text=["<|audio|> and <|audio|>"], audio=[tone(1.0)], sampling_rate=SR)
    with pytest.raises(ValueError, match="contains 0 <\\|audio\\|> placeholders but 1 audio clips"):
        processor(text=["no placeholder"], audio=[tone(1.0)], sampling_rate=SR)


def test_explicit_resampling_and_downmix(whisper_pair):
    _, processor = whisper_pair
    clip_8k = tone(2.0, sampling_rate=8000)
    inputs = processor(text=["<|audio|>"], audio=[clip_8k], sampling_rate=8000, resample=True)
    assert inputs["input_features_mask"].sum() == 200  # 2 s at 16 kHz -> 200 mel frames
    stereo = np.stack([tone(1.0), tone(1.0, seed=5)], axis=1)  # (T, 2)
    mixed = processor(text=["<|audio|>"], audio=[stereo], sampling_rate=SR, downmix=True)
    mono = processor(text=["<|audio|>"], audio=[stereo.mean(axis=1)], sampling_rate=SR)
    assert torch.equal(mixed["input_features"], mono["input_features"])


def test_chat_template_with_audio_items(whisper_pair):
    _, processor = whisper_pair
    conversation = [
        {"role": "user", "content": [{"type": "audio", "audio": tone(1.0)}, {"type": "text", "text": " transcribe"}]}
    ]
    text = processor.apply_chat_template(conversation, add_generation_prompt=True)
    assert text == "<|im_start|>user\n<|audio|>\n transcribe<|im_end|>\n<|im_start|>assistant\n"
    inputs = processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=True, sampling_rate=SR)
    manual = processor(text=[text], audio=[tone(1.0)], sampling_rate=SR)
    assert torch.equal(inputs["input_ids"], manual["input_ids"])
    assert torch.equal(inputs["input_features"], manual["input_features"])


def test_chat_labels_cover_only_the_assistant_turns(whisper_pair):
    _, processor = whisper_pair
    conversation = [
        {"role": "user", "content": [{"type": "audio", "audio": tone(1.0)}, {"type": "text", "text": "what is said"}]},
        {"role": "assistant", "content": "hello world"},
        {"role": "user", "content": "and then"},
        {"role": "assistant", "content": "the quick fox"},
    ]
    batch = processor.apply_chat_template(conversation, return_labels=True, sampling_rate=SR)
    ids, labels = batch["input_ids"][0], batch["labels"][0]
    trained = processor.tokenizer.decode(ids[labels != -100])
    assert trained == "hello world<|im_end|>\nthe quick fox<|im_end|>\n"
    assert (labels[ids == processor.audio_token_id] == -100).all()


def test_prepare_for_training_masks_the_prompt(whisper_pair):
    model, processor = whisper_pair
    batch = processor.prepare_for_training(
        ["<|audio|> transcribe:", "say <|audio|> again:"], [" hello world", " the fox"],
        audio=[tone(1.0), tone(0.5)], sampling_rate=SR,
    )  # fmt: skip
    for row, response in enumerate([" hello world", " the fox"]):
        targets = batch["input_ids"][row][batch["labels"][row] != -100]
        assert processor.tokenizer.decode(targets) == response + processor.tokenizer.eos_token
    assert batch["attention_mask"].sum() == (batch["input_ids"] != processor.tokenizer.pad_token_id).sum()
    loss = model(**batch).loss
    assert torch.isfinite(loss)


def test_audio_from_a_file_path(whisper_pair, tmp_path):
    _, processor = whisper_pair
    path = tmp_path / "clip.wav"
    soundfile.write(path, tone(1.0, sampling_rate=22050), 22050)
    conversation = [{"role": "user", "content": [{"type": "audio", "path": str(path)}]}]
    inputs = processor.apply_chat_template(conversation, tokenize=True, sampling_rate=SR)
    assert inputs["input_features_mask"].sum() == 100


def test_multi_turn_audio_of_different_rates_is_resampled_once(whisper_pair, tmp_path):
    """A file in one turn, arrays at other rates in later turns: each clip is converted from its own rate."""
    from voxlm.processing.audio_checks import load_audio, resample_clip

    _, processor = whisper_pair
    path = tmp_path / "first.wav"
    soundfile.write(path, tone(1.0, sampling_rate=22050), 22050)
    second, third = tone(2.0, sampling_rate=48000, seed=1), tone(0.5, sampling_rate=8000, seed=2)
    conversation = [
        {"role": "user", "content": [{"type": "audio", "path": str(path)}, {"type": "text", "text": "transcribe"}]},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": [{"type": "audio", "audio": second}]},  # at the call's rate
        {"role": "assistant", "content": "world"},
        {"role": "user", "content": [{"type": "audio", "audio": third, "sampling_rate": 8000}]},
    ]
    inputs = processor.apply_chat_template(
        conversation, add_generation_prompt=True, tokenize=True, sampling_rate=48000, resample=True
    )
    clips = [load_audio(str(path), SR), resample_clip(second, 48000, SR), resample_clip(third, 8000, SR)]
    text = processor.apply_chat_template(conversation, add_generation_prompt=True)
    expected = processor(text=text, audio=clips, sampling_rate=SR)
    assert inputs["input_features_mask"].sum(-1).tolist() == [100, 200, 50]
    for key in ("input_ids", "input_features", "input_features_mask"):
        assert torch.equal(inputs[key], expected[key]), key
    with pytest.raises(ValueError, match="Audio clip 2 is sampled at 8000 Hz"):  # resampling stays opt-in
        processor.apply_chat_template(conversation, tokenize=True, sampling_rate=SR)


def test_processor_round_trip(whisper_pair, tmp_path):
    _, processor = whisper_pair
    processor.save_pretrained(tmp_path)
    reloaded = AutoProcessor.from_pretrained(tmp_path)
    assert isinstance(reloaded, VoxLMProcessor)
    assert reloaded.audio_length_formula == processor.audio_length_formula
    assert reloaded.audio_token_id == processor.audio_token_id
    args = {"text": ["hi <|audio|>"], "audio": [tone(0.8)], "sampling_rate": SR}
    for key, value in processor(**args).items():
        assert torch.equal(value, reloaded(**args)[key])


def test_batch_decode_skips_the_audio_token(whisper_pair):
    _, processor = whisper_pair
    inputs = processor(text=["hello <|audio|> world"], audio=[tone(0.5)], sampling_rate=SR)
    assert processor.batch_decode(inputs["input_ids"], skip_special_tokens=True) == ["hello  world"]


def test_processor_requires_the_length_formula(whisper_pair):
    _, processor = whisper_pair
    with pytest.raises(ValueError, match="needs the model's `audio_length_formula`"):
        VoxLMProcessor(processor.feature_extractor, processor.tokenizer)
