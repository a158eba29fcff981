"""A saved VoxLM folder loads with trust_remote_code in a fresh process where `voxlm` cannot be imported."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from tiny import tiny_voxlm, tone

FRESH_PROCESS = textwrap.dedent(
    """
    import sys
    sys.modules["voxlm"] = None  # the package is not importable: only the folder's code may be used
    import numpy as np, torch
    from transformers import AutoModel, AutoProcessor
    folder, out = sys.argv[1], sys.argv[2]
    model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
    processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
    assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
    clips = list(np.load(folder + "/clips.npy"))
    inputs = processor(text=["hello <|audio|> world", "transcribe <|audio|>"], audio=clips, sampling_rate=16000)
    with torch.no_grad():
        logits = model(**inputs).logits
    generated = model.generate(**inputs, max_new_tokens=6, do_sample=False)
    torch.save({"input_ids": inputs["input_ids"], "logits": logits, "generated": generated}, out)
    """
)


def run_without_voxlm(folder, out, tmp_path, script: str = FRESH_PROCESS) -> None:
    """Run `script` (argv: folder, out) in a fresh interpreter where voxlm cannot be imported."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules")}
    env.pop("PYTHONPATH", None)
    result = subprocess.run(
        [sys.executable, "-c", script, str(folder), str(out)], env=env, capture_output=True, text=True,
        cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.parametrize(
    "audio_family, text_family, adapter, audio_layer",
    [("whisper", "llama", "blsp", -1), ("wav2vec2-bert", "qwen2", "ultravox", "mix")],
)
def test_saved_folder_loads_without_voxlm_and_gives_identical_outputs(
    tmp_path, audio_family, text_family, adapter, audio_layer
):
    model, processor = tiny_voxlm(audio_family, text_family, adapter=adapter, audio_layer=audio_layer)
    folder = tmp_path / "voxlm-tiny"
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    for name in ("configuration_voxlm.py", "modeling_voxlm.py", "audio_lengths.py", "processing_voxlm.py"):
        assert (folder / name).is_file(), name
    clips = [tone(1.0, seed=1), tone(0.6, seed=2)]
    np.save(folder / "clips.npy", np.stack([np.pad(c, (0, 16000 - c.size)) for c in clips]))
    clips = list(np.load(folder / "clips.npy"))
    inputs = processor(text=["hello <|audio|> world", "transcribe <|audio|>"], audio=clips, sampling_rate=16000)
    with torch.no_grad():
        logits = model(**inputs).logits
    generated = model.generate(**inputs, max_new_tokens=6, do_sample=False)

    run_without_voxlm(folder, tmp_path / "remote.pt", tmp_path)
    remote = torch.load(tmp_path / "remote.pt")
    assert torch.equal(remote["input_ids"], inputs["input_ids"])
    assert torch.equal(remote["logits"], logits)
    assert torch.equal(remote["generated"], generated)
