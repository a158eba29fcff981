"""Behaviour alignment (BLSP): continuation generation, adapter-only training, the KD loss, the CLI."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import datasets
import numpy as np
import pytest
import soundfile
import torch
import yaml
from tiny import tiny_voxlm, tone

from voxlm.hub_cards import RunInfo
from voxlm.train import align
from voxlm.train.align.continuations import (
    ContinuationArguments,
    check_or_write_settings,
    generate_continuations,
    read_rows,
    run_settings,
)
from voxlm.train.align.data import ContinuationExamples
from voxlm.train.align.prompts import EVAL_INSTRUCTIONS
from voxlm.train.align.training import distillation_loss, kd_loss, label_positions
from voxlm.train.core.data import SpeechTaskCollator
from voxlm.train.core.prompts import BLSP_INSTRUCTION, PromptFormat
from voxlm.train.offline.sentences import SpokenQuestion, answer_is_correct

WORDS = "the quick brown fox jumps over lazy dog hello world this is a test of speech and language".split()
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}


def sentences(count: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(3, 9)))) for _ in range(count)]


def write_asr_data(folder: Path, count: int) -> Path:
    """`count` rows of (relative wav path, transcript) as a jsonl file, the format of many ASR manifests."""
    (folder / "wav").mkdir(parents=True, exist_ok=True)
    rows = []
    for index, text in enumerate(sentences(count)):
        soundfile.write(folder / "wav" / f"{index}.wav", tone(0.3 + 0.05 * (index % 7), seed=index), 16000)
        rows.append({"audio": f"wav/{index}.wav", "text": text})
    path = folder / "data.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tiny_voxlm")
    model, processor = tiny_voxlm("whisper", "llama", adapter="blsp")
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def continuation_args(data: Path, model: Path, output_dir: Path, **overrides) -> list[str]:
    options = {
        "data": data,
        "model": model,
        "output_dir": output_dir,
        "template": "plain",  # the random tiny LLM answers a chat prompt with newlines only
        "shard_size": 8,
        "batch_size": 4,
        "max_new_tokens": 8,
        **overrides,
    }
    return [item for key, value in options.items() for item in (f"--{key}", str(value))]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def dataset_rows(output_dir: Path) -> list[dict]:
    return datasets.load_from_disk(str(output_dir / "dataset")).to_list()


# ----------------------------------------------------------------------------------------- continuations
def test_two_processes_write_the_same_rows_as_one(tiny_folder, tmp_path):
    data = write_asr_data(tmp_path, 36)
    one, two = tmp_path / "one", tmp_path / "two"
    align.main(["continuations", *continuation_args(data, tiny_folder, one)])
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
    command += ["--main_process_port", str(free_port()), "-m", "voxlm.train.align", "continuations"]
    result = subprocess.run(
        command + continuation_args(data, tiny_folder, two), env=ENV, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "process 1" in result.stderr  # the work really was split
    rows_one, rows_two = dataset_rows(one), dataset_rows(two)
    assert [row["index"] for row in rows_one] == list(range(36))
    assert rows_one == rows_two
    assert sum(bool(row["continuation"]) for row in rows_one) > 30
    assert rows_one[5]["transcript"] == sentences(36)[5]
    assert rows_one[5]["audio"] == str(tmp_path / "wav" / "5.wav")  # relative paths made absolute


def test_killed_generation_resumes_with_every_row_once(tiny_folder, tmp_path):
    count = 200
    data = write_asr_data(tmp_path, count)
    output = tmp_path / "out"
    args = continuation_args(data, tiny_folder, output, batch_size=2, max_new_tokens=16, shard_size=64)
    process = subprocess.Popen(
        [sys.executable, "-m", "voxlm.train.align", "continuations", *args],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )

    def written() -> dict[int, dict]:
        rows = {}
        for path in (output / "shards").glob("shard-*.jsonl"):
            rows.update(read_rows(path))
        return rows

    deadline = time.monotonic() + 120
    while len(written()) < 20 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, process.stderr.read().decode()[-2000:]
    before = written()
    assert 20 <= len(before) < count and not (output / "dataset").exists(), "the run was not killed mid-way"
    assert any(path.name.endswith(".partial.jsonl") for path in (output / "shards").iterdir())

    align.main(["continuations", *args])
    rows = dataset_rows(output)
    assert [row["index"] for row in rows] == list(range(count))
    assert all(rows[index]["continuation"] == row["continuation"] for index, row in before.items())
    assert not list((output / "shards").glob("*.partial.jsonl"))


def test_torn_last_line_is_dropped_and_cut(tmp_path):
    path = tmp_path / "shard-00000.partial.jsonl"
    path.write_text('{"index": 0, "continuation": "a"}\n{"index": 1, "continuation": "b"}\n{"index": 2, "cont')
    assert sorted(read_rows(path, repair=True)) == [0, 1]
    assert path.read_text().endswith('"b"}\n')


def test_rows_already_written_are_kept_on_resume(tiny_folder, tmp_path):
    data = write_asr_data(tmp_path, 6)
    output = tmp_path / "out"
    args = continuation_args(data, tiny_folder, output, shard_size=4)
    shards = output / "shards"
    shards.mkdir(parents=True)
    texts = sentences(6)
    written = [{"index": i, "transcript": texts[i], "continuation": f"kept {i}"} for i in (2, 0, 3, 1)]
    (shards / "shard-00000.partial.jsonl").write_text("".join(json.dumps(row) + "\n" for row in written))
    (shards / "shard-00001.partial.jsonl").write_text(json.dumps({**written[0], "index": 5}) + "\n")
    align.main(["continuations", *args])
    rows = dataset_rows(output)
    assert [row["continuation"] for row in rows[:4]] == ["kept 0", "kept 1", "kept 2", "kept 3"]
    assert rows[5]["continuation"] == "kept 2" and rows[4]["continuation"] != "kept 2"


def test_resume_with_other_settings_or_transcripts_is_refused(tmp_path):
    texts = sentences(3)
    args = ContinuationArguments(data="rows.jsonl", output_dir=str(tmp_path), model="m")
    check_or_write_settings(tmp_path, run_settings(args, 3), texts, overwrite=False)
    (tmp_path / "shards" / "shard-00000.jsonl").write_text(
        "".join(json.dumps({"index": i, "transcript": t, "continuation": "c"}) + "\n" for i, t in enumerate(texts))
    )
    moved = ContinuationArguments(data="elsewhere/rows.jsonl", output_dir=str(tmp_path), model="m")
    check_or_write_settings(tmp_path, run_settings(moved, 3), texts, overwrite=False)  # same rows: resumes
    other = ContinuationArguments(data="rows.jsonl", output_dir=str(tmp_path), model="m", max_new_tokens=32)
    with pytest.raises(ValueError, match=r"max_new_tokens: 64 -> 32.*--overwrite"):
        check_or_write_settings(tmp_path, run_settings(other, 3), texts, overwrite=False)
    edited = [texts[0], "something else", texts[2]]
    with pytest.raises(ValueError, match=r"row 1: written for .* the input has 'something else'"):
        check_or_write_settings(tmp_path, run_settings(args, 3), edited, overwrite=False)
    check_or_write_settings(tmp_path, run_settings(args, 3), edited, overwrite=True)
    assert not list((tmp_path / "shards").iterdir())


def test_generate_continuations_reports_missing_column(tiny_folder, tmp_path):
    data = write_asr_data(tmp_path, 2)
    args = ContinuationArguments(
        data=str(data), output_dir=str(tmp_path / "o"), model=str(tiny_folder), text_column="x"
    )
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['x'\].*--\*_column options"):
        generate_continuations(args)


# ---------------------------------------------------------------------------------------------- prompts
def test_speech_prompt_is_the_text_prompt_with_audio_in_place_of_the_transcript():
    _, processor = tiny_voxlm()
    for template in ("chat", "blsp", "plain"):
        prompts = PromptFormat(template=template)
        text = prompts.text_prompt(processor.tokenizer, "hello world")
        speech = prompts.speech_prompt(processor.tokenizer, "<|audio|>")
        assert speech == text.replace(" hello world", "<|audio|>")
    blsp = PromptFormat(template="blsp").text_prompt(processor.tokenizer, "hi")
    assert blsp == "###[Human]:" + BLSP_INSTRUCTION.replace("{transcript}", "hi") + "\n\n\n###[Assistant]:"
    assert PromptFormat("Summarise:").instruction == "Summarise: {transcript}"
    follow = PromptFormat(EVAL_INSTRUCTIONS["follow"], "plain")  # the speech alone is the request
    assert follow.text_prompt(processor.tokenizer, "name a color") == "name a color"
    assert follow.speech_prompt(processor.tokenizer, "<|audio|>") == "<|audio|>"
    follow_chat = PromptFormat(EVAL_INSTRUCTIONS["follow"], "chat")
    text = follow_chat.text_prompt(processor.tokenizer, "name a color")
    assert follow_chat.speech_prompt(processor.tokenizer, "<|audio|>") == text.replace("name a color", "<|audio|>")
    processor.tokenizer.chat_template = None
    with pytest.raises(ValueError, match="no chat template.*--template blsp"):
        PromptFormat().text_prompt(processor.tokenizer, "hi")


def test_config_file_supplies_options_and_the_command_line_wins(tmp_path):
    config = tmp_path / "align.yaml"
    config.write_text(yaml.safe_dump({"data": "d", "model": "m", "output_dir": "o", "max_new_tokens": 12}))
    (args,) = align.parse_command_args("continuations", ["--config", str(config), "--max_new_tokens", "20"])
    assert (args.data, args.model, args.output_dir, args.max_new_tokens) == ("d", "m", "o", 20)
    config.write_text(yaml.safe_dump({"data": "d", "bogus": 1}))
    with pytest.raises(
        SystemExit, match=r"unknown key\(s\) \['bogus'\]; see `python -m voxlm.train.align continuations --help`"
    ):
        align.parse_command_args("continuations", ["--config", str(config)])


# --------------------------------------------------------------------------------------------- training
def continuation_table(folder: Path, count: int) -> Path:
    (folder / "wav").mkdir(parents=True, exist_ok=True)
    texts = sentences(2 * count, seed=1)
    paths = []
    for index in range(count):
        paths.append(str(folder / "wav" / f"{index}.wav"))
        soundfile.write(paths[-1], tone(0.4 + 0.1 * (index % 4), seed=index), 16000)
    table = datasets.Dataset.from_dict({"audio": paths, "transcript": texts[:count], "continuation": texts[count:]})
    table.save_to_disk(str(folder / "dataset"))
    return folder


@pytest.mark.parametrize("objective", ["blsp", "kd"])
def test_training_changes_only_the_adapter(tiny_folder, tmp_path, objective):
    from safetensors.torch import load_file

    data = continuation_table(tmp_path / "data", 8)
    start = shutil.copytree(tiny_folder, tmp_path / "warmed-up")
    RunInfo(recipe="ctc warm-up", stages=[{"name": "warm-up", "steps": 5}], training={"seconds": 60}).save(start)
    output = tmp_path / "trained"
    align.main(
        ["train", "--data", str(data), "--model", str(start), "--output_dir", str(output),
         "--objective", objective, "--max_steps", "3", "--per_device_train_batch_size", "4",
         "--learning_rate", "1e-2", "--warmup_steps", "0", "--save_strategy", "no", "--disable_tqdm", "true"]
    )  # fmt: skip
    before = load_file(tiny_folder / "model.safetensors")
    after = load_file(output / "model.safetensors")
    assert before.keys() == after.keys()
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    adapter = {name for name in before if name.startswith("projector.")}
    assert changed and changed <= adapter
    assert len(changed) >= len(adapter) // 2
    settings = json.loads((output / "align_settings.json").read_text())
    assert settings["objective"] == objective and settings["prompt_format"]["instruction"] == BLSP_INSTRUCTION
    info = RunInfo.load(output)  # the starting checkpoint's record, plus this stage
    recipe = {"blsp": "blsp", "kd": "blsp-kd"}[objective]
    assert info.recipe == f"ctc warm-up + {recipe}" and [s["name"] for s in info.stages] == ["warm-up", recipe]
    assert info.stages[-1]["steps"] == 3 and info.training["seconds"] >= 60
    assert info.stages[-1]["trainable_parameters"] == sum(after[name].numel() for name in adapter)


def test_budgeted_batches_keep_padded_seconds_within_the_budget_only_when_asked(tiny_folder, tmp_path):
    from voxlm.train.align.training import (
        AlignTrainArguments,
        AlignTrainingArguments,
        batch_sampler,
        build_model,
        prompt_format_for,
        training_examples,
    )

    data = continuation_table(tmp_path / "data", 8)  # clips of 0.4 to 0.7 s
    args = AlignTrainArguments(data=str(data), model=str(tiny_folder), max_seconds=1.5, max_batch_size=3)
    model, processor = build_model(args)
    examples = training_examples(args, prompt_format_for(args))
    assert examples.seconds.tolist() == pytest.approx([0.4, 0.5, 0.6, 0.7] * 2)
    sampler = batch_sampler(args, examples, processor, model, seed=0)
    batches = list(sampler)
    assert sorted(i for batch in batches for i in batch) == list(range(8))
    assert all(len(batch) * examples.seconds[batch].max() <= 1.5 and len(batch) <= 3 for batch in batches)
    plain = AlignTrainArguments(data=str(data), model=str(tiny_folder))
    assert batch_sampler(plain, examples, processor, model, seed=0) is None  # the trainer's fixed-size batches
    training_args = AlignTrainingArguments(output_dir=str(tmp_path / "out"), report_to=[])
    trainer = align.AlignTrainer(
        model=model,
        args=training_args,
        train_dataset=examples.table,
        data_collator=SpeechTaskCollator(processor, to_example=examples.example),
        train_batch_sampler=sampler,
    )
    loaded = [batch["input_features_mask"].shape[0] for batch in trainer.get_train_dataloader()]
    assert loaded == [len(batch) for batch in batches]


def test_streamed_examples_are_budgeted_batches_of_every_row_once_per_epoch(tiny_folder, tmp_path):
    from voxlm.train.align.training import (
        AlignTrainArguments,
        AlignTrainingArguments,
        build_model,
        prompt_format_for,
        streamed_batches,
        training_examples,
    )

    data = continuation_table(tmp_path / "data", 8)  # the output folder of `align continuations`, clips of 0.4-0.7 s
    args = AlignTrainArguments(
        data=str(data), model=str(tiny_folder), streaming=True, max_seconds=1.5, max_batch_size=3, sort_window=8
    )
    model, processor = build_model(args)
    examples = training_examples(args, prompt_format_for(args))
    assert isinstance(examples.table, datasets.IterableDataset)
    training_args = AlignTrainingArguments(output_dir=str(tmp_path / "out"), report_to=[], max_steps=4)
    stream = iter(streamed_batches(args, examples, processor, model, training_args))
    epoch = []
    while sum(len(batch) for batch in epoch) < 8:
        epoch.append(next(stream))
    continuations = datasets.load_from_disk(str(data / "dataset"))["continuation"]
    assert sorted(example["target"] for batch in epoch for example in batch) == sorted(continuations)
    for batch in epoch:
        seconds = [len(example["audio"]) / 16000 for example in batch]
        assert len(batch) <= 3 and len(batch) * max(seconds) <= 1.5
        assert all(example["instruction"] == BLSP_INSTRUCTION and example["transcript"] for example in batch)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"max_seconds": 10.0}, r"--streaming reads data that has no length: set --max_steps"),
        (
            {"max_steps": 4},
            r"--streaming groups examples into budgeted batches .* set --max_seconds and/or --max_tokens",
        ),
    ],
    ids=["without max_steps", "without a budget"],
)
def test_streaming_without_max_steps_or_a_budget_is_refused_before_the_model_loads(options, message, tmp_path):
    arguments = ["train", "--data", str(tmp_path / "data"), "--model", str(tmp_path / "no-model"), "--streaming"]
    arguments += ["--output_dir", str(tmp_path / "out"), "--report_to", "none"]
    arguments += [item for key, value in options.items() for item in (f"--{key}", str(value))]
    with pytest.raises(ValueError, match=message):
        align.main(arguments)


def kd_case(embeddings_coincide: bool):
    """A batch whose speech, if `embeddings_coincide`, enters the LLM as exactly the transcript's token embeddings."""
    model, processor = tiny_voxlm("whisper", "llama", adapter="blsp")
    prompts = PromptFormat(template="chat")
    transcript, continuation = "the quick brown fox", "jumps over the lazy dog"
    tokenizer = processor.tokenizer
    teacher = tokenizer(prompts.text_prompt(tokenizer, transcript))["input_ids"]
    student = tokenizer(prompts.speech_prompt(tokenizer, processor.audio_token))["input_ids"]
    prefix = next(i for i, (a, b) in enumerate(zip(teacher, student)) if a != b)
    suffix = next(i for i, (a, b) in enumerate(zip(teacher[::-1], student[::-1])) if a != b)
    transcript_ids = torch.tensor(teacher[prefix : len(teacher) - suffix])

    # A clip long enough for exactly as many audio positions as the transcript has tokens.
    def positions(clip):
        return int(processor.num_audio_positions(processor.extract_features([clip])["input_features_mask"].sum(-1))[0])

    clip = next(tone(s / 100) for s in range(10, 500) if positions(tone(s / 100)) == len(transcript_ids))
    if embeddings_coincide:
        model.get_audio_features = lambda input_features, input_features_mask: model.get_input_embeddings()(
            transcript_ids
        )
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"kd_case_{os.getpid()}.wav"
    soundfile.write(path, clip, 16000)
    examples = ContinuationExamples(table=None, instruction=prompts.instruction)
    collator = SpeechTaskCollator(processor, with_teacher=True, to_example=examples.example)
    batch = collator([{"audio": str(path), "transcript": transcript, "continuation": continuation}])
    speech_ids = batch["input_ids"][0].clone()
    expected = batch["teacher_input_ids"][0].clone()
    expected[prefix : prefix + len(transcript_ids)] = processor.audio_token_id
    assert torch.equal(speech_ids, expected)  # the two prompts differ exactly where speech replaces the transcript
    return model, batch


def test_kd_loss_is_zero_when_speech_and_text_embeddings_coincide():
    model, batch = kd_case(embeddings_coincide=True)
    loss, _ = kd_loss(model, batch, temperature=2.0)
    assert abs(loss.item()) < 1e-7


def test_kd_loss_is_positive_otherwise():
    model, batch = kd_case(embeddings_coincide=False)
    loss, _ = kd_loss(model, batch, temperature=2.0)
    # The random tiny LLM's next-token distributions barely depend on the input, so the gap is small, but it is
    # far above the rounding noise of the coinciding case.
    assert loss.item() > 1e-6
    loss.backward()
    assert model.projector.conv_blocks[0].conv.weight.grad.abs().sum() > 0


def test_distillation_loss_matches_the_kl_formula():
    torch.manual_seed(0)
    student, teacher = torch.randn(2, 6, 11), torch.randn(2, 7, 11)
    student_labels = torch.tensor([[-100, -100, -100, 4, 5, 6], [-100, -100, 1, 2, 3, -100]])
    teacher_labels = torch.tensor([[-100, -100, -100, -100, 4, 5, 6], [-100, -100, -100, 1, 2, 3, -100]])
    temperature = 2.0
    s = (student[0, 2:5], student[1, 1:4])  # positions that predict the labelled tokens
    t = (teacher[0, 3:6], teacher[1, 2:5])
    reference = 0.0
    for s_rows, t_rows in zip(s, t):
        p = torch.softmax(t_rows / temperature, -1)
        reference += (p * (p.log() - torch.log_softmax(s_rows / temperature, -1))).sum()
    reference = reference * temperature**2 / 6
    student_positions, student_targets = label_positions(student_labels)
    teacher_positions, teacher_targets = label_positions(teacher_labels)
    assert student_positions.tolist() == [1, 2, 3, 4] and teacher_positions.tolist() == [2, 3, 4, 5]
    loss = distillation_loss(
        student[:, student_positions], student_targets, teacher[:, teacher_positions], teacher_targets, temperature
    )
    torch.testing.assert_close(loss, reference)
    with pytest.raises(ValueError, match="differ in length"):
        distillation_loss(student, student_labels, teacher, torch.full_like(teacher_labels, -100))


def test_kd_loss_with_cross_entropy_adds_the_models_own_loss():
    model, batch = kd_case(embeddings_coincide=True)
    model.train()  # training mode: the model's own loss uses the LM head at labelled positions only
    ce = model(**{k: v for k, v in batch.items() if not k.startswith("teacher_")}).loss
    loss, _ = kd_loss(model, batch, temperature=2.0, ce_weight=0.5)
    torch.testing.assert_close(loss, 0.5 * ce)  # the KD part is zero here


# ------------------------------------------------------------------------------------------- evaluation
def test_evaluation_scores_the_responses_it_reports(tiny_folder, tmp_path):
    import sacrebleu
    from tiny import tiny_tokenizer
    from transformers import BertConfig, BertModel

    from voxlm.train.core.metrics import word_error_rate

    embedder = tmp_path / "embedder"
    tokenizer = tiny_tokenizer()
    BertModel(BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64)).save_pretrained(embedder)  # fmt: skip
    tokenizer.save_pretrained(embedder)
    data = write_asr_data(tmp_path, 4)
    rows = [json.loads(line) for line in data.read_text().splitlines()]
    rows[1]["answer"], rows[1]["aliases"] = "nothing", [rows[1]["text"].split()[-1]]
    data.write_text("".join(json.dumps({"answer": "nothing", "aliases": [], **row}) + "\n" for row in rows))
    output = tmp_path / "alignment.json"
    align.main(
        ["evaluate", "--model", str(tiny_folder), "--data", str(data), "--transcript_column", "text",
         "--tasks", "repeat,answer,follow", "--template", "plain", "--embedding_model", str(embedder),
         "--max_new_tokens", "6", "--examples", "4", "--output_file", str(output)]
    )  # fmt: skip
    results = json.loads(output.read_text())
    assert results["rows"] == 4 and set(results["tasks"]) == {"repeat", "answer", "follow"}
    repeat = results["tasks"]["repeat"]
    transcripts = [example["transcript"] for example in repeat["examples"]]
    speech, text = [[example[name] for example in repeat["examples"]] for name in ("speech", "text")]
    assert repeat["scores"]["speech"]["wer"] == pytest.approx(word_error_rate(transcripts, speech))
    assert repeat["scores"]["text"]["wer"] == pytest.approx(word_error_rate(transcripts, text))
    assert repeat["scores"]["speech"]["bleu"] == pytest.approx(sacrebleu.corpus_bleu(speech, [text]).score)
    assert -1 <= repeat["scores"]["speech"]["cosine"] <= 1
    # The plain prompt "... {transcript}" makes the random LLM repeat the transcript's last word, which is row 1's
    # accepted alias; no row says "nothing".
    answers = [example["text"] for example in results["tasks"]["answer"]["examples"]]
    assert rows[1]["text"].split()[-1] in answers[1].split()
    assert results["tasks"]["answer"]["scores"]["text"]["accuracy"] == pytest.approx(0.25)
    # `follow`: the speech is the whole request, scored by answer accuracy as well
    follow = results["tasks"]["follow"]
    questions = [SpokenQuestion(row["text"], "nothing", "", tuple(row.get("aliases", ()))) for row in rows]
    for name in ("speech", "text"):
        hits = [answer_is_correct(example[name], q) for example, q in zip(follow["examples"], questions)]
        assert follow["scores"][name]["accuracy"] == pytest.approx(sum(hits) / 4)
