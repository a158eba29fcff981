"""Test-only: run a module under `accelerate launch` with an FSDP or DeepSpeed config file on CPUs (gloo).

accelerate takes its FSDP and DeepSpeed branches only on accelerator devices: on a CPU machine its state falls back
to plain data parallelism (`MULTI_CPU`) whatever the config file says, and DeepSpeed would pick its own CPU
communication backend. This wrapper forces the engine the launcher asked for (`ACCELERATE_USE_FSDP` /
`ACCELERATE_USE_DEEPSPEED`, set by `accelerate launch --config_file`) once the gloo process group exists, then runs
the module as `python -m` would:

    accelerate launch --config_file fsdp2.yaml -m cpu_engines voxlm.train.curriculum --config recipe.yaml
"""

import runpy
import sys

from accelerate.state import AcceleratorState, PartialState
from accelerate.utils import DistributedType

_original_init = AcceleratorState.__init__


def _init_with_engine(self, mixed_precision=None, cpu=False, dynamo_plugin=None, deepspeed_plugin=None,
                      fsdp_plugin=None, *args, **kwargs):  # fmt: skip
    first = AcceleratorState._shared_state == {}
    _original_init(self, mixed_precision, cpu, dynamo_plugin, deepspeed_plugin, fsdp_plugin, *args, **kwargs)
    if not first or self.distributed_type != DistributedType.MULTI_CPU:
        return
    if fsdp_plugin is not None:
        self.distributed_type = DistributedType.FSDP
        self.fsdp_plugin = fsdp_plugin
    elif deepspeed_plugin is not None:
        import deepspeed.comm

        deepspeed.comm.init_distributed(dist_backend="gloo")  # joins the process group accelerate created
        self.distributed_type = DistributedType.DEEPSPEED
        deepspeed_plugin.set_mixed_precision(self._mixed_precision)
        deepspeed_plugin.select(_from_accelerator_state=True)
        self.deepspeed_plugins = deepspeed_plugin
        self._mixed_precision = "no"  # DeepSpeed handles precision itself (as accelerate does on GPUs)
    PartialState._shared_state["distributed_type"] = self.distributed_type


AcceleratorState.__init__ = _init_with_engine

if __name__ == "__main__":
    module, sys.argv = sys.argv[1], sys.argv[1:]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
