"""The multitask curriculum (SpeechVerse): staged training of the adapter, then LoRA, then more tasks.

    accelerate launch -m voxlm.train.curriculum --config recipe.yaml

`recipe` reads and checks the recipe YAML and runs its stages; `ctc` is the CTC alignment warm-up stage.
"""

from voxlm.train.core.lazy import lazy_exports

__all__ = [
    "CTCAlignmentModel",
    "CTCCollator",
    "Curriculum",
    "CurriculumConfig",
    "EvaluationSpec",
    "FinalSpec",
    "LoraSpec",
    "StageSpec",
    "check_lora_targets",
    "main",
    "plan_stages",
    "set_trainable",
    "summary_table",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        **dict.fromkeys(
            [
                "CurriculumConfig",
                "StageSpec",
                "LoraSpec",
                "EvaluationSpec",
                "FinalSpec",
                "Curriculum",
                "plan_stages",
                "check_lora_targets",
                "set_trainable",
                "summary_table",
                "main",
            ],
            "recipe",
        ),
        **dict.fromkeys(["CTCAlignmentModel", "CTCCollator"], "ctc"),
    },
)
