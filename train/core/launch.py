"""Processes: start a training module under `accelerate launch` from Python (scripts, examples, tests), and the
accelerate state a recipe runs in.

On a machine without GPUs, accelerate's `--cpu` flag starts a single process (its multi-CPU mode needs MPI). Real
data parallelism on CPUs goes through `--multi_gpu`, which starts N workers with torchrun whatever the device, while
`ACCELERATE_USE_CPU=true` keeps them on the CPU (the recipes then create their accelerate state with `cpu=True`,
which selects the gloo backend). [`accelerate_command`] builds that command line, or passes an accelerate config
file (FSDP, DeepSpeed, several machines: `train/configs/accelerate/`) on unchanged.
"""

import os
import socket
import subprocess
import sys


def use_cpu() -> bool:
    """Train on CPU when there is no GPU, or when `accelerate launch --cpu` asked for it."""
    import torch
    from accelerate.utils import parse_flag_from_env

    return parse_flag_from_env("ACCELERATE_USE_CPU") or not torch.cuda.is_available()


def sharded_engine() -> str | None:
    """The engine `accelerate launch` was asked for by a config file, when it is not plain data parallelism:
    `"FSDP"`, `"DeepSpeed"` or None."""
    from accelerate.utils import parse_flag_from_env

    if parse_flag_from_env("ACCELERATE_USE_FSDP"):
        return "FSDP"
    if parse_flag_from_env("ACCELERATE_USE_DEEPSPEED"):
        return "DeepSpeed"
    return None


def distributed_state(**kwargs):
    """accelerate's process state, created with `cpu=True` on CPU machines (`kwargs` go to `PartialState`).

    accelerate only sets up CPU data parallelism (gloo) when its state is created with `cpu=True` under a
    multi-process launcher (`accelerate launch --multi_gpu --num_processes N` or `torchrun`, which start N
    processes even without GPUs); otherwise every process would train alone. The state is a singleton, so this
    must run before anything else creates it.
    """
    from accelerate import PartialState

    return PartialState(cpu=use_cpu(), **kwargs)


def free_port() -> int:
    """A TCP port nobody listens on now, for the processes' rendezvous (two runs at once must not share one)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def accelerate_command(
    module: str,
    arguments: list[str],
    processes: int | None = None,
    cpu: bool | None = None,
    config_file: str | os.PathLike | None = None,
) -> tuple[list[str], dict[str, str]]:
    """`(argv, env)` running `python -m <module> <arguments>` under `accelerate launch`.

    Without `config_file`: `processes` (default 1) DDP processes, on the CPU (gloo) when `cpu` is true or, with
    `cpu=None`, when no GPU is visible. With `config_file` (an accelerate config: DDP, FSDP, DeepSpeed, several
    machines) the file decides the engine, devices and precision: it is passed on unchanged, with no `--multi_gpu`
    or `--cpu` (either would override its `distributed_type`); `processes` then overrides the file's
    `num_processes` only when given, and a single-machine file without `main_process_port` gets a free port (two
    runs at once must not share one). `cpu` is ignored with a config file (its `use_cpu` decides).
    """
    command = [sys.executable, "-m", "accelerate.commands.launch"]
    env = dict(os.environ)
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # spinning OpenMP threads starve the other process on few cores
    if config_file is not None:
        from accelerate.commands.config.config_args import load_config_from_file

        command += ["--config_file", str(config_file)]
        if processes is not None:
            command += ["--num_processes", str(processes)]
        file_config = load_config_from_file(str(config_file))
        if file_config.main_process_port is None and (file_config.num_machines or 1) == 1:
            command += ["--main_process_port", str(free_port())]
        return [*command, "-m", module, *arguments], env
    processes = 1 if processes is None else processes
    if cpu is None:
        import torch

        cpu = not torch.cuda.is_available()
    command += ["--num_machines", "1", "--num_processes", str(processes), "--mixed_precision", "no"]
    command += ["--dynamo_backend", "no"]
    if processes > 1:
        command += ["--multi_gpu", "--main_process_port", str(free_port())]
    elif cpu:
        command += ["--cpu"]
    if cpu:
        env["ACCELERATE_USE_CPU"] = "true"
    return [*command, "-m", module, *arguments], env


def run_accelerate(
    module: str,
    arguments: list[str],
    processes: int | None = None,
    cpu: bool | None = None,
    config_file: str | os.PathLike | None = None,
    **kwargs,
):
    """Run [`accelerate_command`] to completion; `kwargs` go to `subprocess.run` (e.g. `capture_output=True`)."""
    command, env = accelerate_command(module, arguments, processes, cpu, config_file)
    env.update(kwargs.pop("env", {}) or {})
    return subprocess.run(command, env=env, **kwargs)


__all__ = ["accelerate_command", "distributed_state", "free_port", "run_accelerate", "sharded_engine", "use_cpu"]
