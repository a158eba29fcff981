"""Sequence classification with LoRA: class-weighted cross-entropy, macro-F1 (and positive-class F1)."""

import numpy as np
import torch
from datasets import Dataset
from torch.nn import functional as F
from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding, Trainer, TrainingArguments
from transformers.utils import logging

logger = logging.get_logger(__name__)

# LoRA targets by attention projection names: Llama/Qwen/Mistral/SmolLM, BERT-like, GPT-2.
LORA_TARGETS = (("q_proj", "v_proj"), ("query", "value"), ("c_attn",))


def training_arguments(
    output_dir: str,
    epochs: float,
    max_steps: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
    warmup: float,
    logging_steps: int,
    **overrides,
) -> TrainingArguments:
    """The `TrainingArguments` of the recipe's two training steps: linear decay after `warmup` (a share of the
    steps), no checkpoints, no trackers, seeded data order."""
    return TrainingArguments(
        output_dir=output_dir,
        num_train_epochs=epochs,
        max_steps=max_steps,
        per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=batch_size,
        learning_rate=learning_rate,
        lr_scheduler_type="linear",
        warmup_steps=warmup,
        logging_steps=logging_steps,
        save_strategy="no",
        report_to=[],
        seed=seed,
        data_seed=seed,
        dataloader_num_workers=0,
        # pinned memory only helps a GPU; on the CPU torch warns at every data loader
        **{"dataloader_pin_memory": torch.cuda.is_available(), **overrides},
    )


def balanced_class_weights(labels, num_labels: int) -> torch.Tensor:
    """`n_samples / (n_classes * count(c))` per class (scikit-learn's "balanced"); absent classes get 0."""
    counts = np.bincount(np.asarray(labels), minlength=num_labels).astype(np.float64)
    weights = np.where(counts > 0, counts.sum() / (np.count_nonzero(counts) * np.maximum(counts, 1)), 0.0)
    return torch.tensor(weights, dtype=torch.float32)


def weighted_cross_entropy(class_weights: torch.Tensor | None):
    """A `Trainer(compute_loss_func=...)` loss: cross-entropy of the logits, weighted by class."""

    def loss(outputs, labels, num_items_in_batch=None):
        logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
        weight = class_weights.to(logits.device, logits.dtype) if class_weights is not None else None
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), labels.view(-1), weight=weight)

    return loss


def classification_metrics(labels, predictions, num_labels: int) -> dict[str, float]:
    """Macro-F1 and accuracy; with two classes also the F1 of class 1 (the detection target)."""
    from sklearn.metrics import accuracy_score, f1_score

    labels, predictions = np.asarray(labels), np.asarray(predictions)
    metrics = {
        "macro_f1": float(f1_score(labels, predictions, average="macro", labels=list(range(num_labels)))),
        "accuracy": float(accuracy_score(labels, predictions)),
    }
    if num_labels == 2:
        metrics["positive_f1"] = float(f1_score(labels, predictions, pos_label=1, average="binary", zero_division=0))
    return metrics


def lora_targets(model, requested="auto") -> list[str]:
    """The LoRA target modules: as given, or the attention query/value projections found in `model`."""
    if requested != "auto":
        return list(requested)
    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    for targets in LORA_TARGETS:
        if set(targets) <= names:
            return list(targets)
    raise ValueError(
        f"Cannot find attention projections to put LoRA on in {type(model).__name__}; set `lora.target_modules` "
        "in the config (e.g. ['q_proj', 'v_proj'])."
    )


def load_classifier(model_path: str, num_labels: int, tokenizer, new_rows: dict[int, torch.Tensor] | None = None):
    """`AutoModelForSequenceClassification` from `model_path`, resized to the tokenizer, with the adapted
    embedding rows `new_rows` ({token id: row}) written in."""
    model = AutoModelForSequenceClassification.from_pretrained(model_path, num_labels=num_labels)
    model.resize_token_embeddings(len(tokenizer), mean_resizing=True)
    if new_rows:
        ids = torch.tensor(list(new_rows))
        with torch.no_grad():
            model.get_input_embeddings().weight[ids] = torch.stack(list(new_rows.values())).to(model.dtype)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model


def add_lora(model, r: int = 64, alpha: int = 128, dropout: float = 0.05, target_modules="auto"):
    """peft LoRA for sequence classification: the LoRA layers and the classification head are trained."""
    from peft import LoraConfig, TaskType, get_peft_model

    config = LoraConfig(
        task_type=TaskType.SEQ_CLS,
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=lora_targets(model, target_modules),
    )
    return get_peft_model(model, config)


def finetune_and_evaluate(
    model,
    tokenizer,
    train_rows: list[dict],
    test_rows: list[dict],
    num_labels: int,
    output_dir: str,
    epochs: float = 3.0,
    learning_rate: float = 2e-4,
    batch_size: int = 16,
    class_weighted: bool = True,
    max_steps: int = -1,
    seed: int = 0,
    logging_steps: int = 10,
) -> tuple[dict[str, float], object]:
    """Train on `train_rows` (`input_ids`, `attention_mask`, `labels`), then score `test_rows`.

    Returns the test metrics (`classification_metrics`) and the trained model.
    """
    labels = [row["labels"] for row in train_rows]
    weights = balanced_class_weights(labels, num_labels) if class_weighted else None
    arguments = training_arguments(output_dir, epochs, max_steps, batch_size, learning_rate, seed, 0.1, logging_steps)
    trainer = Trainer(
        model=model,
        args=arguments,
        train_dataset=Dataset.from_list(train_rows),
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_loss_func=weighted_cross_entropy(weights),
    )
    trainer.train()
    prediction = trainer.predict(Dataset.from_list(test_rows))
    logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
    metrics = classification_metrics(prediction.label_ids, logits.argmax(-1), num_labels)
    return metrics, trainer.model


__all__ = [
    "add_lora",
    "balanced_class_weights",
    "classification_metrics",
    "finetune_and_evaluate",
    "load_classifier",
    "lora_targets",
    "training_arguments",
    "weighted_cross_entropy",
]
