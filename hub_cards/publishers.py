"""What travels to the Hub for each kind of model: a registry of publishers.

A publisher knows how to load a run folder of its kind, what to do with LoRA, which files to write (model,
processor, code, extra files) and how to fill the card. `voxlm push` picks the publisher named by
`run_info.json` (`"kind"`), or the first one whose `matches(config)` accepts the folder's config.json. A new kind
of model (e.g. the speech-token classifier: processor, selected vocabulary and unit tokenizer) registers its own
subclass with `@register_publisher`.
"""

import json
import os
import shutil
from importlib import resources
from pathlib import Path

from transformers.dynamic_module_utils import custom_object_save
from transformers.utils import logging

from .run_info import RunInfo

logger = logging.get_logger(__name__)

PUBLISHERS: dict[str, type["Publisher"]] = {}


def register_publisher(cls: type["Publisher"]) -> type["Publisher"]:
    """Class decorator: make a publisher available to `voxlm push` under `cls.kind`."""
    PUBLISHERS[cls.kind] = cls
    return cls


def read_config(run_dir: Path) -> dict:
    path = run_dir / "config.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"{run_dir} has no config.json: a run folder holds the saved model and processor "
            "(`save_pretrained`) and optionally run_info.json; see `voxlm.hub_cards`."
        )
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from error


def find_publisher(run_dir: Path, run_info: RunInfo) -> "Publisher":
    """The publisher for a run folder: the one named by `run_info.kind`, else the first that matches."""
    if run_info.kind is not None:
        if run_info.kind not in PUBLISHERS:
            raise ValueError(
                f"run_info.json names kind {run_info.kind!r}, which cannot be published; known kinds: "
                f"{', '.join(PUBLISHERS)}."
            )
        return PUBLISHERS[run_info.kind]()
    config = read_config(run_dir)
    for publisher in PUBLISHERS.values():
        if publisher.matches(config):
            return publisher()
    raise ValueError(
        f"No publisher recognises {run_dir / 'config.json'} (model_type {config.get('model_type')!r}); known kinds: "
        f"{', '.join(PUBLISHERS)}. Set `kind` in run_info.json."
    )


class Publisher:
    """How one kind of model travels: override the methods that differ."""

    kind: str = ""

    @classmethod
    def matches(cls, config: dict) -> bool:
        raise NotImplementedError

    def load(self, run_dir: Path):
        """-> (model, processor) from the run folder."""
        raise NotImplementedError

    def merge_lora(self, model) -> None:
        """Fold LoRA layers into the base weights (the default on push)."""
        raise NotImplementedError

    def has_lora(self, model) -> bool:
        raise NotImplementedError

    def lora_mergeable(self, model) -> bool:
        """Whether merging leaves the model's answers unchanged (False for LoRA that acts only on some inputs)."""
        return True

    def save(self, model, processor, out_dir: Path) -> None:
        """Write model, processor and their code files to `out_dir`."""
        model.save_pretrained(out_dir)
        processor.save_pretrained(out_dir)

    def travelling_files(self, run_dir: Path, run_info: RunInfo) -> dict[str, Path]:
        """Files copied unchanged: {path in the repository: source}. By default `run_info.extra_files`."""
        files = {}
        for name in run_info.extra_files:
            source = run_dir / name
            if not source.is_file():
                raise FileNotFoundError(f"run_info.json lists extra file {name!r}, but {source} does not exist.")
            files[name] = source
        return files

    def card(self, model, processor, run_info: RunInfo, repo_id: str, files: dict[str, Path], lora_state: str):
        """-> huggingface_hub `ModelCard`; `lora_state` says what publishing did with LoRA (merged, kept, none)."""
        raise NotImplementedError


SAMPLE_NAME = "sample.wav"
SAMPLE_TRANSCRIPT = "he was not an ill disposed young man"  # hub_cards/shipped/sample.wav (see sample.txt)


def sample_file(run_dir: Path, run_info: RunInfo) -> tuple[str, Path]:
    """(name in the repository, source) of the clip the card's usage example reads."""
    if not run_info.sample_audio:
        return SAMPLE_NAME, Path(str(resources.files("voxlm.hub_cards") / "shipped" / SAMPLE_NAME))
    sample = Path(run_info.sample_audio)
    sample = sample if sample.is_absolute() else run_dir / sample
    if not sample.is_file():
        raise FileNotFoundError(f"run_info.json names sample_audio {run_info.sample_audio!r}; {sample} is missing.")
    return "sample" + sample.suffix, sample


def sample_name(files: dict[str, Path]) -> str:
    return next(name for name in files if name.startswith("sample."))


@register_publisher
class VoxLMPublisher(Publisher):
    """A `VoxLMForConditionalGeneration` with its `VoxLMProcessor`, the code, a pipeline and a sample clip."""

    kind = "voxlm"

    @classmethod
    def matches(cls, config: dict) -> bool:
        return config.get("model_type") == "voxlm"

    def load(self, run_dir: Path):
        from voxlm.modeling import VoxLMForConditionalGeneration
        from voxlm.processing import VoxLMProcessor

        model = VoxLMForConditionalGeneration.from_pretrained(run_dir)
        processor = VoxLMProcessor.from_pretrained(run_dir)
        check_processor_matches(model.config, processor, run_dir)
        return model.eval(), processor

    def has_lora(self, model) -> bool:
        return bool(model.config.llm_lora)

    def merge_lora(self, model) -> None:
        model.merge_lora()

    def lora_mergeable(self, model) -> bool:
        # Speech-only LoRA is off for text-only prompts; merged weights would change those answers too.
        return not model.config.llm_lora.get("speech_only", False)

    def save(self, model, processor, out_dir: Path) -> None:
        from voxlm.processing.pipeline_voxlm import TASK, VoxLMSpokenPromptPipeline

        # What `Pipeline.save_pretrained` records for a registered custom pipeline, without building one.
        module = VoxLMSpokenPromptPipeline.__module__.rsplit(".", 1)[-1]
        model.config.custom_pipelines = {
            TASK: {"impl": f"{module}.{VoxLMSpokenPromptPipeline.__name__}", "pt": ["AutoModel"], "type": "multimodal"}
        }
        super().save(model, processor, out_dir)
        custom_object_save(VoxLMSpokenPromptPipeline, out_dir)

    def travelling_files(self, run_dir: Path, run_info: RunInfo) -> dict[str, Path]:
        name, source = sample_file(run_dir, run_info)
        return {**super().travelling_files(run_dir, run_info), name: source}

    def card(self, model, processor, run_info: RunInfo, repo_id: str, files: dict[str, Path], lora_state: str):
        from .card import voxlm_card

        return voxlm_card(model, processor, run_info, repo_id, sample_name(files), lora_state)


# Written by `SpeechTokenSelector.save_pretrained` (voxlm.processing.token_selection): the kept audio tokens.
SELECTION_FILE = "audio_vocabulary.json"


@register_publisher
class SpeechTokenClassifierPublisher(Publisher):
    """A text LM fine-tuned for classification on text + selected speech units (`AutoModelForSequenceClassification`,
    LoRA already merged by the recipe), its speech-token processor (which saves the unit tokenizer in
    `speech_units/`) and the kept vocabulary `audio_vocabulary.json`."""

    kind = "speech-token-classifier"

    @classmethod
    def matches(cls, config: dict) -> bool:
        return any(name.endswith("ForSequenceClassification") for name in config.get("architectures") or [])

    def load(self, run_dir: Path):
        from transformers import AutoModelForSequenceClassification, AutoProcessor

        if (run_dir / "adapter_config.json").is_file():
            raise ValueError(
                f"{run_dir} holds a peft adapter, not a full model: merge it (`model.merge_and_unload()`) and "
                "save the merged classifier with its processor."
            )
        model = AutoModelForSequenceClassification.from_pretrained(run_dir)
        # The processor class ships in the run folder (saved with its code), like it will on the Hub.
        processor = AutoProcessor.from_pretrained(run_dir, trust_remote_code=True)
        return model.eval(), processor

    def has_lora(self, model) -> bool:
        return False  # refused in `load`: classifier runs are saved merged

    def travelling_files(self, run_dir: Path, run_info: RunInfo) -> dict[str, Path]:
        files = super().travelling_files(run_dir, run_info)
        if (run_dir / SELECTION_FILE).is_file():
            files[SELECTION_FILE] = run_dir / SELECTION_FILE
        name, source = sample_file(run_dir, run_info)
        return {**files, name: source}

    def card(self, model, processor, run_info: RunInfo, repo_id: str, files: dict[str, Path], lora_state: str):
        from .card import classifier_card

        vocabulary = json.loads(files[SELECTION_FILE].read_text()) if SELECTION_FILE in files else None
        transcript = run_info.sample_transcript or (SAMPLE_TRANSCRIPT if not run_info.sample_audio else "")
        return classifier_card(model, processor, run_info, repo_id, sample_name(files), transcript, vocabulary)


def check_processor_matches(config, processor, run_dir: Path) -> None:
    """The processor must expand placeholders exactly as the model expects (one length formula, one token id)."""
    if processor.audio_length_formula != config.audio_length_formula:
        raise ValueError(
            f"{run_dir}: processor_config.json has audio_length_formula {processor.audio_length_formula} but "
            f"config.json has {config.audio_length_formula}; save the processor built for this model."
        )
    if processor.audio_token_id != config.audio_token_id:
        raise ValueError(
            f"{run_dir}: the tokenizer gives {processor.audio_token!r} the id {processor.audio_token_id} but "
            f"config.json says audio_token_id={config.audio_token_id}; save the processor built for this model."
        )


def copy_files(files: dict[str, Path], out_dir: Path) -> None:
    for name, source in files.items():
        target = out_dir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)


def folder_files(folder: Path) -> list[str]:
    """Every file under `folder`, as sorted POSIX paths relative to it."""
    return sorted(
        Path(root, name).relative_to(folder).as_posix() for root, _, names in os.walk(folder) for name in names
    )


__all__ = [
    "PUBLISHERS",
    "Publisher",
    "SpeechTokenClassifierPublisher",
    "VoxLMPublisher",
    "find_publisher",
    "register_publisher",
]
