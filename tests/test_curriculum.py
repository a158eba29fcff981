"""The curriculum in one process: bad configs fail before training, the CTC warm-up, a T5 language model, and the
evaluation command. (Two-process DDP and resumption: test_curriculum_ddp.py.)"""

import copy
import json
import shutil

import datasets
import pytest
import torch
import yaml
from curriculum_helpers import changed, weights, write_recipe

from voxlm.train import curriculum
from voxlm.train.core import evaluate
from voxlm.train.curriculum.ctc import CTCAlignmentModel, CTCCollator


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    root = tmp_path_factory.mktemp("recipe")
    return root, yaml.safe_load(write_recipe(root).read_text())


def run(config: dict, tmp_path, *args: str):
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(config))
    return curriculum.main(["--config", str(path), *args])


def variant(recipe, tmp_path, **changes) -> dict:
    config = copy.deepcopy(recipe[1])
    config["output_dir"] = str(tmp_path / "run")
    config.update(changes)
    return config


def stages(config: dict) -> list[dict]:
    return config["stages"]


def bad_unknown_task(config):
    config["datasets"]["intent"]["task"] = "intnet"


def bad_missing_column(config):
    config["datasets"]["asr"]["columns"] = {"text": "transcript"}


def bad_missing_field(config):
    del config["datasets"]["st"]["fields"]


def bad_lora_target(config):
    stages(config)[1]["lora"]["target_modules"] = ["q_proj", "query_key_value"]


def bad_tasks_before_lora(config):
    stages(config)[0]["datasets"] = ["asr", "intent"]


def bad_ctc_after_lm(config):
    stages(config).append({"name": "align", "objective": "ctc", "datasets": ["asr"], "max_steps": 2})


def bad_lora_before_added(config):
    stages(config)[0]["train"] = ["adapter", "lora"]


def bad_lora_twice(config):
    stages(config)[2]["lora"] = {"r": 2}


def bad_unknown_dataset(config):
    stages(config)[2]["datasets"]["slots"] = 1.0


def bad_unknown_key(config):
    stages(config)[0]["max_step"] = 3


def bad_no_budget(config):
    del stages(config)[1]["max_steps"]


def bad_augment(config):
    config["augment"] = {"noise": {"p": 0.3}, "echo": {"p": 1.0}}


def bad_run_info(config):
    config["final"] = {"run_info": {"licence": "mit"}}


@pytest.mark.parametrize(
    "breaks, message",
    [
        (bad_unknown_task, r"Data set 'intent': Unknown task 'intnet'. Known tasks: .*Define it under `tasks:`"),
        (bad_missing_column, r"no column\(s\) \['transcript'\].*Fix the mapping `columns:"),
        (bad_missing_field, r"lacks column\(s\) \['language'\].*fields: \{language: <value>\}"),
        (bad_lora_target, r"LoRA target\(s\) \['query_key_value'\] are not modules .*LlamaForCausalLM.*q_proj"),
        (bad_tasks_before_lora, r"Stage 'adapter' mixes in task\(s\) \['intent'\] before LoRA is added.*Move"),
        (bad_ctc_after_lm, r"Stage 'align': `ctc` is an alignment warm-up and must come before.*Move it to the start"),
        (bad_lora_before_added, r"Stage 'adapter' trains `lora` but no LoRA has been added yet; add `lora:"),
        (bad_lora_twice, r"Stage 'multitask' adds LoRA but stage 'lora_asr' already has it"),
        (bad_unknown_dataset, r"Stage 'multitask' uses data set 'slots', which is not defined under `datasets:`"),
        (bad_augment, r"Unknown augmentation effect\(s\) \['echo'\]; the effects are"),
        (bad_unknown_key, r"stage 'adapter': unknown key\(s\) \['max_step'\]; allowed keys are"),
        (bad_no_budget, r"Stage 'lora_asr': give a budget, `max_steps: N`"),
        (bad_run_info, r"final.run_info: unknown key\(s\) \['licence'\]; allowed keys are .*'license'"),
    ],
)
def test_bad_configs_fail_before_training_with_the_fix(recipe, tmp_path, breaks, message):
    config = variant(recipe, tmp_path)
    breaks(config)
    with pytest.raises(ValueError, match=message):
        run(config, tmp_path)
    produced = list((tmp_path / "run").iterdir()) if (tmp_path / "run").exists() else []
    assert not [path for path in produced if path.name[:2].isdigit()]  # no stage started


def test_a_previous_run_is_not_overwritten_silently(recipe, tmp_path):
    config = variant(recipe, tmp_path)
    (tmp_path / "run" / "01-adapter").mkdir(parents=True)
    with pytest.raises(ValueError, match="holds a previous run. Pass --resume_from_checkpoint"):
        run(config, tmp_path)
    assert run(config, tmp_path, "--overwrite_output_dir", "--check") is None
    assert not (tmp_path / "run" / "01-adapter").exists()


def test_ctc_warm_up_trains_the_adapter_only_then_language_model_stages_follow(recipe, tmp_path):
    config = variant(
        recipe,
        tmp_path,
        stages=[
            {"name": "align", "objective": "ctc", "datasets": ["asr"], "eval_datasets": ["asr_dev"], "max_steps": 4},
            {"name": "adapter", "datasets": ["asr"], "max_steps": 2},
        ],
        evaluation={"examples": 0},
    )
    final = run(config, tmp_path)
    root = recipe[0]
    start, aligned = weights(root / "start"), weights(tmp_path / "run" / "01-align" / "model")
    adapter_keys = {name for name in start if name.startswith(("projector.", "layer_mix."))}
    assert changed(start, aligned) == adapter_keys  # no blank logit, no LLM or encoder change
    checkpoint = tmp_path / "run" / "01-align" / "checkpoint-3" / "model.safetensors"
    saved = set(weights(checkpoint.parent))  # checkpoints hold only what trains: no frozen encoder or LLM copy
    assert saved == {f"voxlm.{name}" for name in adapter_keys} | {"blank_weight", "blank_bias"}
    result = json.loads((tmp_path / "run" / "01-align" / "stage.json").read_text())
    assert result["objective"] == "ctc" and result["eval_loss"] is not None
    assert (tmp_path / "run" / "final" / "config.json").is_file() and final.endswith("final")


@pytest.mark.parametrize("engine, name", [("ACCELERATE_USE_FSDP", "FSDP"), ("ACCELERATE_USE_DEEPSPEED", "DeepSpeed")])
def test_ctc_warm_up_refuses_sharded_engines(recipe, tmp_path, monkeypatch, engine, name):
    stage = {"name": "align", "objective": "ctc", "datasets": ["asr"], "max_steps": 2}
    config = variant(recipe, tmp_path, stages=[stage], evaluation={"examples": 0})
    monkeypatch.setenv(engine, "true")  # what `accelerate launch --config_file fsdp2.yaml` sets
    with pytest.raises(ValueError, match=f"Stage 'align': the CTC warm-up runs under DDP or in one process, not "
                       f"under {name}.*launched without the FSDP/DeepSpeed config file"):  # fmt: skip
        run(config, tmp_path)


@pytest.mark.parametrize("vocabulary", ["all", "batch"])
def test_ctc_loss_learns_to_emit_the_transcript(recipe, vocabulary):
    from voxlm.modeling import VoxLMForConditionalGeneration
    from voxlm.processing import VoxLMProcessor
    from voxlm.train.core.audio import read_audio

    root = recipe[0]
    model = VoxLMForConditionalGeneration.from_pretrained(root / "start")
    processor = VoxLMProcessor.from_pretrained(root / "start")
    model.train_adapter_only()
    wrapper = CTCAlignmentModel(model, vocabulary=vocabulary)
    rows = datasets.load_from_disk(str(root / "train")).select(range(4))
    batch = CTCCollator(processor)(
        [{"audio": read_audio(row["audio"]), "target": row["text"].split()[0]} for row in rows]
    )
    assert batch["ctc_labels"].shape[0] == 4 and (batch["ctc_labels"][:, 0] >= 0).all()
    if vocabulary == "batch":
        # Fewer competing classes: every path is at least as likely as over the whole vocabulary.
        with torch.no_grad():
            full = CTCAlignmentModel(model, vocabulary="all")
            full.load_state_dict(wrapper.state_dict(), strict=False)
            assert wrapper(**batch)["loss"] < full(**batch)["loss"]
    optimizer = torch.optim.Adam([p for p in wrapper.parameters() if p.requires_grad], lr=3e-2)
    losses = []
    for _ in range(30):
        loss = wrapper(**batch)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    assert set(wrapper.state_dict()) == {n for n, p in wrapper.named_parameters() if p.requires_grad}


def test_t5_language_model_end_to_end(tmp_path):
    root = tmp_path / "t5"
    config = yaml.safe_load(write_recipe(root, text_family="t5").read_text())
    config["stages"] = [
        {"name": "adapter", "datasets": ["asr"], "eval_datasets": ["asr_dev"], "max_steps": 2},
        {
            "name": "lora",
            "datasets": {"asr": 1, "intent": 1},
            "lora": {"r": 2, "target_modules": ["q", "v"]},
            "max_steps": 2,
        },
    ]
    config["final"] = {"merge_lora": True}
    final = run(config, tmp_path)
    from voxlm.modeling import VoxLMForConditionalGeneration

    model = VoxLMForConditionalGeneration.from_pretrained(final)
    assert model.config.is_encoder_decoder and model.config.llm_lora is None  # merged
    lora_stage = weights(root / "run" / "02-lora" / "model")
    assert any(".lora_B." in name and tensor.abs().sum() > 0 for name, tensor in lora_stage.items())
    summary = json.loads((root / "run" / "final" / "training_summary.json").read_text())
    assert summary["config"]["prompt_format"] == "plain"  # encoder-decoder LMs get plain prompts


def test_evaluate_command_scores_a_saved_model(recipe, tmp_path, capsys):
    root = recipe[0]
    out = tmp_path / "eval.json"
    results = evaluate.main(
        [
            "--model",
            str(root / "start"),
            "--dataset",
            str(root / "dev"),
            "--task",
            "intent",
            "--split",
            "train",
            "--max_samples",
            "3",
            "--max_new_tokens",
            "3",
            "--output",
            str(out),
        ]
    )
    assert set(results) == {"intent"} and results["intent"]["examples"] == 3
    assert 0.0 <= results["intent"]["accuracy"] <= 1.0
    saved = json.loads(out.read_text())
    assert len(saved["predictions"]["intent"]) == 3 and "macro_f1" in capsys.readouterr().out


def test_token_budget_counts_audio_positions_prompt_and_target(recipe):
    from voxlm.processing import VoxLMProcessor
    from voxlm.train.core.batching import BatchingSpec, example_costs
    from voxlm.train.core.data import DatasetSpec, Source, TaskMixture, load_dataset_spec
    from voxlm.train.core.tasks import BUILTIN_TASKS

    root = recipe[0]
    processor = VoxLMProcessor.from_pretrained(root / "start")
    spec = DatasetSpec(path=str(root / "dev"), task="asr", name="dev")
    mixture = TaskMixture([Source(spec, load_dataset_spec(spec), BUILTIN_TASKS["asr"])])
    costs, budgets = example_costs(mixture, BatchingSpec(max_seconds=10, max_tokens=300), processor, 12.5)
    assert costs.shape == (8, 2) and budgets.tolist() == [10, 300]
    text = mixture[3]["target"]
    target_tokens = len(processor.tokenizer(text, add_special_tokens=False)["input_ids"])
    assert costs[3, 1] == pytest.approx(mixture.seconds[3] * 12.5 + 32 + target_tokens + 1)
    with pytest.raises(ValueError, match="`max_seconds` and/or `max_tokens`"):
        BatchingSpec(max_seconds=None)


def test_a_streamed_data_set_trains_with_budgeted_batches(recipe, tmp_path):
    config = variant(
        recipe,
        tmp_path,
        stages=[{"name": "adapter", "datasets": {"asr": 1, "asr_dev": 1}, "max_steps": 3}],
        evaluation={"examples": 0},
    )
    config["datasets"]["asr"]["streaming"] = True  # mixed with a map-style set, which is streamed too
    run(config, tmp_path)
    result = json.loads((tmp_path / "run" / "01-adapter" / "stage.json").read_text())
    assert result["steps"] == 3 and result["train_loss"] > 0
    start, trained = weights(recipe[0] / "start"), weights(tmp_path / "run" / "01-adapter" / "model")
    assert changed(start, trained) == {name for name in start if name.startswith(("projector.", "layer_mix."))}


def test_streams_need_a_step_budget(recipe, tmp_path):
    config = variant(recipe, tmp_path, stages=[{"name": "adapter", "datasets": ["asr"], "num_train_epochs": 1}])
    config["datasets"]["asr"]["streaming"] = True
    with pytest.raises(ValueError, match="trains on streamed data, which has no length: set `max_steps`"):
        run(config, tmp_path)


def test_resuming_from_an_explicit_checkpoint_checks_it(recipe, tmp_path):
    config = variant(recipe, tmp_path)
    with pytest.raises(ValueError, match="is not a complete Trainer checkpoint folder"):
        run(config, tmp_path, "--resume_from_checkpoint", str(tmp_path / "nowhere"))
    checkpoint = tmp_path / "run" / "02-lora_asr" / "checkpoint-3"
    checkpoint.mkdir(parents=True)
    (checkpoint / "trainer_state.json").write_text("{}")
    with pytest.raises(ValueError, match=r"belongs to stage 2, but stage\(s\) \[1\] before it never finished"):
        run(config, tmp_path, "--resume_from_checkpoint", str(checkpoint))


def test_finished_stages_drop_their_checkpoints_unless_kept(recipe, tmp_path):
    config = variant(
        recipe,
        tmp_path,
        keep_checkpoints=False,
        evaluation={"examples": 0},
        stages=[{"name": "adapter", "datasets": ["asr"], "max_steps": 3}],
    )
    run(config, tmp_path)
    stage = tmp_path / "run" / "01-adapter"
    assert sorted(path.name for path in stage.iterdir()) == ["model", "stage.json"]


def test_a_resumed_stage_reports_the_time_of_every_piece(recipe, tmp_path):
    from voxlm.train.core.trainer import CLOCK_FILE

    config = variant(
        recipe,
        tmp_path,
        keep_checkpoints=True,
        evaluation={"examples": 0},
        stages=[{"name": "adapter", "datasets": ["asr"], "max_steps": 4, "training": {"save_steps": 2}}],
    )
    run(config, tmp_path)
    stage = tmp_path / "run" / "01-adapter"
    first = json.loads((stage / "stage.json").read_text())
    clock = json.loads((stage / "checkpoint-2" / CLOCK_FILE).read_text())
    assert 0 < clock["seconds"] <= first["seconds"] and 0 < clock["cpu_seconds"] <= first["cpu_seconds"]
    # As if the run had been killed after checkpoint-2, which had taken an hour of wall and CPU time.
    (stage / "checkpoint-2" / CLOCK_FILE).write_text(json.dumps({"seconds": 3600.0, "cpu_seconds": 3600.0}))
    (stage / "stage.json").unlink()
    shutil.rmtree(stage / "checkpoint-4")
    shutil.rmtree(stage / "model")
    shutil.rmtree(tmp_path / "run" / "final", ignore_errors=True)
    run(config, tmp_path, "--resume_from_checkpoint")
    resumed = json.loads((stage / "stage.json").read_text())
    assert resumed["steps"] == 4
    assert 3600 < resumed["seconds"] < 3600 + first["seconds"] + 60
    assert 3600 < resumed["cpu_seconds"] < 3600 + first["cpu_seconds"] + 120
    info = json.loads((tmp_path / "run" / "final" / "run_info.json").read_text())
    assert info["training"]["seconds"] == round(resumed["seconds"])
    assert info["training"]["cpu_seconds"] == round(resumed["cpu_seconds"])


def test_a_stage_may_train_the_lora_of_a_starting_model_that_has_it(recipe, tmp_path):
    from tiny import tiny_voxlm

    model, processor = tiny_voxlm()
    model.add_lora(r=2, lora_alpha=4, speech_only=True)
    model.save_pretrained(tmp_path / "with-lora")
    processor.save_pretrained(tmp_path / "with-lora")
    stage = {"name": "more", "datasets": ["asr"], "max_steps": 1, "train": ["adapter", "lora"]}
    config = variant(recipe, tmp_path, model={"pretrained": str(tmp_path / "with-lora")}, stages=[stage])
    assert run(config, tmp_path, "--check") is None  # planned and checked, not refused
    config = variant(recipe, tmp_path, stages=[stage])  # the recipe's start has no LoRA: refused with the fix
    with pytest.raises(ValueError, match="trains `lora` but no LoRA has been added yet"):
        run(config, tmp_path, "--check")
