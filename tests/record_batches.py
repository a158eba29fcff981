"""Test-only: run a module (`python -m record_batches <module> ...`) while every collated batch's targets are
appended, one JSON line per batch, to `$VOXLM_TEST_BATCHES.rank<R>`: the examples each process trained on, in order.

Every `VoxLMTrainer` also gets `kill_callback.KillAtStep` (`VOXLM_TEST_KILL=<output folder>:<step>`), for recipes
whose configuration takes no callbacks (`align train`)."""

import json
import os
import runpy
import sys

from kill_callback import KillAtStep

from voxlm.train.core.data import SpeechTaskCollator
from voxlm.train.core.trainer import VoxLMTrainer

_collate = SpeechTaskCollator.__call__
_trainer_init = VoxLMTrainer.__init__


def _recording_collate(self, examples):
    path = f"{os.environ['VOXLM_TEST_BATCHES']}.rank{os.environ.get('RANK', '0')}"
    with open(path, "a") as log:
        log.write(json.dumps([example["target"] for example in examples]) + "\n")
    return _collate(self, examples)


def _init_with_kill(self, *args, **kwargs):
    _trainer_init(self, *args, **kwargs)
    if not any(isinstance(callback, KillAtStep) for callback in self.callback_handler.callbacks):
        self.add_callback(KillAtStep)


SpeechTaskCollator.__call__ = _recording_collate
VoxLMTrainer.__init__ = _init_with_kill

if __name__ == "__main__":
    module, sys.argv = sys.argv[1], sys.argv[1:]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
