"""`voxlm push <run_dir> <repo_id>`: publish a run folder as a self-contained Hub repository in one commit.

The folder that is uploaded is built first (`export_folder`): the model (LoRA merged unless `--keep-lora`; speech-only
LoRA is always kept), the processor, the code files for `trust_remote_code`, the spoken-prompt pipeline, a sample clip
and the model card.
`--dry-run <out_dir>` writes exactly that folder and stops. Otherwise it is uploaded with huggingface_hub
(`create_repo(exist_ok=True)`, then one `create_commit`), which also removes weight and code files that an earlier
upload left in the repository and this one no longer has (a stale shard index would otherwise shadow the new
weights). The token is huggingface_hub's own (`hf auth login` or `HF_TOKEN`): voxlm only checks that there is one, and
never prints or writes it.

`--space [SPACE_ID]` also publishes a Gradio Space (default `<repo_id>-chat`) serving the `voxlm chat` page for the
model: `app.py`, `requirements.txt` and the page's code (`--dry-run OUT_DIR` writes it to `OUT_DIR-space`).
"""

import argparse
import dataclasses
import fnmatch
import tempfile
from pathlib import Path

from transformers.utils import logging

from .publishers import copy_files, find_publisher, folder_files
from .run_info import RunInfo

logger = logging.get_logger(__name__)

# Files of an earlier upload that must not outlive a new one: weights, shard indexes, code, configs, adapters.
STALE_PATTERNS = ("*.safetensors", "*.bin", "*.index.json", "*.py", "*.gguf", "adapter_config.json")


@dataclasses.dataclass
class ExportResult:
    folder: Path
    files: list[str]
    card: object  # huggingface_hub.ModelCard
    lora: str  # "merged", "kept" or "none"


def export_folder(
    run_dir: str | Path, out_dir: str | Path, repo_id: str, keep_lora: bool = False, license: str | None = None
) -> ExportResult:
    """Write the folder that `push` uploads for `run_dir` into `out_dir` (which must be empty or absent)."""
    from .card import check_card

    run_dir, out_dir = Path(run_dir), Path(out_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"Run folder {run_dir} does not exist.")
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} is not empty; pick a new or empty folder for the export.")
    out_dir.mkdir(parents=True, exist_ok=True)
    run_info = RunInfo.load(run_dir)
    if license:
        run_info.license = license
    publisher = find_publisher(run_dir, run_info)
    model, processor = publisher.load(run_dir)
    lora = "none"
    if publisher.has_lora(model):
        if not keep_lora and not publisher.lora_mergeable(model):
            logger.info(f"{run_dir}'s LoRA acts only on speech: it is kept unmerged, so text-only answers stay the "
                        "base model's.")  # fmt: skip
            keep_lora = True
        lora = "kept" if keep_lora else "merged"
        if not keep_lora:
            publisher.merge_lora(model)
    elif keep_lora:
        logger.warning(f"--keep-lora: {run_dir} has no unmerged LoRA layers; nothing to keep.")
    publisher.save(model, processor, out_dir)
    extra = publisher.travelling_files(run_dir, run_info)
    copy_files(extra, out_dir)
    card = publisher.card(model, processor, run_info, repo_id, extra, lora)
    card.save(out_dir / "README.md")
    check_card((out_dir / "README.md").read_text())
    check_self_contained(out_dir)
    return ExportResult(out_dir, folder_files(out_dir), card, lora)


def check_self_contained(folder: Path) -> None:
    """Every class named in config.json / processor_config.json (`auto_map`, `custom_pipelines`) has its file."""
    import json

    references = []
    for name in ("config.json", "processor_config.json", "tokenizer_config.json", "preprocessor_config.json"):
        path = folder / name
        if not path.is_file():
            continue
        config = json.loads(path.read_text())
        for value in config.get("auto_map", {}).values():
            references += [value] if isinstance(value, str) else [v for v in value if v]
        references += [task["impl"] for task in config.get("custom_pipelines", {}).values()]
    for reference in references:
        module = reference.split("--")[-1].rsplit(".", 1)[0]
        if not (folder / f"{module}.py").is_file():
            raise FileNotFoundError(f"{folder} names {reference} but lacks {module}.py; the code must travel too.")


# ------------------------------------------------------------------------------------------------- upload
def commit_operations(folder: Path, existing: list[str]) -> list:
    """`CommitOperationAdd` for every file of `folder`, `CommitOperationDelete` for stale files in `existing`."""
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    files = folder_files(folder)
    operations = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(folder / name)) for name in files]
    stale = [
        name
        for name in existing
        if name not in files and any(fnmatch.fnmatch(Path(name).name, pattern) for pattern in STALE_PATTERNS)
    ]
    return operations + [CommitOperationDelete(path_in_repo=name) for name in stale]


def upload_folder(
    folder: str | Path,
    repo_id: str,
    private: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
    commit_description: str | None = None,
    create_pr: bool = False,
    api=None,
    repo_type: str = "model",
):
    """Upload an exported folder in one commit; returns huggingface_hub's `CommitInfo`. `repo_type="space"` creates
    a Gradio Space."""
    from huggingface_hub import HfApi, get_token

    folder = Path(folder)
    if api is None:
        if get_token() is None:
            raise PermissionError(
                "No Hugging Face token found. Log in with `hf auth login` or set the HF_TOKEN environment variable."
            )
        api = HfApi()
    space = {"space_sdk": "gradio"} if repo_type == "space" else {}
    api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True, **space)
    if revision and revision != "main":
        api.create_branch(repo_id, branch=revision, exist_ok=True, repo_type=repo_type)
    existing = api.list_repo_files(repo_id, revision=revision, repo_type=repo_type)
    operations = commit_operations(folder, existing)
    return api.create_commit(
        repo_id,
        operations,
        commit_message=commit_message or f"Upload {repo_id.split('/')[-1]} with voxlm push",
        commit_description=commit_description,
        revision=revision,
        create_pr=create_pr,
        repo_type=repo_type,
    )


def push(
    run_dir: str | Path,
    repo_id: str,
    dry_run: str | Path | None = None,
    keep_lora: bool = False,
    license: str | None = None,
    **upload_kwargs,
):
    """Export `run_dir` and upload it to `repo_id`; with `dry_run`, only write the folder there."""
    if dry_run is not None:
        return export_folder(run_dir, dry_run, repo_id, keep_lora=keep_lora, license=license)
    with tempfile.TemporaryDirectory(prefix="voxlm-push-") as tmp:
        result = export_folder(run_dir, tmp, repo_id, keep_lora=keep_lora, license=license)
        return upload_folder(result.folder, repo_id, **upload_kwargs)


def export_space(run_dir: str | Path, out_dir: str | Path, repo_id: str, license: str | None = None) -> list[str]:
    """Write the Space that serves the `voxlm chat` page for `repo_id` (see `voxlm.chat.space`). With a Whisper
    encoder whose Hub id `run_info.json` records, the page also shows the Whisper -> LLM cascade."""
    import json

    from voxlm.chat.space import write_space

    run_info = RunInfo.load(run_dir)
    config = (
        json.loads((Path(run_dir) / "config.json").read_text()) if (Path(run_dir) / "config.json").is_file() else {}
    )
    audio = run_info.base_models.get("audio")
    is_whisper = config.get("audio_config", {}).get("model_type") == "whisper"
    asr_model = audio if is_whisper and audio and not Path(audio).exists() and audio.count("/") == 1 else None
    return write_space(out_dir, repo_id, asr_model=asr_model, license=license or run_info.license)


def push_space(run_dir: str | Path, repo_id: str, space_id: str, license: str | None = None, private: bool = False):
    """Write the Space for `repo_id` and upload it to `space_id` in one commit; returns the `CommitInfo`."""
    with tempfile.TemporaryDirectory(prefix="voxlm-space-") as tmp:
        export_space(run_dir, tmp, repo_id, license=license)
        return upload_folder(tmp, space_id, private=private, repo_type="space")


# ---------------------------------------------------------------------------------------------------- CLI
def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "push",
        help="publish a run folder to the Hugging Face Hub (model, processor, code, card) in one commit",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run_dir", help="run folder: the saved model and processor, plus run_info.json")
    parser.add_argument("repo_id", help="target repository, e.g. your-name/voxlm-whisper-smollm2")
    parser.add_argument("--dry-run", metavar="OUT_DIR", help="write the folder that would be uploaded here; no upload")
    parser.add_argument("--keep-lora", action="store_true", help="keep LoRA as peft layers instead of merging it")
    parser.add_argument("--private", action="store_true", help="create the repository as private (new repos only)")
    parser.add_argument("--revision", help="branch to commit to (created if missing); default: main")
    parser.add_argument("--commit-message", help="commit message (default: 'Upload <name> with voxlm push')")
    parser.add_argument("--commit-description", help="longer commit description")
    parser.add_argument("--create-pr", action="store_true", help="open a pull request instead of committing")
    parser.add_argument("--license", help="licence id for the card, overriding run_info.json (e.g. apache-2.0)")
    parser.add_argument(
        "--space",
        nargs="?",
        const="",
        metavar="SPACE_ID",
        help="also publish a Gradio Space with the `voxlm chat` page for the model (default id: <repo_id>-chat)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    space_id = None
    if args.space is not None:
        from voxlm.chat.space import space_id_for

        space_id = args.space or space_id_for(args.repo_id)
    if args.dry_run:
        result = export_folder(args.run_dir, args.dry_run, args.repo_id, keep_lora=args.keep_lora, license=args.license)
        print(f"Dry run: {len(result.files)} files for {args.repo_id} in {result.folder} (LoRA: {result.lora})")
        for name in result.files:
            print(f"  {name}  ({(result.folder / name).stat().st_size:,} bytes)")
        if space_id:
            folder = Path(f"{Path(args.dry_run)}-space")
            files = export_space(args.run_dir, folder, args.repo_id, license=args.license)
            print(f"Dry run: {len(files)} files for the Space {space_id} in {folder}")
            for name in files:
                print(f"  {name}")
        return 0
    info = push(
        args.run_dir,
        args.repo_id,
        keep_lora=args.keep_lora,
        license=args.license,
        private=args.private,
        revision=args.revision,
        commit_message=args.commit_message,
        commit_description=args.commit_description,
        create_pr=args.create_pr,
    )
    print(f"Pushed {args.repo_id}: {info.pr_url or info.commit_url}")
    if space_id:
        info = push_space(args.run_dir, args.repo_id, space_id, license=args.license, private=args.private)
        print(f"Pushed the Space {space_id}: {info.commit_url}")
    return 0


__all__ = ["commit_operations", "export_folder", "export_space", "push", "push_space", "upload_folder"]
