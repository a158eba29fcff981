"""Speech-only LoRA on the language model (`add_lora(speech_only=True)`): it acts from a prompt's first audio clip
on, so text-only prompts and the text before the first clip get the language model's own computation."""

import copy

import pytest
import torch
from tiny import tiny_voxlm, tone

from voxlm.modeling import VoxLMForConditionalGeneration

WIDE = {"hidden_size": 64, "intermediate_size": 128, "head_dim": 16, "initializer_range": 0.1}
AUDIO_PROMPT = "hello there my friend <|audio|> world"


@pytest.fixture
def models():
    """(bare, with speech-only LoRA whose weights are not zero, processor)."""
    bare, processor = tiny_voxlm("whisper", "llama", adapter="blsp", text_overrides=WIDE)
    bare.eval()
    lora = copy.deepcopy(bare)
    lora.add_lora(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "up_proj"], speech_only=True)
    torch.manual_seed(0)
    for name, parameter in lora.named_parameters():
        if "lora_B" in name:  # peft starts lora_B at zero: give LoRA an effect
            parameter.data.normal_(0, 0.5)
    return bare, lora.eval(), processor


def audio_inputs(processor, seed: int = 1):
    return processor(text=[AUDIO_PROMPT], audio=[tone(1.0, seed=seed)], sampling_rate=16000)


def test_text_only_prompts_are_the_language_models_own(models):
    bare, lora, processor = models
    ids = processor.tokenizer(["hello there my friend", "world hello"], return_tensors="pt", padding=True)
    with torch.no_grad():
        assert torch.equal(lora(**ids).logits, bare(**ids).logits)
    assert torch.equal(
        lora.generate(**ids, max_new_tokens=6, do_sample=False), bare.generate(**ids, max_new_tokens=6, do_sample=False)
    )


def test_lora_acts_from_the_first_clip_on(models):
    bare, lora, processor = models
    inputs = audio_inputs(processor)
    first = int((inputs["input_ids"][0] == lora.config.audio_token_id).nonzero()[0])
    with torch.no_grad():
        with_lora, without = lora(**inputs).logits, bare(**inputs).logits
    assert torch.equal(with_lora[:, :first], without[:, :first])  # the text before the clip: untouched
    assert not torch.allclose(with_lora[:, first:], without[:, first:], atol=1e-3)


def test_generation_keeps_lora_on_after_the_clip_and_matches_full_forwards(models):
    """Decoding steps carry no placeholder: the cache remembers that the row holds speech. Greedy tokens from the
    cache equal the argmax of a full forward over prompt + tokens so far (no cache), with and without prefix reuse."""
    _, lora, processor = models
    inputs = audio_inputs(processor)
    for reuse in (False, True, True):  # the second reuse starts from the cached prefix
        lora.reuse_prompt_prefix = reuse
        generated = lora.generate(**inputs, max_new_tokens=6, do_sample=False)
        ids = inputs["input_ids"]
        with torch.no_grad():
            for _ in range(6):
                step = {**inputs, "input_ids": ids, "attention_mask": torch.ones_like(ids)}
                ids = torch.cat([ids, lora(**step).logits[:, -1:].argmax(-1)], dim=1)
        assert torch.equal(generated, ids)


def test_a_text_only_row_batched_with_speech_keeps_its_own_logits(models):
    bare, lora, processor = models
    batch = processor(
        text=["hello there my friend world hello", AUDIO_PROMPT], audio=[tone(1.0, seed=1)], sampling_rate=16000,
        padding_side="left",
    )  # fmt: skip
    with torch.no_grad():
        with_lora, without = lora(**batch).logits, bare(**batch).logits
    keep = batch["attention_mask"][0].bool()
    assert torch.allclose(with_lora[0, keep], without[0, keep], atol=1e-5)
    assert not torch.allclose(with_lora[1, -3:], without[1, -3:], atol=1e-3)


def test_speech_only_lora_reloads_and_refuses_to_merge(models, tmp_path):
    _, lora, processor = models
    lora.save_pretrained(tmp_path)
    reloaded = VoxLMForConditionalGeneration.from_pretrained(tmp_path).eval()
    assert reloaded.config.llm_lora["speech_only"] is True
    inputs = audio_inputs(processor)
    with torch.no_grad():
        assert torch.equal(reloaded(**inputs).logits, lora(**inputs).logits)
    with pytest.raises(ValueError, match="Speech-only LoRA cannot be merged"):
        lora.merge_lora()


def test_a_cache_returned_by_a_speech_call_keeps_lora_on_for_the_next_call(models):
    """A caller's own loop (`model(**inputs, use_cache=True)`, then one token with the returned cache) continues
    with LoRA on, as a full forward over both would compute it."""
    _, lora, processor = models
    inputs = audio_inputs(processor)
    with torch.no_grad():
        prompt = lora(**inputs, use_cache=True)
        token = prompt.logits[:, -1:].argmax(-1)
        step = lora(input_ids=token, cache=prompt.cache).logits[:, -1]
        ids = torch.cat([inputs["input_ids"], token], dim=1)
        full = lora(**{**inputs, "input_ids": ids, "attention_mask": torch.ones_like(ids)}).logits[:, -1]
    assert torch.allclose(step, full, atol=1e-4)
