"""Behaviour alignment (BLSP, Wang et al., arXiv 2309.00916): `accelerate launch -m voxlm.train.align <command>`.

Commands:
  continuations  the frozen LLM continues every transcript of an ASR data set (sharded, resumable, multi-process)
  train          train the adapter only, so that the LLM given the speech writes the continuation (or, with
                 `--objective kd`, matches its own next-token distributions given the transcript: BLSP-KD)
  evaluate       behaviour alignment on held-out speech: responses to the speech vs the LLM's responses to the
                 transcript for several instructions, ASR WER, and the Whisper -> LLM cascade

Every command takes `--config file.yaml` (keys are the option names); options given on the command line win.
Run `python -m voxlm.train.align <command> --help` for the options of a command.
"""

import argparse
import logging as pylogging
import sys

from transformers import HfArgumentParser
from transformers.utils import logging

from voxlm.train.core.config import check_keys, load_config

COMMANDS = ("continuations", "train", "evaluate")
CONFIG_OPTION = argparse.ArgumentParser(add_help=False)  # reads `--config` before the command's own parser
CONFIG_OPTION.add_argument("--config")


def command_dataclasses(command: str) -> tuple:
    if command == "continuations":
        from .continuations import ContinuationArguments

        return (ContinuationArguments,)
    if command == "train":
        from .training import AlignTrainArguments, AlignTrainingArguments

        return (AlignTrainArguments, AlignTrainingArguments)
    from .evaluate import AlignEvalArguments

    return (AlignEvalArguments,)


def parse_command_args(command: str, argv: list[str]) -> tuple:
    """Parse the options of `command`; a `--config` YAML file supplies defaults that the command line overrides."""
    dataclass_types = command_dataclasses(command)
    parser = HfArgumentParser(dataclass_types, prog=f"python -m voxlm.train.align {command}")
    parser.add_argument("--config", default=None, help="YAML file of options (keys are option names).")
    config_path = CONFIG_OPTION.parse_known_args(argv)[0].config
    if config_path:
        values = {key.replace("-", "_"): value for key, value in load_config(config_path).items()}
        options = [action.dest for action in parser._actions if action.dest not in ("help", "config")]
        try:
            check_keys(config_path, values, options, f"see `python -m voxlm.train.align {command} --help`")
        except ValueError as error:
            raise SystemExit(str(error)) from None
        for action in parser._actions:  # options given in the file are no longer required on the command line
            if action.dest in values:
                action.required = False
        # argparse converts string defaults with the option's type, so "1e-4" in the YAML becomes a float.
        parser.set_defaults(**values)
    # The last item is a namespace holding `--config`, which no dataclass has.
    return parser.parse_args_into_dataclasses(argv)[: len(dataclass_types)]


def show_progress_messages() -> None:
    """Print the recipe's own INFO messages (timings, output paths); transformers stays at WARNING."""
    voxlm_logger = pylogging.getLogger("voxlm")
    if not voxlm_logger.handlers:
        handler = pylogging.StreamHandler()
        handler.setFormatter(pylogging.Formatter("[voxlm] %(message)s"))
        voxlm_logger.addHandler(handler)
    voxlm_logger.setLevel(pylogging.INFO)


def main(argv: list[str] | None = None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print(__doc__)
        if argv and argv[0] not in ("-h", "--help"):
            raise SystemExit(f"Unknown command {argv[0]!r}; use one of {', '.join(COMMANDS)}.")
        return None
    logging.set_verbosity_warning()
    show_progress_messages()
    command, args = argv[0], parse_command_args(argv[0], argv[1:])
    if command == "continuations":
        from .continuations import generate_continuations

        return generate_continuations(*args)
    if command == "train":
        from .training import train

        return train(*args)
    from .evaluate import evaluate_alignment

    return evaluate_alignment(*args)


if __name__ == "__main__":
    main()
