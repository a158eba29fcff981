"""Model cards for VoxLM models, filled from the model, its processor and the run's `run_info.json`.

The card is a huggingface_hub `ModelCard` rendered from a Jinja template shipped with this package
(`voxlm_card.md`); its YAML metadata (`ModelCardData`) carries the base models, data sets, licence, language and a
`model-index` with one result per recorded metric. `check_card` validates a card offline with huggingface_hub's own
parser; `python_blocks` extracts its code examples (the tests run them).
"""

import json
import re
from importlib import resources
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from .run_info import RunInfo

# Recipe names used by the training entry points -> how the card describes them.
RECIPES = {
    "speechverse": "multitask curriculum (SpeechVerse, Das et al., [arXiv:2405.08295](https://arxiv.org/abs/2405.08295))",
    "blsp": "behaviour alignment (BLSP, Wang et al., [arXiv:2309.00916](https://arxiv.org/abs/2309.00916))",
    "speech-tokens": "speech tokens for classification (Calbucura & Barriere, "
    "[arXiv:2512.07571](https://arxiv.org/abs/2512.07571))",
}
# Task names used in `run_info.json` metrics -> Hub task ids for the model-index.
TASK_TYPES = {
    "asr": "automatic-speech-recognition",
    "st": "translation",
    "ast": "translation",
    "translation": "translation",
    "intent": "audio-classification",
    "emotion": "audio-classification",
    "classification": "audio-classification",
    "speaker": "audio-classification",
    "slots": "token-classification",
    "qa": "question-answering",
}
DEFAULT_TASK_TYPE = "audio-text-to-text"
DEFAULT_INSTRUCTION = "Transcribe the audio."
# Hub repository ids (`namespace/name`); local paths and file names stay out of the metadata.
HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
NOT_RECORDED = "not recorded"


# ----------------------------------------------------------------------------------------------- formatting
def format_count(count: int | None) -> str:
    """12345678 -> '12,345,678 (12.3 M)'."""
    if count is None:
        return NOT_RECORDED
    for size, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if count >= size:
            return f"{count:,} ({count / size:.1f} {unit})"
    return f"{count:,}"


def format_duration(seconds: float | None) -> str:
    """5400 -> '1 h 30 min'."""
    if seconds is None:
        return NOT_RECORDED
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"


def is_hub_id(name: str | None) -> bool:
    return bool(name) and HUB_ID.match(name) is not None and not name.endswith((".gguf", ".bin", ".safetensors"))


def _code_name(name: str | None) -> str:
    return f"`{name}`" if name else NOT_RECORDED


def _dataset_line(dataset) -> str:
    if isinstance(dataset, str):
        return f"`{dataset}`"
    parts = [f"`{dataset.get('id', dataset.get('name', '?'))}`"]
    parts += [f"{key} {dataset[key]}" for key in ("config", "split") if dataset.get(key)]
    line = ", ".join(parts)
    return f"{line} ({dataset['description']})" if dataset.get("description") else line


def _dataset_ids(datasets) -> list[str]:
    ids = [dataset if isinstance(dataset, str) else dataset.get("id") for dataset in datasets]
    return [name for name in ids if is_hub_id(name)]


# ---------------------------------------------------------------------------------------------- metadata
def eval_results(metrics: list[dict], model_name: str) -> list[EvalResult]:
    """One huggingface_hub `EvalResult` per recorded metric (the card's `model-index`)."""
    results = []
    for metric in metrics:
        dataset = metric.get("dataset") or metric.get("dataset_name") or "custom"
        results.append(
            EvalResult(
                task_type=metric.get("task_type") or TASK_TYPES.get(metric["task"], DEFAULT_TASK_TYPE),
                task_name=metric["task"],
                dataset_type=dataset,
                dataset_name=metric.get("dataset_name") or dataset,
                dataset_config=metric.get("dataset_config"),
                dataset_split=metric.get("split"),
                metric_type=metric["metric"],
                metric_name=metric.get("metric_name"),
                metric_value=metric["value"],
            )
        )
    return results


def card_data(run_info: RunInfo, model_name: str, base_models: list[str], tags: list[str], pipeline_tag: str):
    """The card's YAML metadata."""
    return ModelCardData(
        model_name=model_name,
        base_model=[name for name in base_models if is_hub_id(name)] or None,
        datasets=_dataset_ids(run_info.datasets) or None,
        language=run_info.language or None,
        license=run_info.license or "other",
        library_name="transformers",
        pipeline_tag=pipeline_tag,
        tags=tags,
        metrics=sorted({metric["metric"] for metric in run_info.metrics}) or None,
        eval_results=eval_results(run_info.metrics, model_name) or None,
    )


# -------------------------------------------------------------------------------------------- the card
def _usage_code(repo_id: str, instruction: str, sample: str, chat: bool, encoder_decoder: bool, audio_token: str):
    """A usage example that runs as written (the sample clip ships in the repository)."""
    lines = [
        "import soundfile as sf",
        "from transformers import AutoModel, AutoProcessor",
        "from transformers.utils import cached_file",
        "",
        f'repo_id = "{repo_id}"',
        "model = AutoModel.from_pretrained(repo_id, trust_remote_code=True)",
        "processor = AutoProcessor.from_pretrained(repo_id, trust_remote_code=True)",
        "",
        f"# Any mono recording works (other sampling rates are resampled); {sample} ships with the model.",
        f'audio, sampling_rate = sf.read(cached_file(repo_id, "{sample}"), dtype="float32")',
    ]
    if chat:
        content = ['            {"type": "audio", "audio": audio},']
        if instruction:
            content.append(f'            {{"type": "text", "text": {json.dumps(instruction, ensure_ascii=False)}}},')
        lines += [  # one content item per line: the example stays formatted at any instruction length
            "conversation = [",
            "    {",
            '        "role": "user",',
            '        "content": [',
            *content,
            "        ],",
            "    }",
            "]",
            "inputs = processor.apply_chat_template(",
            "    conversation, add_generation_prompt=True, tokenize=True, sampling_rate=sampling_rate, resample=True",
            ")",
        ]
    else:
        prompt = audio_token + (f"\n{instruction}" if instruction else "")
        lines.append(f"inputs = processor(text={prompt!r}, audio=audio, sampling_rate=sampling_rate, resample=True)")
    lines.append("output = model.generate(**inputs, max_new_tokens=64, do_sample=False)")
    if encoder_decoder:
        lines.append("print(processor.batch_decode(output, skip_special_tokens=True)[0])")
    else:
        lines.append('new_tokens = output[:, inputs["input_ids"].shape[1] :]  # generate() returns the prompt too')
        lines.append("print(processor.batch_decode(new_tokens, skip_special_tokens=True)[0])")
    return "\n".join(lines)


def _pipeline_code(repo_id: str, instruction: str, sample: str) -> str:
    call = f'pipe(cached_file(repo_id, "{sample}"), '
    call += f"instruction={json.dumps(instruction, ensure_ascii=False)}, " if instruction else ""
    return "\n".join(
        [
            "from transformers import pipeline",
            "from transformers.utils import cached_file",
            "",
            f'repo_id = "{repo_id}"',
            "pipe = pipeline(model=repo_id, trust_remote_code=True)",
            f"print({call}max_new_tokens=64))",
        ]
    )


def _parameter_counts(model, run_info: RunInfo) -> dict[str, str]:
    def count(module) -> int:
        return sum(parameter.numel() for parameter in module.parameters()) if module is not None else 0

    total = count(model)
    trainable = run_info.trainable
    trainable_text = format_count(trainable)
    if trainable is not None and total:
        trainable_text += f", {100 * trainable / total:.2f} % of the total"
    return {
        "encoder": format_count(count(model.audio_tower)),
        "adapter": format_count(count(model.projector) + count(model.layer_mix)),
        "language_model": format_count(count(model.language_model)),
        "total": format_count(total),
        "trainable": trainable_text,
    }


def _adapter_description(adapter: dict) -> str:
    parts = [f"{adapter['preset']} preset:" if adapter.get("preset") else "custom:"]
    if adapter["stack"] > 1:
        parts.append(f"stack {adapter['stack']} frames,")
    for block in adapter["conv_blocks"]:
        activation = "" if block["activation"] == "none" else f" + {block['activation'].upper()}"
        norm = " + LayerNorm" if block["layer_norm"] else ""
        parts.append(f"Conv1d k={block['kernel']} s={block['stride']}{activation}{norm},")
    if adapter["bottleneck"]:
        parts.append(f"residual bottleneck {adapter['bottleneck']},")
    if adapter["projector"] != "none":
        parts.append(f"{adapter['projector']} projector,")
    if adapter["final_norm"]:
        parts.append(f"{adapter['final_norm']},")
    return " ".join(parts).rstrip(",")


def _lora_description(config, lora_state: str) -> str:
    lora = config.llm_lora
    if lora_state == "none":
        return "none."
    if not lora:
        return "merged into the language model's weights; loading needs no `peft`."
    targets = lora["target_modules"]  # a list of module names, or one peft shorthand such as "all-linear"
    targets = targets if isinstance(targets, str) else ", ".join(targets)
    where = (
        " They act only from the first audio token on (speech-only LoRA), so text-only prompts get exactly the base "
        "language model's answers; for that reason they are never merged."
        if lora.get("speech_only")
        else ""
    )
    return (
        f"kept as peft LoRA layers (r={lora['r']}, alpha={lora['lora_alpha']}, on {targets}), recreated from "
        f"`config.llm_lora` on load; loading needs `peft`.{where}"
    )


def _stage_rows(stages: list[dict]) -> list[dict]:
    def listed(value) -> str:
        return ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)

    return [
        {
            "name": stage["name"] + (f" ({stage['description']})" if stage.get("description") else ""),
            "trained": listed(stage.get("trained", "–")),
            "tasks": listed(stage.get("tasks", "–")),
            "steps": stage.get("steps", stage.get("epochs", "–")),
            "trainable": format_count(stage.get("trainable_parameters")),
        }
        for stage in stages
    ]


def _metric_rows(metrics: list[dict]) -> list[dict]:
    return [
        {
            "task": metric["task"],
            "dataset": metric.get("dataset_name") or metric.get("dataset") or "–",
            "split": metric.get("split", "–"),
            "metric": metric["metric"],
            "value": metric["value"],
        }
        for metric in metrics
    ]


def _limitations(run_info: RunInfo, specific: list[str]) -> list[str]:
    trained_on = ", ".join(_dataset_line(d) for d in run_info.datasets) or "the run's data"
    lines = [
        f"Trained on {trained_on}; quality on other domains, accents, languages, noise conditions and recording "
        "set-ups is not measured here.",
        *specific,
        "Loading runs the code shipped in this repository (`trust_remote_code=True`); it needs transformers 5.",
    ]
    return lines + list(run_info.limitations)


def _voxlm_limitations(config) -> list[str]:
    lines = [
        "The language model's own limitations and biases carry over. Like any generative model it can write fluent "
        "but wrong text, including words that were never said; check outputs before relying on them."
    ]
    if config.audio_length_formula.get("chunk_size"):
        window = config.audio_length_formula["chunk_size"] / 100
        lines.append(
            f"Audio longer than the encoder's {window:.0f} s window is encoded window by window; only the language "
            "model sees across windows."
        )
    return lines


def _license_text(run_info: RunInfo, base_models: list[str]) -> str:
    bases = " and ".join(f"`{name}`" for name in base_models if name) or "its base models"
    if run_info.license:
        return f"Released under `{run_info.license}`. The weights derive from {bases}, whose licences apply as well."
    return (
        f"The licence was not recorded for this run (`other`). The weights derive from {bases}; their licences apply."
    )


def template_path(name: str) -> Path:
    return Path(str(resources.files("voxlm.hub_cards") / name))


def common_sections(run_info: RunInfo, base_models: list[str], limitations: list[str]) -> str:
    """Training, evaluation, limitations, notes and licence: the part every kind of card shares."""
    import jinja2

    training = run_info.training
    context = {
        "recipe": RECIPES.get(run_info.recipe, run_info.recipe or NOT_RECORDED),
        "stages": _stage_rows(run_info.stages),
        "datasets": ", ".join(_dataset_line(d) for d in run_info.datasets) or NOT_RECORDED,
        "training_time": format_duration(training.get("seconds")),
        "cpu_time": f"{format_duration(training['cpu_seconds'])} (all cores added up)"
        if training.get("cpu_seconds")
        else None,
        "hardware": training.get("hardware", NOT_RECORDED),
        "seed": training.get("seed"),
        "metrics": _metric_rows(run_info.metrics),
        "limitations": _limitations(run_info, limitations),
        "notes": run_info.notes,
        "license_text": _license_text(run_info, base_models),
    }
    return jinja2.Template(template_path("card_common.md").read_text()).render(**context)


def _render(template: str, data: ModelCardData, **context) -> ModelCard:
    return ModelCard.from_template(data, template_path=str(template_path(template)), **context)


def voxlm_card(
    model, processor, run_info: RunInfo, repo_id: str, sample_name: str, lora_state: str = "none"
) -> ModelCard:
    """The model card of a VoxLM model about to be published as `repo_id`.

    `lora_state` is what publishing did with LoRA: "merged", "kept" or "none" (there was none).
    """
    from voxlm.modeling.configuration_voxlm import audio_input_rate

    config = model.config
    model_name = repo_id.split("/")[-1]
    audio_base, text_base = run_info.base_models.get("audio"), run_info.base_models.get("text")
    instruction = run_info.instruction if run_info.instruction is not None else DEFAULT_INSTRUCTION
    chat = bool(processor.chat_template or getattr(processor.tokenizer, "chat_template", None))
    tags = ["voxlm", "speech", "audio-text-to-text", "custom_code"] + ([run_info.recipe] if run_info.recipe else [])
    layer = config.audio_layer
    ten_seconds = int(10 * audio_input_rate(config.audio_config))  # encoder input steps in 10 s of audio
    return _render(
        "voxlm_card.md",
        card_data(run_info, model_name, [audio_base, text_base], tags, pipeline_tag="audio-text-to-text"),
        model_name=model_name,
        audio_base=_code_name(audio_base),
        text_base=_code_name(text_base),
        audio_family=config.audio_config.model_type,
        text_family=config.text_config.model_type,
        audio_layer="learnable mix of all layers"
        if layer == "mix"
        else ("last layer" if layer == -1 else f"layer {layer}"),
        audio_token=config.audio_token,
        adapter=_adapter_description(config.adapter),
        positions_per_second=f"{config.audio_positions_per_second:g}",
        ten_second_positions=int(config.num_audio_positions(ten_seconds)),
        length_formula=json.dumps(config.audio_length_formula),
        params=_parameter_counts(model, run_info),
        lora=_lora_description(config, lora_state),
        usage_code=_usage_code(repo_id, instruction, sample_name, chat, config.is_encoder_decoder, config.audio_token),
        pipeline_code=_pipeline_code(repo_id, instruction, sample_name),
        common_sections=common_sections(run_info, [audio_base, text_base], _voxlm_limitations(config)),
    )


# ---------------------------------------------------------------------------------- speech-token classifier
def _classifier_usage_code(repo_id: str, sample: str, transcript: str) -> str:
    return "\n".join(
        [
            "import soundfile as sf",
            "import torch",
            "from transformers import AutoModelForSequenceClassification, AutoProcessor",
            "from transformers.utils import cached_file",
            "",
            f'repo_id = "{repo_id}"',
            "model = AutoModelForSequenceClassification.from_pretrained(repo_id)",
            "processor = AutoProcessor.from_pretrained(repo_id, trust_remote_code=True)",
            "",
            f"# The transcript and the recording of one utterance; {sample} ships with the model.",
            f'audio, sampling_rate = sf.read(cached_file(repo_id, "{sample}"), dtype="float32")',
            f"inputs = processor(text=[{json.dumps(transcript)}], audio=[audio], sampling_rate=sampling_rate, "
            "resample=True)",
            "with torch.no_grad():",
            "    logits = model(**inputs).logits",
            "print(model.config.id2label[int(logits.argmax(-1))])",
        ]
    )


def classifier_card(
    model, processor, run_info: RunInfo, repo_id: str, sample_name: str, transcript: str, vocabulary: dict | None
) -> ModelCard:
    """The card of a speech-token classifier: a text LM reading text and selected speech units.

    `vocabulary` is the selection file (`audio_vocabulary.json`: settings, report, kept tokens with weights).
    """
    model_name = repo_id.split("/")[-1]
    text_base, units = run_info.base_models.get("text"), run_info.base_models.get("audio")
    kept = (vocabulary or {}).get("kept_tokens", [])
    method = (vocabulary or {}).get("settings", {}).get("method")
    tags = ["voxlm", "speech", "audio-classification", "speech-tokens", "custom_code"]
    labels = [model.config.id2label[i] for i in sorted(model.config.id2label)]
    specific = [
        "Only the selected audio tokens reach the language model: everything else the unit tokenizer hears is "
        "dropped, so cues outside that vocabulary cannot inform the prediction."
    ]
    return _render(
        "classifier_card.md",
        card_data(run_info, model_name, [text_base, units], tags, pipeline_tag="audio-classification"),
        model_name=model_name,
        text_base=_code_name(text_base),
        units_base=_code_name(units),
        text_family=model.config.model_type,
        labels=", ".join(f"`{label}`" for label in labels),
        num_tokens=len(kept) if vocabulary else NOT_RECORDED,
        selection=method or NOT_RECORDED,
        top_tokens=", ".join(f"`{item['token']}`" for item in kept[:10]),
        total=format_count(sum(p.numel() for p in model.parameters())),
        trainable=format_count(run_info.trainable),
        usage_code=_classifier_usage_code(repo_id, sample_name, transcript),
        common_sections=common_sections(run_info, [text_base, units], specific),
    )


# --------------------------------------------------------------------------------------------- checking
def check_card(text: str) -> ModelCard:
    """Parse a card with huggingface_hub as the Hub would (offline): YAML metadata, model-index, licence.

    Raises `ValueError` naming the problem. (`ModelCard.validate()` asks the Hub itself and needs the network.)
    """
    card = ModelCard(text, ignore_metadata_errors=False)
    data = card.data
    if not data.to_dict():
        raise ValueError("The model card has no YAML metadata block.")
    for required in ("license", "library_name", "pipeline_tag"):
        if not getattr(data, required, None):
            raise ValueError(f"The model card's metadata lacks `{required}`.")
    if data.eval_results and not data.model_name:
        raise ValueError("The model card has results but no model name for its model-index.")
    return card


def python_blocks(text: str) -> list[str]:
    """The ```python code blocks of a Markdown text, in order."""
    return [block.strip("\n") for block in re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)]


__all__ = ["RECIPES", "TASK_TYPES", "check_card", "classifier_card", "eval_results", "python_blocks", "voxlm_card"]
