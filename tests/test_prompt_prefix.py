"""`generate` reuses its cache of a prompt's text before the audio (`reuse_prompt_prefix`)."""

import pytest
import torch
from tiny import tiny_voxlm, tone

from voxlm.modeling import VoxLMQuantizationConfig
from voxlm.modeling.quantization_voxlm import quantize_linear_layers

PROMPT = "hello there my friend <|audio|> world"
# A text-width Llama whose greedy tokens depend on the input (see test_quantization.WIDE).
WIDE = {"hidden_size": 64, "intermediate_size": 128, "head_dim": 16, "initializer_range": 0.1}


@pytest.fixture
def tiny():
    model, processor = tiny_voxlm("whisper", "llama", adapter="blsp", text_overrides=WIDE)
    lengths = []  # positions each language-model forward reads
    model.language_model.register_forward_pre_hook(
        lambda module, args, kwargs: lengths.append(
            (kwargs.get("input_ids") if kwargs.get("input_ids") is not None else kwargs["inputs_embeds"]).shape[1]
        ),
        with_kwargs=True,
    )
    return model, processor, lengths


def inputs_for(processor, seconds: float, seed: int):
    return processor(text=[PROMPT], audio=[tone(seconds, seed=seed)], sampling_rate=16000)


def prefix_length(model, inputs) -> int:
    return int((inputs["input_ids"][0] == model.config.audio_token_id).nonzero()[0])


def test_reused_prefix_gives_the_same_tokens_and_prefills_only_the_rest(tiny):
    model, processor, lengths = tiny
    first, second = inputs_for(processor, 1.0, seed=1), inputs_for(processor, 0.6, seed=2)
    prefix = prefix_length(model, first)
    assert prefix > 2 and prefix == prefix_length(model, second)
    model.reuse_prompt_prefix = False
    plain = [model.generate(**inputs, max_new_tokens=8, do_sample=False) for inputs in (first, second)]
    assert lengths[0] == first["input_ids"].shape[1]  # without reuse the whole prompt is prefilled
    model.reuse_prompt_prefix = True
    lengths.clear()
    reused = [model.generate(**inputs, max_new_tokens=8, do_sample=False) for inputs in (first, second)]
    assert not torch.equal(plain[0][0, -8:], plain[1][0, -8:])  # the answers depend on the clip
    for a, b in zip(plain, reused):
        assert torch.equal(a, b)
    # first prompt: the prefix once, then the rest of the prompt, then 7 single tokens; second: the rest only
    assert lengths[:2] == [prefix, first["input_ids"].shape[1] - prefix]
    assert lengths[2:9] == [1] * 7
    assert lengths[9] == second["input_ids"].shape[1] - prefix


def test_the_prefix_is_computed_again_when_the_weights_or_the_text_change(tiny):
    """An in-place update, replaced (quantized) layers and another prompt text each make a new prefix cache."""
    model, processor, lengths = tiny
    inputs = inputs_for(processor, 1.0, seed=1)
    prefix = prefix_length(model, inputs)
    model.generate(**inputs, max_new_tokens=1, do_sample=False)
    assert lengths == [prefix, inputs["input_ids"].shape[1] - prefix]
    with torch.no_grad():  # an optimizer step changes weights in place
        model.language_model.model.layers[0].mlp.up_proj.weight.mul_(1.5)
    lengths.clear()
    after = model.generate(**inputs, max_new_tokens=6, do_sample=False)
    assert lengths[0] == prefix
    model.reuse_prompt_prefix = False
    assert torch.equal(after, model.generate(**inputs, max_new_tokens=6, do_sample=False))
    model.reuse_prompt_prefix = True
    lengths.clear()
    quantize_linear_layers(model, VoxLMQuantizationConfig(bits=4))  # new layers whose weights are buffers
    model.generate(**inputs, max_new_tokens=1, do_sample=False)
    assert lengths[0] == prefix
    lengths.clear()
    other = processor(text=["a different request " + PROMPT], audio=[tone(1.0, seed=1)], sampling_rate=16000)
    model.generate(**other, max_new_tokens=1, do_sample=False)
    assert lengths[0] == prefix_length(model, other) != prefix


def test_batches_and_callers_caches_are_left_alone(tiny):
    model, processor, lengths = tiny
    batch = processor(text=[PROMPT, PROMPT], audio=[tone(1.0, seed=1), tone(0.6, seed=2)], sampling_rate=16000)
    model.generate(**batch, max_new_tokens=1, do_sample=False)
    assert lengths == [batch["input_ids"].shape[1]]
    lengths.clear()
    inputs = inputs_for(processor, 1.0, seed=1)
    model.generate(**inputs, max_new_tokens=1, do_sample=False, cache_implementation="static")
    assert lengths == [inputs["input_ids"].shape[1]]


def test_the_pipeline_and_the_chat_engine_prefill_only_what_follows_the_prefix():
    from hub_helpers import distinct_tiny_voxlm

    from voxlm.chat.engine import ChatEngine, Conversation, Settings, user_message
    from voxlm.processing import VoxLMSpokenPromptPipeline

    model, processor = distinct_tiny_voxlm(lora=False)
    lengths = []
    model.language_model.register_forward_pre_hook(
        lambda module, args, kwargs: lengths.append(
            (kwargs.get("input_ids") if kwargs.get("input_ids") is not None else kwargs["inputs_embeds"]).shape[1]
        ),
        with_kwargs=True,
    )
    pipe = VoxLMSpokenPromptPipeline(model=model, processor=processor, device=-1)
    engine = ChatEngine(model, processor, name="tiny")
    for clip in (tone(1.0, seed=1), tone(0.8, seed=2)):
        lengths.clear()
        pipe(clip, instruction="transcribe the audio", max_new_tokens=2)
        pipe_lengths = list(lengths)
        lengths.clear()
        user = user_message(clip, "transcribe the audio")
        list(engine.stream(Conversation(), user, Settings(max_new_tokens=2), clip))
        inputs = processor.apply_chat_template([user], add_generation_prompt=True, tokenize=True, sampling_rate=16000)
        prefix = prefix_length(model, inputs)
        # both build the same prompt: its prefix is cached by the first call and read from the cache after that
        assert pipe_lengths[-2:] == [inputs["input_ids"].shape[1] - prefix, 1]
        assert lengths == [inputs["input_ids"].shape[1] - prefix, 1]
