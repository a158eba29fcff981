"""The launch helper: the command line it builds, checked with accelerate's own parser and validation."""

import os
from pathlib import Path

import pytest
from accelerate.commands.launch import _validate_launch_command, launch_command_parser

from voxlm.train.core.launch import accelerate_command

CONFIGS = Path(__file__).resolve().parents[1] / "train" / "configs" / "accelerate"


def parsed(command: list[str]):
    """What `accelerate launch` makes of `command` (the part after `-m accelerate.commands.launch`)."""
    start = command.index("accelerate.commands.launch") + 1
    args = launch_command_parser().parse_args(command[start:])
    return _validate_launch_command(args)[0]


def test_without_a_config_file_two_processes_run_ddp_on_the_cpu():
    command, env = accelerate_command("voxlm.train.curriculum", ["--config", "r.yaml"], 2, cpu=True)
    assert command[-4:] == ["-m", "voxlm.train.curriculum", "--config", "r.yaml"]
    assert "--multi_gpu" in command and "--config_file" not in command
    assert env["ACCELERATE_USE_CPU"] == "true"
    args = parsed(command)
    assert args.multi_gpu and args.num_processes == 2 and not args.use_fsdp


@pytest.mark.parametrize(
    "name, engine",
    [("ddp.yaml", "multi_gpu"), ("fsdp2.yaml", "use_fsdp"), ("deepspeed_zero2.yaml", "use_deepspeed"),
     ("deepspeed_zero3.yaml", "use_deepspeed")],
)  # fmt: skip
def test_a_config_file_is_passed_on_unchanged_and_chooses_the_engine(name, engine):
    config = CONFIGS / name
    command, env = accelerate_command("voxlm.train.curriculum", ["--config", "r.yaml"], config_file=config)
    start = command.index("accelerate.commands.launch") + 1
    # Only the file and a free rendezvous port (the file sets none): nothing that overrides the file's settings.
    assert command[start : start + 3] == ["--config_file", str(config), "--main_process_port"]
    assert command[start + 4 :] == ["-m", "voxlm.train.curriculum", "--config", "r.yaml"]
    assert env.get("ACCELERATE_USE_CPU") == os.environ.get("ACCELERATE_USE_CPU")  # the file's `use_cpu` decides
    args = parsed(command)
    engines = {"multi_gpu": args.multi_gpu, "use_fsdp": args.use_fsdp, "use_deepspeed": args.use_deepspeed}
    assert {key for key, on in engines.items() if on} == {engine}
    assert args.num_processes == 8 and args.mixed_precision == "bf16"  # the file's values
    if engine == "use_fsdp":
        assert args.fsdp_version == 2 and args.fsdp_state_dict_type == "FULL_STATE_DICT"
    if name == "deepspeed_zero3.yaml":
        assert args.zero_stage == 3 and args.zero3_save_16bit_model


def test_processes_override_the_file_only_when_given_and_a_fixed_port_is_kept():
    command, _ = accelerate_command("m", [], 2, config_file=CONFIGS / "fsdp2.yaml")
    assert parsed(command).num_processes == 2
    command, _ = accelerate_command("m", [], config_file=CONFIGS / "multi_node.yaml")
    assert "--main_process_port" not in command  # every machine must use the file's port
    args = parsed(command)
    assert args.use_fsdp and args.num_machines == 2 and args.main_process_port == 29500
