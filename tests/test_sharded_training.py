"""Acceptance: the curriculum under FSDP2 and DeepSpeed ZeRO-3, launched with the shipped accelerate config files.

Two processes on the CPU (gloo) run the same two-stage recipe (adapter, then LoRA) as plain DDP; the sharded
engines must reach DDP's weights, and the folder they save must be as self-contained as one process's: VoxLM's
code files and `auto_map`, every weight gathered, tied weights not duplicated, and a reload with
`trust_remote_code=True` in a process without voxlm giving the same logits.
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from curriculum_helpers import TESTS, weights, write_recipe
from safetensors import safe_open

from voxlm.train.core.launch import run_accelerate

pytestmark = pytest.mark.slow

CONFIGS = TESTS.parent / "train" / "configs" / "accelerate"
STAGES = [
    {"name": "adapter", "datasets": ["asr"], "eval_datasets": ["asr_dev"], "max_steps": 2},
    {"name": "lora_asr", "datasets": ["asr"], "lora": {"r": 4, "alpha": 8}, "max_steps": 2},
]
TRAINING = {"learning_rate": 1e-2, "logging_steps": 1, "save_steps": 2, "eval_steps": 2}


def cpu_config(name: str, folder: Path) -> Path:
    """The shipped config file with what a 2-core CPU needs instead of GPUs: 2 processes, full precision."""
    config = yaml.safe_load((CONFIGS / name).read_text())
    config.update(num_processes=2, mixed_precision="no")
    path = folder / name
    path.write_text(yaml.safe_dump(config))
    return path


def run(root: Path, output: str, config_file: Path | None) -> subprocess.CompletedProcess:
    """The recipe in `root` with 2 processes: DDP without a config file, else the file's engine (through the
    test-only `cpu_engines` wrapper, which lets accelerate pick FSDP or DeepSpeed on CPUs)."""
    arguments = ["--config", str(root / "recipe.yaml"), "--output_dir", str(root / output)]
    module = "voxlm.train.curriculum"
    if config_file is not None:
        module, arguments = "cpu_engines", [module, *arguments]
    env = {"HF_HUB_OFFLINE": "1", "PYTHONPATH": str(TESTS), "OMP_NUM_THREADS": "1"}
    return run_accelerate(
        module,
        arguments,
        2,
        cpu=True,
        config_file=config_file,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    root = tmp_path_factory.mktemp("sharded")
    # Generation metrics (2 examples) run on the sharded model after each stage, in step on both processes.
    evaluation = {"examples": 2, "max_new_tokens": 3}
    write_recipe(root, stages=STAGES, training=TRAINING, evaluation=evaluation, keep_checkpoints=True)
    result = run(root, "ddp", None)
    assert result.returncode == 0, result.stderr[-4000:]
    return root


def check_same_weights(root: Path, output: str) -> None:
    for stage in ("01-adapter", "02-lora_asr"):
        reference, sharded = weights(root / "ddp" / stage / "model"), weights(root / output / stage / "model")
        assert set(sharded) == set(reference), stage
        for name, tensor in reference.items():
            # FSDP2 reduces the gradients of 2 processes in the same order as DDP; ZeRO-3 differs by rounding.
            torch.testing.assert_close(sharded[name], tensor, atol=1e-5, rtol=1e-5, msg=f"{stage}: {name}")
    start = weights(root / "start")
    adapter = [name for name in start if name.startswith("projector.")]
    assert not torch.equal(weights(root / output / "02-lora_asr" / "model")[adapter[0]], start[adapter[0]])


def check_folder(folder: Path) -> None:
    """The saved stage model is the folder one process would write."""
    files = {path.name for path in folder.iterdir()}
    assert {"modeling_voxlm.py", "configuration_voxlm.py", "whisper_encoder.py", "model.safetensors"} <= files
    assert not [name for name in files if name.startswith("_fsdp")], files
    config = json.loads((folder / "config.json").read_text())
    assert config["auto_map"]["AutoModel"] == "modeling_voxlm.VoxLMForConditionalGeneration"
    assert config["architectures"] == ["VoxLMForConditionalGeneration"]
    with safe_open(str(folder / "model.safetensors"), "pt") as saved:
        names = set(saved.keys())
    assert "language_model.model.embed_tokens.weight" in names
    assert "language_model.lm_head.weight" not in names  # tied to the embeddings (the tiny Llama ties them)


RELOAD = """
import sys
sys.modules["voxlm"] = None  # like a Hub user without the package: only the folder's code may run
import torch
from transformers import AutoModel
model = AutoModel.from_pretrained(sys.argv[1], trust_remote_code=True).eval()
assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
torch.manual_seed(0)
features = torch.randn(1, 80, 100)
positions = int(model.config.num_audio_positions(torch.tensor([100]))[0])
ids = torch.tensor([[2] + [model.config.audio_token_id] * positions + [5, 9]])
with torch.no_grad():
    logits = model(input_ids=ids, input_features=features, input_features_mask=torch.ones(1, 100)).logits
torch.save(logits, sys.argv[2])
"""


def reloaded_logits(folder: Path, out: Path) -> torch.Tensor:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(out.parent / "modules")}
    env.pop("PYTHONPATH", None)
    result = subprocess.run(
        [sys.executable, "-c", RELOAD, str(folder), str(out)],
        env=env,
        cwd=out.parent,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return torch.load(out)


@pytest.fixture(scope="module")
def ddp_logits(recipe, tmp_path_factory):
    return reloaded_logits(recipe / "ddp" / "02-lora_asr" / "model", tmp_path_factory.mktemp("ddp") / "logits.pt")


def check_reload(root: Path, output: str, tmp_path: Path, ddp: torch.Tensor) -> None:
    from voxlm.modeling import VoxLMForConditionalGeneration

    folder = root / output / "02-lora_asr" / "model"
    remote = reloaded_logits(folder, tmp_path / "remote.pt")
    model = VoxLMForConditionalGeneration.from_pretrained(folder).eval()
    torch.manual_seed(0)
    features = torch.randn(1, 80, 100)
    positions = int(model.config.num_audio_positions(torch.tensor([100]))[0])
    ids = torch.tensor([[2] + [model.config.audio_token_id] * positions + [5, 9]])
    with torch.no_grad():
        local = model(input_ids=ids, input_features=features, input_features_mask=torch.ones(1, 100)).logits
    assert torch.equal(remote, local)  # the folder's own code computes what VoxLM computes
    torch.testing.assert_close(remote, ddp, atol=1e-5, rtol=1e-4)


def test_fsdp2_reaches_ddp_weights_and_saves_a_remote_code_folder(recipe, ddp_logits, tmp_path):
    result = run(recipe, "fsdp2", cpu_config("fsdp2.yaml", tmp_path))
    assert result.returncode == 0, result.stderr[-4000:]
    checkpoint = recipe / "fsdp2" / "01-adapter" / "checkpoint-2"
    assert (checkpoint / "pytorch_model_fsdp.bin").is_file()  # Trainer really ran FSDP
    check_same_weights(recipe, "fsdp2")
    for folder in (checkpoint, recipe / "fsdp2" / "01-adapter" / "model", recipe / "fsdp2" / "02-lora_asr" / "model"):
        check_folder(folder)
    check_reload(recipe, "fsdp2", tmp_path, ddp_logits)


@pytest.mark.skipif(
    importlib.util.find_spec("deepspeed") is None,
    reason="deepspeed is not installed (scripts/setup.sh installs it: DS_BUILD_OPS=0 pip install deepspeed)",
)
def test_deepspeed_zero3_reaches_ddp_weights_and_saves_a_remote_code_folder(recipe, ddp_logits, tmp_path):
    result = run(recipe, "zero3", cpu_config("deepspeed_zero3.yaml", tmp_path))
    assert result.returncode == 0, result.stderr[-4000:]
    checkpoint = recipe / "zero3" / "01-adapter" / "checkpoint-2"
    assert (checkpoint / "global_step2").is_dir()  # Trainer really ran DeepSpeed (its own checkpoint format)
    check_same_weights(recipe, "zero3")
    for folder in (checkpoint, recipe / "zero3" / "01-adapter" / "model", recipe / "zero3" / "02-lora_asr" / "model"):
        check_folder(folder)
    check_reload(recipe, "zero3", tmp_path, ddp_logits)
