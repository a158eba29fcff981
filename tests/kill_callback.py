"""A TrainerCallback that kills its process like a power cut: `VOXLM_TEST_KILL=<stage>:<step>`."""

import os
import signal

from transformers import TrainerCallback


class KillAtStep(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        target = os.environ.get("VOXLM_TEST_KILL")
        if not target:
            return
        stage, step = target.rsplit(":", 1)
        if args.output_dir.endswith(stage) and state.global_step == int(step):
            os.kill(os.getpid(), signal.SIGKILL)
