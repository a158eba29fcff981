"""Instructions of the behaviour-alignment recipe; prompts are built by `voxlm.train.core.prompts.PromptFormat`.

BLSP (Wang et al., arXiv 2309.00916) asks the frozen LLM to continue each transcript (`BLSP_INSTRUCTION`), then
trains the adapter so that the LLM, given the speech in place of the transcript under the same instruction, writes
that continuation. The evaluation asks several instructions (`EVAL_INSTRUCTIONS`) of the speech and of the transcript.
"""

from voxlm.train.core.prompts import BLSP_INSTRUCTION, TRANSCRIPT

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

__all__ = ["ANSWER_TASKS", "EVAL_INSTRUCTIONS", "TRANSCRIPT_TASKS"]
