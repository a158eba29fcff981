"""`voxlm demo`: a real speech LLM on a CPU, offline — assemble, reload, listen, compare, fine-tune.

Steps (each is cached in the work folder, so a second run reuses them and an interrupted run continues):

1. the offline base models (Whisper tiny.en, SmolLM2-135M-Instruct, all-MiniLM-L6-v2), converted once;
2. the shipped VoxLM checkpoint (its adapter) assembled with them and saved as a Hub-ready folder with its card, and
   the previous shipped checkpoint beside it;
3. held-out speech nothing was trained on: WordNet's sentences (a held-out text source) and open spoken questions
   in piper's voice (a held-out voice engine), template sentences and questions in held-out espeak-ng voices, and the
   real recordings of the offline stack;
4. evaluation of the shipped model (reloaded with `AutoModel.from_pretrained(folder, trust_remote_code=True)` in a
   fresh process), the previous shipped model, and the cascade Whisper tiny.en transcript -> SmolLM2: repeat-WER and
   the share of answers with no content word of what was said, continuation similarity, spoken-QA accuracy;
5. a few minutes of fine-tuning on freshly synthesised speech through `accelerate launch -m voxlm.train.curriculum`;
6. the fine-tuned model evaluated again.

With `--audio-model/--text-model/--data` the same runs on Hub models and an ASR data set: the adapter is trained
with the shipped recipe instead of loaded (a GPU is advisable), and compared with the cascade.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from voxlm.train.core.prompts import BLSP_INSTRUCTION, TRANSCRIPT

REPEAT = "Repeat exactly what was said."
CONTINUE = BLSP_INSTRUCTION.replace(TRANSCRIPT, "").strip()
ANSWER = "Answer the question you hear in one or two words."
# The same requests with the transcript in the text, for the reference LLM and the cascade.
TEXT_PROMPTS = {
    "repeat": "Repeat the following text exactly, without adding anything. {transcript}",
    "continue": BLSP_INSTRUCTION,
    "answer": "Answer the following question in one or two words. {transcript}",
}
SPEECH_PROMPTS = {"repeat": REPEAT, "continue": CONTINUE, "answer": ANSWER}
MAX_NEW_TOKENS = {"repeat": 48, "continue": 48, "answer": 12}
# The evaluation sets (voxlm.train.offline.shipped_data.build_eval_data): demo name -> data set folder.
SETS = {
    "heldout_engine": "eval_heldout_engine",  # WordNet sentences (held-out source) in piper's voice (held-out engine)
    "real": "eval_real",  # real recordings
    "templates": "eval_templates",  # held-out template sentences in held-out espeak-ng voices
    "open_questions": "eval_open_questions",  # hand-written questions in piper's voice
    "template_questions": "eval_template_questions",  # held-out template questions in held-out espeak-ng voices
}
SHIPPED, PREVIOUS, CASCADE, WHISPER = "VoxLM", "VoxLM previous", "cascade", "Whisper tiny.en transcript"
TEXT_ONLY = "text_only_open"  # the open questions typed, no audio: must get exactly the language model's answers


def say(message: str) -> None:
    print(message, flush=True)


class Workdir:
    """The demo's folder: finished steps and their results in `state.json`, so reruns skip them."""

    def __init__(self, path: Path):
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self.file = path / "state.json"
        self.state = json.loads(self.file.read_text()) if self.file.is_file() else {}

    def done(self, step: str):
        return self.state.get(step)

    def finish(self, step: str, value=True) -> None:
        self.state[step] = value
        tmp = self.file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state, indent=2))
        tmp.replace(self.file)


# ------------------------------------------------------------------------------------------------ data
def build_eval_data(folder: Path, size: int, seed: int = 11, heldout_spec=None) -> None:
    """The evaluation sets of the shipped recipe (`shipped_data.build_eval_data`), `size` rows each; with
    `heldout_spec` (rows of the user's data set) as the `templates` set instead of template sentences."""
    from voxlm.train.offline.shipped_data import build_eval_data as build_sets

    build_sets(folder, seed, size)
    if heldout_spec is not None:
        import shutil

        from voxlm.train.core.data import load_dataset_spec

        shutil.rmtree(folder / SETS["templates"])
        table = load_dataset_spec(heldout_spec).select_columns(["audio", "text"])
        table.save_to_disk(str(folder / SETS["templates"]))


def load_eval_data(folder: Path) -> dict:
    from datasets import load_from_disk

    from voxlm.train.core.audio import read_audio

    data = {}
    for name, subfolder in SETS.items():
        if not (folder / subfolder).is_dir():  # the held-out engine is not installed: its sets are left out
            continue
        table = load_from_disk(str(folder / subfolder))
        rates = table["sampling_rate"] if "sampling_rate" in table.column_names else [None] * len(table)
        data[name] = {
            "audio": [read_audio(row["audio"], source_rate=rate) for row, rate in zip(table, rates)],
            "text": table["text"],
            **({"answer": table["answer"], "aliases": table["aliases"]} if "answer" in table.column_names else {}),
        }
    return data


# Every request of the evaluation: name -> (evaluation set, task).
REQUESTS = {
    "repeat_heldout_engine": ("heldout_engine", "repeat"),
    "repeat_real": ("real", "repeat"),
    "repeat_templates": ("templates", "repeat"),
    "continue_templates": ("templates", "continue"),
    "continue_real": ("real", "continue"),
    "answer_open": ("open_questions", "answer"),
    "answer_templates": ("template_questions", "answer"),
}


def requests_for(data: dict) -> dict:
    """The requests whose evaluation set is present."""
    return {name: (dataset, task) for name, (dataset, task) in REQUESTS.items() if dataset in data}


# --------------------------------------------------------------------------------------------- systems
def speech_system(model_dir: Path, data_dir: Path, out: Path, quantize: str | None = None) -> dict:
    """Responses of a saved VoxLM folder, loaded in a fresh process with `AutoModel(trust_remote_code=True)` (and
    the `--quantize` preset's `from_pretrained` arguments)."""
    if out.is_file():
        say(f"  reusing {out.name}")
    else:
        command = [sys.executable, "-m", "voxlm.train.offline.demo", "worker", str(model_dir), str(data_dir), str(out)]
        command += [quantize] if quantize else []
        subprocess.run(command, check=True, env={**os.environ, "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")})
    return json.loads(out.read_text())


def worker(model_dir: Path, data_dir: Path, out: Path, quantize: str | None = None) -> None:
    """Runs in its own process: load the folder the way a Hub user would, answer every request, write JSON."""
    import torch

    from voxlm.train.core.evaluate import generate_answers
    from voxlm.train.core.inference import load_for_inference

    model, processor = load_for_inference(model_dir, quantize=quantize)
    how = f", --quantize {quantize}" if quantize else ""
    say(f"  loaded {model_dir} with AutoModel (trust_remote_code{how}): {type(model).__module__}")
    data = load_eval_data(data_dir)
    responses = {}
    with torch.inference_mode():
        for name, (dataset, task) in requests_for(data).items():
            examples = [{"audio": clip, "instruction": SPEECH_PROMPTS[task]} for clip in data[dataset]["audio"]]
            responses[name] = generate_answers(
                model, processor, examples, batch_size=12, max_new_tokens=MAX_NEW_TOKENS[task], progress=False
            )
        if "open_questions" in data:
            responses[TEXT_ONLY] = text_only_answers(model, processor.tokenizer, data["open_questions"]["text"])
    out.write_text(json.dumps(responses, indent=2))


def text_only_answers(model, tokenizer, questions: list[str]) -> list[str]:
    """Greedy answers to the questions typed, with no audio. One prompt at a time: padding a batch changes the
    rounding of its sums, and these answers are compared for exact equality with the language model's."""
    answers = []
    for question in questions:
        conversation = [{"role": "user", "content": TEXT_PROMPTS["answer"].format(transcript=question)}]
        inputs = tokenizer.apply_chat_template(conversation, add_generation_prompt=True, return_tensors="pt",
                                               return_dict=True)  # fmt: skip
        output = model.generate(**inputs, max_new_tokens=MAX_NEW_TOKENS["answer"], do_sample=False)
        answers.append(tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True))
    return answers


def text_system(transcripts: dict[str, list[str]], text_model) -> dict:
    """The language model's responses to the text prompts, for the given transcripts of each set."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from voxlm.train.align.continuations import greedy_config
    from voxlm.train.align.evaluate import text_responses

    model = AutoModelForCausalLM.from_pretrained(text_model).eval()
    tokenizer = AutoTokenizer.from_pretrained(text_model)
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    responses = {}
    for name, (dataset, task) in REQUESTS.items():
        if dataset not in transcripts:
            continue
        prompts = [
            tokenizer.apply_chat_template(
                [{"role": "user", "content": TEXT_PROMPTS[task].format(transcript=text)}],
                tokenize=False,
                add_generation_prompt=True,
            )
            for text in transcripts[dataset]
        ]
        responses[name] = text_responses(model, tokenizer, prompts, greedy_config(model, tokenizer, 48), 12)
    return responses


def reference_system(data: dict, text_model) -> dict:
    """The language model on the true transcripts (the reference for continuations), and its answers to the typed
    questions (what a speech model's text-only answers must equal)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    reference = text_system({name: table["text"] for name, table in data.items()}, text_model)
    if "open_questions" in data:
        model = AutoModelForCausalLM.from_pretrained(text_model).eval()
        with torch.inference_mode():
            reference[TEXT_ONLY] = text_only_answers(model, AutoTokenizer.from_pretrained(text_model),
                                                     data["open_questions"]["text"])  # fmt: skip
    return reference


# --------------------------------------------------------------------------------------------- scoring
def _questions(data: dict, dataset: str) -> list:
    from voxlm.train.offline.sentences import SpokenQuestion

    table = data[dataset]
    return [SpokenQuestion(t, a, "", tuple(x)) for t, a, x in zip(table["text"], table["answer"], table["aliases"])]


def score(responses: dict, data: dict, reference: dict | None, embedder) -> dict:
    """Repeat-WER and hallucination rate (answers sharing no content word with the transcript) per set,
    continuation similarity to the LLM's continuation of the true transcript (MiniLM cosine), spoken-QA accuracy.
    Metrics whose responses are missing (a set not built, or a system that does not answer) are left out."""
    from voxlm.train.core.metrics import compute_metric
    from voxlm.train.offline.sentences import answer_is_correct

    scores = {}
    for dataset in ("heldout_engine", "real", "templates"):
        if f"repeat_{dataset}" in responses:
            result = compute_metric("wer", responses[f"repeat_{dataset}"], data[dataset]["text"])
            scores[f"wer_{dataset}"] = result["wer"]
            scores[f"hallucination_{dataset}"] = result["hallucination_rate"]
    if reference is not None and "continue_templates" in responses:
        continuations = responses["continue_templates"] + responses["continue_real"]
        references = reference["continue_templates"] + reference["continue_real"]
        scores["continuation_similarity"] = embedder.cosine(continuations, references)
    if reference is not None and TEXT_ONLY in responses and TEXT_ONLY in reference:
        same = [ours == theirs for ours, theirs in zip(responses[TEXT_ONLY], reference[TEXT_ONLY], strict=True)]
        scores["text_only_identical"] = float(np.mean(same))
    for key, dataset in (("qa_open", "open_questions"), ("qa_templates", "template_questions")):
        if f"answer_{key[3:]}" in responses:
            answers = responses[f"answer_{key[3:]}"]
            scores[key] = float(np.mean([answer_is_correct(r, q) for r, q in zip(answers, _questions(data, dataset))]))
    return scores


def transcript_scores(transcripts: dict, data: dict) -> dict:
    """The cascade's first stage alone: Whisper's WER and hallucination rate on the repeat sets."""
    return score({f"repeat_{name}": transcripts[name] for name in ("heldout_engine", "real", "templates")
                  if name in transcripts}, data, None, None)  # fmt: skip


COLUMNS = (
    ("wer_heldout_engine", "WER held-out engine+text"),
    ("hallucination_heldout_engine", "unrelated"),
    ("wer_real", "WER real speech"),
    ("hallucination_real", "unrelated"),
    ("wer_templates", "WER templates"),
    ("continuation_similarity", "continuation sim."),
    ("qa_open", "open QA"),
    ("qa_templates", "template QA"),
    ("text_only_identical", "text-only = LLM"),
)


# How each score reads on a model card: key -> (task, data set, metric, metric name).
CARD_METRICS = {
    "wer_heldout_engine": ("repeat", "held-out engine (piper), held-out text (WordNet)", "wer", "repeat-WER"),
    "hallucination_heldout_engine": ("repeat", "held-out engine (piper), held-out text (WordNet)",
                                     "hallucination_rate", "answers sharing no content word"),
    "wer_real": ("repeat", "real recordings", "wer", "repeat-WER"),
    "hallucination_real": ("repeat", "real recordings", "hallucination_rate", "answers sharing no content word"),
    "wer_templates": ("repeat", "held-out template sentences, held-out espeak-ng voices", "wer", "repeat-WER"),
    "continuation_similarity": ("continue", "held-out voices and real recordings", "cosine_similarity",
                                "continuation similarity"),
    "qa_open": ("spoken_question", "open spoken questions (piper)", "accuracy", "accuracy"),
    "qa_templates": ("spoken_question", "template questions, held-out espeak-ng voices", "accuracy", "accuracy"),
    "text_only_identical": ("text_generation", "open questions typed, no audio", "exact_match",
                            "answers identical to the language model's"),
}  # fmt: skip


def card_metrics(workdir: Path, system: str = SHIPPED) -> list[dict]:
    """A finished demo's scores of `system` as model-card metrics (`RunInfo.metrics`)."""
    state = Workdir(workdir).done("scores")
    if not state or system not in state:
        raise FileNotFoundError(f"{workdir} holds no finished `voxlm demo` scores of {system!r}; run "
                                f"`voxlm demo --workdir {workdir}` first.")  # fmt: skip
    return [
        {"task": task, "dataset_name": f"voxlm demo: {name}", "metric": metric, "metric_name": title,
         "value": round(state[system][key], 3)}
        for key, (task, name, metric, title) in CARD_METRICS.items() if key in state[system]
    ]  # fmt: skip


def table(rows: dict[str, dict]) -> str:
    from voxlm.train.core.tables import render_table

    header = ["system"] + [title for _, title in COLUMNS]
    body = [[name] + [f"{scores[key]:.3f}" if key in scores else "-" for key, _ in COLUMNS]
            for name, scores in rows.items()]  # fmt: skip
    return render_table(header, body)


def show_examples(data: dict, systems: dict[str, dict], cascade_heard: dict | None, count: int = 4) -> None:
    """What was said, each system's answer, and what the cascade's Whisper heard, side by side."""
    blocks = (
        ("Held-out engine and text source, 'repeat what was said'", "heldout_engine", "repeat_heldout_engine"),
        ("Real recordings, 'repeat what was said'", "real", "repeat_real"),
        ("Open spoken questions (held-out engine)", "open_questions", "answer_open"),
    )
    width = max(len(name) for name in systems) + 1
    for title, dataset, request in blocks:
        if dataset not in data:
            continue
        say(f"\n{title}:")
        for i in range(min(count, len(data[dataset]["text"]))):
            say(f"  {'heard':<{width}}: {data[dataset]['text'][i]}")
            for name, responses in systems.items():
                say(f"  {name:<{width}}: {responses[request][i]}")
            if cascade_heard is not None:
                say(f"  {'(Whisper)':<{width}}: {cascade_heard[dataset][i]}")


# ------------------------------------------------------------------------------------------------ steps
def save_shipped_folder(folder: Path, shipped: Path | None = None) -> None:
    """Assemble a shipped checkpoint (default: the current one) with the base assets and save it as a Hub-ready
    folder with its card."""
    from voxlm.train.offline.shipped import hub_folder

    hub_folder(folder, shipped)


def cascade_transcripts(audio_model, data: dict) -> dict | None:
    """The cascade's first stage: transcripts by the audio model, when it is a Whisper model that can transcribe."""
    from transformers import AutoConfig, AutoProcessor, WhisperForConditionalGeneration

    from voxlm.train.offline.speech import transcribe

    if AutoConfig.from_pretrained(audio_model).model_type != "whisper":
        return None
    model = WhisperForConditionalGeneration.from_pretrained(audio_model).eval()
    processor = AutoProcessor.from_pretrained(audio_model)
    return {name: transcribe(data[name]["audio"], model=model, processor=processor) for name in data}


# Cheap voices for speech the demo synthesises itself (fine-tuning, a recipe run without --data).
DEMO_ENGINE_SHARES = {"espeak-ng": 0.5, "flite": 0.5}


def train_from_scratch(work: Path, audio_model, text_model, spec, steps: float | None, continued: int) -> Path:
    """Train an adapter for the given models with the shipped recipe on the user's ASR data (`spec`): the LLM writes
    continuations of the first `continued` transcripts, synthetic voices speak the question set. Returns the final
    folder."""
    import yaml

    from voxlm.train.core.config import load_yaml
    from voxlm.train.core.data import load_dataset_spec
    from voxlm.train.core.launch import run_accelerate
    from voxlm.train.offline.sentences import spoken_questions
    from voxlm.train.offline.shipped import RECIPE, continuations
    from voxlm.train.offline.shipped_data import speak, weighted_renditions

    data = work / "train-data"
    if not (data / "continue_train" / "state.json").is_file():
        table = load_dataset_spec(spec)
        table = table.select(range(min(continued, len(table)))).select_columns(["audio", "text"])
        written = continuations(table["text"], data / "blsp", text_model)
        table.add_column("continuation", written).save_to_disk(str(data / "continue_train"))
    items = spoken_questions("train")
    renditions = weighted_renditions(len(items), DEMO_ENGINE_SHARES, seed=2)
    speak(data, "qa_train", [q.question for q in items], renditions, {"answer": [q.answer for q in items]})
    build_eval_data(work / "eval-data", 24)
    os.environ.update(VOXLM_DATA=str(work / "eval-data"), VOXLM_RUN=str(work / "train"),
                      VOXLM_WHISPER=str(audio_model), VOXLM_SMOLLM2=str(text_model))  # fmt: skip
    recipe = load_yaml(str(RECIPE))
    user = {"path": spec.path, "split": spec.split, "config": spec.config, "columns": spec.columns}
    recipe["datasets"]["asr_train"] = {**user, "task": "asr"}
    recipe["datasets"]["continue_train"]["path"] = str(data / "continue_train")
    recipe["datasets"]["qa_train"]["path"] = str(data / "qa_train")
    recipe["datasets"].pop("fit")  # the user's rows: no training-fit set
    for stage in recipe["stages"]:
        stage["eval_datasets"] = [name for name in stage.get("eval_datasets", []) if name in recipe["datasets"]]
        if steps is not None:
            stage["max_steps"] = max(1, round(stage["max_steps"] * steps))
    path = work / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    resume = (work / "train").is_dir()
    arguments = ["--config", str(path)] + (["--resume_from_checkpoint"] if resume else [])
    say(f"  accelerate launch -m voxlm.train.curriculum --config {path}{' --resume_from_checkpoint' * resume}")
    if run_accelerate("voxlm.train.curriculum", arguments, 1).returncode != 0:
        raise RuntimeError("training stopped; rerun `voxlm demo` with the same options to continue.")
    return work / "train" / "final"


def fresh_sentences(n: int, seed: int = 0) -> list[str]:
    """Sentences of the training sources that the shipped recipe did not speak (no held-out text among them)."""
    from voxlm.train.offline.shipped_data import ASR_SENTENCES, training_texts

    unused = training_texts(seed)["asr"][ASR_SENTENCES:]
    if len(unused) < n:
        raise ValueError(f"Only {len(unused)} unused training sentences are left; ask for at most that many.")
    return unused[:n]


def finetune(work: Path, steps: int, sentences: int, seed: int) -> Path:
    """A short curriculum stage from the shipped model on freshly synthesised speech (accelerate launch)."""
    import yaml

    from voxlm.train.core.launch import run_accelerate
    from voxlm.train.offline.sentences import spoken_questions
    from voxlm.train.offline.shipped_data import speak, weighted_renditions

    data = work / "finetune-data"
    texts = fresh_sentences(sentences)
    speak(data, "asr", texts, weighted_renditions(len(texts), DEMO_ENGINE_SHARES, seed))
    items = spoken_questions("train")
    renditions = weighted_renditions(len(items), DEMO_ENGINE_SHARES, seed + 1)
    speak(data, "qa", [q.question for q in items], renditions, {"answer": [q.answer for q in items]})
    recipe = {
        "output_dir": str(work / "finetune"),
        "seed": seed,
        "model": {"pretrained": str(work / "model")},
        "prompt_format": "chat",
        "strict_curriculum": False,
        "tasks": {
            "asr": {"prompts": [REPEAT]},
            "spoken_question": {"base": "sqa", "prompts": [ANSWER], "target": "{answer}"},
        },
        "datasets": {
            "asr_fresh": {"path": str(data / "asr"), "task": "asr"},
            "qa_fresh": {"path": str(data / "qa"), "task": "spoken_question"},
        },
        "augment": {"noise": {"p": 0.3}, "reverb": {"p": 0.2}, "gain": {"p": 0.5}},
        "batching": {"max_seconds": 32, "max_batch_size": 12},
        "training": {
            "learning_rate": 1.0e-4,
            "lr_scheduler_type": "constant",
            "logging_steps": 5,
            "save_steps": 10,
            "save_total_limit": 1,
        },  # fmt: skip
        "evaluation": {"before_first_stage": False, "examples": 1},
        "stages": [{"name": "finetune", "datasets": {"asr_fresh": 1.0, "qa_fresh": 0.5}, "max_steps": steps}],
    }
    path = work / "finetune.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    resume = (work / "finetune").is_dir()
    arguments = ["--config", str(path)] + (["--resume_from_checkpoint"] if resume else [])
    say(f"  accelerate launch -m voxlm.train.curriculum --config {path}{' --resume_from_checkpoint' * resume}")
    result = run_accelerate("voxlm.train.curriculum", arguments, 1)
    if result.returncode != 0:
        raise RuntimeError("fine-tuning stopped; rerun `voxlm demo` to continue from its last checkpoint.")
    return work / "finetune" / "final"


def user_data_spec(args):
    """The user's ASR data set (`--data`: a Hub name or a local folder/file) as a data set spec."""
    from voxlm.train.core.data import DatasetSpec

    columns = {"audio": args.audio_column, "text": args.text_column}
    return DatasetSpec(path=args.data, split=args.train_split, config=args.data_config, columns=columns, name="data")


def synthetic_spec(work: Path):
    """Without `--data`: synthetic speech of the shipped recipe's training sentences."""
    from voxlm.train.core.data import DatasetSpec
    from voxlm.train.offline.shipped_data import speak, training_texts, weighted_renditions

    texts = training_texts()["asr"][:6000]
    speak(work / "train-data", "asr_train", texts, weighted_renditions(len(texts), DEMO_ENGINE_SHARES, 0))
    return DatasetSpec(path=str(work / "train-data" / "asr_train"), name="asr_train")


# ------------------------------------------------------------------------------------------------- main
def evaluate_systems(work: "Workdir", systems: dict[str, Path], data_dir: Path, data: dict, audio_model, text_model,
                     quantize: str | None) -> dict:  # fmt: skip
    """Every system's responses and scores (responses cached per system and `quantize` setting)."""
    from voxlm.train.align.evaluate import SentenceEmbedder, default_embedding_model

    tag = f"-{quantize}" if quantize else ""
    responses = {}
    for name, folder in systems.items():
        say(f"  {name} (fresh process, AutoModel with trust_remote_code)")
        slug = name.lower().replace(" ", "-")
        responses[name] = speech_system(folder, data_dir, work.path / f"responses-{slug}{tag}.json", quantize)
    say("  reference: the language model on the true transcripts, and on the questions typed")
    reference = reference_system(data, text_model)
    embedder = SentenceEmbedder(default_embedding_model())
    scores = {name: score(answers, data, reference, embedder) for name, answers in responses.items()}
    heard = cascade_transcripts(audio_model, data)
    if heard is None:
        say("  (no cascade: the speech encoder is not a Whisper model that can transcribe)")
    else:
        say("  cascade: the Whisper model's transcripts -> the language model")
        cascade = text_system(heard, text_model)
        scores[CASCADE] = score(cascade, data, reference, embedder)
        scores[WHISPER] = transcript_scores(heard, data)
        (work.path / "responses-cascade.json").write_text(json.dumps({"transcripts": heard, **cascade}, indent=2))
        responses[CASCADE] = cascade
    show_examples(data, responses, heard)
    return scores


def run(args: argparse.Namespace) -> int:
    started = time.time()
    work = Workdir(args.workdir.resolve())
    say(f"VoxLM demo in {work.path} (reruns reuse finished steps; delete the folder to start over)")

    custom = bool(args.audio_model or args.text_model or args.data)
    say("\n[1/6] base models")
    from voxlm.train.offline.assets import cache_dir, smollm2_dir, whisper_tiny_en_dir

    cached = set(cache_dir().iterdir())
    audio_model = args.audio_model or whisper_tiny_en_dir()
    text_model = args.text_model or smollm2_dir()
    for role, path in (("speech encoder", audio_model), ("language model", text_model)):
        say(f"  {role}: {path}" + (" (reusing the cached conversion)" if path in cached else ""))

    model_dir, previous_dir = work.path / "model", work.path / "previous"
    systems = {SHIPPED: model_dir}
    spec = user_data_spec(args) if args.data else None
    if custom:
        say("\n[2/6] training an adapter with the shipped recipe (your models, your data)")
        if work.done("model"):
            say(f"  reusing {model_dir}")
        else:
            import shutil

            final = train_from_scratch(work.path, audio_model, text_model, spec or synthetic_spec(work.path),
                                       args.train_steps, args.continued)  # fmt: skip
            shutil.copytree(final, model_dir, dirs_exist_ok=True)
            work.finish("model")
    else:
        from voxlm.train.offline.shipped import previous_dir as previous_shipped

        say("\n[2/6] shipped checkpoint (and the previous one) -> Hub-ready folders")
        systems[PREVIOUS] = previous_dir
        if work.done("model"):
            say(f"  reusing {model_dir} and {previous_dir}")
        else:
            import shutil

            for folder in (model_dir, previous_dir):
                shutil.rmtree(folder, ignore_errors=True)  # a step cut short leaves a partial folder
            save_shipped_folder(model_dir)
            save_shipped_folder(previous_dir, previous_shipped())
            work.finish("model")
    say(f"  {model_dir}: {', '.join(sorted(p.name for p in model_dir.iterdir()))}")

    say("\n[3/6] held-out speech")
    data_dir = work.path / "eval-data"
    if work.done("data"):
        say(f"  reusing {data_dir}")
    else:
        heldout = None
        if spec is not None:
            from dataclasses import replace

            heldout = replace(spec, split=args.eval_split, max_samples=args.eval_size)
        build_eval_data(data_dir, args.eval_size, heldout_spec=heldout)
        work.finish("data")
    data = load_eval_data(data_dir)
    say("  " + ", ".join(f"{name}: {len(data[name]['text'])} clips" for name in data))

    say(f"\n[4/6] evaluation: {', '.join(systems)} and the cascade")
    tag = f"-{args.quantize}" if args.quantize else ""  # quantized runs keep their own responses and scores
    scores = work.done("scores" + tag) or {}
    if scores:
        say("  reusing the scores of the previous run")
    else:
        scores = evaluate_systems(work, systems, data_dir, data, audio_model, text_model, args.quantize)
        work.finish("scores" + tag, scores)
    say("\n" + table(scores))
    say(
        "  unrelated: the share of answers with no content word of what was said; text-only = LLM: the share of "
        "typed questions (no audio) answered exactly as the language model alone answers them"
    )

    say(f"\n[5/6] fine-tuning for {args.finetune_steps} steps on freshly synthesised speech")
    if work.done("finetune"):
        say("  reusing the fine-tuned model")
    else:
        finetune(work.path, args.finetune_steps, args.finetune_sentences, seed=1234)
        work.finish("finetune")

    say("\n[6/6] after fine-tuning")
    if work.done("after" + tag):
        say("  reusing the scores of the previous run")
    else:
        from voxlm.train.align.evaluate import SentenceEmbedder, default_embedding_model

        tuned = speech_system(work.path / "finetune" / "final", data_dir, work.path / f"responses-finetuned{tag}.json",
                              args.quantize)  # fmt: skip
        reference = reference_system(data, text_model)
        work.finish("after" + tag, score(tuned, data, reference, SentenceEmbedder(default_embedding_model())))
    say(table({SHIPPED: scores[SHIPPED], "VoxLM fine-tuned": work.done("after" + tag)}))
    say(f"\nDone in {(time.time() - started) / 60:.1f} min. The Hub-ready model is {model_dir}; push it with "
        f"`voxlm push {model_dir} <user>/<repo>`.")  # fmt: skip
    return 0


def register(subparsers) -> None:
    from voxlm.train.core.inference import QUANTIZE_CHOICES

    parser = subparsers.add_parser("demo", help="a real speech LLM on a CPU, offline", description=__doc__)
    parser.add_argument("--workdir", type=Path, default=Path("runs/demo"), help="where steps and results are kept")
    parser.add_argument("--eval-size", type=int, default=40, help="clips per held-out set (real recordings: all)")
    parser.add_argument("--finetune-steps", type=int, default=30, help="fine-tuning steps (step 5)")
    parser.add_argument("--finetune-sentences", type=int, default=400, help="fresh sentences for fine-tuning")
    parser.add_argument(
        "--quantize",
        choices=QUANTIZE_CHOICES,
        default=None,
        help="load the VoxLM models for evaluation in bf16 or with int8/int4 linear layers in the language model "
        "(the cascade stays fp32); responses and scores are kept apart per setting",
    )
    hub = parser.add_argument_group("your own models and data (trains an adapter instead of loading the shipped one)")
    hub.add_argument("--audio-model", help="speech encoder: Hub id or folder (e.g. openai/whisper-small)")
    hub.add_argument("--text-model", help="instruction-tuned LLM: Hub id or folder (e.g. Qwen/Qwen2.5-1.5B-Instruct)")
    hub.add_argument("--data", help="ASR data set: Hub id, save_to_disk folder or file, with audio and text")
    hub.add_argument("--data-config", default=None, help="the data set's configuration name")
    hub.add_argument("--train-split", default="train", help="split to train on (slices such as train[:5000] work)")
    hub.add_argument("--eval-split", default="test", help="split of held-out rows for the evaluation")
    hub.add_argument("--audio-column", default="audio", help="the data set's audio column")
    hub.add_argument("--text-column", default="text", help="the data set's transcript column")
    hub.add_argument("--continued", type=int, default=3000, help="transcripts the LLM continues (BLSP data)")
    hub.add_argument("--train-steps", type=float, default=None, help="scale the recipe's step budgets (e.g. 0.5)")
    parser.set_defaults(func=run)


def main(argv=None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv and argv[0] == "worker":
        worker(Path(argv[1]), Path(argv[2]), Path(argv[3]), argv[4] if len(argv) > 4 else None)
        return 0
    parser = argparse.ArgumentParser(prog="voxlm")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["demo", *argv])
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
