"""A Hugging Face Space that serves the `voxlm chat` page for a pushed model (`voxlm push --space`).

The Space holds `app.py` (loads the model repository with `trust_remote_code` and starts the page),
`requirements.txt`, a README with the Space settings, and a copy of the page's code in `voxlm_chat/` (the engine
and the gradio app use flat imports only), so it runs without the voxlm package.
"""

import json
import shutil
from pathlib import Path

# The page's code travels as this package; `__init__.py` stays empty so that it imports nothing by itself.
PACKAGE = "voxlm_chat"
CODE_FILES = ("engine.py", "app.py")
REQUIREMENTS = (
    "torch",
    "transformers>=5.0,<6",
    "peft>=0.17",  # for models pushed with --keep-lora
    "numpy",
    "scipy",  # the processor resamples uploads
    "soundfile",
)
APP_TEMPLATE = '''"""Talk to {model_id} in the browser: the page of `voxlm chat`, written by `voxlm push --space`."""

from voxlm_chat.app import build_app, launch
from voxlm_chat.engine import ChatEngine, Settings

MODEL = {model!r}
ASR_MODEL = {asr_model!r}  # the cascade's Whisper, or None for no cascade

engine = ChatEngine.from_pretrained(MODEL, asr_model=ASR_MODEL)
demo = build_app(engine, Settings(max_new_tokens={max_new_tokens}))

if __name__ == "__main__":
    launch(demo, host=None)  # None: the address the Space sets in GRADIO_SERVER_NAME
'''


def gradio_version() -> str:
    """The gradio release the Space runs (`sdk_version`): the one the page was built and tested with here."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("gradio")
    except PackageNotFoundError as error:
        raise OSError("Writing a Space needs gradio installed: pip install 'voxlm[chat]'.") from error


def space_id_for(model_id: str) -> str:
    """The default Space of a model repository: `<owner>/<name>-chat`."""
    return f"{model_id}-chat"


def write_space(
    folder: str | Path,
    model_id: str,
    asr_model: str | None = None,
    max_new_tokens: int = 128,
    license: str | None = None,
    model: str | None = None,
) -> list[str]:
    """Write the Space for `model_id` into `folder` (which must be empty or absent); returns the files written.

    `asr_model` (a Hub id of a Whisper model) adds the cascade column; `model` loads another id or path than
    `model_id` (tests point it at a local folder).
    """
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()):
        raise FileExistsError(f"{folder} is not empty; pick a new or empty folder for the Space.")
    package = folder / PACKAGE
    package.mkdir(parents=True)
    source = Path(__file__).resolve().parent
    for name in CODE_FILES:
        shutil.copyfile(source / name, package / name)
    (package / "__init__.py").write_text('"""The page of `voxlm chat` (engine and gradio app)."""\n')
    (folder / "app.py").write_text(
        APP_TEMPLATE.format(
            model_id=model_id, model=model or model_id, asr_model=asr_model, max_new_tokens=max_new_tokens
        )
    )
    (folder / "requirements.txt").write_text("\n".join(REQUIREMENTS) + "\n")
    (folder / "README.md").write_text(_space_card(model_id, asr_model, license))
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())


def _space_card(model_id: str, asr_model: str | None, license: str | None) -> str:
    """The Space's README: its settings (YAML front matter) and a line on what it shows."""
    name = model_id.split("/")[-1]
    settings = {
        "title": f"{name} chat"[:60],  # the Hub's limit for Space titles
        "emoji": "🎙️",
        "colorFrom": "indigo",
        "colorTo": "blue",
        "sdk": "gradio",
        "sdk_version": gradio_version(),
        "app_file": "app.py",
        "pinned": False,
        "models": [model_id] + ([asr_model] if asr_model else []),
        **({"license": license} if license else {}),
        "short_description": "Talk to a VoxLM speech LLM: record or upload speech",
    }
    front = "\n".join(f"{key}: {json.dumps(value, ensure_ascii=False)}" for key, value in settings.items())
    cascade = (
        f" Beside each answer, the cascade answers the same turn: {asr_model} transcribes the clip and the same "
        "language model answers the transcript."
        if asr_model
        else ""
    )
    return (
        f"---\n{front}\n---\n\n# Talk to [{model_id}](https://huggingface.co/{model_id})\n\n"
        "Record or upload speech, add an instruction if you like, and send: the model hears the audio itself. Answers "
        "stream token by token, with the clip's length, the audio positions the language model read, the time to the "
        f"first token and the decoding speed.{cascade}\n\nWritten by `voxlm push --space`; `voxlm chat "
        f"{model_id}` serves the same page locally.\n"
    )


__all__ = ["APP_TEMPLATE", "CODE_FILES", "PACKAGE", "REQUIREMENTS", "space_id_for", "write_space"]
