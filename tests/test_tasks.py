import numpy as np
import pytest

from voxlm.train.core.tasks import BUILTIN_TASKS, build_tasks, format_value, get_task


def test_builtin_tasks_cover_the_speechverse_families():
    assert {"asr", "st", "intent", "slots", "keywords", "emotion", "paralinguistic", "sqa"} <= set(BUILTIN_TASKS)
    assert BUILTIN_TASKS["st"].required_columns == ["audio", "translation", "language"]
    assert BUILTIN_TASKS["sqa"].required_columns == ["audio", "answer", "question"]
    for task in BUILTIN_TASKS.values():
        assert len(task.prompts) >= 3


def test_prompt_sampling_and_target_formatting():
    task = BUILTIN_TASKS["st"]
    values = {"translation": "hallo welt", "language": "German"}
    drawn = {task.sample_prompt(values, np.random.default_rng(seed)) for seed in range(40)}
    assert drawn == {prompt.format(language="German") for prompt in task.prompts}
    assert task.format_target(values) == "hallo welt"
    slots = BUILTIN_TASKS["slots"].format_target({"slots": {"city": "paris", "date": "monday"}})
    assert slots == "city: paris; date: monday"
    assert BUILTIN_TASKS["keywords"].format_target({"keywords": ["music", "play"]}) == "music, play"
    assert format_value(3.0) == "3" and format_value(None) == "" and format_value(np.array([1, 2])) == "1, 2"


def test_yaml_tasks_extend_and_override_the_registry():
    tasks = build_tasks(
        {
            "accent": {"base": "paralinguistic", "prompts": ["Which accent is this?"], "target": "{accent}"},
            "asr": {"prompts": ["Transcribe."]},
            "summary": {
                "prompts": ["Summarise the talk."],
                "target": "{summary}",
                "metric": "bleu",
                "metric_key": "bleu",
            },
        }
    )
    assert tasks["accent"].metric == "classification" and tasks["accent"].kind == "paralinguistic"
    assert tasks["accent"].required_columns == ["audio", "accent"]
    assert tasks["asr"].prompts == ["Transcribe."] and tasks["asr"].metric == "wer"
    assert BUILTIN_TASKS["asr"].prompts != ["Transcribe."]  # the registry itself is untouched
    assert tasks["summary"].kind == "summary"


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"x": {"base": "nope"}}, "unknown `base` 'nope'"),
        ({"x": {"prompts": ["a"]}}, r"needs \['target', 'metric', 'metric_key'\]"),
        ({"asr": {"prompt": ["a"]}}, r"unknown keys \['prompt'\]"),
        ({"asr": {"prompts": []}}, "non-empty list of prompts"),
        ({"asr": {"target": "{}"}}, "named placeholders"),
        ({"asr": {"metric": "rouge"}}, "Unknown metric 'rouge'"),
    ],
)
def test_bad_task_definitions_fail_clearly(settings, message):
    with pytest.raises(ValueError, match=message):
        build_tasks(settings)


def test_unknown_task_lists_the_known_ones():
    with pytest.raises(ValueError, match="Unknown task 'asrr'. Known tasks: .*asr.*Define it under `tasks:`"):
        get_task(build_tasks(), "asrr")


def test_score_uses_the_task_metric():
    assert BUILTIN_TASKS["asr"].score(["Hello world."], ["hello world"])["wer"] == 0.0
    assert BUILTIN_TASKS["slots"].score(["a: b; c: d"], ["c: d; a: b"])["f1"] == 1.0
