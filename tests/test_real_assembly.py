"""VoxLM assembled from the real offline weights: Whisper tiny.en encoder + SmolLM2-135M-Instruct (BLSP adapter)."""

import pytest
import torch

pytestmark = pytest.mark.real

PROMPT = [{"role": "user", "content": "Name three colours of the rainbow."}]


@pytest.fixture(scope="module")
def assembled():
    from voxlm.modeling import VoxLMForConditionalGeneration
    from voxlm.processing import VoxLMProcessor
    from voxlm.train.offline.assets import smollm2_dir, whisper_tiny_en_dir

    torch.set_num_threads(1)
    whisper, smollm2 = whisper_tiny_en_dir(), smollm2_dir()
    model = VoxLMForConditionalGeneration.from_parts(whisper, smollm2, adapter="blsp").eval()
    processor = VoxLMProcessor.from_parts(whisper, smollm2, model.config)
    return model, processor


def test_parts_come_from_the_offline_weights(assembled):
    from transformers import AutoModelForCausalLM

    from voxlm.train.offline.assets import smollm2_dir

    model, processor = assembled
    assert model.config.audio_config.d_model == 384 and model.config.audio_config.encoder_layers == 4
    assert model.config.text_config.hidden_size == 576 and model.config.text_config.num_hidden_layers == 30
    assert processor.audio_token_id == model.config.audio_token_id == len(processor.tokenizer) - 1
    bare = AutoModelForCausalLM.from_pretrained(smollm2_dir())
    assert torch.equal(model.get_input_embeddings().weight, bare.get_input_embeddings().weight)


def test_text_only_chat_prompt_generates_exactly_like_smollm2(assembled):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from voxlm.train.offline.assets import smollm2_dir

    model, processor = assembled
    inputs = processor.apply_chat_template(PROMPT, add_generation_prompt=True, tokenize=True)
    assert "input_features" not in inputs
    voxlm_ids = model.generate(**inputs, max_new_tokens=24, do_sample=False)

    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir())
    bare = AutoModelForCausalLM.from_pretrained(smollm2_dir()).eval()
    reference = tokenizer.apply_chat_template(PROMPT, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    assert torch.equal(inputs["input_ids"], reference["input_ids"])
    bare_ids = bare.generate(**reference, max_new_tokens=24, do_sample=False)
    assert torch.equal(voxlm_ids, bare_ids)
    answer = tokenizer.decode(bare_ids[0, reference["input_ids"].shape[1] :], skip_special_tokens=True)
    assert answer.strip()


def test_audio_prompt_runs_end_to_end(assembled):
    from voxlm.train.offline.speech import real_recordings

    model, processor = assembled
    clip = next(r for r in real_recordings(["librivox"]) if r.id.endswith("-0880"))  # 2.9 s of real speech
    conversation = [
        {
            "role": "user",
            "content": [{"type": "audio", "audio": clip.audio}, {"type": "text", "text": "Repeat what was said."}],
        }
    ]
    inputs = processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=True, sampling_rate=16000)
    positions = int((inputs["input_ids"] == model.config.audio_token_id).sum())
    assert positions == int(model.config.num_audio_positions(inputs["input_features_mask"].sum(-1)).sum())
    # Whisper runs on the clip's real length (~100 frames per second), not on 30 s of padding.
    assert inputs["input_features"].shape[-1] == pytest.approx(len(clip.audio) / 160, abs=2)
    generated = model.generate(**inputs, max_new_tokens=8, do_sample=False)
    prompt_length = inputs["input_ids"].shape[1]
    assert generated.shape[0] == 1 and prompt_length < generated.shape[1] <= prompt_length + 8
    assert (generated[0, prompt_length:] != model.config.audio_token_id).all()
