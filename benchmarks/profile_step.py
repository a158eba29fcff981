"""Where the time of one VoxLM training step goes: encoder, adapter, LLM layers, LM head, loss, optimizer.

`torch.profiler` records every operator. Forward operators are attributed to the part whose `record_function`
range encloses them; each backward operator (`autograd::engine::evaluate_function: XBackward0`) carries the
sequence number of the forward operator that created it, so backward time is attributed to the same part.
"""

from __future__ import annotations

import functools
import time
from collections import defaultdict

from torch.autograd.profiler import record_function
from torch.profiler import ProfilerActivity, profile

PARTS = ("encoder", "adapter", "audio merge", "llm layers", "lm head", "loss + glue", "optimizer")
UNATTRIBUTED = "grad accumulation"
_BACKWARD_PREFIX = "autograd::engine::evaluate_function: "


def _wrap_method(owner, attribute: str, label: str) -> None:
    method = getattr(owner, attribute)

    @functools.wraps(method)  # keeps the signature visible (VoxLM inspects the LLM's forward)
    def wrapped(*args, **kwargs):
        with record_function(label):
            return method(*args, **kwargs)

    setattr(owner, attribute, wrapped)


def instrument_voxlm(model) -> None:
    """Give the parts of a VoxLM model named profiler ranges (on this instance only)."""
    _wrap_method(model, "forward", "loss + glue")  # what no inner range claims: loss, embedding lookup, glue
    _wrap_method(model, "_merge_audio", "audio merge")
    _wrap_method(model, "_encode_audio", "encoder")  # the Whisper path calls its layers directly, not forward()
    _wrap_method(model.projector, "forward", "adapter")
    _wrap_method(model.language_model.model, "forward", "llm layers")
    _wrap_method(model.language_model.lm_head, "forward", "lm head")


def _innermost_part(event) -> str | None:
    while event is not None:
        if event.name in PARTS:
            return event.name
        event = event.cpu_parent
    return None


def profile_training_step(model, batch: dict, optimizer, repeats: int = 3) -> dict:
    """Profile `repeats` forward + backward + optimizer steps, one profile each, and keep the median step.

    The profiler times operators in wall time, so a step during which another process held the core looks slow in
    whatever part ran then; the median of a few separately profiled steps drops such spikes, and each step's CPU
    seconds per wall second are recorded.
    """
    instrument_voxlm(model)

    def step():
        loss = model(**batch).loss
        loss.backward()
        with record_function("optimizer"):
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

    step()  # warm-up outside the profile
    summaries = []
    for _ in range(repeats):
        cpu_start, wall_start = time.process_time(), time.perf_counter()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            step()
        ratio = (time.process_time() - cpu_start) / (time.perf_counter() - wall_start)
        summaries.append({**summarise(prof), "cpu_ratio": ratio})
    median = sorted(summaries, key=lambda summary: summary["step_ms"])[len(summaries) // 2]
    return {**median, "cpu_ratios": [round(summary["cpu_ratio"], 3) for summary in summaries]}


def summarise(prof) -> dict:
    events = prof.events()
    part_of_sequence: dict[int, str] = {}
    forward = defaultdict(float)
    backward = defaultdict(float)
    for event in events:
        if event.name.startswith(_BACKWARD_PREFIX) or event.sequence_nr < 0:
            continue
        part = _innermost_part(event)
        if part is not None:
            part_of_sequence.setdefault(event.sequence_nr, part)
    for event in events:
        if event.name in PARTS:
            # Self time of a range = its total minus enclosed ranges of other parts (nested parts count once).
            nested = sum(child.cpu_time_total for child in _nested_parts(event))
            forward[event.name] += (event.cpu_time_total - nested) / 1000
        elif event.name.startswith(_BACKWARD_PREFIX) and event.cpu_parent is None:
            part = part_of_sequence.get(event.sequence_nr, UNATTRIBUTED)
            backward[part] += event.cpu_time_total / 1000
    parts = {}
    for name in (*PARTS, UNATTRIBUTED):
        total = forward[name] + backward[name]
        if total > 0:
            parts[name] = {"forward_ms": forward[name], "backward_ms": backward[name], "total_ms": total}
    step_ms = sum(part["total_ms"] for part in parts.values())
    for part in parts.values():
        part["share"] = part["total_ms"] / step_ms if step_ms else 0.0
    top = sorted(prof.key_averages(), key=lambda item: item.self_cpu_time_total, reverse=True)[:10]
    return {
        "step_ms": step_ms,
        "parts": parts,
        "top_ops": [
            {"op": item.key, "self_ms": item.self_cpu_time_total / 1000, "calls": item.count}
            for item in top
            if item.key not in PARTS
        ][:8],
    }


def _nested_parts(event):
    """The outermost part ranges strictly inside `event` (not `event` itself)."""
    found = []
    stack = list(event.cpu_children)
    while stack:
        child = stack.pop()
        if child.name in PARTS:
            found.append(child)
        else:
            stack.extend(child.cpu_children)
    return found


def encoder_adapter_llm_shares(summary: dict) -> dict[str, float]:
    """Collapse the parts into encoder / adapter / LLM (layers, head, loss, merge) / optimizer (+ grad accumulation)."""
    parts = summary["parts"]

    def share(*names):
        return sum(parts[name]["share"] for name in names if name in parts)

    return {
        "encoder": share("encoder"),
        "adapter": share("adapter"),
        "llm": share("llm layers", "lm head", "loss + glue", "audio merge"),
        "optimizer": share("optimizer", UNATTRIBUTED),
    }
