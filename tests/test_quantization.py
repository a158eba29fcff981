"""Quantized loading (`quantization_config={"quant_method": "voxlm", ...}`): layers, loading path, limits."""

import textwrap

import numpy as np
import pytest
import torch
from test_remote_code import run_without_voxlm
from tiny import tiny_voxlm, tone
from torch import nn
from transformers import AutoModel

from voxlm.modeling import VoxLMForConditionalGeneration, VoxLMQuantizationConfig
from voxlm.modeling.quantization_voxlm import (
    VoxLMInt4Linear,
    VoxLMInt8GroupLinear,
    VoxLMInt8Linear,
    quantize_linear_layers,
)
from voxlm.train.core.inference import load_for_inference, quantization_kwargs

# A tiny Llama whose widths the int4 kernel accepts (inputs in multiples of 32, outputs of 16), with weights large
# enough that its greedy tokens depend on the input (at the default init std it repeats one token).
WIDE = {"hidden_size": 64, "intermediate_size": 128, "head_dim": 16, "initializer_range": 0.1}
PROMPTS = ["hello <|audio|> world", "transcribe <|audio|>"]
# int4 weights move this random model's logits by ~15% (norm of the difference / norm). Measured: both rows' first
# new token agree with fp32, then one row keeps all 10 tokens and the other diverges (11 of 20 positions agree). The
# shipped model's agreement is measured on whole evaluation sets by benchmarks/latency.py.
MIN_TOKEN_AGREEMENT = 0.5


def tiny_inputs(processor):
    return processor(text=PROMPTS, audio=[tone(1.0, seed=1), tone(0.6, seed=2)], sampling_rate=16000)


@pytest.mark.parametrize("kind", ["int4", "int8", "int8-groups"])
def test_quantized_linear_equals_its_dequantized_weights(kind):
    torch.manual_seed(0)
    linear = nn.Linear(64, 48)
    if kind == "int4":
        layer = VoxLMInt4Linear.from_linear(linear, 32)
    elif kind == "int8":
        layer = VoxLMInt8Linear.from_linear(linear)
    else:
        layer = VoxLMInt8GroupLinear.from_linear(linear, 32)
    weight = layer.dequantized_weight()
    # Rounding to the nearest level: at most half a step from the original weight.
    if kind == "int8":
        step = layer.scales[:, None].expand_as(weight)
    else:
        step = layer.scales.repeat_interleave(32, dim=1)
    assert torch.all((weight - linear.weight).abs() <= step / 2 + 1e-6)
    x = torch.randn(3, 5, 64)
    reference = nn.functional.linear(x, weight, linear.bias)
    out = layer(x)
    assert out.shape == (3, 5, 48) and out.dtype == torch.float32
    # bf16 activations (int4, 8-bit groups) or per-call int8 activations (int8) add their own rounding
    assert (out - reference).norm() / reference.norm() < 0.02
    if kind == "int8-groups":  # 255 levels per group: much closer to the full-precision layer than int4
        full = linear(x)
        int4 = VoxLMInt4Linear.from_linear(linear, 32)(x)
        assert (out - full).norm() < (int4 - full).norm() / 8


def test_from_pretrained_quantizes_the_language_model_only(tmp_path):
    model, processor = tiny_voxlm("whisper", "llama", adapter="blsp", text_overrides=WIDE)
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    quantized = VoxLMForConditionalGeneration.from_pretrained(tmp_path, quantization_config=VoxLMQuantizationConfig())
    kinds = {name: type(module).__name__ for name, module in quantized.named_modules()}
    llm = [kind for name, kind in kinds.items() if name.startswith("language_model.model.layers.") and "proj" in name]
    assert llm and set(llm) == {"VoxLMInt4Linear"}
    assert kinds["language_model.lm_head"] == "Linear"  # full precision by default (lm_head_bits=None)
    assert not any(kind.startswith("VoxLMInt") for name, kind in kinds.items() if not name.startswith("language_model"))
    assert quantized.projector.conv_blocks[0].conv.weight.dtype == torch.float32
    assert torch.equal(quantized.get_input_embeddings().weight, model.get_input_embeddings().weight)
    head8 = VoxLMForConditionalGeneration.from_pretrained(
        tmp_path, quantization_config={"quant_method": "voxlm", "bits": 4, "lm_head_bits": 8}
    )
    assert isinstance(head8.language_model.lm_head, VoxLMInt8GroupLinear)  # weight-only, not dynamic int8
    both = VoxLMForConditionalGeneration.from_pretrained(
        tmp_path, quantization_config=VoxLMQuantizationConfig(bits=8, modules=["language_model", "audio_tower"])
    )
    assert isinstance(both.audio_tower.layers[0].fc1, VoxLMInt8Linear)


def test_saving_a_quantized_model_is_refused_with_the_way_out(tmp_path):
    model, processor = tiny_voxlm("whisper", "llama", adapter="blsp", text_overrides=WIDE)
    model.save_pretrained(tmp_path / "fp32")
    quantized = AutoModel.from_pretrained(tmp_path / "fp32", quantization_config={"quant_method": "voxlm", "bits": 4})
    with pytest.raises(ValueError, match="not serializable"):
        quantized.save_pretrained(tmp_path / "int4")


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="`bits` must be 4 or 8"):
        VoxLMQuantizationConfig(bits=3)
    with pytest.raises(ValueError, match="group_size"):
        VoxLMQuantizationConfig(group_size=48)
    with pytest.raises(ValueError, match="`modules` must name some of"):
        VoxLMQuantizationConfig(modules=["projector"])
    with pytest.raises(ValueError, match="Unknown quantize preset 'int3'"):
        quantization_kwargs("int3")


FRESH_QUANTIZED = textwrap.dedent(
    """
    import sys
    sys.modules["voxlm"] = None  # only the folder's own code may run
    import numpy as np, torch
    from transformers import AutoModel, AutoProcessor
    folder, out = sys.argv[1], sys.argv[2]
    model = AutoModel.from_pretrained(
        folder, trust_remote_code=True, quantization_config={"quant_method": "voxlm", "bits": 4}
    ).eval()
    processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
    kinds = sorted({type(m).__name__ for m in model.language_model.modules()})
    clips = list(np.load(folder + "/clips.npy"))
    inputs = processor(text=["hello <|audio|> world", "transcribe <|audio|>"], audio=clips, sampling_rate=16000)
    with torch.no_grad():
        logits = model(**inputs).logits
    generated = model.generate(**inputs, max_new_tokens=10, do_sample=False)
    torch.save({"kinds": kinds, "module": type(model).__module__, "logits": logits, "generated": generated}, out)
    """
)


def test_quantized_load_without_voxlm_agrees_with_fp32(tmp_path):
    model, processor = tiny_voxlm("whisper", "llama", adapter="blsp", text_overrides=WIDE)
    folder = tmp_path / "voxlm-tiny"
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    assert (folder / "quantization_voxlm.py").is_file()
    clips = [tone(1.0, seed=1), tone(0.6, seed=2)]
    np.save(folder / "clips.npy", np.stack([np.pad(c, (0, 16000 - c.size)) for c in clips]))
    inputs = processor(text=PROMPTS, audio=list(np.load(folder / "clips.npy")), sampling_rate=16000)
    fp32 = model.generate(**inputs, max_new_tokens=10, do_sample=False)
    quantize_linear_layers(model, VoxLMQuantizationConfig(bits=4))
    with torch.no_grad():
        local_logits = model(**inputs).logits

    run_without_voxlm(folder, tmp_path / "remote.pt", tmp_path, FRESH_QUANTIZED)
    remote = torch.load(tmp_path / "remote.pt")
    assert remote["module"].startswith("transformers_modules")
    assert "VoxLMInt4Linear" in remote["kinds"]
    assert torch.equal(remote["logits"], local_logits)  # the Hub copy quantizes exactly as the package does
    prompt_length = inputs["input_ids"].shape[1]
    new_fp32, new_int4 = fp32[:, prompt_length:], remote["generated"][:, prompt_length:]
    assert len(set(new_fp32.flatten().tolist())) > 2  # the model's tokens depend on the input
    assert torch.equal(new_fp32[:, 0], new_int4[:, 0])
    assert (new_fp32 == new_int4).float().mean() >= MIN_TOKEN_AGREEMENT


def test_load_for_inference_presets(tmp_path):
    model, processor = tiny_voxlm("whisper", "llama", adapter="blsp", text_overrides=WIDE)
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    bf16, _ = load_for_inference(tmp_path, quantize="bf16")
    assert bf16.dtype == torch.bfloat16 and not bf16.training
    int8, loaded_processor = load_for_inference(tmp_path, quantize="int8")
    assert isinstance(int8.language_model.model.layers[0].mlp.up_proj, VoxLMInt8Linear)
    out = int8.generate(**tiny_inputs(loaded_processor), max_new_tokens=3, do_sample=False)
    assert out.shape[0] == 2
    int4, _ = load_for_inference(tmp_path, quantize="int4")
    assert isinstance(int4.language_model.model.layers[0].mlp.up_proj, VoxLMInt4Linear)
    assert isinstance(int4.language_model.lm_head, VoxLMInt8GroupLinear)
    inputs = tiny_inputs(loaded_processor)
    prompt_length = inputs["input_ids"].shape[1]
    new_fp32 = model.generate(**inputs, max_new_tokens=10, do_sample=False)[:, prompt_length:]
    new_int4 = int4.generate(**inputs, max_new_tokens=10, do_sample=False)[:, prompt_length:]
    assert torch.equal(new_fp32[:, 0], new_int4[:, 0])
    assert (new_fp32 == new_int4).float().mean() >= MIN_TOKEN_AGREEMENT


def wide_llama_quantized(**options):
    model, _ = tiny_voxlm("whisper", "llama", adapter="blsp", text_overrides=WIDE)
    quantize_linear_layers(model, VoxLMQuantizationConfig(**options))
    return model.eval()


def test_shared_input_projections_multiply_as_one_matrix_with_the_same_result():
    torch.manual_seed(0)
    fused, separate = wide_llama_quantized(), wide_llama_quantized(fuse_projections=False)
    attention, mlp = fused.language_model.model.layers[0].self_attn, fused.language_model.model.layers[0].mlp
    assert attention.q_proj.shared is attention.v_proj.shared is not None and mlp.gate_proj.shared is mlp.up_proj.shared
    assert attention.o_proj.shared is None and mlp.down_proj.shared is None  # their inputs are their own
    assert separate.language_model.model.layers[0].self_attn.q_proj.shared is None
    ids = torch.randint(0, 100, (2, 7))
    with torch.no_grad():
        # one kernel call for q/k/v computes each column as three calls do: the logits are identical
        assert torch.equal(fused.language_model(input_ids=ids).logits, separate.language_model(input_ids=ids).logits)
        assert attention.q_proj.shared._last.input is None  # nothing kept once every layer took its slice
        # a layer called on its own (another input than its siblings) still returns its own product
        hidden = torch.randn(1, 3, 64)
        alone = separate.language_model.model.layers[0].self_attn.k_proj(hidden)
        assert torch.equal(attention.k_proj(hidden), alone)
        assert torch.equal(attention.k_proj(hidden.clone()), alone)


@pytest.mark.parametrize("bf16_prefill", [True, False])
def test_bf16_prefill_multiplies_long_inputs_by_the_dequantized_weights(bf16_prefill):
    from voxlm.modeling.quantization_voxlm import PREFILL_ROWS, _configure_int4_layers

    torch.manual_seed(0)
    holder = nn.Module()
    holder.proj = VoxLMInt4Linear.from_linear(nn.Linear(64, 48), 32)
    _configure_int4_layers(holder, VoxLMQuantizationConfig(bf16_prefill=bf16_prefill))
    layer = holder.proj
    long, short = torch.randn(PREFILL_ROWS, 64), torch.randn(PREFILL_ROWS - 1, 64)
    layer(short)
    packed = layer._packed

    def int4_kernel(x):
        return torch.ops.aten._weight_int4pack_mm_for_cpu(x.bfloat16(), packed.packed, 32, packed.scales_and_offsets)

    assert torch.equal(layer(short), int4_kernel(short).float() + layer.bias)  # decoding steps: the int4 kernel
    if bf16_prefill:  # a prompt: the bf16 copy of the same (dequantized) weights
        assert torch.equal(packed.dense, layer.dequantized_weight().bfloat16())
        expected = nn.functional.linear(long.bfloat16(), packed.dense).float() + layer.bias
    else:
        assert packed.dense is None
        expected = int4_kernel(long).float() + layer.bias
    assert torch.equal(layer(long), expected)
    # either way the product is the int4 weights' product, up to bf16 rounding
    reference = nn.functional.linear(long, layer.dequantized_weight(), layer.bias)
    assert (layer(long) - reference).norm() / reference.norm() < 0.02


def test_bf16_prefill_is_opt_in_and_the_int4_preset_follows_the_cpu(tmp_path):
    from voxlm.modeling.quantization_voxlm import cpu_has_bf16_matmul

    assert wide_llama_quantized().language_model.model.layers[0].mlp.up_proj.bf16_prefill is False  # memory first
    model, processor = tiny_voxlm("whisper", "llama", adapter="blsp", text_overrides=WIDE)
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    int4, _ = load_for_inference(tmp_path, quantize="int4")
    assert int4.language_model.model.layers[0].mlp.up_proj.bf16_prefill == cpu_has_bf16_matmul()


def test_lora_matrices_stay_full_precision_and_their_base_layers_are_quantized():
    torch.manual_seed(0)
    model, processor = tiny_voxlm("whisper", "llama", adapter="blsp", text_overrides=WIDE)
    model.add_lora(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj"], speech_only=True)
    for name, parameter in model.named_parameters():
        if "lora_B" in name:
            parameter.data.normal_(0, 0.5)
    model.eval()
    inputs = tiny_inputs(processor)
    with torch.no_grad():
        fp32 = model(**inputs).logits
    quantize_linear_layers(model, VoxLMQuantizationConfig())
    attention = model.language_model.model.layers[0].self_attn
    assert isinstance(attention.q_proj.base_layer, VoxLMInt4Linear)
    assert type(attention.q_proj.lora_layer.lora_A["default"]) is nn.Linear  # not quantized
    assert attention.q_proj.base_layer.shared is attention.v_proj.base_layer.shared is not None
    with torch.no_grad():
        int4 = model(**inputs).logits
    assert (int4 - fp32).norm() / fp32.norm() < 0.3  # int4 rounding (~15 % on this random model), LoRA intact
    assert model.generate(**inputs, max_new_tokens=4, do_sample=False).shape[0] == 2


def test_all_speech_calls_take_the_direct_lora_path_with_the_same_result():
    from voxlm.modeling.quantization_voxlm import VoxLMSpeechLoRALinear

    torch.manual_seed(0)
    model, processor = tiny_voxlm("whisper", "llama", adapter="blsp", text_overrides=WIDE)
    model.add_lora(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj", "up_proj"], speech_only=True)
    for name, parameter in model.named_parameters():
        if "lora_B" in name:
            parameter.data.normal_(0, 0.5)
    model.eval()
    quantize_linear_layers(model, VoxLMQuantizationConfig())
    q_proj = model.language_model.model.layers[0].self_attn.q_proj
    assert isinstance(q_proj, VoxLMSpeechLoRALinear)
    assert q_proj.lora_layer.base_layer.shared is not None  # q/k/v still one int4 product
    # the direct path's sum is peft's: base + B A x * scaling
    gate, hidden = q_proj._gate[0], torch.randn(2, 3, q_proj.lora_layer.in_features)
    with torch.no_grad():
        gate.all_speech = True
        direct = q_proj(hidden)
        gate.all_speech = False
        assert torch.allclose(direct, q_proj.lora_layer(hidden), atol=1e-5)  # peft, LoRA on (no mask set)

    inputs = tiny_inputs(processor)
    text = processor.tokenizer(["hello world"], return_tensors="pt")
    used = []
    hook = q_proj.register_forward_hook(lambda module, args, out: used.append(module._gate[0].all_speech))
    with torch.no_grad():
        prompt = model(**inputs, use_cache=True)  # mixed positions: peft's masked path
        step = {"input_ids": prompt.logits[:, -1:].argmax(-1), "cache": prompt.cache}
        model(**step)  # a decoding step after speech: every position speech, the direct path
        text_logits = model(**text).logits
    hook.remove()
    assert used == [False, True, False]
    # text-only calls never reach LoRA: exactly the same model quantized without LoRA
    torch.manual_seed(0)
    plain, _ = tiny_voxlm("whisper", "llama", adapter="blsp", text_overrides=WIDE)
    quantize_linear_layers(plain.eval(), VoxLMQuantizationConfig())
    with torch.no_grad():
        assert torch.equal(text_logits, plain(**text).logits)
    new = model.generate(**inputs, max_new_tokens=6, do_sample=False)
    assert new.shape == (2, inputs["input_ids"].shape[1] + 6)


@pytest.mark.parametrize("speech_only, quantize, expected", [
    (False, "int4", "merge them first"),
    (True, "int8", None),  # speech-only LoRA is never merged: nothing to advise
    (True, "int4", None),
])  # fmt: skip
def test_loading_lora_quantized_warns_with_the_way_that_applies(tmp_path, speech_only, quantize, expected):
    from transformers.testing_utils import CaptureLogger

    from voxlm.modeling import quantization_voxlm

    model, processor = tiny_voxlm("whisper", "llama", adapter="blsp", text_overrides=WIDE)
    model.add_lora(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], speech_only=speech_only)
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    quantization_voxlm.logger.warning_once.cache_clear()
    with CaptureLogger(quantization_voxlm.logger) as captured:
        load_for_inference(tmp_path, quantize=quantize)
    if expected is None:
        assert "LoRA" not in captured.out
    else:
        assert expected in captured.out and ("merge them first" in captured.out) == (not speech_only)
