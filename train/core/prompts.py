"""The one prompt builder of the recipes: an instruction, the speech (or its transcript), one rendered user turn.

An instruction may hold a `{transcript}` slot. The *text prompt* fills the slot with a transcript; the *speech
prompt* puts the audio placeholder there instead, also in place of the space before the slot (as in BLSP, Wang et
al., arXiv 2309.00916), so the two prompts differ exactly where speech replaces text. An instruction without a slot
follows the audio on its own line (the SpeechVerse layout of the curriculum's tasks). [`build_prompt`] and
[`build_text_prompt`] make both prompts of an example for a `VoxLMProcessor`.

The message is rendered as one user turn with a template: `chat` (the chat template of the processor or the
tokenizer, with an optional system prompt, ending where the assistant's answer starts), `blsp` (BLSP's
`###[Human]:...\\n\\n\\n###[Assistant]:`) or `plain` (the bare message, for base and encoder-decoder LMs).
"""

import re
from dataclasses import dataclass

TRANSCRIPT = "{transcript}"
BLSP_INSTRUCTION = "Continue the following text in a coherent and engaging style with less than 40 words. {transcript}"
BLSP_TEMPLATE = "###[Human]:{message}\n\n\n###[Assistant]:"
TEMPLATES = ("chat", "plain", "blsp")


@dataclass
class PromptFormat:
    """An instruction with one `{transcript}` slot (appended after a space if missing) and the template that wraps
    it into one user turn; `system_prompt` opens `chat` prompts."""

    instruction: str = BLSP_INSTRUCTION
    template: str = "chat"
    system_prompt: str | None = None

    def __post_init__(self):
        if self.template not in TEMPLATES:
            raise ValueError(f"Unknown prompt template {self.template!r}; use one of {', '.join(TEMPLATES)}.")
        if TRANSCRIPT not in self.instruction:
            self.instruction = f"{self.instruction.rstrip()} {TRANSCRIPT}"
        if self.instruction.count(TRANSCRIPT) != 1:
            raise ValueError(f"The instruction must contain {TRANSCRIPT} once, got {self.instruction!r}.")

    def text_prompt(self, tokenizer, transcript: str, chat_template: str | None = None) -> str:
        """The prompt with the transcript in its slot, ready for generation."""
        return self.render(tokenizer, self.instruction.replace(TRANSCRIPT, transcript), chat_template)

    def speech_prompt(self, tokenizer, audio_token: str, chat_template: str | None = None) -> str:
        """The same prompt with the audio placeholder in place of the transcript (and of the space before it)."""
        message = re.sub(r"[ \t]*\{transcript\}", lambda _: audio_token, self.instruction)
        return self.render(tokenizer, message, chat_template)

    def render(self, tokenizer, message: str, chat_template: str | None = None) -> str:
        """`message` as one user turn in the template; `chat` uses `chat_template`, else the tokenizer's own."""
        if self.template == "plain":
            return message
        if self.template == "blsp":
            return BLSP_TEMPLATE.replace("{message}", message)
        if not chat_template and not getattr(tokenizer, "chat_template", None):
            raise ValueError(
                "The tokenizer has no chat template; use the `plain` template for a base language model "
                "(curriculum YAML: `prompt_format: plain`; align: `--template plain`, or `--template blsp` for "
                "BLSP's ###[Human]: format)."
            )
        messages = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        messages.append({"role": "user", "content": message})
        return tokenizer.apply_chat_template(
            messages, chat_template=chat_template, add_generation_prompt=True, tokenize=False
        )

    def to_dict(self) -> dict:
        settings = {"instruction": self.instruction, "template": self.template}
        return {**settings, "system_prompt": self.system_prompt} if self.system_prompt else settings


def build_prompt(processor, instruction: str, prompt_format: str = "chat", system_prompt: str | None = None) -> str:
    """The speech prompt of one example for a `VoxLMProcessor` (its chat template, else its tokenizer's, renders
    `chat`).

    An instruction with a `{transcript}` slot gets the audio placeholder there (BLSP). Any other instruction follows
    the audio on its own line (SpeechVerse); with `plain`, that prompt ends with a newline, where the answer starts.
    """
    if TRANSCRIPT not in instruction:
        instruction = f"{TRANSCRIPT}\n{instruction}" + ("\n" if prompt_format == "plain" else "")
    prompts = PromptFormat(instruction, prompt_format, system_prompt)
    return prompts.speech_prompt(processor.tokenizer, processor.audio_token, processor.chat_template)


def build_text_prompt(
    processor, instruction: str, transcript: str, prompt_format: str = "chat", system_prompt: str | None = None
) -> str:
    """The prompt `build_prompt` makes of an instruction with a `{transcript}` slot, with the transcript in the slot
    instead of the audio (what a teacher LLM reads)."""
    prompts = PromptFormat(instruction, prompt_format, system_prompt)
    return prompts.text_prompt(processor.tokenizer, transcript, processor.chat_template)


__all__ = [
    "BLSP_INSTRUCTION",
    "BLSP_TEMPLATE",
    "TEMPLATES",
    "TRANSCRIPT",
    "PromptFormat",
    "build_prompt",
    "build_text_prompt",
]
