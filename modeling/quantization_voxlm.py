"""Weight quantization of a VoxLM model at load time, as a transformers quantizer.

    model = AutoModel.from_pretrained(
        repo, trust_remote_code=True, quantization_config={"quant_method": "voxlm", "bits": 4}
    )

quantizes the linear layers of the language model (and, if asked, of the speech encoder) right after the weights are
loaded; the adapter, the norms and the embeddings stay in full precision. Importing this file registers the method
`"voxlm"` with transformers, so a plain dict works in a process that only has the Hub repository's code.

Why not an existing method: on a CPU without AVX-512 (e.g. AMD EPYC with AVX2), torchao's and torch's int8
weight-only path (`aten._weight_int8pack_mm`) falls back to a scalar loop and decodes no faster than fp32, and
`quantize_dynamic` swaps modules outside `from_pretrained`. Here the two CPU kernels that are fast on AVX2 back the
layers: fbgemm's dynamic int8 matmul (`quantized.linear_dynamic`, the kernel `quantize_dynamic` uses) for `bits=8`,
and `aten._weight_int4pack_mm_for_cpu` (group-wise asymmetric int4 weights, bf16 activations) for `bits=4`. On other
devices the layers multiply by their dequantized weights: correct everywhere, fast only on a CPU.

Like the other model files this one travels to Hub repositories: it imports only torch and transformers.
"""

import threading
import warnings

import torch
from torch import nn
from torch.nn import functional as F
from transformers.quantizers import HfQuantizer, register_quantization_config, register_quantizer
from transformers.quantizers.auto import AUTO_QUANTIZATION_CONFIG_MAPPING, AUTO_QUANTIZER_MAPPING
from transformers.utils import logging
from transformers.utils.quantization_config import QuantizationConfigMixin

logger = logging.get_logger(__name__)

QUANT_METHOD = "voxlm"
SUBMODELS = ("language_model", "audio_tower")


class VoxLMQuantizationConfig(QuantizationConfigMixin):
    """Weight quantization of a VoxLM model's linear layers, applied by `from_pretrained` after loading.

    Args:
        bits (`int`, *optional*, defaults to 4): 8 (per-output-channel int8 weights, activations quantized per
            token on the fly: fbgemm's dynamic int8 matmul) or 4 (int4 weights in groups of `group_size` inputs,
            each with its own scale and offset; bf16 activations).
        group_size (`int`, *optional*, defaults to 32): inputs per int4 scale (32, 64, 128 or 256); smaller groups
            are more accurate and a little slower. Ignored for 8 bits.
        modules (`list[str]`, *optional*, defaults to `["language_model"]`): the sub-models whose linear layers
            are quantized: `"language_model"` and/or `"audio_tower"`. The adapter (`projector`) always stays in
            full precision.
        lm_head_bits (`int`, *optional*): bits of the language model's output layer, or None to keep it in full
            precision: 4 (int4 in groups of `group_size`) or 8 (8-bit weights in groups of `group_size`, bf16
            activations: `VoxLMInt8GroupLinear`, not the dynamic int8 of the other layers). Quantized, a tied output
            layer gets its own copy; the input embedding stays in full precision (a lookup reads one row per token,
            the output layer reads all of them).
        modules_to_not_convert (`list[str]`, *optional*): names (or name suffixes) of linear layers to keep.
        fuse_projections (`bool`, *optional*, defaults to `True`): multiply the int4 projections that read the same
            input (an attention layer's query, key and value, an MLP's gate and up) as one matrix, one kernel call
            instead of two or three: decoding a token is bound by the cost of each call, not by reading weights.
        bf16_prefill (`bool`, *optional*, defaults to `False`): keep a bf16 copy of the int4 layers' (dequantized)
            weights and multiply inputs of `PREFILL_ROWS` rows or more (a prompt's prefill) with it: the CPU's bf16
            matrix instructions are faster there than the int4 kernel, while decoding still reads int4. Costs 2 bytes
            per weight beside the int4 ones (about fp32's memory in all), so it is off by default. None: on when the
            CPU has bf16 matrix instructions (AMX or AVX-512-BF16), where it prefills ~1.4x faster; elsewhere bf16
            products are not faster.

    LoRA layers (peft's, unmerged) keep their matrices in full precision and their base layers are quantized; with
    speech-only LoRA (`add_lora(speech_only=True)`), calls that are all speech take a direct path
    (`VoxLMSpeechLoRALinear`).
    """

    def __init__(
        self,
        bits: int = 4,
        group_size: int = 32,
        modules: list[str] | tuple[str, ...] = ("language_model",),
        lm_head_bits: int | None = None,
        modules_to_not_convert: list[str] | None = None,
        fuse_projections: bool = True,
        bf16_prefill: bool | None = False,
        **kwargs,
    ):
        self.quant_method = QUANT_METHOD
        self.bits = bits
        self.group_size = group_size
        self.modules = list(modules)
        self.lm_head_bits = lm_head_bits
        self.modules_to_not_convert = list(modules_to_not_convert or [])
        self.fuse_projections = fuse_projections
        self.bf16_prefill = bf16_prefill
        self.post_init()

    def post_init(self):
        if self.bits not in (4, 8):
            raise ValueError(f"`bits` must be 4 or 8, not {self.bits!r}.")
        if self.lm_head_bits not in (None, 4, 8):
            raise ValueError(f"`lm_head_bits` must be 4, 8 or None (full precision), not {self.lm_head_bits!r}.")
        if self.bits == 4 and self.group_size not in (32, 64, 128, 256):
            raise ValueError(f"`group_size` must be 32, 64, 128 or 256 for int4 weights, not {self.group_size!r}.")
        unknown = sorted(set(self.modules) - set(SUBMODELS))
        if unknown or not self.modules:
            raise ValueError(f"`modules` must name some of {list(SUBMODELS)}; got {self.modules!r}.")


def _unpack_nibbles(packed: torch.Tensor) -> torch.Tensor:
    """(N, K/2) uint8, two 4-bit values per byte (low nibble first) -> (N, K) int32 in [0, 15]."""
    return torch.stack([packed & 15, packed >> 4], dim=-1).reshape(packed.shape[0], -1).to(torch.int32)


def _group_levels(weight: torch.Tensor, group_size: int, top: int) -> tuple[torch.Tensor, ...]:
    """Asymmetric group-wise quantization of a (out, in) weight: `weight ~ level * scale + low` per group of
    `group_size` inputs, `level` in [0, top]. Returns levels (out, in) uint8, scales and lows (out, in / group_size)."""
    out_features, in_features = weight.shape
    grouped = weight.reshape(out_features, -1, group_size)
    low, high = grouped.amin(-1), grouped.amax(-1)
    scales = ((high - low) / top).clamp(min=1e-8)
    levels = ((grouped - low[..., None]) / scales[..., None]).round().clamp(0, top).to(torch.uint8)
    return levels.reshape(out_features, in_features), scales, low


# Inputs of this many rows or more (a prompt's prefill, not a decoding step) take the bf16 copy of int4 weights.
PREFILL_ROWS = 16
# Projections of one parent module that always read the same input: multiplied as one matrix when quantized to int4.
SHARED_INPUT_PROJECTIONS = (("q_proj", "k_proj", "v_proj"), ("gate_proj", "up_proj"))


def cpu_has_bf16_matmul() -> bool:
    """Whether this CPU multiplies bf16 matrices natively (AMX tiles or AVX-512-BF16)."""
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")  # private torch.cpu helpers, hence getattr
    return any(getattr(torch.cpu, check, lambda: False)() for check in checks)


class _Int4Weights:
    """The CPU kernel's form of one or more int4 layers' weights stacked along the outputs."""

    def __init__(self, layers: list["VoxLMInt4Linear"], bf16_prefill: bool):
        first = layers[0]
        self.device, self.group_size = first.qweight.device, first.group_size
        qweight = torch.cat([layer.qweight for layer in layers])
        scales = torch.cat([layer.scales for layer in layers])
        offsets = torch.cat([layer.offsets for layer in layers])
        self.packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(_unpack_nibbles(qweight), 1)
        self.scales_and_offsets = torch.stack([scales, offsets], dim=-1).transpose(0, 1).contiguous().bfloat16()
        self.dense = None
        if bf16_prefill:
            self.dense = torch.cat([layer.dequantized_weight() for layer in layers]).bfloat16()

    def matmul(self, flat: torch.Tensor) -> torch.Tensor:
        """(rows, in) bf16 -> (rows, out) bf16."""
        if self.dense is not None and flat.shape[0] >= PREFILL_ROWS:
            return F.linear(flat, self.dense)
        return torch.ops.aten._weight_int4pack_mm_for_cpu(flat, self.packed, self.group_size, self.scales_and_offsets)


class _SharedInputInt4:
    """Int4 layers that are always called on the same input tensor, multiplied as one matrix on a CPU.

    transformers' Llama-style models call `q_proj`, `k_proj` and `v_proj` (and `gate_proj`, `up_proj`) one after the
    other on the same tensor; the first call computes the stacked product and each layer returns its slice. A layer
    called on another tensor (a model that does not share inputs) computes the product again: slower, never wrong.
    The product is kept only until every layer has taken its slice.
    """

    def __init__(self, layers: list["VoxLMInt4Linear"]):
        self.layers = layers
        bounds = torch.tensor([0] + [layer.out_features for layer in layers]).cumsum(0).tolist()
        self.slices = {id(layer): slice(start, stop) for layer, start, stop in zip(layers, bounds, bounds[1:])}
        self._packed: _Int4Weights | None = None
        self._last = threading.local()  # per thread: two threads answering at once must not take each other's product

    def output(self, layer: "VoxLMInt4Linear", hidden: torch.Tensor) -> torch.Tensor:
        last = self._last
        if getattr(last, "input", None) is not hidden:
            if self._packed is None or self._packed.device != hidden.device:
                self._packed = _Int4Weights(self.layers, layer.bf16_prefill)
            last.input, last.output = hidden, self._packed.matmul(hidden.reshape(-1, layer.in_features).bfloat16())
            last.waiting = len(self.layers)
        out = last.output[:, self.slices[id(layer)]]
        last.waiting -= 1
        if last.waiting == 0:
            last.input = last.output = None
        return out


class VoxLMInt4Linear(nn.Module):
    """`nn.Linear` with group-wise asymmetric int4 weights: w = (q - 8) * scale + offset per group of inputs.

    The weights are kept as plain nibbles (`qweight`), and packed for `aten._weight_int4pack_mm_for_cpu` on first
    use on a CPU. That kernel is vectorised for bf16 activations (fp32 and fp16 ones take a slow path), so inputs
    are cast to bf16 and the output back to the input's dtype. `bf16_prefill` and `shared` (layers multiplied
    together) are set by `quantize_linear_layers`.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, group_size: int = 32):
        super().__init__()
        if in_features % group_size:
            raise ValueError(f"in_features={in_features} is not a multiple of the int4 group size {group_size}.")
        self.in_features, self.out_features, self.group_size = in_features, out_features, group_size
        groups = in_features // group_size
        self.register_buffer("qweight", torch.zeros(out_features, in_features // 2, dtype=torch.uint8))
        self.register_buffer("scales", torch.zeros(out_features, groups))
        self.register_buffer("offsets", torch.zeros(out_features, groups))
        self.register_buffer("bias", torch.zeros(out_features) if bias else None)
        self.bf16_prefill = False
        self.shared: _SharedInputInt4 | None = None
        self._packed: _Int4Weights | None = None

    @classmethod
    def from_linear(cls, linear: nn.Linear, group_size: int) -> "VoxLMInt4Linear":
        weight = linear.weight.detach().float()
        out_features, in_features = weight.shape
        module = cls(in_features, out_features, linear.bias is not None, group_size).to(weight.device)
        levels, scales, low = _group_levels(weight, group_size, 15)
        module.qweight.copy_(levels[:, 0::2] | (levels[:, 1::2] << 4))
        module.scales.copy_(scales)
        module.offsets.copy_(low + 8 * scales)  # the kernel computes (q - 8) * scale + offset
        if linear.bias is not None:
            module.bias.copy_(linear.bias.detach())
        return module

    def dequantized_weight(self) -> torch.Tensor:
        levels = _unpack_nibbles(self.qweight).reshape(self.out_features, -1, self.group_size).float()
        weight = (levels - 8) * self.scales[..., None] + self.offsets[..., None]
        return weight.reshape(self.out_features, self.in_features)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        if hidden.device.type != "cpu":
            return F.linear(hidden, self.dequantized_weight().to(hidden.dtype), self.bias)
        if self.shared is not None:
            out = self.shared.output(self, hidden)
        else:
            if self._packed is None or self._packed.device != hidden.device:
                self._packed = _Int4Weights([self], self.bf16_prefill)
            out = self._packed.matmul(hidden.reshape(-1, self.in_features).to(torch.bfloat16))
        out = out.to(hidden.dtype).reshape(*hidden.shape[:-1], self.out_features)
        return out if self.bias is None else out + self.bias.to(out.dtype)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, group_size={self.group_size}"


class VoxLMInt8GroupLinear(nn.Module):
    """`nn.Linear` with group-wise asymmetric 8-bit weights, multiplied as two int4 planes by the int4 kernel.

    A weight is `level * scale + low` per group of `group_size` inputs, `level` in [0, 255]. Its high and low nibbles
    are two int4 weight planes of `aten._weight_int4pack_mm_for_cpu` (high: scale 16 * scale; low: scale), so the
    product costs two int4 products (one byte per weight, like int8) and needs no int8 kernel: fbgemm's dynamic int8
    quantizes the activations too, which changed answers at the output layer, and the int8 weight-only kernel
    (`aten._weight_int8pack_mm`) is a scalar loop on CPUs without AVX-512. Used for the output layer
    (`lm_head_bits=8`), which reads a third of a small model's weight bytes per token.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, group_size: int = 32):
        super().__init__()
        if in_features % group_size:
            raise ValueError(f"in_features={in_features} is not a multiple of the group size {group_size}.")
        self.in_features, self.out_features, self.group_size = in_features, out_features, group_size
        groups = in_features // group_size
        self.register_buffer("qweight", torch.zeros(out_features, in_features, dtype=torch.uint8))
        self.register_buffer("scales", torch.zeros(out_features, groups))
        self.register_buffer("lows", torch.zeros(out_features, groups))
        self.register_buffer("bias", torch.zeros(out_features) if bias else None)
        self._packed: tuple | None = None

    @classmethod
    def from_linear(cls, linear: nn.Linear, group_size: int) -> "VoxLMInt8GroupLinear":
        weight = linear.weight.detach().float()
        out_features, in_features = weight.shape
        module = cls(in_features, out_features, linear.bias is not None, group_size).to(weight.device)
        levels, scales, low = _group_levels(weight, group_size, 255)
        module.qweight.copy_(levels)
        module.scales.copy_(scales)
        module.lows.copy_(low)
        if linear.bias is not None:
            module.bias.copy_(linear.bias.detach())
        return module

    def dequantized_weight(self) -> torch.Tensor:
        levels = self.qweight.reshape(self.out_features, -1, self.group_size).float()
        weight = levels * self.scales[..., None] + self.lows[..., None]
        return weight.reshape(self.out_features, self.in_features)

    def _cpu_kernel_inputs(self) -> tuple:
        if self._packed is None or self._packed[0] != self.qweight.device:
            # The kernel takes outputs in multiples of 16: pad with zero rows, cut from the product.
            padding = (-self.out_features) % 16
            qweight, scales, lows = (F.pad(t, (0, 0, 0, padding)) for t in (self.qweight, self.scales, self.lows))
            high, low = (qweight >> 4).to(torch.int32), (qweight & 15).to(torch.int32)
            # the kernel computes (q - 8) * scale + offset: high plane 16 * scale and offset 128 * scale + low
            # (16 * high * scale + low), low plane scale and offset 8 * scale (low * scale)
            planes = []
            for nibbles, scale, offset in ((high, 16 * scales, 128 * scales + lows), (low, scales, 8 * scales)):
                packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(nibbles, 1)
                scales_and_offsets = torch.stack([scale, offset], dim=-1).transpose(0, 1).contiguous()
                planes.append((packed, scales_and_offsets.to(torch.bfloat16)))
            self._packed = (self.qweight.device, planes)
        return self._packed[1]

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        if hidden.device.type != "cpu":
            return F.linear(hidden, self.dequantized_weight().to(hidden.dtype), self.bias)
        flat = hidden.reshape(-1, self.in_features).to(torch.bfloat16)
        (high, high_scales), (low, low_scales) = self._cpu_kernel_inputs()
        out = torch.ops.aten._weight_int4pack_mm_for_cpu(flat, high, self.group_size, high_scales).float()
        out = out + torch.ops.aten._weight_int4pack_mm_for_cpu(flat, low, self.group_size, low_scales).float()
        out = out[:, : self.out_features].to(hidden.dtype).reshape(*hidden.shape[:-1], self.out_features)
        return out if self.bias is None else out + self.bias.to(out.dtype)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, group_size={self.group_size}"


class VoxLMInt8Linear(nn.Module):
    """`nn.Linear` with symmetric per-output-channel int8 weights.

    On a CPU the product is fbgemm's dynamic int8 matmul (activations quantized per call, int8 x int8 -> int32,
    the kernel of `torch.ao.quantization.quantize_dynamic`), packed from `qweight` on first use.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.register_buffer("qweight", torch.zeros(out_features, in_features, dtype=torch.int8))
        self.register_buffer("scales", torch.ones(out_features))
        self.register_buffer("bias", torch.zeros(out_features) if bias else None)
        self._packed = None

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> "VoxLMInt8Linear":
        weight = linear.weight.detach().float()
        module = cls(weight.shape[1], weight.shape[0], linear.bias is not None).to(weight.device)
        scales = (weight.abs().amax(dim=1) / 127).clamp(min=1e-8)
        module.qweight.copy_((weight / scales[:, None]).round().clamp(-127, 127).to(torch.int8))
        module.scales.copy_(scales)
        if linear.bias is not None:
            module.bias.copy_(linear.bias.detach())
        return module

    def dequantized_weight(self) -> torch.Tensor:
        return self.qweight.float() * self.scales[:, None]

    def _fbgemm_weight(self):
        if self._packed is None:
            zero_points = torch.zeros(self.out_features, dtype=torch.long)
            with warnings.catch_warnings():  # fbgemm's prepack takes only quantized tensors, deprecated or not
                warnings.simplefilter("ignore", UserWarning)
                weight = torch.quantize_per_channel(
                    self.dequantized_weight(), self.scales.double(), zero_points, 0, torch.qint8
                )
            bias = None if self.bias is None else self.bias.float()
            self._packed = torch.ops.quantized.linear_prepack(weight, bias)
        return self._packed

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        if hidden.device.type != "cpu":
            return F.linear(hidden, self.dequantized_weight().to(hidden.dtype), self.bias)
        # reduce_range: 7-bit activations, as quantize_dynamic does on x86, so fbgemm's int16 accumulation
        # of pairs of products cannot saturate.
        out = torch.ops.quantized.linear_dynamic(hidden.float(), self._fbgemm_weight(), True)
        return out.to(hidden.dtype)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"


def quantize_linear_layers(model: nn.Module, config: VoxLMQuantizationConfig) -> int:
    """Replace the `nn.Linear` layers of the chosen sub-models by quantized ones, in place; returns their number."""
    replaced = 0
    for submodel_name in config.modules:
        submodel = getattr(model, submodel_name, None)
        if submodel is None:
            continue
        speech_gate = getattr(model, "_speech_gate", None) if submodel_name == "language_model" else None
        for name, module in list(submodel.named_modules()):
            if not isinstance(module, nn.Linear) or type(module).__name__ != "Linear":
                continue  # subclasses keep their own forward
            if ".lora_" in f".{name}":
                continue  # LoRA matrices stay in full precision; the layer they adapt (`base_layer`) is quantized
            is_head = name.split(".")[-1] == "lm_head"
            bits = config.lm_head_bits if is_head else config.bits
            if bits is None:
                continue
            if any(name == skip or name.endswith("." + skip) for skip in config.modules_to_not_convert):
                continue
            if bits == 4 and (module.in_features % config.group_size or module.out_features % 16):
                logger.warning_once(
                    f"{submodel_name}.{name} stays in full precision: int4 needs inputs in multiples of the group "
                    f"size ({config.group_size}) and outputs in multiples of 16, it has {module.in_features} and "
                    f"{module.out_features}."
                )
                continue
            if is_head and bits == 8 and module.in_features % config.group_size:
                logger.warning_once(
                    f"{submodel_name}.{name} stays in full precision: 8-bit groups need inputs in multiples of the "
                    f"group size ({config.group_size}), it has {module.in_features}."
                )
                continue
            if bits == 4:
                quantized = VoxLMInt4Linear.from_linear(module, config.group_size)
            elif is_head:
                quantized = VoxLMInt8GroupLinear.from_linear(module, config.group_size)
            else:
                quantized = VoxLMInt8Linear.from_linear(module)
            parent_name, _, child = name.rpartition(".")
            setattr(submodel.get_submodule(parent_name) if parent_name else submodel, child, quantized)
            replaced += 1
        if speech_gate is not None:  # speech-only LoRA: peft is installed
            from peft.tuners.lora import LoraLayer

            for name, module in list(submodel.named_modules()):
                if isinstance(module, LoraLayer) and not isinstance(module, VoxLMSpeechLoRALinear):
                    parent_name, _, child = name.rpartition(".")
                    parent = submodel.get_submodule(parent_name) if parent_name else submodel
                    setattr(parent, child, VoxLMSpeechLoRALinear(module, speech_gate))
        _configure_int4_layers(submodel, config)
    return replaced


class VoxLMSpeechLoRALinear(nn.Module):
    """A speech-only LoRA layer (peft's, over a quantized base layer) with a direct path for calls that are all
    speech.

    peft's LoRA forward (adapter loop, dropout, dtype casts, the speech gate's mask hook) costs more per call than a
    decoding step's two tiny LoRA products, on ~200 layers per token. When every position of a call holds speech
    (the gate's `all_speech`: decoding an answer to speech, the audio part of a prompt), this returns
    base(x) + x A^T (s B)^T directly, the same sum; other calls go through peft's layer (LoRA masked by the gate, or
    switched off). The LoRA is not merged into the quantized weights: its update is far smaller than an int4 step,
    and rounding would erase most of it.
    """

    def __init__(self, lora_layer: nn.Module, gate):
        super().__init__()
        self.lora_layer = lora_layer
        self._gate = [gate]  # in a list: not a submodule
        # (A, s * B) of each active adapter, in the LoRA's own precision; scaling folded into B once
        self._pairs = [
            (lora_layer.lora_A[name].weight, lora_layer.lora_B[name].weight * lora_layer.scaling[name])
            for name in lora_layer.active_adapters
            if name in lora_layer.lora_A
        ]

    @property
    def base_layer(self) -> nn.Module:
        """The quantized layer the LoRA adapts (as on peft's LoRA layers)."""
        return self.lora_layer.base_layer

    def forward(self, hidden: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        if not self._gate[0].all_speech:
            return self.lora_layer(hidden, *args, **kwargs)
        out = self.base_layer(hidden)
        for down, up in self._pairs:
            out = out + F.linear(F.linear(hidden.to(down.dtype), down), up).to(out.dtype)
        return out


def _configure_int4_layers(submodel: nn.Module, config: VoxLMQuantizationConfig) -> None:
    """Turn on the bf16 prefill copy and group the shared-input projections of a sub-model's int4 layers."""
    bf16_prefill = cpu_has_bf16_matmul() if config.bf16_prefill is None else config.bf16_prefill
    for module in submodel.modules():
        if isinstance(module, VoxLMInt4Linear):
            module.bf16_prefill = bf16_prefill
        if not config.fuse_projections:
            continue
        for names in SHARED_INPUT_PROJECTIONS:
            layers = [_int4_base(getattr(module, name, None)) for name in names]
            if (
                all(isinstance(layer, VoxLMInt4Linear) for layer in layers)
                and len({(layer.in_features, layer.group_size) for layer in layers}) == 1
            ):
                shared = _SharedInputInt4(layers)
                for layer in layers:
                    layer.shared = shared


def _int4_base(layer: nn.Module | None) -> nn.Module | None:
    """The layer that a projection multiplies its input by: itself, or the base layer of a (speech-only) LoRA layer,
    which passes its input on unchanged."""
    return getattr(layer, "base_layer", layer)


class VoxLMQuantizer(HfQuantizer):
    """Quantizes the loaded full-precision weights in `from_pretrained` (no calibration, no quantized checkpoint)."""

    requires_calibration = False

    def validate_environment(self, *args, **kwargs):
        if self.pre_quantized:
            raise ValueError(
                "This checkpoint's config.json carries a VoxLM quantization config, but VoxLM checkpoints are saved "
                "in full precision. Remove `quantization_config` from config.json and pass it to `from_pretrained` "
                "instead."
            )

    def _process_model_after_weight_loading(self, model, **kwargs):
        lora = getattr(model.config, "llm_lora", None)
        if lora and not lora.get("speech_only"):
            logger.warning_once(
                "LoRA matrices stay in full precision (the layers they adapt are quantized); merge them first "
                "(`merge_lora()`, then save) to quantize them with those layers."
            )
        replaced = quantize_linear_layers(model, self.quantization_config)
        logger.info(f"quantized {replaced} linear layers to {self.quantization_config.bits} bits")
        return model

    def is_serializable(self, **kwargs) -> bool:
        logger.warning(
            "A model quantized at load time is not saved: save the full-precision model and pass "
            "`quantization_config` to `from_pretrained` when loading it (quantizing takes about a second)."
        )
        return False

    @property
    def is_trainable(self) -> bool:
        return False


# Register once per process: the voxlm package and a Hub repository's copy of this file may both be imported.
if QUANT_METHOD not in AUTO_QUANTIZATION_CONFIG_MAPPING:
    register_quantization_config(QUANT_METHOD)(VoxLMQuantizationConfig)
if QUANT_METHOD not in AUTO_QUANTIZER_MAPPING:
    register_quantizer(QUANT_METHOD)(VoxLMQuantizer)


__all__ = [
    "VoxLMInt4Linear",
    "VoxLMInt8GroupLinear",
    "VoxLMInt8Linear",
    "VoxLMQuantizationConfig",
    "VoxLMQuantizer",
    "VoxLMSpeechLoRALinear",
    "quantize_linear_layers",
]
