"""`voxlm demo`: a real speech LLM on a CPU, offline — assemble, reload, listen, compare, fine-tune.

Steps (each is cached in the work folder, so a second run reuses them and an interrupted run continues):

1. the offline base models (Whisper tiny.en, SmolLM2-135M-Instruct, all-MiniLM-L6-v2), converted once;
2. the shipped VoxLM checkpoint (its adapter) assembled with them and saved as a Hub-ready folder with its card;
3. held-out speech: sentences and spoken questions in espeak-ng voices never used in training (voices Whisper
   tiny.en can hear), and the real recordings of the offline stack;
4. evaluation of three systems: the shipped model (reloaded with `AutoModel.from_pretrained(folder,
   trust_remote_code=True)` in a fresh process), the same architecture with an untrained adapter, and the cascade
   Whisper tiny.en transcript -> SmolLM2; repeat-WER, continuation similarity and spoken-QA accuracy;
5. a few minutes of fine-tuning on freshly synthesised speech through `accelerate launch -m voxlm.train.curriculum`;
6. the fine-tuned model evaluated again.

With `--audio-model/--text-model/--data` the same runs on Hub models and an ASR data set: the adapter is trained
with the shipped recipe instead of loaded (a GPU is advisable).
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
SETS = ("heldout", "real", "questions")
SHIPPED = "VoxLM"  # held-out voices, real recordings, spoken questions (held-out voices)


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
def build_eval_data(folder: Path, per_set: int, seed: int = 11, heldout_spec=None) -> None:
    """Held-out sentences and questions in held-out voices (or `heldout_spec`, rows of the user's data set, for the
    sentences), and the real recordings, as `save_to_disk` folders."""
    from voxlm.train.offline.sentences import sentences, spoken_questions
    from voxlm.train.offline.shipped import heldout_voices
    from voxlm.train.offline.speech import recordings_dataset, synthetic_speech_dataset

    voices = heldout_voices()
    if heldout_spec is None:
        texts = sentences(per_set, "held_out", seed)
        synthetic_speech_dataset(texts, voices, seed=seed, progress=False).save_to_disk(str(folder / "heldout"))
    else:
        from voxlm.train.core.data import load_dataset_spec

        load_dataset_spec(heldout_spec).select_columns(["audio", "text"]).save_to_disk(str(folder / "heldout"))
    recordings_dataset().save_to_disk(str(folder / "real"))
    rng = np.random.default_rng(seed)
    pool = spoken_questions("held_out")
    items = [pool[i] for i in rng.choice(len(pool), size=min(per_set, len(pool)), replace=False)]
    questions = synthetic_speech_dataset([q.question for q in items], voices, seed=seed + 1, progress=False)
    questions = questions.add_column("answer", [q.answer for q in items])
    questions = questions.add_column("aliases", [list(q.aliases) for q in items])
    questions.save_to_disk(str(folder / "questions"))


def load_eval_data(folder: Path) -> dict:
    from datasets import load_from_disk

    from voxlm.train.core.audio import read_audio

    data = {}
    for name in SETS:
        table = load_from_disk(str(folder / name))
        rates = table["sampling_rate"] if "sampling_rate" in table.column_names else [None] * len(table)
        data[name] = {
            "audio": [read_audio(row["audio"], source_rate=rate) for row, rate in zip(table, rates)],
            "text": table["text"],
            **({"answer": table["answer"], "aliases": table["aliases"]} if "answer" in table.column_names else {}),
        }
    return data


# Every request of the evaluation: name -> (evaluation set, task).
REQUESTS = {
    "repeat_heldout": ("heldout", "repeat"),
    "repeat_real": ("real", "repeat"),
    "continue_heldout": ("heldout", "continue"),
    "continue_real": ("real", "continue"),
    "answer": ("questions", "answer"),
}


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
        for name, (dataset, task) in REQUESTS.items():
            examples = [{"audio": clip, "instruction": SPEECH_PROMPTS[task]} for clip in data[dataset]["audio"]]
            responses[name] = generate_answers(
                model, processor, examples, batch_size=12, max_new_tokens=MAX_NEW_TOKENS[task], progress=False
            )
    out.write_text(json.dumps(responses, indent=2))


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


# --------------------------------------------------------------------------------------------- scoring
def score(responses: dict, data: dict, reference: dict, embedder) -> dict:
    """repeat-WER (held-out voices, real), continuation similarity to SmolLM2's continuation of the true
    transcript (MiniLM cosine), spoken-QA accuracy."""
    from voxlm.train.core.metrics import word_error_rate
    from voxlm.train.offline.sentences import SpokenQuestion, answer_is_correct

    questions = [
        SpokenQuestion(text, answer, "", tuple(aliases))
        for text, answer, aliases in zip(data["questions"]["text"], data["questions"]["answer"],
                                         data["questions"]["aliases"])
    ]  # fmt: skip
    continuations = responses["continue_heldout"] + responses["continue_real"]
    references = reference["continue_heldout"] + reference["continue_real"]
    return {
        "repeat_wer_heldout": word_error_rate(data["heldout"]["text"], responses["repeat_heldout"]),
        "repeat_wer_real": word_error_rate(data["real"]["text"], responses["repeat_real"]),
        "continuation_similarity": embedder.cosine(continuations, references),
        "qa_accuracy": float(np.mean([answer_is_correct(r, q) for r, q in zip(responses["answer"], questions)])),
    }


COLUMNS = (
    ("repeat_wer_heldout", "repeat-WER held-out voices"),
    ("repeat_wer_real", "repeat-WER real speech"),
    ("continuation_similarity", "continuation similarity"),
    ("qa_accuracy", "spoken-QA accuracy"),
)


def table(rows: dict[str, dict]) -> str:
    from voxlm.train.core.tables import render_table

    header = ["system"] + [title for _, title in COLUMNS]
    body = [[name] + [f"{scores[key]:.3f}" for key, _ in COLUMNS] for name, scores in rows.items()]
    return render_table(header, body)


def show_examples(data: dict, shipped: dict, cascade: dict, cascade_transcripts: dict, count: int = 4) -> None:
    """Transcript, the shipped model's answer and the cascade's answer, side by side."""
    blocks = (
        ("Spoken questions (held-out voices)", "questions", "answer"),
        ("Real recordings, 'repeat what was said'", "real", "repeat_real"),
        ("Held-out voices, 'continue the text'", "heldout", "continue_heldout"),
    )
    for title, dataset, name in blocks:
        say(f"\n{title}:")
        for i in range(min(count, len(data[dataset]["text"]))):
            say(f"  heard     : {data[dataset]['text'][i]}")
            say(f"  VoxLM     : {shipped[name][i]}")
            say(f"  cascade   : {cascade[name][i]}   (Whisper heard: {cascade_transcripts[dataset][i]})")


# ------------------------------------------------------------------------------------------------ steps
def save_shipped_folder(folder: Path) -> None:
    """Assemble the shipped checkpoint with the base assets and save it as a Hub-ready folder with its card."""
    from voxlm.train.offline.shipped import hub_folder

    hub_folder(folder)


def save_untrained_folder(folder: Path, audio_model, text_model) -> None:
    """The same architecture with a freshly initialised adapter (the baseline)."""
    from voxlm.hub_cards import RunInfo, save_run
    from voxlm.train.offline.shipped import untrained

    model, processor = untrained(audio_model=audio_model, text_model=text_model)
    save_run(folder, model, processor, RunInfo(recipe="untrained adapter (baseline)"))


def cascade_transcripts(audio_model, data: dict) -> dict | None:
    """The cascade's first stage: transcripts by the audio model, when it is a Whisper model that can transcribe."""
    from transformers import AutoConfig, AutoProcessor, WhisperForConditionalGeneration

    from voxlm.train.offline.speech import transcribe

    if AutoConfig.from_pretrained(audio_model).model_type != "whisper":
        return None
    model = WhisperForConditionalGeneration.from_pretrained(audio_model).eval()
    processor = AutoProcessor.from_pretrained(audio_model)
    return {name: transcribe(data[name]["audio"], model=model, processor=processor) for name in SETS}


def train_from_scratch(work: Path, audio_model, text_model, spec, steps: float | None, continued: int) -> Path:
    """Train an adapter for the given models with the shipped recipe on the user's ASR data (`spec`): the LLM writes
    continuations of the first `continued` transcripts, espeak-ng speaks the question set. Returns the final folder."""
    import yaml

    from voxlm.train.core.config import load_yaml
    from voxlm.train.core.data import load_dataset_spec
    from voxlm.train.core.launch import run_accelerate
    from voxlm.train.offline.shipped import RECIPE, build_questions, continuations

    data = work / "train-data"
    if not (data / "continue_train" / "state.json").is_file():
        table = load_dataset_spec(spec)
        table = table.select(range(min(continued, len(table)))).select_columns(["audio", "text"])
        written = continuations(table["text"], data / "blsp", text_model)
        table.add_column("continuation", written).save_to_disk(str(data / "continue_train"))
    build_questions(data)
    os.environ.update(VOXLM_DATA=str(data), VOXLM_RUN=str(work / "train"), VOXLM_WHISPER=str(audio_model),
                      VOXLM_SMOLLM2=str(text_model))  # fmt: skip
    recipe = load_yaml(str(RECIPE))
    user = {"path": spec.path, "split": spec.split, "config": spec.config, "columns": spec.columns}
    recipe["datasets"]["asr_train"] = {**user, "task": "asr"}
    recipe["datasets"]["asr_heldout_voices"] = {**recipe["datasets"].pop("asr_heldout_voices"), "max_samples": 24}
    recipe["datasets"].pop("asr_real")
    for stage in recipe["stages"]:
        stage["eval_datasets"] = [name for name in stage.get("eval_datasets", []) if name != "asr_real"]
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


def finetune(work: Path, steps: int, sentences: int, seed: int) -> Path:
    """A short curriculum stage from the shipped model on freshly synthesised speech (accelerate launch)."""
    import yaml

    from voxlm.train.core.launch import run_accelerate
    from voxlm.train.offline.sentences import sentences as make_sentences
    from voxlm.train.offline.sentences import spoken_questions
    from voxlm.train.offline.shipped import training_voices
    from voxlm.train.offline.speech import synthetic_speech_dataset

    data = work / "finetune-data"
    if not (data / "asr" / "state.json").is_file():
        texts = make_sentences(sentences, "train", seed)
        synthetic_speech_dataset(texts, training_voices(), seed=seed).save_to_disk(str(data / "asr"))
    if not (data / "qa" / "state.json").is_file():
        items = spoken_questions("train")
        qa = synthetic_speech_dataset([q.question for q in items], training_voices(), seed=seed + 1)
        qa.add_column("answer", [q.answer for q in items]).save_to_disk(str(data / "qa"))
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
    """Without `--data`: espeak-ng speech of the project's training sentences."""
    from voxlm.train.core.data import DatasetSpec
    from voxlm.train.offline.sentences import sentences
    from voxlm.train.offline.shipped import training_voices
    from voxlm.train.offline.speech import synthetic_speech_dataset

    folder = work / "train-data" / "asr_train"
    if not (folder / "state.json").is_file():
        synthetic_speech_dataset(sentences(6000, "train", 0), training_voices()).save_to_disk(str(folder))
    return DatasetSpec(path=str(folder), name="asr_train")


# ------------------------------------------------------------------------------------------------- main
def run(args: argparse.Namespace) -> int:
    started = time.time()
    work = Workdir(args.workdir.resolve())
    say(f"VoxLM demo in {work.path} (reruns reuse finished steps; delete the folder to start over)")

    custom = bool(args.audio_model or args.text_model or args.data)
    say("\n[1/6] base models")
    from voxlm.train.align.evaluate import default_embedding_model
    from voxlm.train.offline.assets import cache_dir, smollm2_dir, whisper_tiny_en_dir

    cached = set(cache_dir().iterdir())
    audio_model = args.audio_model or whisper_tiny_en_dir()
    text_model = args.text_model or smollm2_dir()
    for role, path in (("speech encoder", audio_model), ("language model", text_model)):
        say(f"  {role}: {path}" + (" (reusing the cached conversion)" if path in cached else ""))

    model_dir, untrained_dir = work.path / "model", work.path / "untrained"
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
            save_untrained_folder(untrained_dir, audio_model, text_model)
            work.finish("model")
    else:
        say("\n[2/6] shipped checkpoint -> Hub-ready folder")
        if work.done("model"):
            say(f"  reusing {model_dir}")
        else:
            import shutil

            shutil.rmtree(model_dir, ignore_errors=True)  # a step cut short leaves a partial folder
            save_shipped_folder(model_dir)
            save_untrained_folder(untrained_dir, audio_model, text_model)
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
    say("  " + ", ".join(f"{name}: {len(data[name]['text'])} clips" for name in SETS))

    say("\n[4/6] evaluation: shipped model vs untrained adapter vs cascade")
    # Quantized runs keep their own responses and scores beside the full-precision ones.
    tag = f"-{args.quantize}" if args.quantize else ""
    scores = work.done("scores" + tag) or {}
    if scores:
        say("  reusing the scores of the previous run")
    else:
        from voxlm.train.align.evaluate import SentenceEmbedder

        say("  trained model (fresh process)")
        shipped = speech_system(model_dir, data_dir, work.path / f"responses-shipped{tag}.json", args.quantize)
        say("  untrained adapter (fresh process)")
        baseline = speech_system(untrained_dir, data_dir, work.path / f"responses-untrained{tag}.json", args.quantize)
        say("  reference: the language model on the true transcripts")
        reference = text_system({name: data[name]["text"] for name in SETS}, text_model)
        embedder = SentenceEmbedder(default_embedding_model())
        scores = {
            SHIPPED: score(shipped, data, reference, embedder),
            "untrained adapter": score(baseline, data, reference, embedder),
        }
        heard = cascade_transcripts(audio_model, data)
        if heard is None:
            say("  (no cascade: the speech encoder is not a Whisper model that can transcribe)")
        else:
            say("  cascade: the Whisper model's transcripts -> the language model")
            cascade = text_system(heard, text_model)
            scores["cascade"] = score(cascade, data, reference, embedder)
            (work.path / "responses-cascade.json").write_text(json.dumps({"transcripts": heard, **cascade}, indent=2))
            show_examples(data, shipped, cascade, heard)
        work.finish("scores" + tag, scores)
    say("\n" + table(scores))

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
        from voxlm.train.align.evaluate import SentenceEmbedder

        tuned = speech_system(work.path / "finetune" / "final", data_dir, work.path / f"responses-finetuned{tag}.json",
                              args.quantize)  # fmt: skip
        reference = text_system({name: data[name]["text"] for name in SETS}, text_model)
        work.finish("after" + tag, score(tuned, data, reference, SentenceEmbedder(default_embedding_model())))
    say(table({SHIPPED: scores[SHIPPED], "VoxLM fine-tuned": work.done("after" + tag)}))
    say(f"\nDone in {(time.time() - started) / 60:.1f} min. The Hub-ready model is {model_dir}; push it with "
        f"`voxlm push {model_dir} <user>/<repo>`.")  # fmt: skip
    return 0


def register(subparsers) -> None:
    from voxlm.train.core.inference import QUANTIZE_CHOICES

    parser = subparsers.add_parser("demo", help="a real speech LLM on a CPU, offline", description=__doc__)
    parser.add_argument("--workdir", type=Path, default=Path("runs/demo"), help="where steps and results are kept")
    parser.add_argument("--eval-size", type=int, default=24, help="held-out sentences and questions")
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
