import datasets
import numpy as np
import pytest
import soundfile
import torch
from scipy.signal import resample_poly
from tiny import tiny_tokenizer, tiny_voxlm, tone
from tiny_data import tiny_spoken_dataset

from voxlm.train.core.audio import audio_seconds, read_audio
from voxlm.train.core.data import (
    DatasetSpec,
    Source,
    SpeechTaskCollator,
    StreamingTaskMixture,
    TaskMixture,
    check_columns,
    durations,
    load_dataset_spec,
)
from voxlm.train.core.prompts import build_prompt
from voxlm.train.core.tasks import build_tasks


@pytest.fixture(scope="module")
def saved_dataset(tmp_path_factory):
    folder = tmp_path_factory.mktemp("spoken") / "data"
    tiny_spoken_dataset(12, seed=3).save_to_disk(str(folder))
    return str(folder)


def test_read_audio_from_every_cell_kind(tmp_path):
    clip_8k = tone(0.5, sampling_rate=8000)
    stereo = np.stack([tone(0.4), tone(0.4, seed=5)], axis=1)  # (T, 2)
    path = tmp_path / "stereo.wav"
    soundfile.write(path, stereo, 16000)
    wav_bytes = path.read_bytes()

    resampled = read_audio({"array": clip_8k, "sampling_rate": 8000})
    assert resampled.dtype == np.float32 and resampled.shape == (8000,)
    from_path = read_audio(str(path))
    np.testing.assert_allclose(from_path, stereo.mean(axis=1), atol=1e-4)  # 16-bit PCM on disk
    np.testing.assert_array_equal(read_audio({"bytes": wav_bytes, "path": None}), from_path)
    np.testing.assert_array_equal(read_audio({"bytes": None, "path": str(path)}), from_path)
    np.testing.assert_array_equal(read_audio(clip_8k, source_rate=8000), resampled)
    for cell in ({"array": clip_8k, "sampling_rate": 8000}, str(path), {"bytes": wav_bytes, "path": None}):
        expected = 0.5 if isinstance(cell, dict) and "array" in cell else 0.4
        assert audio_seconds(cell) == pytest.approx(expected)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_audio(str(tmp_path / "missing.wav"))


def test_read_audio_resamples_downmixes_and_reads_headerless_pcm(tmp_path):
    stereo = np.stack([np.sin(np.arange(48000) / 10), np.zeros(48000)], axis=1).astype(np.float32) * 0.5
    soundfile.write(tmp_path / "stereo.wav", stereo, 48000)
    wave = read_audio(tmp_path / "stereo.wav")
    assert wave.dtype == np.float32 and wave.shape == (16000,)
    np.testing.assert_allclose(wave, resample_poly(stereo.mean(axis=1), 1, 3), atol=1e-4)
    (np.array([0, 16384, -32768], dtype="<i2")).tofile(tmp_path / "clip.raw")
    np.testing.assert_array_equal(read_audio(tmp_path / "clip.raw"), [0.0, 0.5, -1.0])


def test_undecoded_audio_column_is_read_with_soundfile(tmp_path):
    path = tmp_path / "a.wav"
    soundfile.write(path, tone(0.3), 16000)
    table = datasets.Dataset.from_dict({"speech": [str(path)], "sentence": ["hi"]})
    table.cast_column("speech", datasets.Audio(sampling_rate=16000)).save_to_disk(str(tmp_path / "d"))
    spec = DatasetSpec(path=str(tmp_path / "d"), columns={"audio": "speech", "text": "sentence"}, name="d")
    dataset = load_dataset_spec(spec)
    assert dataset.features["audio"].decode is False
    assert durations(dataset, spec).tolist() == pytest.approx([0.3])
    assert read_audio(dataset[0]["audio"]).shape == (4800,)


def test_load_spec_renames_columns_names_labels_and_slices(tmp_path, saved_dataset):
    labels = datasets.ClassLabel(names=["neutral", "happy"])
    rows = {"clip": [tone(0.2).tolist()] * 4, "mood": [0, 1, 1, 0]}
    features = datasets.Features({"clip": datasets.List(datasets.Value("float32")), "mood": labels})
    datasets.Dataset.from_dict(rows, features=features).save_to_disk(str(tmp_path / "moods"))
    spec = DatasetSpec(
        path=str(tmp_path / "moods"),
        task="emotion",
        split="train[1:3]",
        columns={"audio": "clip", "label": "mood"},
        name="moods",
    )
    dataset = load_dataset_spec(spec)
    assert dataset.column_names == ["audio", "label"]
    assert dataset["label"] == ["happy", "happy"]
    assert durations(dataset, spec).tolist() == pytest.approx([0.2, 0.2])

    bad = DatasetSpec(path=saved_dataset, columns={"audio": "speech"}, name="bad")
    with pytest.raises(ValueError, match=r"no column\(s\) \['speech'\].*columns: \{canonical_name"):
        load_dataset_spec(bad)


def test_check_columns_names_the_missing_column_and_the_fix(saved_dataset):
    tasks = build_tasks()
    spec = DatasetSpec(path=saved_dataset, task="st", name="translate")
    dataset = load_dataset_spec(spec)
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['language'\].*fields: \{language: <value>\}"):
        spec.require_columns(dataset, tasks["st"].required_columns)
    spec.fields = {"language": "German"}
    spec.require_columns(dataset, tasks["st"].required_columns)
    with pytest.raises(ValueError, match=r"^table lacks column\(s\) \['x'\]; it has .*Name x\.$"):
        check_columns(dataset, ["x", None, "audio"], "table", "Name {column}.")


def test_mixture_examples_are_deterministic_and_weighted(saved_dataset):
    tasks = build_tasks()
    asr = DatasetSpec(path=saved_dataset, task="asr", name="asr", weight=3.0)
    intent = DatasetSpec(path=saved_dataset, task="intent", name="intent", weight=1.0, max_samples=4)
    sources = [Source(s, load_dataset_spec(s), tasks[s.task], s.weight) for s in (asr, intent)]
    mixture = TaskMixture(sources, seed=7, examples_per_epoch=40)
    assert len(mixture) == 16
    example = mixture[13]
    assert example["task"] == "intent" and example["instruction"] in tasks["intent"].prompts
    assert example["target"] == sources[1].dataset[1]["intent"]
    assert example["audio"].dtype == np.float32
    assert mixture[13]["instruction"] == example["instruction"]  # same prompt for the same seed and index
    assert len({mixture[i]["instruction"] for i in range(12)}) > 1  # prompts vary across examples
    np.testing.assert_allclose(mixture.seconds[13], example["audio"].size / 16000)

    epoch = mixture.epoch_indices(0)
    assert len(epoch) == 40 and (epoch < 12).sum() == 30 and (epoch >= 12).sum() == 10  # 3:1 by weight
    assert set(epoch[epoch >= 12]) == set(range(12, 16))  # the small source is up-sampled, every row used
    np.testing.assert_array_equal(epoch, mixture.epoch_indices(0))
    assert not np.array_equal(epoch, mixture.epoch_indices(1))


def test_streaming_mixture_shards_by_rank(saved_dataset):
    tasks = build_tasks()
    spec = DatasetSpec(path=saved_dataset, task="asr", name="asr", streaming=True)
    stream = load_dataset_spec(spec)
    texts = set(load_dataset_spec(DatasetSpec(path=saved_dataset, name="asr"))["text"])

    def first(rank: int, count: int = 12) -> list[str]:
        mixture = StreamingTaskMixture(
            [Source(spec, stream, tasks["asr"])], seed=1, shuffle_buffer=4, rank=rank, world_size=2
        )
        iterator = iter(mixture)
        return [next(iterator)["target"] for _ in range(count)]

    rank0, rank1 = first(0), first(1)
    assert rank0 == first(0)  # deterministic
    assert set(rank0) | set(rank1) <= texts
    assert set(rank0[:6]).isdisjoint(rank1[:6])  # each rank reads its own shard in an epoch (6 rows each)


def test_collator_trains_on_the_target_and_eos_only():
    _, processor = tiny_voxlm("whisper", "llama")
    examples = [
        {"audio": tone(0.5), "instruction": "Transcribe the audio.", "target": "hello world", "task": "asr"},
        {"audio": tone(0.8, seed=2), "instruction": "Intent?", "target": "lights", "task": "intent"},
    ]
    batch = SpeechTaskCollator(processor)(examples)
    assert set(batch) == {"input_ids", "attention_mask", "input_features", "input_features_mask", "labels"}
    for row, example in enumerate(examples):
        kept = batch["labels"][row][batch["labels"][row] != -100]
        assert processor.tokenizer.decode(kept) == example["target"] + processor.tokenizer.eos_token
    prompt = build_prompt(processor, "Transcribe the audio.")
    assert prompt.startswith("<|im_start|>user\n<|audio|>\nTranscribe") and prompt.endswith("assistant\n")


def test_collator_for_an_encoder_decoder_llm_puts_the_prompt_in_the_encoder():
    model, processor = tiny_voxlm("whisper", "t5")
    collator = SpeechTaskCollator(processor, is_encoder_decoder=True, prompt_format="plain")
    examples = [
        {"audio": tone(0.5), "instruction": "Transcribe the audio.", "target": "hello world"},
        {"audio": tone(0.9, seed=2), "instruction": "Transcribe.", "target": "the quick brown fox jumps"},
    ]
    batch = collator(examples)
    audio_id = processor.audio_token_id
    assert (batch["input_ids"] == audio_id).sum() == int(
        model.config.num_audio_positions(batch["input_features_mask"].sum(-1)).sum()
    )
    assert (batch["input_ids"][:, 0] == audio_id).all()  # audio first, then the instruction (right padding)
    for row, example in enumerate(examples):
        kept = batch["labels"][row][batch["labels"][row] != -100]
        assert processor.tokenizer.decode(kept, skip_special_tokens=True) == example["target"]
        assert (batch["input_ids"][row] == audio_id).any()
    loss = model(**batch).loss
    assert torch.isfinite(loss)


def test_prompt_format_errors():
    _, processor = tiny_voxlm("whisper", "llama")
    with pytest.raises(ValueError, match="Unknown prompt template 'json'; use one of chat, plain, blsp"):
        build_prompt(processor, "x", prompt_format="json")
    processor.tokenizer.chat_template = None
    processor.chat_template = None
    with pytest.raises(ValueError, match="prompt_format: plain"):
        build_prompt(processor, "x")
    assert tiny_tokenizer().chat_template  # the shared tokenizer factory is untouched


def test_bare_arrays_with_a_sampling_rate_column(tmp_path):
    rows = {"audio": [tone(0.5, sampling_rate=8000), tone(0.25)], "sampling_rate": [8000, 16000], "text": ["a", "b"]}
    datasets.Dataset.from_dict(rows).save_to_disk(str(tmp_path / "bare"))
    spec = DatasetSpec(path=str(tmp_path / "bare"), name="bare")
    dataset = load_dataset_spec(spec)
    assert durations(dataset, spec).tolist() == pytest.approx([0.5, 0.25])
    mixture = TaskMixture([Source(spec, dataset, build_tasks()["asr"])])
    assert mixture[0]["audio"].shape == (8000,) and mixture[1]["audio"].shape == (4000,)  # resampled to 16 kHz
    assert mixture[0]["source"] == "bare"


def test_training_augmentation_is_fresh_every_epoch_and_replays_exactly(saved_dataset):
    from voxlm.train.core.augment import AugmentSpec

    spec = DatasetSpec(path=saved_dataset, task="asr", name="asr")
    tasks = build_tasks()
    dataset = load_dataset_spec(spec)
    noisy = AugmentSpec.from_dict({"noise": {"p": 1.0, "snr_db": [10.0, 10.0]}, "gain": {"p": 0.0},
                                   "speed": {"p": 0.0}, "reverb": {"p": 0.0}, "babble": {"p": 0.0},
                                   "telephone": {"p": 0.0}, "codec": {"p": 0.0}})  # fmt: skip
    plain = TaskMixture([Source(spec, dataset, tasks["asr"])], seed=0)
    augmented = TaskMixture([Source(spec, dataset, tasks["asr"], augment=noisy)], seed=0)
    clean = plain[3]["audio"]
    first = augmented[3]["audio"]
    assert first.shape == clean.shape and not np.allclose(first, clean)
    # The noise sits 10 dB below the speech: the difference has a tenth of the clip's power.
    assert np.mean((first - clean) ** 2) / np.mean(clean**2) == pytest.approx(0.1, rel=0.05)
    np.testing.assert_array_equal(augmented[3]["audio"], first)  # same example, same epoch: the same draw
    augmented.set_epoch(1)
    assert not np.allclose(augmented[3]["audio"], first)  # another epoch: new noise
    assert augmented[3]["target"] == plain[3]["target"] and augmented[3]["instruction"] == plain[3]["instruction"]


def test_a_bad_augmentation_key_fails_when_the_spec_is_read(saved_dataset):
    with pytest.raises(ValueError, match=r"Unknown augmentation effect\(s\) \['nosie'\]"):
        DatasetSpec.from_dict("asr", {"path": saved_dataset, "augment": {"nosie": {"p": 0.5}}})
