"""`from_parts` takes folders as `pathlib.Path` as well as `str` (e.g. the offline asset folders)."""

from pathlib import Path

import torch
from tiny import tiny_audio_config, tiny_feature_extractor, tiny_text_config, tiny_tokenizer
from transformers import LlamaForCausalLM, WhisperForConditionalGeneration

from voxlm.modeling import VoxLMForConditionalGeneration
from voxlm.processing import VoxLMProcessor


def test_from_parts_accepts_path_folders(tmp_path: Path):
    torch.manual_seed(0)
    tokenizer = tiny_tokenizer()
    whisper = WhisperForConditionalGeneration(tiny_audio_config("whisper"))
    llama = LlamaForCausalLM(tiny_text_config("llama", vocab_size=len(tokenizer)))
    whisper.save_pretrained(tmp_path / "whisper")
    tiny_feature_extractor("whisper").save_pretrained(tmp_path / "whisper")
    llama.save_pretrained(tmp_path / "llama")
    tokenizer.save_pretrained(tmp_path / "llama")

    model = VoxLMForConditionalGeneration.from_parts(tmp_path / "whisper", tmp_path / "llama", adapter="blsp")
    processor = VoxLMProcessor.from_parts(tmp_path / "whisper", tmp_path / "llama", model.config)

    assert torch.equal(model.audio_tower.conv1.weight, whisper.model.encoder.conv1.weight)
    assert torch.equal(model.language_model.lm_head.weight, llama.lm_head.weight)
    assert processor.audio_token_id == model.config.audio_token_id
