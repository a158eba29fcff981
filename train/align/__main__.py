"""`python -m voxlm.train.align <command>` (or under `accelerate launch -m`)."""

from voxlm.train.align.command import main

main()
