"""Acceptance: the three-stage curriculum under real two-process DDP, a killed-and-resumed run, and the reload."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from curriculum_helpers import changed, launch, weights, write_recipe

from voxlm.hub_cards import RunInfo

pytestmark = pytest.mark.slow

ADAPTER = ("projector.", "layer_mix.")


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("curriculum")
    config = write_recipe(root, callbacks=["kill_callback:KillAtStep"])
    result = launch(config)
    assert result.returncode == 0, result.stderr[-4000:]
    return root, config, result


def test_stages_train_exactly_their_parts_under_two_process_ddp(ddp_run):
    root, _, result = ddp_run
    run = root / "run"
    checkpoint = run / "01-adapter" / "checkpoint-3"
    assert (checkpoint / "rng_state_0.pth").is_file() and (checkpoint / "rng_state_1.pth").is_file()  # 2 ranks
    start, stage1 = weights(root / "start"), weights(run / "01-adapter" / "model")
    stage2, stage3 = weights(run / "02-lora_asr" / "model"), weights(run / "03-multitask" / "model")

    adapter_keys = {name for name in start if name.startswith(ADAPTER)}
    assert changed(start, stage1) == adapter_keys  # stage 1: every adapter/layer-mix tensor, nothing else
    assert set(stage1) == set(start)

    lora_keys = set(stage2) - set(stage1)
    assert lora_keys and all(".lora_A." in name or ".lora_B." in name for name in lora_keys)
    assert {name.split(".lora_")[0].rsplit(".", 1)[-1] for name in lora_keys} == {"q_proj", "v_proj"}
    assert changed(stage1, stage2) == adapter_keys | lora_keys  # stage 2: + LoRA (lora_B starts at zero)
    assert all(stage2[name].abs().sum() > 0 for name in lora_keys if ".lora_B." in name)
    assert changed(stage2, stage3) == adapter_keys | lora_keys  # stage 3: same parts, more tasks
    frozen = set(start) - adapter_keys
    assert all(torch.equal(start[name], stage3[name]) for name in frozen)  # encoder and LLM never move

    run_info = RunInfo.load(run / "final")  # the run folder `voxlm push` publishes
    assert [stage["name"] for stage in run_info.stages] == ["adapter", "lora_asr", "multitask"]
    assert run_info.stages[0]["trained"] == ["adapter", "layer_mix"] and run_info.stages[2]["tasks"] == [
        "asr",
        "intent",
        "st",
    ]
    assert {metric["task"] for metric in run_info.metrics} == {"asr", "intent"}
    assert run_info.training["processes"] == 2
    summary = json.loads((run / "final" / "training_summary.json").read_text())
    assert [stage["name"] for stage in summary["stages"]] == ["start", "adapter", "lora_asr", "multitask"]
    assert set(summary["stages"][-1]["metrics"]) == {"asr_dev", "intent_dev"}  # per eval data set
    assert "Summary after stage 3/3 'multitask'" in result.stdout


RELOAD = """
import sys
sys.modules["voxlm"] = None  # like a Hub user without the package: only the folder's code may run
import numpy as np, torch
from transformers import AutoModel, AutoProcessor
folder, out = sys.argv[1], sys.argv[2]
model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
clip = np.sin(np.arange(9600) / 16000 * 2 * np.pi * 220).astype(np.float32)
inputs = processor(text=["<|audio|> Transcribe the audio."], audio=[clip], sampling_rate=16000)
generated = model.generate(**inputs, max_new_tokens=3, do_sample=False)
torch.save({"state": model.state_dict(), "lora": model.config.llm_lora, "prompt": inputs["input_ids"].shape[1],
            "generated": generated}, out)
"""


def test_final_model_reloads_with_trust_remote_code(ddp_run, tmp_path):
    root, _, _ = ddp_run
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules")}
    env.pop("PYTHONPATH", None)
    result = subprocess.run(
        [sys.executable, "-c", RELOAD, str(root / "run" / "final"), str(tmp_path / "out.pt")],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    reloaded = torch.load(tmp_path / "out.pt")
    assert reloaded["lora"]["r"] == 4  # LoRA kept as separate layers (`final.merge_lora: false`)
    state = {name.replace(".base_layer.", "."): tensor for name, tensor in reloaded["state"].items()}
    reference = weights(root / "run" / "03-multitask" / "model")
    assert all(torch.equal(state[name], tensor) for name, tensor in reference.items())
    assert reloaded["generated"].shape[1] == reloaded["prompt"] + 3


def test_killed_and_resumed_run_matches_the_uninterrupted_one(ddp_run, tmp_path):
    root, config, _ = ddp_run
    output = tmp_path / "resumed"
    killed = launch(config, "--output_dir", str(output), env={"VOXLM_TEST_KILL": "lora_asr:4"})
    assert killed.returncode != 0  # both ranks died at step 4 of stage 2, after checkpoint-3
    assert (output / "01-adapter" / "stage.json").is_file()
    assert not (output / "02-lora_asr" / "stage.json").exists()
    assert (output / "02-lora_asr" / "checkpoint-3").is_dir()

    resumed = launch(config, "--output_dir", str(output), "--resume_from_checkpoint")
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    assert "resuming from" in resumed.stdout and "checkpoint-3" in resumed.stdout
    assert "finished in a previous run: skipping it" in resumed.stderr
    for stage in ("02-lora_asr", "03-multitask"):
        uninterrupted, again = weights(root / "run" / stage / "model"), weights(output / stage / "model")
        assert set(uninterrupted) == set(again)
        for name, tensor in uninterrupted.items():
            np.testing.assert_allclose(again[name].numpy(), tensor.numpy(), atol=1e-6, rtol=1e-5, err_msg=name)
