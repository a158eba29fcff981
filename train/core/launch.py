"""Processes: start a training module under `accelerate launch` from Python (scripts, examples, tests), and the
accelerate state a recipe runs in.

On a machine without GPUs, accelerate's `--cpu` flag starts a single process (its multi-CPU mode needs MPI). Real
data parallelism on CPUs goes through `--multi_gpu`, which starts N workers with torchrun whatever the device, while
`ACCELERATE_USE_CPU=true` keeps them on the CPU (the recipes then create their accelerate state with `cpu=True`,
which selects the gloo backend). [`accelerate_command`] builds that command line.
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
    module: str, arguments: list[str], processes: int = 1, cpu: bool | None = None
) -> tuple[list[str], dict[str, str]]:
    """`(argv, env)` running `python -m <module> <arguments>` under `accelerate launch` with `processes` processes.

    `cpu=None` trains on the CPU when no GPU is visible.
    """
    if cpu is None:
        import torch

        cpu = not torch.cuda.is_available()
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--num_machines",
        "1",
        "--num_processes",
        str(processes),
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
    ]
    if processes > 1:
        command += ["--multi_gpu", "--main_process_port", str(free_port())]
    elif cpu:
        command += ["--cpu"]
    env = dict(os.environ)
    if cpu:
        env["ACCELERATE_USE_CPU"] = "true"
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # spinning OpenMP threads starve the other process on few cores
    return [*command, "-m", module, *arguments], env


def run_accelerate(module: str, arguments: list[str], processes: int = 1, cpu: bool | None = None, **kwargs):
    """Run [`accelerate_command`] to completion; `kwargs` go to `subprocess.run` (e.g. `capture_output=True`)."""
    command, env = accelerate_command(module, arguments, processes, cpu)
    env.update(kwargs.pop("env", {}) or {})
    return subprocess.run(command, env=env, **kwargs)


__all__ = ["accelerate_command", "distributed_state", "free_port", "run_accelerate", "use_cpu"]
