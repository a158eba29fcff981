"""Step 1 of behaviour alignment: the frozen LLM continues every transcript of an ASR data set.

Rows are cut into fixed shards of consecutive rows. Processes take whole shards (`split_between_processes`), so a
batch holds the same rows whatever the number of processes, and greedy decoding gives the same continuations. Each
generated batch is appended to `shards/shard-K.partial.jsonl` and synced to disk; a finished shard is renamed to
`shards/shard-K.jsonl`. A run that is killed resumes from these files: rows already written are kept, a torn last
line is discarded and regenerated, so every row ends up exactly once. When every shard is done the main process
writes a `datasets` data set (`audio`, `index`, `transcript`, `continuation`) to `<output_dir>/dataset` and the
settings to `<output_dir>/continuations.json`, which `align train` reads to use the same instruction.
"""

import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Literal

import torch
from tqdm.auto import tqdm
from transformers import GenerationConfig
from transformers.utils import logging

from voxlm.train.core.launch import distributed_state
from voxlm.train.core.models import load_causal_lm
from voxlm.train.core.prompts import BLSP_INSTRUCTION, PromptFormat

from .data import (
    absolute_audio_reference,
    check_table_columns,
    data_root,
    load_table,
    normalize_transcripts,
)

logger = logging.get_logger(__name__)

SETTINGS_FILE = "continuations.json"
# Settings that change the text a run writes; a resumed run must match them exactly. Which rows are continued is
# checked row by row instead (`check_shard_transcripts`), so the input may move or be rebuilt identically.
RESUME_KEYS = ("model", "gguf_file", "instruction", "template", "max_new_tokens", "shard_size", "dtype", "num_rows")


@dataclass
class ContinuationArguments:
    data: str = field(
        metadata={"help": "ASR data: a `save_to_disk` folder, a json/jsonl/csv/parquet file or a Hub name."}
    )
    output_dir: str = field(metadata={"help": "Folder for the shards, the settings and the final data set."})
    model: str = field(metadata={"help": "The frozen LLM: a causal LM (Hub id or folder) or a VoxLM folder."})
    gguf_file: str | None = field(default=None, metadata={"help": "GGUF weights file inside `model`."})
    split: str = field(default="train", metadata={"help": "Split of a DatasetDict or Hub data set."})
    text_column: str = field(default="text", metadata={"help": "Column holding the transcripts."})
    audio_column: str | None = field(
        default="audio", metadata={"help": "Column holding the audio reference, copied to the output ('' for none)."}
    )
    instruction: str = field(default=BLSP_INSTRUCTION, metadata={"help": "Instruction with a {transcript} slot."})
    template: Literal["chat", "blsp", "plain"] = field(
        default="chat",
        metadata={"help": "chat (the LLM's chat template), blsp (###[Human]:...###[Assistant]:) or plain."},
    )
    normalize: Literal["none", "lower", "whisper"] = field(
        default="none", metadata={"help": "Transcript normalisation before prompting: none, lower or whisper."}
    )
    max_new_tokens: int = field(default=64, metadata={"help": "Continuation length in tokens (BLSP: 64)."})
    batch_size: int = field(default=16, metadata={"help": "Prompts per generate call (left padded)."})
    shard_size: int = field(default=256, metadata={"help": "Rows per shard (the unit of work and of resumption)."})
    limit: int | None = field(default=None, metadata={"help": "Use only the first N rows."})
    dtype: Literal["float32", "bfloat16", "float16"] = field(
        default="float32", metadata={"help": "LLM dtype: float32, bfloat16 or float16."}
    )
    overwrite: bool = field(default=False, metadata={"help": "Delete earlier shards made with other settings."})


def shard_path(shards_dir: Path, shard: int, partial: bool = False) -> Path:
    return shards_dir / f"shard-{shard:05d}{'.partial' if partial else ''}.jsonl"


def read_rows(path: Path, repair: bool = False) -> dict[int, dict]:
    """Rows of a shard file by index. A torn last line (a run killed mid-write) is dropped; with `repair=True` it is
    also cut off the file so that appended rows start on a fresh line."""
    if not path.exists():
        return {}
    data = path.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]
    if repair and len(complete) != len(data):
        with open(path, "r+b") as handle:
            handle.truncate(len(complete))
    rows = {}
    for line in complete.decode("utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            rows[row["index"]] = row
    return rows


def generate_batch(model, tokenizer, prompts: list[str], generation_config: GenerationConfig) -> list[str]:
    """Greedy continuations of a batch of prompts, left padded so that every prompt ends where generation starts."""
    inputs = tokenizer(prompts, return_tensors="pt", padding=True, padding_side="left").to(model.device)
    with torch.inference_mode():
        output = model.generate(**inputs, generation_config=generation_config)
    new_tokens = output[:, inputs["input_ids"].shape[1] :]
    return [text.strip() for text in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]


def greedy_config(model, tokenizer, max_new_tokens: int) -> GenerationConfig:
    eos = model.generation_config.eos_token_id
    eos = [eos] if isinstance(eos, int) else list(eos or [])
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in eos:
        eos.append(tokenizer.eos_token_id)
    return GenerationConfig(
        max_new_tokens=max_new_tokens,
        do_sample=False,
        num_beams=1,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=eos,
    )


class ContinuationWriter:
    """Generates the rows of shards, appending each batch to the shard's partial file."""

    def __init__(self, args: ContinuationArguments, transcripts: list[str], shards_dir: Path):
        self.args, self.transcripts, self.shards_dir = args, transcripts, shards_dir
        self.progress: tqdm | None = None
        self.prompt_format = PromptFormat(args.instruction, args.template)
        self.model, self.tokenizer = load_causal_lm(args.model, args.gguf_file, dtype=getattr(torch, args.dtype))
        self.model.eval()
        self.generation_config = greedy_config(self.model, self.tokenizer, args.max_new_tokens)
        self.generated, self.generation_seconds = 0, 0.0

    def shard_rows(self, shard: int) -> range:
        start = shard * self.args.shard_size
        return range(start, min(start + self.args.shard_size, len(self.transcripts)))

    def run_shard(self, shard: int) -> None:
        partial = shard_path(self.shards_dir, shard, partial=True)
        done = read_rows(partial, repair=True)
        self.progress.update(len(done))
        todo = [index for index in self.shard_rows(shard) if index not in done]
        if not todo:  # killed after the last batch was written but before the shard was renamed
            self.finish_shard(shard)
            return
        prompts = {index: self.prompt_format.text_prompt(self.tokenizer, self.transcripts[index]) for index in todo}
        lengths = {index: len(ids) for index, ids in zip(todo, self.tokenizer(list(prompts.values()))["input_ids"])}
        # Longest prompts first: similar lengths share a batch (little padding) and memory peaks show up at once.
        order = sorted(todo, key=lambda index: (-lengths[index], index))
        with open(partial, "a", encoding="utf-8") as handle:
            for start in range(0, len(order), self.args.batch_size):
                batch = order[start : start + self.args.batch_size]
                started = time.perf_counter()
                texts = generate_batch(self.model, self.tokenizer, [prompts[i] for i in batch], self.generation_config)
                self.generation_seconds += time.perf_counter() - started
                for index, text in zip(batch, texts):
                    row = {"index": index, "transcript": self.transcripts[index], "continuation": text}
                    handle.write(json.dumps(row, ensure_ascii=False) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
                self.generated += len(batch)
                self.progress.update(len(batch))
        self.finish_shard(shard)

    def finish_shard(self, shard: int) -> None:
        partial = shard_path(self.shards_dir, shard, partial=True)
        rows = read_rows(partial)
        expected = set(self.shard_rows(shard))
        if set(rows) != expected:
            raise RuntimeError(f"Shard {shard} holds rows {sorted(set(rows) ^ expected)[:10]} it should not miss/have.")
        final = shard_path(self.shards_dir, shard)
        temporary = final.with_suffix(".tmp")
        with open(temporary, "w", encoding="utf-8") as handle:
            for index in sorted(rows):
                handle.write(json.dumps(rows[index], ensure_ascii=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, final)
        partial.unlink()


def run_settings(args: ContinuationArguments, num_rows: int) -> dict:
    settings = asdict(args)
    settings.pop("overwrite")
    settings.pop("output_dir")
    for key in ("data", "model"):
        if os.path.exists(settings[key]):
            settings[key] = str(Path(settings[key]).resolve())
    settings["instruction"] = PromptFormat(args.instruction, args.template).instruction
    settings["num_rows"] = num_rows
    return settings


def shard_transcript_mismatch(shards_dir: Path, transcripts: list[str]) -> str | None:
    """The first written row whose transcript is not the input's at its index, described; None if all match."""
    for path in sorted(shards_dir.glob("shard-*.jsonl")):
        for index, row in read_rows(path).items():
            expected = transcripts[index] if index < len(transcripts) else None
            if row["transcript"] != expected:
                return f"row {index}: written for {row['transcript']!r}, the input has {expected!r}"
    return None


def check_or_write_settings(output_dir: Path, settings: dict, transcripts: list[str], overwrite: bool) -> None:
    """Refuse to resume a run made with other settings or for other transcripts (its rows would not match)."""
    path = output_dir / SETTINGS_FILE
    if path.exists():
        previous = json.loads(path.read_text())
        changed = {key: (previous.get(key), settings.get(key)) for key in RESUME_KEYS}
        changed = {key: values for key, values in changed.items() if values[0] != values[1]}
        mismatch = shard_transcript_mismatch(output_dir / "shards", transcripts)
        if mismatch:
            changed["transcripts"] = ("the written rows", mismatch)
        if changed and not overwrite:
            details = "; ".join(f"{key}: {old!r} -> {new!r}" for key, (old, new) in changed.items())
            raise ValueError(
                f"{output_dir} holds continuations made with other settings ({details}). Use another --output_dir, "
                "or pass --overwrite to delete them."
            )
        if changed:
            shutil.rmtree(output_dir / "shards", ignore_errors=True)
            shutil.rmtree(output_dir / "dataset", ignore_errors=True)
        else:
            settings = {**previous, **settings}
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "shards").mkdir(exist_ok=True)
    path.write_text(json.dumps(settings, indent=2, ensure_ascii=False))


def build_dataset(args: ContinuationArguments, table, shards_dir: Path, num_shards: int, output_dir: Path):
    """Join all shards (in row order) with the source's audio references and save them as a `datasets` folder."""
    import datasets

    rows = []
    for shard in range(num_shards):
        rows += sorted(read_rows(shard_path(shards_dir, shard)).values(), key=lambda row: row["index"])
    if [row["index"] for row in rows] != list(range(len(table))):
        raise RuntimeError("The shards do not hold every row exactly once; delete the output folder and rerun.")
    columns = {key: [row[key] for row in rows] for key in ("index", "transcript", "continuation")}
    result = datasets.Dataset.from_dict(columns)
    if args.audio_column:
        audio = table.select_columns([args.audio_column])
        if isinstance(audio.features[args.audio_column], datasets.Audio):
            audio = audio.cast_column(args.audio_column, datasets.Audio(decode=False))
        elif audio.features[args.audio_column].dtype == "string":
            root = data_root(args.data)
            audio = audio.map(
                lambda row: {args.audio_column: absolute_audio_reference(row[args.audio_column], root)},
                desc="absolute audio paths",
            )
        if args.audio_column != "audio":
            audio = audio.rename_column(args.audio_column, "audio")
        result = datasets.concatenate_datasets([audio, result], axis=1)
    final, temporary = output_dir / "dataset", output_dir / "dataset.tmp"
    shutil.rmtree(temporary, ignore_errors=True)
    result.save_to_disk(str(temporary))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(temporary, final)
    return result


def generate_continuations(args: ContinuationArguments) -> Path:
    """Run (or resume) step 1 and return the folder of the finished `datasets` data set."""
    # Processes wait for each other only at the start and the end; the slowest may be a shard behind.
    state = distributed_state(timeout=timedelta(hours=12))
    started = time.perf_counter()
    table = load_table(args.data, args.split, args.limit)
    check_table_columns(table, [args.text_column, args.audio_column], args.data)
    transcripts = normalize_transcripts(list(table[args.text_column]), args.normalize)
    output_dir, num_shards = Path(args.output_dir), math.ceil(len(table) / args.shard_size)
    shards_dir = output_dir / "shards"
    if state.is_main_process:
        check_or_write_settings(output_dir, run_settings(args, len(table)), transcripts, args.overwrite)
    state.wait_for_everyone()
    pending = [shard for shard in range(num_shards) if not shard_path(shards_dir, shard).exists()]
    state.wait_for_everyone()  # every process lists the pending shards before any of them finishes one
    generated = 0
    with state.split_between_processes(pending) as mine:
        if mine:
            writer = ContinuationWriter(args, transcripts, shards_dir)
            total = sum(len(writer.shard_rows(shard)) for shard in mine)
            desc = f"continuations (process {state.process_index})"
            with tqdm(total=total, desc=desc, unit="row", position=state.process_index, dynamic_ncols=True) as bar:
                writer.progress = bar
                for shard in mine:
                    writer.run_shard(shard)
            generated = writer.generated
            logger.info(
                f"Process {state.process_index}: {generated} continuations generated in "
                f"{writer.generation_seconds:.0f} s ({generated / max(writer.generation_seconds, 1e-9):.2f} rows/s)."
            )
    elapsed = time.perf_counter() - started
    state.wait_for_everyone()
    if state.is_main_process:
        result = build_dataset(args, table, shards_dir, num_shards, output_dir)
        settings = json.loads((output_dir / SETTINGS_FILE).read_text())
        runs = settings.get("runs", []) + [
            {"processes": state.num_processes, "rows_generated_by_main": generated, "wall_seconds": round(elapsed, 1)}
        ]
        empty = sum(1 for text in result["continuation"] if not text)
        settings.update(runs=runs, empty_continuations=empty)
        (output_dir / SETTINGS_FILE).write_text(json.dumps(settings, indent=2, ensure_ascii=False))
        logger.info(
            f"Wrote {len(result)} rows ({empty} empty continuations) to {output_dir / 'dataset'}; wall time "
            f"{elapsed:.0f} s with {state.num_processes} process(es)."
        )
    state.wait_for_everyone()
    return output_dir / "dataset"
