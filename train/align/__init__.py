"""Behaviour alignment (BLSP, BLSP-KD): the frozen LLM continues transcripts, then the adapter learns to make the LLM
do the same from speech.

    accelerate launch -m voxlm.train.align {continuations,train,evaluate} ...

`continuations` (step 1, resumable shards), `training` (step 2), `evaluate` (behaviour on held-out speech),
`prompts` (the evaluation's instructions), `data` (tables and model loading), `command` (the command line).
"""

from voxlm.train.core.lazy import lazy_exports

__all__ = [
    "AlignEvalArguments",
    "AlignTrainArguments",
    "AlignTrainer",
    "ContinuationArguments",
    "evaluate_alignment",
    "generate_continuations",
    "kd_loss",
    "main",
    "parse_command_args",
    "train",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        **dict.fromkeys(["main", "parse_command_args"], "command"),
        **dict.fromkeys(["ContinuationArguments", "generate_continuations"], "continuations"),
        **dict.fromkeys(["AlignTrainArguments", "AlignTrainer", "kd_loss", "train"], "training"),
        **dict.fromkeys(["AlignEvalArguments", "evaluate_alignment"], "evaluate"),
    },
)
