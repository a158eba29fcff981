"""`voxlm chat [MODEL] [--port N] [--cascade]`: talk to a VoxLM model in a local web page.

MODEL is a VoxLM folder or Hub id; without it, VoxLM's shipped checkpoint (Whisper tiny.en -> trained adapter ->
SmolLM2-135M-Instruct), assembled from the offline assets as `voxlm demo` does: the demo's folder is reused when
`voxlm demo` has written it, otherwise the folder is built once in the VoxLM cache. With --cascade, Whisper
transcribes each clip and the same language model answers the transcript, beside the model's own answer.

The page is served from this machine only: no share link, no analytics, nothing fetched from the network.
"""

import argparse
import hashlib
from pathlib import Path

from voxlm.train.core.inference import QUANTIZE_CHOICES


def shipped_model(workdir: Path | None = None) -> Path:
    """The shipped checkpoint as a Hub-ready folder: `voxlm demo`'s (`<workdir>/model`) when it holds the shipped
    adapter, otherwise a folder built once in the VoxLM cache, named after the adapter's contents (a newer shipped
    checkpoint gets a new folder)."""
    # The one place that reaches into the offline training stack.
    from voxlm.train.offline.assets import cached_folder
    from voxlm.train.offline.shipped import ADAPTER_FILE, SHIPPED_NAME, hub_folder, shipped_dir

    adapter = shipped_dir() / ADAPTER_FILE
    if not adapter.is_file():
        raise FileNotFoundError(f"{adapter} is missing: the shipped checkpoint is not installed; reinstall voxlm.")
    if workdir is not None and _holds_adapter(workdir / "model", adapter):
        return workdir / "model"
    digest = hashlib.sha256(adapter.read_bytes() + (shipped_dir() / "config.json").read_bytes()).hexdigest()[:12]
    return cached_folder(f"{SHIPPED_NAME}-{digest}", hub_folder)


def _holds_adapter(folder: Path, adapter: Path) -> bool:
    """Whether a saved model folder carries exactly these adapter weights (the demo may hold a model of its own)."""
    import torch
    from safetensors import safe_open

    if not (folder / "config.json").is_file() or not (folder / "model.safetensors").is_file():
        return False
    with safe_open(str(adapter), "pt") as expected, safe_open(str(folder / "model.safetensors"), "pt") as saved:
        names = set(saved.keys())
        return all(
            name in names and torch.equal(saved.get_tensor(name), expected.get_tensor(name).to(torch.float32))
            for name in expected.keys()
        )


def default_asr_model() -> Path:
    """The cascade's Whisper: the offline Whisper tiny.en."""
    from voxlm.train.offline.assets import whisper_tiny_en_dir

    return whisper_tiny_en_dir()


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "chat",
        help="talk to a VoxLM model in a local web page (offline)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", nargs="?", help="VoxLM folder or Hub id (default: the shipped model)")
    parser.add_argument("--port", type=int, default=None, help="port to serve on (default: the first free from 7860)")
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on (default: this machine only)")
    parser.add_argument("--cascade", action="store_true", help="answer each turn with Whisper -> LLM as well")
    parser.add_argument("--asr-model", help="the cascade's Whisper: folder or Hub id (default: offline tiny.en)")
    parser.add_argument("--max-new-tokens", type=int, default=128, help="initial max new tokens (the page changes it)")
    parser.add_argument(
        "--quantize",
        choices=QUANTIZE_CHOICES,
        help="load the language model quantized (int4: ~2x less memory traffic per token) or in bf16; default fp32",
    )
    parser.add_argument(
        "--workdir", type=Path, default=Path("runs/demo"), help="`voxlm demo`'s folder, whose shipped model is reused"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.asr_model and not args.cascade:
        raise ValueError("--asr-model chooses the cascade's Whisper; add --cascade to use it.")
    if args.max_new_tokens < 1:
        raise ValueError(f"--max-new-tokens must be at least 1, got {args.max_new_tokens}.")
    try:
        from voxlm.chat.app import build_app, launch
    except ImportError as error:
        raise OSError(f"`voxlm chat` needs gradio ({error}); install it with `pip install 'voxlm[chat]'`.") from error
    from voxlm.chat.engine import ChatEngine, Settings

    model = args.model or shipped_model(args.workdir)
    asr = (args.asr_model or default_asr_model()) if args.cascade else None
    print(f"voxlm chat: loading {model}" + (f" and the cascade's Whisper {asr}" if asr else ""), flush=True)
    from voxlm.train.core.inference import quantization_kwargs

    engine = ChatEngine.from_pretrained(model, asr_model=asr, **quantization_kwargs(args.quantize))
    if args.model is None:
        engine.name = "VoxLM shipped (Whisper tiny.en + SmolLM2-135M-Instruct)"
    app = build_app(engine, Settings(max_new_tokens=args.max_new_tokens))
    _, url, _ = launch(app, host=args.host, port=args.port, prevent_thread_lock=True, quiet=True)
    print(f"voxlm chat: {engine.name} at {url} (Ctrl-C to stop)", flush=True)
    app.block_thread()  # until Ctrl-C, which closes the server
    return 0
