"""`python -m voxlm.train.curriculum --config recipe.yaml` (or under `accelerate launch -m`)."""

import sys

from voxlm.train.curriculum.recipe import main

main(sys.argv[1:])
