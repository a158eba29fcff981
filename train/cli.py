"""The `voxlm` command. Each subcommand lives in its own module, which exposes `register(subparsers)`: it adds its
parser and sets `func` (called with the parsed arguments, returning an exit code). Adding a subcommand is one line in
`SUBCOMMANDS`.
"""

import argparse
import importlib
import os
import sys

# name -> module defining `register(subparsers)`; these modules import torch and transformers only when they run.
SUBCOMMANDS = {
    "demo": "voxlm.train.offline.demo",
    "push": "voxlm.hub_cards.push",
    "classify": "voxlm.train.classify.command",
    "chat": "voxlm.chat.command",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="voxlm", description="VoxLM: give pre-trained text language models ears. Run `voxlm <command> --help`."
    )
    subparsers = parser.add_subparsers(dest="command", metavar="<command>", required=True)
    for module in SUBCOMMANDS.values():
        importlib.import_module(module).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    # Threads that spin while waiting starve everything else on a small shared machine (a 42 ms encoder call took
    # 1.3 s with 2 spinning threads on a busy 2-core box); must be set before torch loads OpenMP.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (OSError, ValueError) as error:
        # Expected problems (bad folder, missing token, invalid run_info.json) get one clear line, not a traceback.
        print(f"voxlm {args.command}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        # Finished steps are on disk (demo steps, data sets, training checkpoints): the same command continues.
        print(f"\nvoxlm {args.command}: interrupted; run the same command again to continue.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
