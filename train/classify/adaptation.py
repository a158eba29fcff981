"""Adapt the embeddings of newly added tokens only: every other weight of the LM stays bit-identical.

New rows (the audio tokens and markers a `SpeechTokenProcessor` adds) are learned with the LM's own self-supervised
objective on unlabelled multimodal sequences: causal LM loss for decoder LMs, masked LM loss for encoder LMs.
peft's `TrainableTokens` holds the new rows as a separate delta (tied output embeddings follow the input rows), so
old rows and all other weights cannot move; `merge_and_unload` writes the learned rows back.
"""

import math

import torch
from datasets import Dataset
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    DataCollatorForLanguageModeling,
    Trainer,
)
from transformers.utils import logging

from .classification import training_arguments

logger = logging.get_logger(__name__)

OBJECTIVES = ("causal", "masked")


def lm_objective(model_path: str, objective: str = "auto") -> str:
    """`"masked"` for encoder LMs (families with a masked-LM head, e.g. BERT), `"causal"` for decoder LMs."""
    if objective == "auto":
        from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES

        config = AutoConfig.from_pretrained(model_path)
        is_encoder = config.model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES and not getattr(config, "is_decoder", False)
        return "masked" if is_encoder else "causal"
    if objective not in OBJECTIVES:
        raise ValueError(f"`objective` must be 'auto' or one of {OBJECTIVES}, got {objective!r}.")
    return objective


def load_language_model(model_path: str, objective: str, num_tokens: int):
    """The LM with its LM head, resized to `num_tokens` rows (new rows start at the mean embedding).

    Encoder checkpoints saved without their masked-LM head (e.g. sentence-transformers models) get an identity
    head transform instead of a random one, so that the masked-LM logits score the hidden states against the
    (tied) embedding rows from the first step.
    """
    auto_class = AutoModelForCausalLM if objective == "causal" else AutoModelForMaskedLM
    model, info = auto_class.from_pretrained(model_path, output_loading_info=True)
    if objective == "masked":
        _identity_head_if_missing(model, info["missing_keys"])
    model.resize_token_embeddings(num_tokens, mean_resizing=True)
    return model


def _identity_head_if_missing(model, missing_keys) -> None:
    transform = getattr(getattr(getattr(model, "cls", None), "predictions", None), "transform", None)
    if transform is None or not any(".transform." in key for key in missing_keys):
        return
    logger.info("The checkpoint has no masked-LM head transform; starting it as the identity.")
    with torch.no_grad():
        transform.dense.weight.copy_(torch.eye(transform.dense.weight.shape[0]))
        transform.dense.bias.zero_()
        transform.LayerNorm.weight.fill_(1.0)
        transform.LayerNorm.bias.zero_()
        if any(key.endswith("predictions.bias") for key in missing_keys):
            model.cls.predictions.bias.zero_()


def adapt_new_embeddings(
    model,
    tokenizer,
    sequences: list[dict],
    new_token_ids: list[int],
    objective: str,
    output_dir: str,
    epochs: float = 1.0,
    learning_rate: float = 3e-4,
    batch_size: int = 16,
    mlm_probability: float = 0.15,
    max_steps: int = -1,
    seed: int = 0,
    logging_steps: int = 10,
):
    """Train only the rows `new_token_ids` of `model`'s (resized) embeddings on `sequences`.

    sequences: tokenized examples (`input_ids`, and `special_tokens_mask` for the masked objective).
    Returns the model with the learned rows merged in (a plain transformers model again) and the training loss.
    """
    from peft import TrainableTokensConfig, get_peft_model

    if not new_token_ids:
        return model, {"adaptation_loss": None, "adaptation_steps": 0}
    peft_model = get_peft_model(model, TrainableTokensConfig(token_indices=list(new_token_ids)))
    collator = DataCollatorForLanguageModeling(
        tokenizer, mlm=objective == "masked", mlm_probability=mlm_probability, seed=seed
    )
    # weight_decay=0: AdamW must not shrink anything (the frozen rows get no gradient and stay bit-identical).
    arguments = training_arguments(
        output_dir,
        epochs,
        max_steps,
        batch_size,
        learning_rate,
        seed,
        warmup=0.05,
        logging_steps=logging_steps,
        weight_decay=0.0,
        remove_unused_columns=False,
    )
    trainer = Trainer(
        model=peft_model, args=arguments, train_dataset=Dataset.from_list(sequences), data_collator=collator
    )
    result = trainer.train()
    model = peft_model.merge_and_unload()
    loss = result.training_loss
    return model, {
        "adaptation_loss": None if loss is None or math.isnan(loss) else float(loss),
        "adaptation_steps": int(result.global_step),
    }


__all__ = ["adapt_new_embeddings", "lm_objective", "load_language_model"]
