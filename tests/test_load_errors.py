"""Loading a broken folder with the voxlm classes installed: the error names the file and the reason.

(The same folders loaded through the Hub code path, without voxlm, are covered in test_hub_publish.py.)
"""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file
from tiny import tiny_voxlm
from transformers import AutoConfig, AutoModel

from voxlm.modeling import VoxLMConfig, VoxLMForConditionalGeneration


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("saved")
    model, _ = tiny_voxlm()
    model.save_pretrained(folder)
    return folder, model


def _copy(folder, tmp_path):
    import shutil

    target = tmp_path / "copy"
    shutil.copytree(folder, target)
    return target


def test_truncated_weights(saved, tmp_path):
    folder = _copy(saved[0], tmp_path)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:500])
    for loader in (VoxLMForConditionalGeneration.from_pretrained, AutoModel.from_pretrained):
        with pytest.raises(OSError, match="Cannot read the weights") as error:
            loader(folder)
        assert f"{weights} (Error while deserializing header" in str(error.value)


@pytest.mark.parametrize("change", ["missing", "unexpected", "mismatched"])
def test_tensors_that_do_not_fit_the_config(saved, tmp_path, change):
    folder = _copy(saved[0], tmp_path)
    weights = folder / "model.safetensors"
    state = load_file(weights)
    if change == "missing":
        del state["projector.projector.linear_1.bias"]
    elif change == "unexpected":
        state["projector.extra.weight"] = torch.zeros(2)
    else:
        state["projector.projector.linear_1.bias"] = torch.zeros(7)
    save_file(state, weights, metadata={"format": "pt"})
    with pytest.raises(OSError) as error:
        VoxLMForConditionalGeneration.from_pretrained(folder)
    message = str(error.value)
    assert message.startswith(f"The weights in {weights} do not match the model described by its config.json")
    expected = {
        "missing": "1 missing tensors (e.g. projector.projector.linear_1.bias)",
        "unexpected": "1 unexpected tensors (e.g. projector.extra.weight)",
        "mismatched": "1 mismatched tensors (e.g. projector.projector.linear_1.bias of shape (7,) instead of (48,))",
    }
    assert expected[change] in message


def test_incomplete_checkpoint_loads_when_asked_for_the_info(saved, tmp_path):
    folder = _copy(saved[0], tmp_path)
    state = load_file(folder / "model.safetensors")
    del state["projector.projector.linear_1.bias"]
    save_file(state, folder / "model.safetensors", metadata={"format": "pt"})
    model, info = VoxLMForConditionalGeneration.from_pretrained(folder, output_loading_info=True)
    assert set(info["missing_keys"]) == {"projector.projector.linear_1.bias"}
    torch.testing.assert_close(model.projector.projector.linear_1.weight, saved[1].projector.projector.linear_1.weight)


def test_unknown_preset_names_config_json(saved, tmp_path):
    folder = _copy(saved[0], tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config["adapter"] = "qformer"
    (folder / "config.json").write_text(json.dumps(config))
    for loader in (AutoConfig.from_pretrained, VoxLMConfig.from_pretrained, AutoModel.from_pretrained):
        with pytest.raises(ValueError) as error:
            loader(folder)
        message = str(error.value)
        assert message.startswith(f"{folder / 'config.json'} is not a valid VoxLM config")
        assert "Unknown adapter preset 'qformer'. Known presets: speechverse, blsp, ultravox" in message


def test_config_errors_without_a_file_are_unchanged(saved):
    config = json.loads((saved[0] / "config.json").read_text())
    config["adapter"] = "qformer"
    with pytest.raises(ValueError, match=r"^Unknown adapter preset 'qformer'"):
        VoxLMConfig.from_dict(config)


def test_complete_checkpoint_loads_identically(saved):
    folder, model = saved
    reloaded = VoxLMForConditionalGeneration.from_pretrained(folder)
    for (name, expected), (_, actual) in zip(model.state_dict().items(), reloaded.state_dict().items()):
        torch.testing.assert_close(actual, expected, msg=name)
