"""Speech-token classification: Lasso-selected audio tokens added to a text LM, adapted, then fine-tuned to classify.

    accelerate launch -m voxlm.train.classify --config study.yaml      # or: voxlm classify --config study.yaml

`study` runs the conditions (text only, selected, random, all audio tokens) over seeds; `adaptation` adapts the new
embedding rows; `classification` fine-tunes and scores; `command` registers `voxlm classify`.
"""

from voxlm.train.core.lazy import lazy_exports

__all__ = [
    "CONDITIONS",
    "ClassifyConfig",
    "Split",
    "adapt_new_embeddings",
    "balanced_class_weights",
    "classification_metrics",
    "encode_split",
    "finetune_and_evaluate",
    "lm_objective",
    "load_language_model",
    "main",
    "run_from_args",
    "run_study",
    "weighted_cross_entropy",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        **dict.fromkeys(
            ["CONDITIONS", "ClassifyConfig", "Split", "encode_split", "run_study", "run_from_args", "main"], "study"
        ),
        **dict.fromkeys(["adapt_new_embeddings", "lm_objective", "load_language_model"], "adaptation"),
        **dict.fromkeys(
            ["balanced_class_weights", "classification_metrics", "weighted_cross_entropy", "finetune_and_evaluate"],
            "classification",
        ),
    },
)
