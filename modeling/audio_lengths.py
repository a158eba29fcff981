"""The one length formula of VoxLM.

The number of audio positions a clip occupies in the language model's input is computed here and nowhere
else. The processor uses it to expand each `<|audio|>` placeholder; the model uses it to find the valid
positions of its adapter output. The formula is plain data (serialised in both configs):

    {"chunk_size": 3000 | None,                 # encoder window in input frames (Whisper: 30 s of mel frames)
     "encoder": [[kernel, stride, pad], ...],    # the encoder's own downsampling, applied per window
     "adapter": [[kernel, stride, pad], ...]}    # VoxLM's frame stacking and strided convolutions

Each stage maps a length `L` to `(L + pad - kernel) // stride + 1`, where `pad` is the total padding of
both sides. Frame stacking by `k` (padding the tail) is the stage `[k, k, k - 1]`, i.e. `ceil(L / k)`.

This file has no imports so that it can travel unchanged to a Hub repository beside the modeling and
processing files; `processing/audio_lengths.py` is a copy generated from it (`scripts/sync_hub_copies.py`).
"""


def apply_length_stages(lengths, stages):
    """Apply `[kernel, stride, pad]` stages to `lengths` (an int, a numpy array or a torch tensor)."""
    for kernel, stride, pad in stages:
        lengths = (lengths + pad - kernel) // stride + 1
    return lengths


def encoder_output_lengths(input_lengths, formula):
    """Number of encoder frames for inputs of `input_lengths` frames, windowed by `formula["chunk_size"]`.

    Audio longer than the encoder's window is cut into consecutive windows that are encoded separately and
    concatenated, so nothing is truncated.
    """
    chunk_size = formula.get("chunk_size")
    stages = formula["encoder"]
    if not chunk_size:
        return apply_length_stages(input_lengths, stages)
    full_windows, remainder = input_lengths // chunk_size, input_lengths % chunk_size
    frames_per_window = apply_length_stages(chunk_size, stages)
    return full_windows * frames_per_window + (remainder > 0) * apply_length_stages(remainder, stages)


def audio_output_lengths(input_lengths, formula):
    """Number of language-model positions for clips of `input_lengths` encoder input frames.

    `input_lengths` counts the time steps of the encoder input: log-mel frames for Whisper, waveform samples
    for wav2vec2/HuBERT/WavLM, stacked filter-bank frames for wav2vec2-BERT.
    """
    return apply_length_stages(encoder_output_lengths(input_lengths, formula), formula["adapter"])
