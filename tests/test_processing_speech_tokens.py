"""The speech-token processor: layout, filtering, truncation of both parts, save/load and remote code."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from tiny import tiny_tokenizer, tone
from tiny_speechtok import kmeans_units, tiny_bert_tokenizer
from transformers import AutoProcessor

from voxlm.processing import SpeechTokenProcessor

torch.set_num_threads(1)
KEPT = ["<|a0_1|>", "<|a0_3|>", "<|a1_0|>"]
CLIP = ["<|a0_3|>", "<|a0_2|>", "<|a1_0|>", "<|a0_3|>", "<|a1_5|>", "<|a0_1|>"]


def make_processor(kind: str = "bpe", tmp_path=None, **kwargs) -> SpeechTokenProcessor:
    tokenizer = tiny_tokenizer() if kind == "bpe" else tiny_bert_tokenizer(str(tmp_path / "bert"))
    return SpeechTokenProcessor.from_parts(tokenizer, KEPT, **kwargs)


@pytest.mark.parametrize("kind", ["bpe", "wordpiece"])
def test_layout_markers_text_then_kept_units_in_time_order(kind, tmp_path):
    processor = make_processor(kind, tmp_path)
    tokenizer = processor.tokenizer
    text_ids = tokenizer("the quick brown fox", add_special_tokens=False)["input_ids"]
    ids = processor(text="the quick brown fox", audio_tokens=[CLIP], return_tensors=None)["input_ids"][0]
    ids_of = tokenizer.convert_tokens_to_ids
    expected = [
        *processor.prefix_ids,
        ids_of("<|text|>"),
        *text_ids,
        ids_of("<|text_end|>"),
        ids_of("<|audio|>"),
        *ids_of(["<|a0_3|>", "<|a1_0|>", "<|a0_3|>", "<|a0_1|>"]),  # units outside the vocabulary are dropped
        ids_of("<|audio_end|>"),
        *processor.suffix_ids,
    ]
    assert ids == expected
    if kind == "wordpiece":
        assert processor.prefix_ids == [tokenizer.cls_token_id] and processor.suffix_ids == [tokenizer.sep_token_id]
    # The rendered string tokenizes to the same ids.
    assert tokenizer(processor.render("the quick brown fox", CLIP))["input_ids"] == ids
    # Text only and audio only.
    text_only = processor(text="the quick brown fox", return_tensors=None)["input_ids"][0]
    assert text_only == [*processor.prefix_ids, ids_of("<|text|>"), *text_ids, ids_of("<|text_end|>")] + list(
        processor.suffix_ids
    )
    audio_only = processor(audio_tokens=[CLIP], return_tensors=None)["input_ids"][0]
    assert ids_of("<|text|>") not in audio_only
    assert audio_only[-1 - len(processor.suffix_ids)] == ids_of("<|audio_end|>")


def test_added_tokens_are_new_ids_past_the_original_vocabulary():
    original = len(tiny_tokenizer())
    processor = make_processor()
    assert processor.added_token_ids == list(range(original, original + 4 + len(KEPT)))
    assert len(processor.tokenizer) == original + 4 + len(KEPT)
    ids = processor.tokenizer("<|a0_1|><|a0_3|>", add_special_tokens=False)["input_ids"]
    assert ids == processor.tokenizer.convert_tokens_to_ids(["<|a0_1|>", "<|a0_3|>"])  # never split
    assert processor.tokenizer.convert_tokens_to_ids("<|a1_5|>") == processor.tokenizer.unk_token_id


def test_truncation_keeps_both_parts():
    processor = make_processor(max_length=30)
    long_text = " ".join(["the quick brown fox jumps over the lazy dog"] * 6)
    long_clip = ["<|a0_1|>", "<|a0_3|>"] * 40
    text_ids = processor.tokenizer(long_text, add_special_tokens=False)["input_ids"]
    marker = processor.tokenizer.convert_tokens_to_ids

    def parts(ids):
        text = ids[ids.index(marker("<|text|>")) + 1 : ids.index(marker("<|text_end|>"))]
        audio = ids[ids.index(marker("<|audio|>")) + 1 : ids.index(marker("<|audio_end|>"))]
        return text, audio

    both_long = processor(text=long_text, audio_tokens=[long_clip], return_tensors=None)["input_ids"][0]
    text, audio = parts(both_long)
    assert len(both_long) == 30 and len(text) == 13 and len(audio) == 13  # 30 - 4 markers, shared half and half
    assert text == text_ids[:13] and audio == marker(long_clip[:13])
    short_text = processor(text="hello world", audio_tokens=[long_clip], return_tensors=None)["input_ids"][0]
    text, audio = parts(short_text)
    assert len(short_text) == 30 and len(text) == 2 and len(audio) == 24  # the short part is kept whole
    untruncated = processor(text=long_text, audio_tokens=[long_clip], truncation=False, return_tensors=None)
    assert len(untruncated["input_ids"][0]) == len(text_ids) + 80 + 4


def test_batches_are_padded_and_carry_labels_and_special_masks():
    processor = make_processor()
    batch = processor(
        text=["hello", "the quick brown fox"],
        audio_tokens=[CLIP, CLIP[:2]],
        labels=[0, 1],
        return_special_tokens_mask=True,
    )
    assert batch["input_ids"].shape == batch["attention_mask"].shape == batch["special_tokens_mask"].shape
    assert batch["labels"].tolist() == [0, 1]
    markers = set(processor.marker_ids.values())
    for ids, mask, special in zip(batch["input_ids"], batch["attention_mask"], batch["special_tokens_mask"]):
        for token, valid, is_special in zip(ids.tolist(), mask.tolist(), special.tolist()):
            if valid:
                assert is_special == (token in markers)
    with pytest.raises(ValueError, match="2 texts but units of 1 clips"):
        processor(text=["a", "b"], audio_tokens=[CLIP])
    with pytest.raises(ValueError, match="no speech unit tokenizer"):
        processor(text=["a"], audio=[tone(0.5)], sampling_rate=16000)


def test_processor_round_trips_with_its_speech_units(tmp_path):
    units = kmeans_units(num_units=6)
    processor = SpeechTokenProcessor.from_parts(
        tiny_tokenizer(), units.vocabulary[:4], speech_units=units, max_length=40
    )
    clips = [tone(0.5, frequency=150.0), tone(0.8, frequency=400.0)]
    expected = processor(text=["hello", "the quick brown fox"], audio=clips, sampling_rate=16000)
    assert torch.equal(
        expected["input_ids"],
        processor(text=["hello", "the quick brown fox"], audio_tokens=units.tokenize(clips, 16000))["input_ids"],
    )
    processor.save_pretrained(tmp_path)
    assert os.path.isfile(tmp_path / "speech_units" / "model.safetensors")
    reloaded = AutoProcessor.from_pretrained(tmp_path, trust_remote_code=True)
    assert type(reloaded).__name__ == "SpeechTokenProcessor"
    assert reloaded.audio_vocabulary == processor.audio_vocabulary and reloaded.max_length == 40
    again = reloaded(text=["hello", "the quick brown fox"], audio=clips, sampling_rate=16000)
    assert torch.equal(again["input_ids"], expected["input_ids"])
    assert torch.equal(again["attention_mask"], expected["attention_mask"])


def test_saved_processor_loads_without_voxlm_installed(tmp_path):
    """Remote code only: a fresh interpreter that cannot import voxlm loads the folder and gets the same ids."""
    units = kmeans_units(num_units=6)
    processor = SpeechTokenProcessor.from_parts(tiny_tokenizer(), units.vocabulary[:4], speech_units=units)
    clip = tone(0.6, frequency=220.0)
    expected = processor(text=["hello"], audio=[clip], sampling_rate=16000, return_tensors=None)["input_ids"][0]
    processor.save_pretrained(tmp_path)

    np.save(tmp_path / "clip.npy", clip)
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["voxlm"] = None  # make `import voxlm` fail
        import numpy as np
        from transformers import AutoProcessor
        processor = AutoProcessor.from_pretrained({str(tmp_path)!r}, trust_remote_code=True)
        clip = np.load({str(tmp_path / "clip.npy")!r})
        print(processor(text=["hello"], audio=[clip], sampling_rate=16000, return_tensors=None)["input_ids"][0])
        """
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules")}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == str(expected)
