"""Test-only: run a module (`python -m record_batches <module> ...`) while every collated batch's targets are
appended, one JSON line per batch, to `$VOXLM_TEST_BATCHES.rank<R>`: the examples each process trained on, in order."""

import json
import os
import runpy
import sys

from voxlm.train.core.data import SpeechTaskCollator

_collate = SpeechTaskCollator.__call__


def _recording_collate(self, examples):
    path = f"{os.environ['VOXLM_TEST_BATCHES']}.rank{os.environ.get('RANK', '0')}"
    with open(path, "a") as log:
        log.write(json.dumps([example["target"] for example in examples]) + "\n")
    return _collate(self, examples)


SpeechTaskCollator.__call__ = _recording_collate

if __name__ == "__main__":
    module, sys.argv = sys.argv[1], sys.argv[1:]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
