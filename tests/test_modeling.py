import copy
import json

import pytest
import torch
from tiny import AUDIO_FAMILIES, tiny_audio_config, tiny_text_config, tiny_voxlm, tone
from transformers import AutoModelForCausalLM, TextIteratorStreamer, WhisperForConditionalGeneration
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from voxlm.modeling import VoxLMForConditionalGeneration
from voxlm.modeling.whisper_encoder import whisper_window_states

CLIPS = [tone(1.0, seed=1), tone(0.37, seed=2, frequency=330), tone(0.61, seed=3, frequency=180)]
PROMPTS = ["hello <|audio|> world", "transcribe <|audio|> and then <|audio|> please"]


@pytest.mark.parametrize("audio_family", AUDIO_FAMILIES)
@pytest.mark.parametrize("text_family", ["llama", "qwen2"])
def test_forward_backward_every_encoder_and_llm(audio_family, text_family):
    model, processor = tiny_voxlm(audio_family, text_family)
    model.train()
    inputs = processor(text=PROMPTS, audio=CLIPS, sampling_rate=16000)
    outputs = model(**inputs, labels=inputs["input_ids"])
    # Training computes logits only at positions that predict a label (audio positions carry none).
    predicts_label = (inputs["input_ids"][:, 1:] != processor.audio_token_id).any(dim=0).sum()
    assert outputs.logits.shape == (2, predicts_label, model.config.text_config.vocab_size)
    assert torch.isfinite(outputs.loss) and outputs.loss > 0
    outputs.loss.backward()
    adapter_grads = [p.grad for p in model.projector.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in adapter_grads)
    assert any(g.abs().sum() > 0 for g in adapter_grads)


def test_gpt2_language_model():
    model, processor = tiny_voxlm("whisper", "gpt2", adapter="blsp")
    inputs = processor(text=PROMPTS, audio=CLIPS, sampling_rate=16000)
    loss = model(**inputs, labels=inputs["input_ids"]).loss
    assert torch.isfinite(loss)


# data2vec-audio stacks positional convolutions that see the padding after the first one (a property of the
# encoder itself in transformers), so padded and lone clips differ slightly there; every other family is exact.
@pytest.mark.parametrize("audio_family", [family for family in AUDIO_FAMILIES if family != "data2vec-audio"])
@pytest.mark.parametrize("adapter", ["speechverse", "blsp", "ultravox"])
def test_audio_features_do_not_depend_on_batch_padding(audio_family, adapter):
    model, processor = tiny_voxlm(audio_family, "llama", adapter=adapter)
    batched = processor.extract_features(processor.check_audio(CLIPS, 16000))
    together = model.get_audio_features(torch.tensor(batched["input_features"]),
                                        torch.tensor(batched["input_features_mask"]))  # fmt: skip
    alone = []
    for clip in CLIPS:
        single = processor.extract_features([clip])
        alone.append(model.get_audio_features(torch.tensor(single["input_features"]),
                                              torch.tensor(single["input_features_mask"])))  # fmt: skip
    torch.testing.assert_close(together, torch.cat(alone), atol=2e-5, rtol=1e-4)


def test_batched_logits_equal_one_by_one():
    model, processor = tiny_voxlm("whisper", "llama", adapter="blsp")
    prompts, clips = ["hello <|audio|> world", "please transcribe <|audio|>"], CLIPS[:2]
    batch = processor(text=prompts, audio=clips, sampling_rate=16000)
    last = model(**batch).logits[:, -1]
    for row, (prompt, clip) in enumerate(zip(prompts, clips)):
        single = processor(text=[prompt], audio=[clip], sampling_rate=16000)
        torch.testing.assert_close(last[row], model(**single).logits[0, -1], atol=1e-4, rtol=1e-4)


def test_whisper_window_equals_the_transformers_encoder_on_a_full_window():
    """On exactly one 30 s window (here shortened to 1 s) the real-length path is WhisperEncoder itself."""
    model, _ = tiny_voxlm("whisper", "llama", audio_layer="mix", window_seconds=1.0)
    reference = WhisperEncoder(model.config.audio_config).eval()
    reference.load_state_dict(model.audio_tower.state_dict())
    features = torch.randn(2, 80, 100)
    ours = whisper_window_states(model.audio_tower, features, torch.tensor([100, 100]), num_layers=2)
    theirs = reference(features, output_hidden_states=True)
    # transformers' hidden_states[-1] is before the final LayerNorm; ours ends with it, like last_hidden_state.
    for mine, ref in zip(ours[:-1], theirs.hidden_states[:-1]):
        torch.testing.assert_close(mine, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours[-1], theirs.last_hidden_state, atol=1e-5, rtol=1e-5)


def test_three_second_clip_is_encoded_from_300_mel_frames_not_3000():
    model, processor = tiny_voxlm("whisper", "llama")
    seen = []
    hook = model.audio_tower.conv1.register_forward_hook(lambda module, args, out: seen.append(args[0].shape))
    inputs = processor(text=["<|audio|>"], audio=[tone(3.0)], sampling_rate=16000)
    model(**inputs)
    hook.remove()
    assert seen == [torch.Size([1, 80, 300])]
    assert model.config.audio_config.max_source_positions * 2 == 3000


def test_long_audio_is_windowed_not_truncated():
    """A 2.5 s clip with a 1 s encoder window: three windows, each encoded alone, concatenated."""
    model, processor = tiny_voxlm("whisper", "llama", adapter={"conv_blocks": []}, window_seconds=1.0)
    features = processor.extract_features([tone(2.5)])
    mel = torch.tensor(features["input_features"])
    assert mel.shape[-1] == 250
    encoded = model.get_audio_features(mel, torch.tensor(features["input_features_mask"]))
    pieces = []
    for start in (0, 100, 200):
        window = mel[..., start : start + 100]
        pieces.append(model.get_audio_features(window, torch.ones(1, window.shape[-1], dtype=torch.long)))
    assert encoded.shape[0] == 50 + 50 + 25 == model.config.num_audio_positions(250)
    torch.testing.assert_close(encoded, torch.cat(pieces), atol=1e-5, rtol=1e-5)


def test_earlier_layer_runs_only_the_layers_it_needs():
    model, processor = tiny_voxlm("whisper", "llama", audio_layer=1, adapter={"conv_blocks": []})
    calls = []
    for layer in model.audio_tower.layers:
        layer.register_forward_hook(lambda *args: calls.append(1))
    features = processor.extract_features([tone(1.0)])
    model.get_audio_features(torch.tensor(features["input_features"]), torch.tensor(features["input_features_mask"]))
    assert len(calls) == 1


def test_layer_mix_is_a_softmax_weighted_sum_and_trains():
    model, processor = tiny_voxlm(
        "wavlm", "llama", audio_layer="mix", adapter={"conv_blocks": [], "projector": "linear"}
    )
    with torch.no_grad():
        model.layer_mix.weights.copy_(torch.tensor([0.3, -1.0, 2.0]))
    features = processor.extract_features([tone(1.0)])
    values = torch.tensor(features["input_features"])
    mask = torch.tensor(features["input_features_mask"])
    states = model.audio_tower(input_values=values, attention_mask=mask, output_hidden_states=True).hidden_states
    weights = torch.softmax(torch.tensor([0.3, -1.0, 2.0]), -1)
    mixed = sum(w * s for w, s in zip(weights, states))
    expected = model.projector.projector(mixed)[0]
    torch.testing.assert_close(model.get_audio_features(values, mask), expected, atol=1e-5, rtol=1e-5)
    model.train_adapter_only()
    model.get_audio_features(values, mask).sum().backward()
    assert model.layer_mix.weights.grad.abs().sum() > 0


def test_text_only_equals_the_bare_language_model():
    tokenizer_vocab = tiny_voxlm()[1].tokenizer
    torch.manual_seed(3)
    bare = AutoModelForCausalLM.from_config(tiny_text_config("llama", len(tokenizer_vocab) - 1)).eval()
    encoder = WhisperEncoder(tiny_audio_config("whisper")).eval()
    model = VoxLMForConditionalGeneration.from_parts(encoder, copy.deepcopy(bare), adapter="blsp").eval()
    _, processor = tiny_voxlm()
    texts = ["the quick brown fox", "hello world, this is"]
    ours = processor(text=texts)
    theirs = processor.tokenizer(texts, return_tensors="pt", padding=True, padding_side="left")
    assert torch.equal(model(**ours).logits, bare(**theirs).logits)
    generated = model.generate(**ours, max_new_tokens=6, do_sample=False)
    assert torch.equal(generated, bare.generate(**theirs, max_new_tokens=6, do_sample=False))


def test_from_parts_keeps_the_pretrained_weights_and_builds_a_fresh_adapter():
    encoder = WhisperEncoder(tiny_audio_config("whisper"))
    llm = AutoModelForCausalLM.from_config(tiny_text_config("qwen2", 160))
    model = VoxLMForConditionalGeneration.from_parts(encoder, llm, adapter="ultravox", audio_layer="mix")
    assert model.audio_tower is encoder and model.language_model is llm
    assert model.config.audio_token_id == 160 and model.config.adapter["preset"] == "ultravox"
    assert all(p.device.type == "cpu" and torch.isfinite(p).all() for p in model.parameters())
    assert torch.equal(model.layer_mix.weights, torch.zeros(3))


def test_generate_with_and_without_cache_is_identical():
    model, processor = tiny_voxlm("whisper", "llama", adapter="blsp")
    inputs = processor(text=PROMPTS, audio=CLIPS, sampling_rate=16000)
    cached = model.generate(**inputs, max_new_tokens=8, do_sample=False, use_cache=True)
    uncached = model.generate(**inputs, max_new_tokens=8, do_sample=False, use_cache=False)
    assert torch.equal(cached, uncached)


def test_generate_raises_no_deprecation_warning(recwarn):
    # Newer transformers pass the cache as `cache=`; forwarding `past_key_values=None` beside it warned every step.
    model, processor = tiny_voxlm("whisper", "llama", adapter="blsp")
    inputs = processor(text=PROMPTS[:1], audio=CLIPS[:1], sampling_rate=16000)
    model.generate(**inputs, max_new_tokens=4, do_sample=False)
    assert not [str(w.message) for w in recwarn if "past_key_values" in str(w.message)]


def test_audio_enters_at_prefill_only():
    model, processor = tiny_voxlm("whisper", "llama", adapter="blsp")
    inputs = processor(text=PROMPTS[:1], audio=CLIPS[:1], sampling_rate=16000)
    encoder_calls = []
    model.audio_tower.conv1.register_forward_hook(lambda *args: encoder_calls.append(1))
    model.generate(**inputs, max_new_tokens=5, do_sample=False)
    assert len(encoder_calls) == 1


def test_batched_generation_with_left_padding_equals_one_by_one():
    model, processor = tiny_voxlm("whisper", "llama", adapter="blsp")
    prompts, clips = ["hello <|audio|> world", "please transcribe the audio <|audio|>"], CLIPS[:2]
    batch = processor(text=prompts, audio=clips, sampling_rate=16000)
    together = model.generate(**batch, max_new_tokens=6, do_sample=False)[:, batch["input_ids"].shape[1] :]
    for row, (prompt, clip) in enumerate(zip(prompts, clips)):
        single = processor(text=[prompt], audio=[clip], sampling_rate=16000)
        alone = model.generate(**single, max_new_tokens=6, do_sample=False)[0, single["input_ids"].shape[1] :]
        assert together[row].tolist() == alone.tolist()


def test_streaming_yields_the_generated_text():
    model, processor = tiny_voxlm("whisper", "llama")
    inputs = processor(text=PROMPTS[:1], audio=CLIPS[:1], sampling_rate=16000)
    streamer = TextIteratorStreamer(processor.tokenizer, skip_prompt=True)
    generated = model.generate(**inputs, max_new_tokens=8, do_sample=False, streamer=streamer)
    streamed = "".join(streamer)
    expected = processor.tokenizer.decode(generated[0, inputs["input_ids"].shape[1] :])
    assert streamed == expected and len(streamed) > 0


def test_placeholder_and_audio_count_mismatch_names_both_numbers():
    model, processor = tiny_voxlm("whisper", "llama", adapter="blsp")
    inputs = processor(text=PROMPTS[:1], audio=CLIPS[:1], sampling_rate=16000)
    ids = inputs["input_ids"].clone()
    positions = int((ids == processor.audio_token_id).sum())
    ids[0, (ids[0] == processor.audio_token_id).nonzero()[0]] = 5  # drop one placeholder
    with pytest.raises(ValueError, match=f"contain {positions - 1} audio placeholder tokens but the audio gives "
                                         f"{positions} positions"):  # fmt: skip
        model(input_ids=ids, input_features=inputs["input_features"], input_features_mask=inputs["input_features_mask"])
    with pytest.raises(ValueError, match=f"contain {positions} audio placeholder tokens but no audio was given"):
        model(input_ids=inputs["input_ids"])


def test_labels_on_audio_positions_are_ignored():
    model, processor = tiny_voxlm("whisper", "llama", adapter="blsp")
    inputs = processor(text=PROMPTS[:1], audio=CLIPS[:1], sampling_rate=16000)
    labels = inputs["input_ids"].clone()  # holds the audio id, which is past the vocabulary
    masked = labels.masked_fill(labels == processor.audio_token_id, -100)
    assert torch.equal(model(**inputs, labels=labels).loss, model(**inputs, labels=masked).loss)


def test_gradient_checkpointing_gives_the_same_gradients():
    model, processor = tiny_voxlm("whisper", "llama", adapter="blsp")
    model.train()
    inputs = processor(text=PROMPTS, audio=CLIPS, sampling_rate=16000)

    def adapter_grads():
        model.zero_grad()
        model(**inputs, labels=inputs["input_ids"]).loss.backward()
        return [p.grad.clone() for p in model.projector.parameters()]

    plain = adapter_grads()
    # transformers >= 5.24 renamed it (the old name warns); older releases only have gradient_checkpointing_enable
    getattr(model, "activation_checkpointing_enable", model.gradient_checkpointing_enable)()
    assert model.language_model.model.layers[0].gradient_checkpointing
    for a, b in zip(plain, adapter_grads()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


def test_sdpa_and_eager_attention_agree():
    model, processor = tiny_voxlm("whisper", "llama", adapter="blsp")
    inputs = processor(text=PROMPTS, audio=CLIPS, sampling_rate=16000)
    model.set_attn_implementation("sdpa")
    sdpa = model(**inputs).logits
    model.set_attn_implementation("eager")
    assert model.config.text_config._attn_implementation == "eager"
    real = inputs["attention_mask"].bool()  # padded query rows hold no meaning and differ between kernels
    torch.testing.assert_close(model(**inputs).logits[real], sdpa[real], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_forward(dtype):
    model, processor = tiny_voxlm("whisper", "llama", adapter="blsp")
    model.to(dtype)
    inputs = processor(text=PROMPTS, audio=CLIPS, sampling_rate=16000)
    logits = model(**inputs).logits
    assert logits.dtype == dtype and torch.isfinite(logits.float()).all()


def test_freezing_helpers():
    model, _ = tiny_voxlm("whisper", "llama", audio_layer="mix")
    model.train_adapter_only()
    trainable = {name.split(".")[0] for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"projector", "layer_mix"}
    model.requires_grad_(True)
    model.freeze_audio_encoder()
    model.freeze_language_model()
    assert not any(p.requires_grad for p in model.audio_tower.parameters())
    assert not any(p.requires_grad for p in model.language_model.parameters())


def test_lora_on_the_language_model_trains_saves_and_merges(tmp_path):
    model, processor = tiny_voxlm("whisper", "llama", adapter="blsp")
    model.train_adapter_only()
    model.add_lora(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"])
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert any("lora_A" in name for name in trainable)
    assert all(name.startswith("projector") or "lora_" in name for name in trainable)
    with torch.no_grad():  # LoRA B starts at zero; move it so that merging has something to merge
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.1)
    inputs = processor(text=PROMPTS, audio=CLIPS, sampling_rate=16000)
    logits = model(**inputs).logits
    model.save_pretrained(tmp_path)
    reloaded = VoxLMForConditionalGeneration.from_pretrained(tmp_path).eval()
    assert reloaded.config.llm_lora["r"] == 4
    torch.testing.assert_close(reloaded(**inputs).logits, logits)
    model.merge_lora()
    assert model.config.llm_lora is None
    assert not any("lora" in name for name, _ in model.named_parameters())
    torch.testing.assert_close(model(**inputs).logits, logits, atol=1e-4, rtol=1e-4)


def test_encoder_decoder_language_model():
    model, processor = tiny_voxlm("whisper", "t5", adapter="blsp")
    assert model.config.is_encoder_decoder
    inputs = processor(text=PROMPTS, audio=CLIPS, sampling_rate=16000)
    labels = processor.tokenizer(["yes", "no thanks"], return_tensors="pt", padding=True)["input_ids"]
    outputs = model(**inputs, labels=labels)
    assert torch.isfinite(outputs.loss)
    generated = model.generate(**inputs, max_new_tokens=4, do_sample=False)
    assert generated.shape[0] == 2


def test_save_and_reload_in_process(tmp_path):
    model, processor = tiny_voxlm("hubert", "qwen2", adapter="ultravox", audio_layer="mix")
    inputs = processor(text=PROMPTS, audio=CLIPS, sampling_rate=16000)
    model.save_pretrained(tmp_path)
    reloaded = VoxLMForConditionalGeneration.from_pretrained(tmp_path).eval()
    assert torch.equal(reloaded(**inputs).logits, model(**inputs).logits)


def test_tied_embeddings_survive_save_and_reload(tmp_path):
    model, _ = tiny_voxlm("whisper", "llama")
    assert model.config.text_config.tie_word_embeddings
    model.save_pretrained(tmp_path)
    reloaded = VoxLMForConditionalGeneration.from_pretrained(tmp_path)
    lm = reloaded.language_model
    assert lm.lm_head.weight.data_ptr() == lm.model.embed_tokens.weight.data_ptr()
    assert torch.equal(lm.lm_head.weight, model.language_model.lm_head.weight)


def test_a_model_sharded_by_fsdp2_saves_the_folder_one_process_would(tmp_path):
    """What Trainer does under FSDP2: gather the full state dict, then `save_pretrained(state_dict=...)` on the
    model whose class `fully_shard` swapped for torch's `FSDPVoxLMForConditionalGeneration`."""
    import torch.distributed as dist
    from safetensors.torch import load_file
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
    from torch.distributed.fsdp import fully_shard

    model, _ = tiny_voxlm("whisper", "llama")  # the tiny Llama ties its output layer to the embeddings
    expected = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        fully_shard(model)
        assert type(model).__name__ == "FSDPVoxLMForConditionalGeneration"
        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        model.save_pretrained(tmp_path, state_dict=get_model_state_dict(model, options=options))
    finally:
        dist.destroy_process_group()
    files = {path.name for path in tmp_path.iterdir()}
    assert {"modeling_voxlm.py", "configuration_voxlm.py", "whisper_encoder.py"} <= files
    assert not any(name.startswith("_fsdp") for name in files), files
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["auto_map"]["AutoModel"] == "modeling_voxlm.VoxLMForConditionalGeneration"
    saved = load_file(tmp_path / "model.safetensors")
    assert "language_model.lm_head.weight" not in saved  # tied: saved once, as the embeddings
    reloaded = VoxLMForConditionalGeneration.from_pretrained(tmp_path)
    assert type(reloaded) is VoxLMForConditionalGeneration
    assert all(torch.equal(reloaded.state_dict()[name], tensor) for name, tensor in expected.items())


# The block each family repeats, as its tiny config builds it (wav2vec2-style encoders with `do_stable_layer_norm`
# use their stable-layer-norm layers; wav2vec2, WavLM and data2vec-audio declare no `_no_split_modules` of their own).
ENCODER_BLOCKS = {
    "whisper": "WhisperEncoderLayer",
    "wav2vec2": "Wav2Vec2EncoderLayerStableLayerNorm",
    "hubert": "HubertEncoderLayerStableLayerNorm",
    "wavlm": "WavLMEncoderLayerStableLayerNorm",
    "data2vec-audio": "Data2VecAudioEncoderLayer",
    "wav2vec2-bert": "Wav2Vec2BertEncoderLayer",
}
LLM_BLOCKS = {"llama": "LlamaDecoderLayer", "qwen2": "Qwen2DecoderLayer", "gpt2": "GPT2Block", "t5": "T5Block"}


@pytest.mark.parametrize(
    "audio_family, text_family",
    [(family, "llama") for family in AUDIO_FAMILIES] + [("whisper", family) for family in LLM_BLOCKS],
)
def test_no_split_modules_name_the_blocks_the_model_builds(audio_family, text_family):
    from accelerate.utils import FullyShardedDataParallelPlugin
    from accelerate.utils.fsdp_utils import fsdp2_prepare_auto_wrap_policy

    model, _ = tiny_voxlm(audio_family, text_family)
    names = set(model._no_split_modules) - {"ParametrizedConv1d"}  # HuBERT's weight-normed positional conv
    assert names == {"VoxLMAdapter", ENCODER_BLOCKS[audio_family], LLM_BLOCKS[text_family]}
    built = [type(module).__name__ for module in model.modules()]
    assert all(name in built for name in model._no_split_modules)
    # FSDP's transformer auto-wrap (what accelerate does with an FSDP config file) gives each block its own unit.
    plugin = FullyShardedDataParallelPlugin(
        fsdp_version=2,
        auto_wrap_policy="transformer_based_wrap",
        transformer_cls_names_to_wrap=sorted(model._no_split_modules),
    )
    policy = fsdp2_prepare_auto_wrap_policy(plugin, model)
    wrapped = [type(module).__name__ for module in model.modules() if policy(module)]
    num_llm_blocks = 4 if text_family == "t5" else 2  # T5: encoder and decoder blocks
    assert wrapped.count(ENCODER_BLOCKS[audio_family]) == 2 and wrapped.count(LLM_BLOCKS[text_family]) == num_llm_blocks
    assert wrapped.count("VoxLMAdapter") == 1


def test_no_split_modules_follow_parts_assembled_after_init():
    whisper = WhisperForConditionalGeneration(tiny_audio_config("whisper"))  # its list names the decoder layer too
    assert "WhisperDecoderLayer" in whisper._no_split_modules
    llm = AutoModelForCausalLM.from_config(tiny_text_config("gpt2", 160))
    model = VoxLMForConditionalGeneration.from_parts(whisper, llm)
    assert model._no_split_modules == {"GPT2Block", "VoxLMAdapter", "WhisperEncoderLayer"}
