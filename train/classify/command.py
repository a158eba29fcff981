"""`voxlm classify --config <yaml>`: the speech-token classification study (see `voxlm.train.classify`).

Kept apart from `voxlm.train.classify` so that `voxlm --help` does not import torch and transformers.
"""

import argparse

DESCRIPTION = (
    "Speech tokens for classification: Lasso token selection, new-row adaptation and LoRA fine-tuning, with the "
    "text / selected / random / all ablation over several seeds."
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("classify", help="speech-token classification study", description=DESCRIPTION)
    parser.add_argument("--config", required=True, help="YAML file (see train/configs/classify_offline.yaml).")
    parser.add_argument("--output_dir", help="Override `output_dir`.")
    parser.add_argument("--conditions", nargs="+", choices=("text", "selected", "random", "all"))
    parser.add_argument("--seeds", nargs="+", type=int, help="Override `seeds`.")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .study import run_from_args

    run_from_args(args)
    return 0
