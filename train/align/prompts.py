"""Prompts of the behaviour-alignment recipe: one instruction, given either the transcript or the speech.

BLSP (Wang et al., arXiv 2309.00916) asks the frozen LLM to continue each transcript, then trains the adapter so
that the LLM, given the speech in place of the transcript under the same instruction, writes that continuation.
The text prompt is `"{instruction} {transcript}"`; the speech prompt puts the audio right after the instruction
(no space, as in BLSP). Either is rendered with the LLM's own chat template (one user turn) or with BLSP's
`###[Human]:...\\n\\n\\n###[Assistant]:` template, or left bare.
"""

import re
from dataclasses import asdict, dataclass

TRANSCRIPT = "{transcript}"
BLSP_INSTRUCTION = "Continue the following text in a coherent and engaging style with less than 40 words. {transcript}"
BLSP_TEMPLATE = "###[Human]:{message}\n\n\n###[Assistant]:"
TEMPLATES = ("chat", "blsp", "plain")

# Instructions of the behaviour-alignment evaluation: the model's response to the speech is compared with the
# LLM's response to the transcript. `repeat` asks for the transcript itself, so it is also scored by WER.
EVAL_INSTRUCTIONS = {
    "continue": BLSP_INSTRUCTION,
    "repeat": "Repeat the following text exactly, without adding anything. {transcript}",
    "translate": "Translate the following English text into German. {transcript}",
    "answer": "Answer the following question in one short sentence. {transcript}",
    "sentiment": "Is the sentiment of the following text positive, negative or neutral? Answer with one word. "
    "{transcript}",
    # The speech is the whole user turn: a spoken instruction or question, followed as the LLM follows its text.
    "follow": TRANSCRIPT,
}
TRANSCRIPT_TASKS = ("repeat",)
ANSWER_TASKS = ("answer", "follow")  # scored by answer accuracy on tables of spoken questions


@dataclass
class PromptFormat:
    """An instruction with a `{transcript}` slot and the template that wraps it into one user turn."""

    instruction: str = BLSP_INSTRUCTION
    template: str = "chat"

    def __post_init__(self):
        if self.template not in TEMPLATES:
            raise ValueError(f"Unknown prompt template {self.template!r}; use one of {', '.join(TEMPLATES)}.")
        if TRANSCRIPT not in self.instruction:
            self.instruction = f"{self.instruction.rstrip()} {TRANSCRIPT}"
        if self.instruction.count(TRANSCRIPT) != 1:
            raise ValueError(f"The instruction must contain {TRANSCRIPT} once, got {self.instruction!r}.")

    def text_prompt(self, tokenizer, transcript: str) -> str:
        """The prompt with the transcript in its slot, ready for generation."""
        return self._wrap(tokenizer, self.instruction.replace(TRANSCRIPT, transcript))

    def speech_prompt(self, tokenizer, audio_token: str) -> str:
        """The same prompt with the audio placeholder in place of the transcript (and of the space before it)."""
        return self._wrap(tokenizer, re.sub(r"[ \t]*\{transcript\}", lambda _: audio_token, self.instruction))

    def _wrap(self, tokenizer, message: str) -> str:
        if self.template == "plain":
            return message
        if self.template == "blsp":
            return BLSP_TEMPLATE.replace("{message}", message)
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError(
                "The tokenizer has no chat template; pass --template blsp (BLSP's ###[Human]: format) or plain."
            )
        messages = [{"role": "user", "content": message}]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def to_dict(self) -> dict:
        return asdict(self)
