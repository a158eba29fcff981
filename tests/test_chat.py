"""`voxlm chat` without a browser: the engine's streaming, timings, errors and sessions, the Space, the command."""

import ast
import os
import subprocess
import sys
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import soundfile
import torch
from hub_helpers import distinct_tiny_voxlm, example_run_info, write_run
from tiny import tone

from voxlm.chat.engine import ChatEngine, Conversation, Settings, _timings, load_model, user_message

SR = 16000


@pytest.fixture(scope="module")
def engine():
    model, processor = distinct_tiny_voxlm(lora=False)
    return ChatEngine(model, processor, name="tiny")


def reference_answer(engine: ChatEngine, messages: list[dict], max_new_tokens: int) -> tuple[str, int]:
    """Greedy answer and its number of new tokens, straight from `generate`."""
    inputs = engine.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, sampling_rate=SR)
    output = engine.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    new = output[0, inputs["input_ids"].shape[1] :]
    return engine.processor.tokenizer.decode(new, skip_special_tokens=True).strip(), len(new)


def run(stream) -> list:
    return list(stream)


# --------------------------------------------------------------------------------------------- streaming
def test_stream_grows_token_by_token_to_the_greedy_answer(engine):
    clip = tone(1.2)
    user = user_message(clip, "transcribe the audio")
    replies = run(engine.stream(Conversation(), user, Settings(max_new_tokens=10), clip))
    expected, new_tokens = reference_answer(engine, [user], 10)
    assert new_tokens == 10 and replies[-1].text == expected
    partial = [reply.text for reply in replies[:-1]]
    assert len(partial) >= 3  # streamed in pieces, not at the end
    assert all(later.startswith(earlier) for earlier, later in zip(partial, partial[1:]))
    assert all(reply.timings is None for reply in replies[:-1])


def test_timings_count_the_tokens_and_the_clip(engine):
    clip = tone(2.5)
    replies = run(engine.stream(Conversation(), user_message(clip, "what is said"), Settings(max_new_tokens=6), clip))
    timings = replies[-1].timings
    _, new_tokens = reference_answer(engine, [user_message(clip, "what is said")], 6)
    assert timings.tokens == new_tokens == 6
    assert timings.clip_seconds == pytest.approx(2.5)
    lone = engine.processor(text=engine.processor.audio_token, audio=clip, sampling_rate=SR)
    assert timings.audio_positions == int((lone["input_ids"] == engine.processor.audio_token_id).sum())
    assert timings.audio_positions == engine.audio_positions(clip)
    assert 0 < timings.first_token_seconds <= timings.seconds and timings.tokens_per_second > 0
    described = timings.describe()
    assert "clip 2.5 s" in described and f"{timings.audio_positions} audio positions" in described


def test_timings_arithmetic():
    timings = _timings([1.0, 1.5, 2.0, 3.0], started=0.25, clip_seconds=1.0)
    assert timings.first_token_seconds == pytest.approx(0.75)
    assert timings.tokens == 4 and timings.tokens_per_second == pytest.approx(1.5)  # 3 tokens in 2 s after the first
    assert timings.seconds == pytest.approx(2.75)
    assert _timings([2.0], started=1.5).tokens_per_second == pytest.approx(2.0)  # one token: over its own wait


def test_sampling_follows_the_seed(engine):
    clip = tone(1.0)
    user = user_message(clip, "transcribe")

    def answer(seed: int) -> str:
        settings = Settings(max_new_tokens=12, temperature=1.5, top_p=0.95, seed=seed)
        return run(engine.stream(Conversation(), user, settings, clip))[-1].text

    assert answer(1) == answer(1)
    assert len({answer(seed) for seed in range(4)}) > 1


def test_system_prompt_reaches_the_template(engine):
    user = user_message(None, "hello world")
    with mock.patch.object(engine.model, "generate", wraps=engine.model.generate) as generate:
        run(engine.stream(Conversation(), user, Settings(max_new_tokens=2, system_prompt="be brief")))
    ids = generate.call_args.kwargs["input_ids"][0]
    text = engine.processor.tokenizer.decode(ids)
    assert text.startswith("<|im_start|>system\nbe brief<|im_end|>")


# -------------------------------------------------------------------------------- conversations, sessions
def test_multi_turn_with_audio_in_two_turns(engine):
    first, second = tone(1.0), tone(2.0, frequency=330, seed=1)
    conversation = Conversation()
    user = user_message(first, "transcribe")
    answer = run(engine.stream(conversation, user, Settings(max_new_tokens=5), first))[-1].text
    conversation.add(user, answer)
    follow_up = user_message(second, "what is said")
    replies = run(engine.stream(conversation, follow_up, Settings(max_new_tokens=5), second))
    expected, _ = reference_answer(engine, [user, {"role": "assistant", "content": answer}, follow_up], 5)
    assert replies[-1].text == expected
    assert replies[-1].timings.audio_positions == engine.audio_positions(second)  # this turn's clip, not the first
    # A text-only turn after audio turns keeps both clips in the prompt.
    conversation.add(follow_up, replies[-1].text)
    text_turn = user_message(None, "hello world")
    with mock.patch.object(engine.model, "generate", wraps=engine.model.generate) as generate:
        replies = run(engine.stream(conversation, text_turn, Settings(max_new_tokens=3)))
    positions = int((generate.call_args.kwargs["input_ids"] == engine.processor.audio_token_id).sum())
    assert positions == engine.audio_positions(first) + engine.audio_positions(second)
    assert replies[-1].timings.clip_seconds is None and "clip" not in replies[-1].timings.describe()


def test_sessions_keep_separate_conversations(engine):
    clip_a, clip_b = tone(1.0), tone(1.5, frequency=500, seed=2)
    alone = run(engine.stream(Conversation(), user_message(clip_b, "transcribe"), Settings(max_new_tokens=6)))
    session_a, session_b = Conversation(), Conversation()
    user_a = user_message(clip_a, "transcribe")
    session_a.add(user_a, run(engine.stream(session_a, user_a, Settings(max_new_tokens=6)))[-1].text)
    answer_b = run(engine.stream(session_b, user_message(clip_b, "transcribe"), Settings(max_new_tokens=6)))[-1].text
    assert answer_b == alone[-1].text
    assert session_b.messages == [] and len(session_a.messages) == 2
    copied = session_a.copy()
    copied.add(user_message(None, "more"), "text")
    assert len(session_a.messages) == 2  # a copy is a separate session


def test_a_clip_longer_than_the_encoder_window_is_read_whole(engine):
    clip = tone(45.0)
    window = engine.audio_positions(clip[: 30 * SR])
    replies = run(engine.stream(Conversation(), user_message(clip, "transcribe"), Settings(max_new_tokens=3), clip))
    positions = replies[-1].timings.audio_positions
    assert positions == engine.audio_positions(clip)
    assert positions > window * 1.4  # the 15 s past the window are read, not cut
    assert replies[-1].timings.clip_seconds == pytest.approx(45.0)


def test_an_abandoned_stream_stops_generating(engine):
    calls = []
    original = engine.model.forward

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    with mock.patch.object(engine.model, "forward", side_effect=counting):
        stream = engine.stream(Conversation(), user_message(tone(1.0), "transcribe"), Settings(max_new_tokens=200))
        next(stream)
        stream.close()  # the page went away
    assert len(calls) < 50


# -------------------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("clip", "message"),
    [
        (np.zeros(0, dtype=np.float32), "is empty"),
        (np.full(SR, np.nan, dtype=np.float32), "NaN"),
        (np.zeros(100, dtype=np.float32), "needs at least 400 samples"),
    ],
)
def test_bad_clips_get_the_processors_message(engine, clip, message):
    with pytest.raises(ValueError, match=message):
        engine.read_audio(clip, SR)


def test_files_of_any_rate_and_channels_are_resampled_and_downmixed(engine, tmp_path):
    stereo = np.stack([tone(1.0, 44100), tone(1.0, 44100, frequency=330)], axis=1)
    for name in ("clip.flac", "clip.ogg", "clip.wav"):
        soundfile.write(tmp_path / name, stereo, 44100)
        clip = engine.read_audio(tmp_path / name)
        assert clip.ndim == 1 and len(clip) == SR
    reference = engine.processor.check_audio(soundfile.read(tmp_path / "clip.wav", dtype="float32")[0], 44100,
                                             resample=True, downmix=True)[0]  # fmt: skip
    assert np.array_equal(engine.read_audio(tmp_path / "clip.wav"), reference)
    (tmp_path / "notes.wav").write_text("not audio")
    with pytest.raises(ValueError, match="Cannot read notes.wav as audio"):
        engine.read_audio(tmp_path / "notes.wav")


def test_empty_turns_and_bad_settings_are_refused(engine):
    with pytest.raises(ValueError, match="Nothing to send"):
        user_message(None, "")
    with pytest.raises(ValueError, match="max new tokens"):
        run(engine.stream(Conversation(), user_message(None, "hi"), Settings(max_new_tokens=0)))
    with pytest.raises(ValueError, match="top-p"):
        Settings(temperature=0.7, top_p=0.0).generate_kwargs()
    assert Settings().generate_kwargs() == {"max_new_tokens": 128, "do_sample": False}  # greedy by default


def test_a_generation_error_reaches_the_reader(engine):
    with mock.patch.object(engine.model, "generate", side_effect=RuntimeError("out of memory")):
        with pytest.raises(RuntimeError, match="out of memory"):
            run(engine.stream(Conversation(), user_message(None, "hi"), Settings(max_new_tokens=2)))


def test_a_conversation_past_the_context_is_refused(engine):
    limit = engine.model.config.text_config.max_position_embeddings
    engine.model.config.text_config.max_position_embeddings = 20
    try:
        with pytest.raises(ValueError, match="reads at most 20; start a new conversation"):
            run(engine.stream(Conversation(), user_message(tone(1.0), "transcribe"), Settings(max_new_tokens=2)))
    finally:
        engine.model.config.text_config.max_position_embeddings = limit


# ---------------------------------------------------------------------------------------- loading, command
@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    model, processor = distinct_tiny_voxlm(lora=False)
    return write_run(tmp_path_factory.mktemp("chat") / "run", model, processor, example_run_info())


def test_load_model_as_a_hub_user_would(run_dir, engine):
    model, processor = load_model(run_dir)
    clip = tone(1.0)
    loaded = ChatEngine(model, processor)
    answer = run(loaded.stream(Conversation(), user_message(clip, "transcribe"), Settings(max_new_tokens=5)))
    assert answer[-1].text == run(engine.stream(Conversation(), user_message(clip, "transcribe"),
                                                Settings(max_new_tokens=5)))[-1].text  # fmt: skip


def test_load_model_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="has no config.json"):
        load_model(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_model(tmp_path / "runs" / "missing")


def test_command_help_and_bad_flags(capsys):
    from voxlm.train.cli import main

    with pytest.raises(SystemExit):
        main(["chat", "--help"])
    out = capsys.readouterr().out
    assert "--cascade" in out and "--port" in out and "shipped" in out
    assert main(["chat", "--asr-model", "openai/whisper-tiny"]) == 1
    assert "add --cascade" in capsys.readouterr().err


def test_shipped_folder_is_recognised_by_its_adapter(tmp_path):
    from safetensors.torch import save_file

    from voxlm.chat.command import _holds_adapter

    model, processor = distinct_tiny_voxlm(lora=False)
    with torch.no_grad():
        for parameter in model.projector.parameters():
            parameter.copy_(parameter.half().float())  # what an adapter shipped in float16 gives
    model.save_pretrained(tmp_path / "model")
    adapter = {name: t.half() for name, t in model.state_dict().items() if name.startswith("projector.")}
    save_file(adapter, str(tmp_path / "adapter.safetensors"))
    assert _holds_adapter(tmp_path / "model", tmp_path / "adapter.safetensors")
    name = next(iter(adapter))
    save_file({**adapter, name: adapter[name] + 1}, str(tmp_path / "other.safetensors"))
    assert not _holds_adapter(tmp_path / "model", tmp_path / "other.safetensors")
    assert not _holds_adapter(tmp_path / "nothing", tmp_path / "adapter.safetensors")


# ----------------------------------------------------------------------------------------------- the Space
def test_space_runs_the_page_without_voxlm(run_dir, tmp_path):
    from voxlm.chat.space import PACKAGE, write_space

    space = tmp_path / "space"
    files = write_space(space, "voxlm-test/tiny-voxlm", model=str(run_dir), license="apache-2.0")
    assert files == ["README.md", "app.py", "requirements.txt", f"{PACKAGE}/__init__.py", f"{PACKAGE}/app.py",
                     f"{PACKAGE}/engine.py"]  # fmt: skip
    for path in (space / PACKAGE).glob("*.py"):  # the page's code imports only itself and public packages
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0:
                assert not node.module.startswith("voxlm"), (path.name, node.module)
            if isinstance(node, ast.Import):
                assert not any(alias.name.startswith("voxlm") for alias in node.names), path.name
    card = (space / "README.md").read_text()
    assert 'sdk: "gradio"' in card and 'app_file: "app.py"' in card and "voxlm-test/tiny-voxlm" in card
    assert "gradio" not in (space / "requirements.txt").read_text()  # the Space's sdk_version installs it
    # The Space's app builds the page in a process where only the Space folder provides the page's code.
    script = (
        "import sys; sys.modules['voxlm'] = None; import app; "
        "print(type(app.demo).__name__, app.engine.has_cascade, app.demo.analytics_enabled)"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=space, capture_output=True, text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["Blocks", "False", "False"]


def test_push_space_dry_run_and_upload(run_dir, tmp_path, monkeypatch, capsys):
    from huggingface_hub import HfApi

    from voxlm.train.cli import main

    out = tmp_path / "export"
    assert main(["push", str(run_dir), "voxlm-test/tiny-voxlm", "--dry-run", str(out), "--space"]) == 0
    printed = capsys.readouterr().out
    space = Path(f"{out}-space")
    assert "Space voxlm-test/tiny-voxlm-chat" in printed and (space / "app.py").is_file()
    app = (space / "app.py").read_text()
    assert "MODEL = 'voxlm-test/tiny-voxlm'" in app
    assert "ASR_MODEL = 'openai/whisper-tiny'" in app  # run_info names the Whisper encoder: the cascade comes too
    assert not (out / "app.py").exists()  # the model repository stays as it was

    monkeypatch.setenv("HF_TOKEN", "hf_notARealToken")
    api = mock.MagicMock(spec=HfApi)
    api.list_repo_files.return_value = [".gitattributes"]
    api.create_commit.return_value = mock.MagicMock(commit_url="https://huggingface.co/c/1", pr_url=None)
    with mock.patch("huggingface_hub.HfApi", return_value=api):
        assert main(["push", str(run_dir), "voxlm-test/tiny-voxlm", "--space", "voxlm-test/talk"]) == 0
    assert [call.args[0] for call in api.create_commit.call_args_list] == ["voxlm-test/tiny-voxlm", "voxlm-test/talk"]
    api.create_repo.assert_any_call("voxlm-test/talk", repo_type="space", private=False, exist_ok=True,
                                    space_sdk="gradio")  # fmt: skip
    space_files = {op.path_in_repo for op in api.create_commit.call_args_list[1].args[1]}
    assert {"app.py", "requirements.txt", "README.md", "voxlm_chat/engine.py", "voxlm_chat/app.py"} <= space_files
    assert api.create_commit.call_args_list[1].kwargs["repo_type"] == "space"
    assert "Pushed the Space voxlm-test/talk" in capsys.readouterr().out


# ------------------------------------------------------------------------------------- the real cascade
@pytest.mark.real
@pytest.mark.slow
def test_cascade_transcribes_long_clips_whole(engine):
    from voxlm.chat.engine import load_whisper
    from voxlm.train.offline.assets import whisper_tiny_en_dir
    from voxlm.train.offline.speech import synthesize

    texts = ["The frog slept behind the drawer all afternoon.", "Remind me to water the garden on Friday."]
    first = synthesize(texts[0], "en-us")
    silence = np.zeros(31 * SR - len(first), dtype=np.float32)
    clip = np.concatenate([first, silence, synthesize(texts[1], "en-us")])  # the second sentence starts at 31 s
    cascade = ChatEngine(engine.model, engine.processor, *load_whisper(whisper_tiny_en_dir()))
    replies = run(cascade.stream_cascade(Conversation(), "transcribe", Settings(max_new_tokens=4), clip))
    heard = replies[-1].transcript.lower()
    assert "frog" in heard and "garden" in heard and "friday" in heard
    timings = replies[-1].timings
    assert 0 < timings.transcribe_seconds < timings.first_token_seconds and "Whisper" in timings.describe()
