"""BLSP step 1 throughput: an LLM writing continuations of transcripts, batched (left padding) vs one by one.

The LLM has SmolLM2-135M's shape (the project's offline LLM) with random weights: with a fixed number of new
tokens per row (`min_new_tokens == max_new_tokens`), the cost is exactly that of the real weights, and the run
needs no 20-second GGUF load. Prompts are the BLSP instruction plus a transcript, of realistic, varying lengths.
"""

from __future__ import annotations

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from .timing import Cell

# SmolLM2-135M-Instruct (HuggingFaceTB/SmolLM2-135M-Instruct config.json).
SMOLLM2_135M = {
    "vocab_size": 49152,
    "hidden_size": 576,
    "intermediate_size": 1536,
    "num_hidden_layers": 30,
    "num_attention_heads": 9,
    "num_key_value_heads": 3,
    "max_position_embeddings": 8192,
    "rms_norm_eps": 1e-5,
    "rope_theta": 100000.0,
    "tie_word_embeddings": True,
}
TINY_LLM = {
    "vocab_size": 1024,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "tie_word_embeddings": True,
}
INSTRUCTION_TOKENS = 24  # "Continue the following text in a coherent and engaging style with less than 40 words."
TRANSCRIPT_TOKENS = (8, 48)  # 3-15 s utterances
PAD_ID = 2


def build_llm(shape: dict, seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(**shape, pad_token_id=PAD_ID, bos_token_id=1, eos_token_id=2)
    return LlamaForCausalLM(config).eval()


def prompts(num_rows: int, vocab_size: int, seed: int = 0) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for _ in range(num_rows):
        length = INSTRUCTION_TOKENS + int(torch.randint(*TRANSCRIPT_TOKENS, (1,), generator=generator))
        rows.append(torch.randint(3, vocab_size, (length,), generator=generator))
    return rows


def left_pad(rows: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    longest = max(len(row) for row in rows)
    input_ids = torch.full((len(rows), longest), PAD_ID, dtype=torch.long)
    attention_mask = torch.zeros_like(input_ids)
    for index, row in enumerate(rows):
        input_ids[index, longest - len(row) :] = row
        attention_mask[index, longest - len(row) :] = 1
    return input_ids, attention_mask


def generate_exactly(model, inputs: dict, new_tokens: int, pad_token_id: int = PAD_ID) -> torch.Tensor:
    """Greedy generation of exactly `new_tokens` per row (EOS cannot end it early): (B, new_tokens) new ids."""
    out = model.generate(
        **inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, pad_token_id=pad_token_id
    )
    return out[:, inputs["input_ids"].shape[1] :]


def _generate(model, input_ids, attention_mask, new_tokens: int) -> torch.Tensor:
    return generate_exactly(model, {"input_ids": input_ids, "attention_mask": attention_mask}, new_tokens)


class ContinuationBenchmark:
    """Batched (left-padded) and one-by-one greedy generation of the same rows, as two timing cells."""

    def __init__(self, model, rows: list[torch.Tensor], new_tokens: int):
        self.model, self.rows, self.new_tokens = model, rows, new_tokens
        self.input_ids, self.attention_mask = left_pad(rows)
        self.outputs: dict[str, list[torch.Tensor]] = {}

    def batched(self) -> None:
        out = _generate(self.model, self.input_ids, self.attention_mask, self.new_tokens)
        self.outputs["batched"] = list(out)

    def one_by_one(self) -> None:
        self.outputs["one by one"] = [
            _generate(self.model, row[None], torch.ones(1, len(row), dtype=torch.long), self.new_tokens)[0]
            for row in self.rows
        ]

    def warm_up(self) -> None:
        _generate(self.model, self.input_ids, self.attention_mask, 2)
        _generate(self.model, self.rows[0][None], torch.ones(1, len(self.rows[0]), dtype=torch.long), 2)

    def cells(self) -> list[Cell]:
        return [Cell(("continuation", "batched"), self.batched), Cell(("continuation", "one by one"), self.one_by_one)]

    def same_fraction(self) -> float | None:
        """Fraction of rows whose greedy continuation is identical batched and alone (left padding is exact)."""
        if len(self.outputs) < 2:
            return None
        pairs = zip(self.outputs["batched"], self.outputs["one by one"])
        return sum(bool(torch.equal(a, b)) for a, b in pairs) / len(self.rows)
