"""A transformers pipeline for spoken prompts: audio (and an optional instruction) in, generated text out.

A pushed VoxLM repository names this class in `config.json` (`custom_pipelines`), so that

    pipe = pipeline(model="user/voxlm-model", trust_remote_code=True)
    pipe("question.wav", instruction="Answer the question.")  # -> {"generated_text": "..."}

works without the voxlm package. A quantized model loads through the same call (see `quantization_voxlm.py`):

    pipe = pipeline(model="user/voxlm-model", trust_remote_code=True,
                    model_kwargs={"quantization_config": {"quant_method": "voxlm", "bits": 4, "lm_head_bits": 8}})

Like the modeling files, this file travels to Hub repositories: it imports only
numpy, torch and transformers.
"""

import numpy as np
import torch
from transformers import Pipeline

# `custom_pipelines` task name; the Hub's tag for models that take audio and text and write text.
TASK = "audio-text-to-text"
DEFAULT_MAX_NEW_TOKENS = 128


class VoxLMSpokenPromptPipeline(Pipeline):
    """Generate text from a spoken prompt with a VoxLM model and its processor.

    Inputs (one, or a list of them):
        - a 1-D float waveform (numpy array, torch tensor or list of floats), with `sampling_rate=` (defaults to the
          processor's rate);
        - a path or URL of an audio file;
        - a dict `{"array" | "raw": waveform, "sampling_rate": rate}` (the `datasets` and ASR-pipeline formats),
          optionally with its own `"instruction"`;
        - a dict `{"messages": [...]}`: a full chat whose content items may be `{"type": "audio", "audio": ...}`,
          for prompts laid out differently from the default.

    Call arguments:
        instruction (`str`, *optional*): text that follows the audio in the user turn (e.g. "Transcribe the
            audio."). Without it the audio alone is the prompt.
        system_prompt (`str`, *optional*): a system turn before the user turn.
        sampling_rate (`int`, *optional*): the rate of waveform inputs; other rates are resampled.
        max_new_tokens (`int`, *optional*, defaults to 128), generate_kwargs (`dict`, *optional*), and any other
            `generate()` argument (e.g. `do_sample=True`) are passed to `model.generate`.

    Returns `{"generated_text": str}` per input.
    """

    _load_processor = True
    _load_tokenizer = False
    _load_feature_extractor = False
    _load_image_processor = False
    _load_video_processor = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.processor is None:
            raise ValueError(
                "The spoken-prompt pipeline needs the VoxLM processor; pass `processor=` or load a folder that holds "
                "processor_config.json."
            )

    def _sanitize_parameters(
        self,
        instruction: str | None = None,
        system_prompt: str | None = None,
        sampling_rate: int | None = None,
        generate_kwargs: dict | None = None,
        **kwargs,
    ):
        preprocess_params = {}
        if instruction is not None:
            preprocess_params["instruction"] = instruction
        if system_prompt is not None:
            preprocess_params["system_prompt"] = system_prompt
        if sampling_rate is not None:
            preprocess_params["sampling_rate"] = sampling_rate
        # Everything else is a generation argument (max_new_tokens, do_sample, num_beams, ...).
        forward_params = {"generate_kwargs": {**(generate_kwargs or {}), **kwargs}} if generate_kwargs or kwargs else {}
        return preprocess_params, forward_params, {}

    def __call__(self, inputs, **kwargs):
        # A plain list of numbers is one waveform, not a batch of inputs.
        if isinstance(inputs, list) and inputs and isinstance(inputs[0], (int, float, np.number)):
            inputs = np.asarray(inputs, dtype=np.float32)
        return super().__call__(inputs, **kwargs)

    # ------------------------------------------------------------------------------------------ preprocess
    def preprocess(self, inputs, instruction=None, system_prompt=None, sampling_rate=None):
        if isinstance(inputs, dict) and "messages" in inputs:
            messages = inputs["messages"]
            sampling_rate = inputs.get("sampling_rate", sampling_rate)
        else:
            audio, sampling_rate, instruction = self._read_input(inputs, sampling_rate, instruction)
            content = [{"type": "audio", **audio}]
            if instruction:
                content.append({"type": "text", "text": instruction})
            messages = [{"role": "user", "content": content}]
            if system_prompt:
                messages.insert(0, {"role": "system", "content": system_prompt})
        rate = sampling_rate or self.processor.feature_extractor.sampling_rate
        model_inputs = self._encode(messages, rate)
        model_inputs["prompt_length"] = model_inputs["input_ids"].shape[1]
        return model_inputs

    def _read_input(self, inputs, sampling_rate, instruction):
        """-> (audio content fields, sampling rate, instruction) for one input."""
        if isinstance(inputs, str):
            return {"path": inputs}, sampling_rate, instruction
        if isinstance(inputs, dict):
            waveform = inputs.get("array", inputs.get("raw"))
            if waveform is None:
                raise ValueError(
                    "A dict input needs an `array` (or `raw`) waveform and its `sampling_rate`; "
                    f"got keys {sorted(inputs)}."
                )
            sampling_rate = inputs.get("sampling_rate", sampling_rate)
            instruction = inputs.get("instruction", instruction)
            inputs = waveform
        if isinstance(inputs, torch.Tensor):
            inputs = inputs.detach().cpu().numpy()
        if not isinstance(inputs, np.ndarray):
            raise TypeError(
                f"Unsupported input of type {type(inputs).__name__}; pass a waveform, a file path or URL, or a dict "
                "with `array` and `sampling_rate`."
            )
        return {"audio": inputs}, sampling_rate, instruction

    def _encode(self, messages, sampling_rate):
        processor = self.processor
        if processor.chat_template or getattr(processor.tokenizer, "chat_template", None):
            return processor.apply_chat_template(
                messages, add_generation_prompt=True, tokenize=True, sampling_rate=sampling_rate, resample=True
            )
        # No chat template: every text and audio item of every turn, in order, one per line.
        _, audio, rates = processor._flatten_messages(messages)  # the processor reads audio given as paths
        audio, sampling_rate = processor._clips_at_one_rate(audio, rates, sampling_rate, resample=True)
        lines = []
        for message in messages:
            content = message["content"]
            items = [{"type": "text", "text": content}] if isinstance(content, str) else content
            lines += [processor.audio_token if item["type"] == "audio" else item["text"] for item in items]
        return processor(text="\n".join(lines), audio=audio, sampling_rate=sampling_rate, resample=True)

    # --------------------------------------------------------------------------------------------- forward
    def _forward(self, model_inputs, generate_kwargs=None):
        prompt_length = model_inputs.pop("prompt_length")
        generate_kwargs = dict(generate_kwargs or {})
        if "max_new_tokens" not in generate_kwargs and "max_length" not in generate_kwargs:
            generate_kwargs["max_new_tokens"] = DEFAULT_MAX_NEW_TOKENS
        if "input_features" in model_inputs:
            model_inputs["input_features"] = model_inputs["input_features"].to(self.model.dtype)
        sequences = self.model.generate(**model_inputs, **generate_kwargs)
        if not self.model.config.is_encoder_decoder:
            sequences = sequences[:, prompt_length:]  # decoder-only models return the prompt too
        return {"sequences": sequences}

    def postprocess(self, model_outputs):
        text = self.processor.batch_decode(model_outputs["sequences"], skip_special_tokens=True)[0]
        return {"generated_text": text}


__all__ = ["TASK", "VoxLMSpokenPromptPipeline"]
