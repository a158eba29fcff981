"""Loading a VoxLM model for answering: full precision, bf16 or quantized, the way a Hub user loads it.

    model, processor = load_for_inference("runs/demo/model", quantize="int4")

`quantize` names a preset; each is an ordinary `from_pretrained` argument (`dtype=` or `quantization_config=`), so
the same model loads without voxlm as

    AutoModel.from_pretrained(
        repo,
        trust_remote_code=True,
        quantization_config={"quant_method": "voxlm", "bits": 4, "lm_head_bits": 8, "bf16_prefill": None},
    )
"""

import os

from transformers.utils import logging

logger = logging.get_logger(__name__)

# Presets of `--quantize`. int4: int4 layers (groups of 32) and an 8-bit output layer (groups of 32, two int4 planes),
# which reads half the bytes of an fp32 one per token; an int4 output layer, or int8 (dynamic) layers, changed the
# shipped model's answers. The preset is tuned for answering fast: on CPUs with bf16 matrix instructions it keeps a
# bf16 copy of the int4 weights for prefilling prompts (faster first token, about fp32's memory in all); pass
# `quantization_config={"quant_method": "voxlm", "bits": 4, "lm_head_bits": 8}` for the smallest memory. See
# benchmarks/README.md, "Answering latency".
QUANTIZE_PRESETS = {
    "bf16": {"dtype": "bfloat16"},
    "int8": {"quantization_config": {"quant_method": "voxlm", "bits": 8}},
    "int4": {
        "quantization_config": {
            "quant_method": "voxlm",
            "bits": 4,
            "group_size": 32,
            "lm_head_bits": 8,
            "bf16_prefill": None,
        }
    },
}
QUANTIZE_CHOICES = tuple(QUANTIZE_PRESETS)  # the values of `--quantize` (no option: fp32)


def quantization_kwargs(quantize: str | None) -> dict:
    """The `from_pretrained` arguments of a `--quantize` preset (None or "fp32": none)."""
    if quantize in (None, "fp32"):
        return {}
    if quantize not in QUANTIZE_PRESETS:
        raise ValueError(f"Unknown quantize preset {quantize!r}; choose one of fp32, {', '.join(QUANTIZE_PRESETS)}.")
    preset = QUANTIZE_PRESETS[quantize]
    # A fresh dict per call: from_pretrained stores the config object on the model.
    return {key: dict(value) if isinstance(value, dict) else value for key, value in preset.items()}


def set_cpu_threads(threads: int | None) -> None:
    """Use `threads` torch threads (None: leave torch's default).

    OMP_WAIT_POLICY=PASSIVE (threads sleep instead of spinning between operations) is read when OpenMP starts, so it
    must be in the environment before torch runs its first parallel operation; `voxlm` sets it at start-up.
    """
    import torch

    if threads is not None:
        torch.set_num_threads(threads)
    if os.environ.get("OMP_WAIT_POLICY", "").upper() != "PASSIVE":
        logger.info("OMP_WAIT_POLICY is not PASSIVE: idle OpenMP threads spin and slow down other processes.")


def load_for_inference(path, quantize: str | None = None, threads: int | None = None, **kwargs):
    """A VoxLM model (in eval mode) and its processor from a folder or Hub repository, for answering.

    Args:
        path: a saved VoxLM folder or a Hub id.
        quantize: None/"fp32", "bf16", "int8" or "int4" (see `QUANTIZE_PRESETS`); the language model's linear
            layers are quantized at load time, the adapter and norms stay full precision.
        threads: torch threads to use (None: torch's default).
        kwargs: passed to `AutoModel.from_pretrained` (e.g. `quantization_config=` for other settings).
    """
    from transformers import AutoModel, AutoProcessor

    set_cpu_threads(threads)
    load_kwargs = {**quantization_kwargs(quantize), **kwargs}
    model = AutoModel.from_pretrained(path, trust_remote_code=True, **load_kwargs).eval()
    processor = AutoProcessor.from_pretrained(path, trust_remote_code=True)
    return model, processor


__all__ = ["QUANTIZE_CHOICES", "QUANTIZE_PRESETS", "load_for_inference", "quantization_kwargs", "set_cpu_threads"]
