import pytest
import torch
from tiny import AUDIO_FAMILIES, tiny_audio_config, tiny_text_config
from transformers import AutoConfig, AutoModel, ClapAudioConfig, SpeechT5Config

from voxlm.modeling import VoxLMConfig, VoxLMForConditionalGeneration
from voxlm.modeling.audio_lengths import audio_output_lengths


def make_config(audio_family="whisper", text_family="llama", **kwargs) -> VoxLMConfig:
    return VoxLMConfig(
        audio_config=tiny_audio_config(audio_family).to_dict(),
        text_config=tiny_text_config(text_family, 160).to_dict(),
        **kwargs,
    )


@pytest.mark.parametrize(
    "preset, rate, strides",
    [("speechverse", 12.5, [2, 2]), ("blsp", 6.25, [2, 2, 2]), ("ultravox", 6.25, [8])],
)
def test_presets_reach_their_rates(preset, rate, strides):
    config = make_config(adapter=preset)
    assert config.audio_positions_per_second == rate
    assert [stage[1] for stage in config.audio_length_formula["adapter"]] == strides
    assert config.adapter["preset"] == preset


def test_blsp_preset_is_the_published_adapter():
    adapter = make_config(adapter="blsp").adapter
    assert [(b["kernel"], b["stride"], b["activation"]) for b in adapter["conv_blocks"]] == [(5, 2, "glu")] * 3
    assert adapter["bottleneck"] == 512 and adapter["final_norm"] == "layernorm"


def test_speechverse_strides_follow_the_encoder_rate():
    # wav2vec2 with a 16000/320 = 50 Hz feature rate and Whisper both need 4x to reach 12.5 Hz.
    for family in ("whisper", "wav2vec2-bert"):
        assert make_config(family, adapter="speechverse").audio_positions_per_second == 12.5


def test_custom_adapter_dict_is_completed_and_validated():
    adapter = {"stack": 2, "conv_blocks": [{"kernel": 3, "stride": 3, "channels": 40, "activation": "gelu",
                                            "layer_norm": False}], "projector": "mlp"}  # fmt: skip
    config = make_config(adapter=adapter)
    assert config.adapter["final_norm"] is None and config.adapter["preset"] is None
    assert config.audio_length_formula["adapter"] == [[2, 2, 1], [3, 3, 2]]


@pytest.mark.parametrize(
    "adapter, message",
    [
        ("whisperish", "Unknown adapter preset 'whisperish'. Known presets: speechverse, blsp, ultravox"),
        ({"stack": 0}, "adapter `stack` must be an integer >= 1"),
        ({"bogus": 1}, "Unknown adapter keys ['bogus']"),
        ({"projector": "none"}, "The adapter ends at width 32 but the language model expects 48"),
        ({"conv_blocks": [{"kernel": 3}]}, "adapter conv block 0 lacks"),
    ],
)
def test_bad_adapter_configs_name_the_fix(adapter, message):
    with pytest.raises(ValueError) as error:
        make_config(adapter=adapter)
    assert message in str(error.value)


@pytest.mark.parametrize("audio_config", [ClapAudioConfig(), SpeechT5Config()])
def test_unsupported_encoder_family_is_a_clear_error(audio_config):
    with pytest.raises(ValueError, match="Unsupported audio encoder family .* VoxLM supports: whisper, wav2vec2"):
        VoxLMConfig(audio_config=audio_config.to_dict(), text_config=tiny_text_config("llama", 160).to_dict())


def test_encoder_with_its_own_adapter_is_refused():
    audio = tiny_audio_config("wav2vec2")
    audio.add_adapter = True
    with pytest.raises(ValueError, match="add_adapter=True"):
        VoxLMConfig(audio_config=audio.to_dict(), text_config=tiny_text_config("llama", 160).to_dict())


def test_bad_audio_layer():
    with pytest.raises(ValueError, match="`audio_layer` must be 'mix' or an index into the encoder's 3 hidden"):
        make_config(audio_layer=7)


def test_stored_formula_must_match_the_modules():
    config = make_config()
    stored = {**config.audio_length_formula, "adapter": [[3, 2, 2]]}
    with pytest.raises(ValueError, match="disagrees with the one implied"):
        make_config(audio_length_formula=stored)


@pytest.mark.parametrize("family", AUDIO_FAMILIES)
def test_formula_matches_the_encoders_own_length_function(family):
    config = make_config(family, adapter={"conv_blocks": []})
    encoder = AutoModel.from_config(config.audio_config) if family != "whisper" else None
    lengths = torch.tensor([1000, 4321, 16000, 48000]) if family not in ("whisper", "wav2vec2-bert") else None
    if encoder is not None and lengths is not None:
        expected = encoder._get_feat_extract_output_lengths(lengths)
        assert torch.equal(audio_output_lengths(lengths, config.audio_length_formula), expected)
    if family == "whisper":
        # Whisper: 3000 mel frames per 30 s window -> 1500 frames; longer audio is windowed, not truncated.
        lengths = torch.tensor([300, 3000, 4500, 6001])
        assert audio_output_lengths(lengths, config.audio_length_formula).tolist() == [150, 1500, 2250, 3001]


def test_config_round_trip_and_auto_registration(tmp_path):
    config = make_config(adapter="ultravox", audio_layer="mix")
    config.save_pretrained(tmp_path)
    reloaded = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(reloaded, VoxLMConfig)
    assert reloaded.adapter == config.adapter
    assert reloaded.audio_length_formula == config.audio_length_formula
    assert reloaded.audio_layer == "mix"
    assert isinstance(AutoModel.from_config(config), VoxLMForConditionalGeneration)


def test_audio_token_id_defaults_to_the_first_id_past_the_vocabulary(tmp_path):
    # The transformers docs pattern: a config from its two sub-configs only.
    config = make_config()
    assert config.audio_token_id == 160
    torch.manual_seed(0)
    model = VoxLMForConditionalGeneration(config).eval()
    input_ids = torch.tensor([[1, 5, 9, 12]])
    with torch.no_grad():
        logits = model(input_ids=input_ids).logits  # text only: the bare language model
        expected = model.language_model(input_ids=input_ids).logits
    assert logits.shape == (1, 4, 160) and torch.equal(logits, expected)
    with pytest.raises(ValueError, match="4 audio placeholder tokens but no audio"):
        model(input_ids=torch.full((1, 4), 160))
    config.save_pretrained(tmp_path)
    assert AutoConfig.from_pretrained(tmp_path).audio_token_id == 160
    assert make_config(audio_token_id=7).audio_token_id == 7  # an explicit id wins
