"""`python -m voxlm.train.classify --config study.yaml` (or under `accelerate launch -m`)."""

from voxlm.train.classify.study import main

main()
