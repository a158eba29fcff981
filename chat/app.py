"""The page of `voxlm chat`: a gradio Blocks app around a [`ChatEngine`].

Speech from the microphone or a file, an optional instruction (typed, or one of a few presets), a multi-turn
conversation where audio and text turns mix, answers streamed token by token with their timings, and with a
cascade the Whisper -> LLM answer to the same turn beside it. Everything is served from this machine: no analytics,
no share link, no fonts or scripts from elsewhere.

This file travels to Hugging Face Spaces beside `engine.py` (`voxlm push --space`).
"""

from dataclasses import dataclass, field

import gradio as gr

from .engine import PRESETS, ChatEngine, Conversation, Reply, Settings, cascade_message, user_message

NO_PRESET = "None (type your own)"
KEEP = object()  # leave an output as it is
CSS = """
.voxlm-stats { display: block; margin-top: 0.4em; font-size: 0.8em; opacity: 0.75; }
#chat-status:empty { display: none; }
"""


@dataclass
class Session:
    """What one browser session sees and says: the conversation and the two columns as shown."""

    conversation: Conversation = field(default_factory=Conversation)
    shown: list[dict] = field(default_factory=list)
    shown_cascade: list[dict] = field(default_factory=list)


def _user_bubble(audio_path: str | None, text: str) -> dict:
    content = ([{"path": audio_path}] if audio_path else []) + ([text] if text else [])
    return {"role": "user", "content": content}


def _cascade_bubble(reply: Reply | None, text: str) -> dict:
    heard = f"*Whisper heard:* {reply.transcript}" if reply is not None and reply.transcript is not None else None
    return {"role": "user", "content": [part for part in (heard, text) if part] or ["…"]}


def _answer_bubble(reply: Reply | None) -> dict:
    if reply is None:
        return {"role": "assistant", "content": "…"}
    if reply.timings is None:
        return {"role": "assistant", "content": reply.text or "…"}
    stats = f'<span class="voxlm-stats">{reply.timings.describe()}</span>'
    return {"role": "assistant", "content": [reply.text or "(no text)", stats]}


def _rendered(messages: list[dict]) -> list[dict]:
    """Messages for a Chatbot: clips as players with a download button only (the share button posts to the Hub)."""

    def part(item):
        return gr.Audio(item["path"], buttons=["download"], show_label=False) if isinstance(item, dict) else item

    return [
        {**message, "content": [part(item) for item in message["content"]]}
        if isinstance(message["content"], list)
        else message
        for message in messages
    ]


def _error(message: str, error: Exception) -> str:
    return f"⚠️ **{message}** {error}"


def build_app(engine: ChatEngine, settings: Settings | None = None, title: str | None = None) -> gr.Blocks:
    """The chat page for `engine` (its cascade column appears when the engine has one); `settings` are the initial
    values of the generation panel."""
    settings = settings or Settings()
    cascade = engine.has_cascade
    title = title or f"VoxLM chat · {engine.name}"
    with gr.Blocks(title=title, analytics_enabled=False) as app:
        session = gr.State(Session())
        gr.Markdown(
            f"## {title}\nRecord or upload speech, add an instruction if you like, and send. Audio and text turns mix "
            "in one conversation. Under each answer: the clip's length, the audio positions the language model read, "
            "the time to the first token and the decoding speed."
            + (
                " On the right, the cascade answers the same turn: Whisper transcribes the clip and the same language "
                "model answers the transcript."
                if cascade
                else ""
            )
        )
        with gr.Row():
            # No share button: it would post the conversation to the Hub.
            chat = gr.Chatbot(label="VoxLM (hears the audio)", elem_id="voxlm-chat", height=360, buttons=["copy_all"])
            if cascade:
                cascade_chat = gr.Chatbot(
                    label="Cascade: Whisper → LLM", elem_id="cascade-chat", height=360, buttons=["copy_all"]
                )
        status = gr.Markdown(elem_id="chat-status")
        with gr.Row():
            audio = gr.Audio(
                sources=["upload", "microphone"],
                type="filepath",
                label="Speech",
                elem_id="chat-audio",
                buttons=["download"],
                scale=1,
            )
            with gr.Column(scale=1):
                preset = gr.Radio([*PRESETS, NO_PRESET], label="Instruction preset", elem_id="chat-preset")
                instruction = gr.Textbox(
                    label="Instruction or message (optional with a clip)",
                    placeholder="e.g. Repeat exactly what was said.",
                    elem_id="chat-instruction",
                    lines=2,
                )
                with gr.Row():
                    send = gr.Button("Send", variant="primary", elem_id="chat-send")
                    clear = gr.Button("New conversation", elem_id="chat-clear")
        with gr.Accordion("Generation settings", open=False, elem_id="chat-settings"):
            max_new_tokens = gr.Slider(1, 1024, settings.max_new_tokens, step=1, label="Max new tokens",
                                       elem_id="chat-max-new-tokens")  # fmt: skip
            temperature = gr.Slider(0.0, 2.0, settings.temperature, step=0.05, label="Temperature (0 = greedy)")
            top_p = gr.Slider(0.05, 1.0, settings.top_p, step=0.05, label="Top-p (with temperature > 0)")
            seed = gr.Number(settings.seed, precision=0, label="Seed (sampling)")
            system_prompt = gr.Textbox(settings.system_prompt, label="System prompt (empty: the model's default)")

        preset.change(lambda name: PRESETS.get(name, ""), preset, instruction)
        outputs = [session, chat, *([cascade_chat] if cascade else []), status, audio]

        def show(state: Session, shown: list, shown_cascade: list, message: str, clip_path=KEEP) -> tuple:
            """The outputs in order; the audio input is kept (`KEEP`) or cleared (`None`)."""
            columns = [_rendered(shown)] + ([_rendered(shown_cascade)] if cascade else [])
            return (state, *columns, message, gr.skip() if clip_path is KEEP else clip_path)

        def respond(state: Session, audio_path, text, new_tokens, temp, top, seed_value, system):
            """One turn: VoxLM streams its answer, then the cascade (if any) streams its own."""
            text = (text or "").strip()
            try:
                clip = engine.read_audio(audio_path) if audio_path else None
            except ValueError as error:  # the processor's own message; the unusable clip is cleared
                yield show(state, state.shown, state.shown_cascade, _error("The clip was not used.", error), None)
                return
            try:
                turn = Settings(int(new_tokens), float(temp), float(top), system or "", int(seed_value or 0))
                turn.generate_kwargs()
                user = user_message(clip, text)
            except ValueError as error:
                yield show(state, state.shown, state.shown_cascade, _error("Nothing was sent.", error))
                return
            bubble = _user_bubble(audio_path, text)
            shown, shown_cascade = [*state.shown, bubble, _answer_bubble(None)], list(state.shown_cascade)
            if cascade:
                shown_cascade += [_cascade_bubble(None, text), _answer_bubble(None)]
            yield show(state, shown, shown_cascade, "", None)
            try:
                for reply in engine.stream(state.conversation, user, turn, clip):
                    shown[-1] = _answer_bubble(reply)
                    yield show(state, shown, shown_cascade, "")
                answer, cascade_user, cascade_answer = reply.text, None, None
                if cascade:
                    for reply in engine.stream_cascade(state.conversation, text, turn, clip):
                        shown_cascade[-2:] = [_cascade_bubble(reply, text), _answer_bubble(reply)]
                        yield show(state, shown, shown_cascade, "")
                    cascade_user, cascade_answer = cascade_message(reply.transcript, text), reply.text
            except (ValueError, RuntimeError) as error:
                yield show(state, state.shown, state.shown_cascade, _error("The turn failed.", error))
                return
            state.conversation.add(user, answer, cascade_user, cascade_answer)
            state.shown, state.shown_cascade = shown, shown_cascade
            yield show(state, shown, shown_cascade, "")

        inputs = [session, audio, instruction, max_new_tokens, temperature, top_p, seed, system_prompt]
        send.click(respond, inputs, outputs)
        instruction.submit(respond, inputs, outputs)
        clear.click(lambda: show(Session(), [], [], "", None), None, outputs)
        # A column's own clear button starts a new conversation too, so that what is shown is what the model reads.
        for column in [chat, *([cascade_chat] if cascade else [])]:
            column.clear(lambda: show(Session(), [], [], ""), None, outputs)
    return app


def launch(app: gr.Blocks, host: str | None = "127.0.0.1", port: int | None = None, **kwargs):
    """Serve the page from this machine only: no share link, no server-side rendering through Node, no analytics
    (the Blocks were built with `analytics_enabled=False`). `host=None` takes `GRADIO_SERVER_NAME` (Spaces)."""
    return app.launch(server_name=host, server_port=port, share=False, ssr_mode=False, css=CSS, **kwargs)


__all__ = ["Session", "build_app", "launch"]
