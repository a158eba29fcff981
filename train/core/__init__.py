"""The shared training layer every recipe builds on: configs, audio data and task mixtures, collation, budgeted
batching, the trainer, tasks and metrics, generation-based evaluation and launching under accelerate.
"""

from voxlm.train.core.lazy import lazy_exports

__all__ = [
    "BLSP_INSTRUCTION",
    "BUILTIN_TASKS",
    "BatchingSpec",
    "BudgetBatchSampler",
    "BudgetBatchedStream",
    "DatasetSpec",
    "GenerationEvaluator",
    "ModelSpec",
    "PromptFormat",
    "SAMPLING_RATE",
    "SpeechTaskCollator",
    "StreamingTaskMixture",
    "Task",
    "TaskMixture",
    "VoxLMTrainer",
    "accelerate_command",
    "assemble_voxlm",
    "audio_seconds",
    "budget_batches",
    "build_prompt",
    "build_tasks",
    "compute_metric",
    "distributed_state",
    "from_dict",
    "generate_answers",
    "get_task",
    "last_complete_checkpoint",
    "load_config",
    "load_dataset_spec",
    "load_metric",
    "load_voxlm",
    "load_yaml",
    "prepare_model_folder",
    "read_audio",
    "render_table",
    "run_accelerate",
    "score_answers",
    "word_error_rate",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        **dict.fromkeys(["load_yaml", "load_config", "from_dict"], "config"),
        **dict.fromkeys(["ModelSpec", "assemble_voxlm", "load_voxlm", "prepare_model_folder"], "models"),
        **dict.fromkeys(
            [
                "DatasetSpec",
                "load_dataset_spec",
                "TaskMixture",
                "StreamingTaskMixture",
                "SpeechTaskCollator",
            ],
            "data",
        ),
        **dict.fromkeys(["SAMPLING_RATE", "read_audio", "audio_seconds"], "audio"),
        **dict.fromkeys(["BLSP_INSTRUCTION", "PromptFormat", "build_prompt"], "prompts"),
        **dict.fromkeys(["BatchingSpec", "BudgetBatchSampler", "BudgetBatchedStream", "budget_batches"], "batching"),
        **dict.fromkeys(["VoxLMTrainer", "last_complete_checkpoint"], "trainer"),
        **dict.fromkeys(["Task", "BUILTIN_TASKS", "build_tasks", "get_task"], "tasks"),
        **dict.fromkeys(["GenerationEvaluator", "generate_answers", "score_answers"], "evaluate"),
        **dict.fromkeys(["render_table"], "tables"),
        **dict.fromkeys(["accelerate_command", "run_accelerate", "distributed_state"], "launch"),
        **dict.fromkeys(["load_metric", "compute_metric", "word_error_rate"], "metrics"),
    },
)
