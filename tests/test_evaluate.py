import pytest
import torch
from tiny import tiny_voxlm, tone

from voxlm.train.core.evaluate import flat_metrics, format_table, generate_answers, score_answers
from voxlm.train.core.tasks import build_tasks

EXAMPLES = [
    {
        "audio": tone(0.4, seed=1),
        "instruction": "Transcribe the audio.",
        "target": "hello world",
        "task": "asr",
        "source": "dev",
    },
    {
        "audio": tone(1.1, seed=2),
        "instruction": "What is said?",
        "target": "the quick brown fox",
        "task": "asr",
        "source": "dev",
    },
    {"audio": tone(0.7, seed=3), "instruction": "Intent?", "target": "lights", "task": "intent", "source": "slu"},
]


@pytest.mark.parametrize("text_family", ["llama", "t5"])
def test_batched_left_padded_generation_equals_one_by_one(text_family):
    model, processor = tiny_voxlm("whisper", text_family)
    with torch.no_grad():  # larger random weights: answers vary with the input instead of repeating one token
        for parameter in model.language_model.parameters():
            parameter.normal_(0, 0.5)
    prompt_format = "plain" if text_family == "t5" else "chat"
    options = {"prompt_format": prompt_format, "max_new_tokens": 5, "skip_special_tokens": False}
    batched = generate_answers(model, processor, EXAMPLES, batch_size=3, **options)
    alone = [generate_answers(model, processor, [example], **options)[0] for example in EXAMPLES]
    assert batched == alone
    assert all(answer.strip() for answer in batched) and len(set(batched)) == 3


def test_scores_are_per_data_set_with_each_task_metric():
    answers = ["Hello, world!", "the quick brown box", "lights"]
    results = score_answers(EXAMPLES, answers, build_tasks())
    assert results["dev"]["task"] == "asr" and results["dev"]["examples"] == 2
    assert results["dev"]["wer"] == pytest.approx(1 / 6)
    assert results["slu"]["accuracy"] == 1.0
    logged = flat_metrics(results)
    assert logged["eval_dev_wer"] == pytest.approx(1 / 6) and "eval_dev_task" not in logged
    table = format_table(results)
    assert table.splitlines()[0].split()[:3] == ["data", "set", "task"] and "slu" in table
