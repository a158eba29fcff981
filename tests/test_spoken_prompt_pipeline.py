"""The spoken-prompt pipeline in this process: every input form gives what `generate` gives for the same prompt."""

import numpy as np
import pytest
import torch
from hub_helpers import INSTRUCTION, distinct_tiny_voxlm, generate_ids
from tiny import tone

from voxlm.processing import VoxLMSpokenPromptPipeline


@pytest.fixture(scope="module")
def parts():
    model, processor = distinct_tiny_voxlm(lora=False)
    return model, processor, VoxLMSpokenPromptPipeline(model=model, processor=processor, device=-1)


def _text(processor, ids):
    return processor.batch_decode([ids], skip_special_tokens=True)[0]


def _expected(model, processor, conversation, sampling_rate=16000, max_new_tokens=12):
    inputs = processor.apply_chat_template(
        conversation, add_generation_prompt=True, tokenize=True, sampling_rate=sampling_rate, resample=True
    )
    output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    return _text(processor, output[0, inputs["input_ids"].shape[1] :].tolist())


def test_waveform_and_instruction(parts):
    model, processor, pipe = parts
    clip = tone(1.0)
    expected = _text(processor, generate_ids(model, processor, clip))
    assert pipe(clip, sampling_rate=16000, instruction=INSTRUCTION, max_new_tokens=12) == {"generated_text": expected}
    # A plain list of floats is one waveform; a torch tensor too.
    assert pipe(clip.tolist(), instruction=INSTRUCTION, max_new_tokens=12)["generated_text"] == expected
    assert pipe(torch.from_numpy(clip), instruction=INSTRUCTION, max_new_tokens=12)["generated_text"] == expected


def test_audio_alone_is_the_prompt(parts):
    model, processor, pipe = parts
    clip = tone(0.7, frequency=300.0)
    expected = _expected(model, processor, [{"role": "user", "content": [{"type": "audio", "audio": clip}]}])
    assert pipe(clip, max_new_tokens=12)["generated_text"] == expected


def test_dict_input_is_resampled_and_carries_its_instruction(parts):
    model, processor, pipe = parts
    clip_8k = tone(1.0, sampling_rate=8000)
    conversation = [
        {"role": "user", "content": [{"type": "audio", "audio": clip_8k}, {"type": "text", "text": "hello world"}]}
    ]
    expected = _expected(model, processor, conversation, sampling_rate=8000)
    result = pipe(
        {"raw": clip_8k, "sampling_rate": 8000, "instruction": "hello world"}, instruction="ignored", max_new_tokens=12
    )
    assert result == {"generated_text": expected}


def test_messages_and_system_prompt(parts):
    model, processor, pipe = parts
    clip = tone(1.0)
    conversation = [
        {"role": "system", "content": "you are a transcriber"},
        {"role": "user", "content": [{"type": "audio", "audio": clip}, {"type": "text", "text": INSTRUCTION}]},
    ]
    expected = _expected(model, processor, conversation)
    assert pipe({"messages": conversation}, max_new_tokens=12)["generated_text"] == expected
    with_system = pipe(clip, system_prompt="you are a transcriber", instruction=INSTRUCTION, max_new_tokens=12)
    assert with_system["generated_text"] == expected


def test_generation_arguments_given_at_construction(parts):
    model, processor, _ = parts
    pipe = VoxLMSpokenPromptPipeline(model=model, processor=processor, device=-1, max_new_tokens=3)
    clip = tone(1.0)
    expected = _text(processor, generate_ids(model, processor, clip, max_new_tokens=3))
    assert pipe(clip, instruction=INSTRUCTION)["generated_text"] == expected


def test_bad_inputs_are_named(parts):
    _, _, pipe = parts
    with pytest.raises(ValueError, match="needs an `array`"):
        pipe({"audio": np.zeros(16000)})
    with pytest.raises(TypeError, match="Unsupported input of type int"):
        pipe(3)
    with pytest.raises(ValueError, match="needs the VoxLM processor"):
        VoxLMSpokenPromptPipeline(model=parts[0], device=-1)
