"""Behaviour-alignment evaluation: does the model respond to speech as its LLM responds to the transcript?

For every held-out clip and every instruction (continue, repeat, translate, answer, sentiment) three responses are
generated greedily: the VoxLM model's given the speech, the LLM's given the transcript (the reference behaviour),
and optionally a cascade's (Whisper transcript -> the same LLM). Speech and cascade responses are scored against the
reference with BLEU and chrF (sacrebleu) and the cosine of sentence embeddings (all-MiniLM-L6-v2, mean pooled).
Instructions that ask for the transcript (`repeat`) are also scored by WER against the true transcript, and rows
with an `answer` column give spoken-question accuracy (the answer appears in the response).
"""

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers.utils import logging

from voxlm.train.core.audio import SAMPLING_RATE
from voxlm.train.core.metrics import compute_metric, word_error_rate
from voxlm.train.core.models import load_voxlm
from voxlm.train.core.prompts import PromptFormat
from voxlm.train.core.tables import render_table
from voxlm.train.offline.sentences import SpokenQuestion, answer_is_correct

from .continuations import generate_batch, greedy_config
from .data import check_table_columns, data_root, load_table, read_row_audio
from .prompts import ANSWER_TASKS, EVAL_INSTRUCTIONS, TRANSCRIPT_TASKS

logger = logging.get_logger(__name__)


@dataclass
class AlignEvalArguments:
    model: str = field(metadata={"help": "The VoxLM folder to evaluate."})
    data: str = field(metadata={"help": "Held-out speech: a table with audio and transcript (and optional answer)."})
    output_file: str | None = field(default=None, metadata={"help": "Write the results as JSON here."})
    tasks: str = field(
        default="continue,repeat,translate,answer,sentiment",
        metadata={"help": f"Comma-separated instructions among {', '.join(EVAL_INSTRUCTIONS)}."},
    )
    template: Literal["chat", "blsp", "plain"] | None = field(
        default=None, metadata={"help": "Prompt template; default: the one the model was trained with."}
    )
    cascade_asr_model: str | None = field(
        default=None, metadata={"help": "A Whisper model (folder or Hub id) for the cascade baseline ASR -> LLM."}
    )
    embedding_model: str | None = field(
        default=None, metadata={"help": "Sentence embedding model; default: the offline all-MiniLM-L6-v2."}
    )
    split: str = field(default="train", metadata={"help": "Split of a DatasetDict or Hub data set."})
    audio_column: str = field(default="audio", metadata={"help": "Column of audio references."})
    transcript_column: str = field(default="transcript", metadata={"help": "Column of transcripts."})
    answer_column: str = field(
        default="answer", metadata={"help": "Column of expected answers (optional; aliases from an `aliases` column)."}
    )
    max_new_tokens: int = field(default=64, metadata={"help": "Response length in tokens."})
    batch_size: int = field(default=8, metadata={"help": "Clips per generate call."})
    limit: int | None = field(default=None, metadata={"help": "Use only the first N rows."})
    examples: int = field(default=2, metadata={"help": "Responses per task to print and keep in the results."})


# ------------------------------------------------------------------------------------------------ helpers
def default_embedding_model() -> str:
    """all-MiniLM-L6-v2 from the offline stack when installed, else its Hub id."""
    from voxlm.train.offline.assets import MissingAssetError, minilm_dir

    try:
        return str(minilm_dir())
    except MissingAssetError:
        return "sentence-transformers/all-MiniLM-L6-v2"


class SentenceEmbedder:
    """Mean-pooled, L2-normalised sentence embeddings (the all-MiniLM-L6-v2 recipe)."""

    def __init__(self, name_or_path: str):
        from transformers import AutoModel, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(name_or_path)
        self.model = AutoModel.from_pretrained(name_or_path).eval()

    @torch.inference_mode()
    def __call__(self, texts: list[str]) -> torch.Tensor:
        inputs = self.tokenizer(texts, padding=True, truncation=True, max_length=256, return_tensors="pt")
        hidden = self.model(**inputs).last_hidden_state  # (N, L, d)
        mask = inputs["attention_mask"][..., None].to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
        return torch.nn.functional.normalize(pooled, dim=-1)

    def cosine(self, predictions: list[str], references: list[str]) -> float:
        return float((self(predictions) * self(references)).sum(-1).mean())


def answer_accuracy(responses: list[str], questions: list[SpokenQuestion]) -> float:
    """Share of responses that contain the expected answer (or an alias) as whole words, Whisper-normalised."""
    hits = [answer_is_correct(response, question) for response, question in zip(responses, questions)]
    return float(np.mean(hits)) if hits else float("nan")


def spoken_questions_of(table, args: "AlignEvalArguments") -> list[SpokenQuestion] | None:
    """The rows as spoken questions when the table has an answer column (aliases from an `aliases` column)."""
    if args.answer_column not in table.column_names:
        return None
    aliases = table["aliases"] if "aliases" in table.column_names else [()] * len(table)
    return [
        SpokenQuestion(question, answer, "", tuple(alias or ()))
        for question, answer, alias in zip(table[args.transcript_column], table[args.answer_column], aliases)
    ]


def speech_responses(model, processor, prompt: str, clips: list[np.ndarray], generation_config, batch_size: int):
    """Greedy responses of the VoxLM model to `prompt` (one audio placeholder) for every clip."""
    responses = []
    for start in range(0, len(clips), batch_size):
        batch = clips[start : start + batch_size]
        inputs = processor(text=[prompt] * len(batch), audio=batch, sampling_rate=SAMPLING_RATE).to(model.device)
        with torch.inference_mode():
            output = model.generate(**inputs, generation_config=generation_config)
        new_tokens = output[:, inputs["input_ids"].shape[1] :]
        responses += [text.strip() for text in processor.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]
    return responses


def text_responses(model, tokenizer, prompts: list[str], generation_config, batch_size: int) -> list[str]:
    responses = []
    for start in range(0, len(prompts), batch_size):
        responses += generate_batch(model, tokenizer, prompts[start : start + batch_size], generation_config)
    return responses


def cascade_transcripts(asr_model: str, clips: list[np.ndarray], batch_size: int) -> list[str]:
    """The cascade's first stage: transcripts by a Whisper model (a folder or Hub id)."""
    from transformers import AutoProcessor, WhisperForConditionalGeneration

    from voxlm.train.offline.speech import transcribe

    model = WhisperForConditionalGeneration.from_pretrained(asr_model).eval()
    processor = AutoProcessor.from_pretrained(asr_model)
    return transcribe(clips, batch_size=batch_size, model=model, processor=processor, progress=True)


def prompt_template(args: AlignEvalArguments) -> str:
    if args.template:
        return args.template
    settings = Path(args.model) / "align_settings.json"
    if settings.is_file():
        return json.loads(settings.read_text())["prompt_format"]["template"]
    return "chat"


def similarity(predictions: list[str], references: list[str], embedder: SentenceEmbedder) -> dict[str, float]:
    bleu = compute_metric("bleu", predictions, references)
    return {"bleu": bleu["bleu"], "chrf": bleu["chrf"], "cosine": embedder.cosine(predictions, references)}


# --------------------------------------------------------------------------------------------- evaluation
def evaluate_alignment(args: AlignEvalArguments) -> dict:
    """Score behaviour alignment (and the cascade, if asked) and return the results (also written as JSON)."""
    tasks = [task.strip() for task in args.tasks.split(",") if task.strip()]
    unknown = [task for task in tasks if task not in EVAL_INSTRUCTIONS]
    if unknown:
        raise ValueError(f"Unknown task(s) {unknown}; choose among {', '.join(EVAL_INSTRUCTIONS)}.")
    table = load_table(args.data, args.split, args.limit)
    check_table_columns(table, [args.audio_column, args.transcript_column], args.data)
    transcripts = list(table[args.transcript_column])
    answers = spoken_questions_of(table, args)
    model, processor = load_voxlm(args.model)
    model.eval()
    root = data_root(args.data)
    clips = [read_row_audio(row, args.audio_column, root) for row in table]
    generation_config = greedy_config(model.language_model, processor.tokenizer, args.max_new_tokens)
    embedder = SentenceEmbedder(args.embedding_model or default_embedding_model())
    results = {"model": args.model, "data": args.data, "rows": len(transcripts), "tasks": {}}
    asr = None
    if args.cascade_asr_model:
        asr = cascade_transcripts(args.cascade_asr_model, clips, args.batch_size)
        results["cascade_asr_wer"] = word_error_rate(transcripts, asr)
    template = prompt_template(args)
    for task in tqdm(tasks, desc="alignment tasks", unit="task"):
        results["tasks"][task] = evaluate_task(
            task, template, model, processor, clips, transcripts, answers, asr, generation_config, embedder, args
        )
    print_results(results)
    if args.output_file:
        Path(args.output_file).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output_file).write_text(json.dumps(results, indent=2, ensure_ascii=False))
        logger.info(f"Wrote {args.output_file}.")
    return results


def evaluate_task(
    task, template, model, processor, clips, transcripts, answers, asr, generation_config, embedder, args
):
    prompt_format = PromptFormat(EVAL_INSTRUCTIONS[task], template)
    tokenizer = processor.tokenizer
    reference = text_responses(
        model.language_model,
        tokenizer,
        [prompt_format.text_prompt(tokenizer, text) for text in transcripts],
        generation_config,
        args.batch_size,
    )
    speech_prompt = prompt_format.speech_prompt(tokenizer, processor.audio_token)
    systems = {"speech": speech_responses(model, processor, speech_prompt, clips, generation_config, args.batch_size)}
    if asr is not None:
        systems["cascade"] = text_responses(
            model.language_model,
            tokenizer,
            [prompt_format.text_prompt(tokenizer, text) for text in asr],
            generation_config,
            args.batch_size,
        )
    scores = {name: similarity(responses, reference, embedder) for name, responses in systems.items()}
    if task in TRANSCRIPT_TASKS:
        for name, responses in {**systems, "text": reference}.items():
            scores.setdefault(name, {})["wer"] = word_error_rate(transcripts, responses)
    if task in ANSWER_TASKS and answers is not None:
        for name, responses in {**systems, "text": reference}.items():
            scores.setdefault(name, {})["accuracy"] = answer_accuracy(responses, answers)
    examples = [
        {"transcript": transcripts[i], "text": reference[i], **{name: out[i] for name, out in systems.items()}}
        for i in range(min(args.examples, len(transcripts)))
    ]
    return {"instruction": prompt_format.instruction, "scores": scores, "examples": examples}


def print_results(results: dict) -> None:
    """The scores as a table (one row per instruction and system), then the kept example responses."""
    lines = [f"behaviour alignment of {results['model']} on {results['rows']} clips (reference: LLM given transcript)"]
    if "cascade_asr_wer" in results:
        lines.append(f"cascade ASR WER: {results['cascade_asr_wer']:.3f}")
    formats = {"bleu": ".1f", "chrf": ".1f", "cosine": ".3f", "wer": ".3f", "accuracy": ".3f"}
    rows = [
        [task, name, *[format(score[key], spec) if key in score else None for key, spec in formats.items()]]
        for task, result in results["tasks"].items()
        for name, score in result["scores"].items()
    ]
    lines.append(render_table(["task", "system", "BLEU", "chrF", "cosine", "WER", "acc"], rows))
    for task, result in results["tasks"].items():
        for example in result["examples"]:
            lines.append(f"{task}: transcript {example['transcript']!r}")
            lines += [f"    {name:>7}: {example[name]!r}" for name in ("text", "speech", "cascade") if name in example]
    print("\n".join(lines))
