"""Training computes the LM head only at positions that predict a label; loss and gradients must not change."""

import pytest
import torch
from tiny import tiny_voxlm, tone

CLIPS = [tone(1.0, seed=1), tone(2.3, seed=2, frequency=330)]
PROMPTS = ["<|audio|> transcribe", "say <|audio|> now please"]
RESPONSES = ["the quick brown fox", "hello"]


def _loss_and_grads(model, batch, **kwargs):
    model.zero_grad()
    torch.manual_seed(1)  # GPT-2 has dropout: the same draws in both runs
    outputs = model(**batch, **kwargs)
    outputs.loss.backward()
    return outputs, {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("text_family", ["llama", "gpt2"])
def test_loss_and_gradients_equal_full_logits(text_family):
    model, processor = tiny_voxlm("whisper", text_family, adapter="blsp")
    batch = processor.prepare_for_training(PROMPTS, RESPONSES, audio=CLIPS, sampling_rate=16000)
    model.train()
    fast, fast_grads = _loss_and_grads(model, batch)
    model.logits_at_labels_only = False
    full, full_grads = _loss_and_grads(model, batch)
    torch.testing.assert_close(fast.loss, full.loss)
    assert fast_grads.keys() == full_grads.keys()
    for name in full_grads:
        torch.testing.assert_close(fast_grads[name], full_grads[name], atol=1e-6, rtol=1e-5)
    # The kept positions are exactly those whose next token is a label, and their logits are the full ones.
    shift_labels = batch["labels"][:, 1:]
    positions = (shift_labels != -100).any(dim=0).nonzero().squeeze(-1)
    assert fast.logits.shape == (2, len(positions), model.config.text_config.vocab_size)
    torch.testing.assert_close(fast.logits, full.logits[:, positions], atol=1e-5, rtol=1e-5)
    assert len(positions) < batch["input_ids"].shape[1] // 2  # most positions (audio, prompt) carry no label


def test_num_items_in_batch_reaches_the_loss():
    model, processor = tiny_voxlm("whisper", "llama", adapter="ultravox")
    batch = processor.prepare_for_training(PROMPTS, RESPONSES, audio=CLIPS, sampling_rate=16000)
    model.train()
    items = torch.tensor(40)
    fast = model(**batch, num_items_in_batch=items).loss
    model.logits_at_labels_only = False
    full = model(**batch, num_items_in_batch=items).loss
    torch.testing.assert_close(fast, full)
    torch.testing.assert_close(fast, model(**batch).loss * (batch["labels"][:, 1:] != -100).sum() / items)


def test_eval_mode_or_no_labels_give_the_usual_logits():
    model, processor = tiny_voxlm("whisper", "llama", adapter="blsp")
    batch = processor.prepare_for_training(PROMPTS, RESPONSES, audio=CLIPS, sampling_rate=16000)
    vocab = model.config.text_config.vocab_size
    assert model.eval()(**batch).logits.shape == (*batch["input_ids"].shape, vocab)
    without_labels = {key: value for key, value in batch.items() if key != "labels"}
    assert model.train()(**without_labels).logits.shape == (*batch["input_ids"].shape, vocab)


def test_no_label_at_all_falls_back_to_the_language_model():
    model, processor = tiny_voxlm("whisper", "llama", adapter="blsp")
    batch = processor.prepare_for_training(PROMPTS, RESPONSES, audio=CLIPS, sampling_rate=16000)
    batch["labels"] = torch.full_like(batch["labels"], -100)
    outputs = model.train()(**batch)
    assert outputs.logits.shape[:2] == batch["input_ids"].shape
