"""Load exported folders the way a Hub user would, in an interpreter where voxlm cannot be imported.

Usage: python hub_fresh_process.py <spec.json> <result.json>. The spec lists
    "generate": [{"name", "folder", "audio": <.npy path>, "instruction", "max_new_tokens"}]  greedy new token ids
    "snippets": [{"name", "code"}]                     code run with exec(); its printed output is recorded
    "pipelines": [{"name", "folder", "audio", "instruction", "max_new_tokens"}]  pipeline(model=folder) outputs
    "errors": [{"name", "folder"}]                     AutoModel.from_pretrained must fail; the error is recorded
Run by tests/test_hub_publish.py with HF_HUB_OFFLINE=1 and a fresh HF_MODULES_CACHE.
"""

import sys

sys.modules["voxlm"] = None  # before anything else: `import voxlm...` now fails, only the folders' own code can run

import contextlib  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from transformers import AutoModel, AutoProcessor, pipeline  # noqa: E402


def generate(job: dict) -> dict:
    model = AutoModel.from_pretrained(job["folder"], trust_remote_code=True).eval()
    processor = AutoProcessor.from_pretrained(job["folder"], trust_remote_code=True)
    audio = np.load(job["audio"])
    conversation = [
        {"role": "user", "content": [{"type": "audio", "audio": audio}, {"type": "text", "text": job["instruction"]}]}
    ]
    inputs = processor.apply_chat_template(
        conversation, add_generation_prompt=True, tokenize=True, sampling_rate=16000, resample=True
    )
    output = model.generate(**inputs, max_new_tokens=job["max_new_tokens"], do_sample=False)
    return {
        "tokens": output[0, inputs["input_ids"].shape[1] :].tolist(),
        "model_module": type(model).__module__,
        "processor_module": type(processor).__module__,
        "lora_layers": sum("lora_A" in name for name, _ in model.named_parameters()),
    }


def run_snippet(job: dict) -> str:
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(job["code"], job["name"], "exec"), {"__name__": "__main__"})
    return printed.getvalue()


def run_pipeline(job: dict) -> dict:
    pipe = pipeline(model=job["folder"], trust_remote_code=True)
    audio = np.load(job["audio"])
    single = pipe(audio, sampling_rate=16000, instruction=job["instruction"], max_new_tokens=job["max_new_tokens"])
    batch = pipe(
        [{"array": audio, "sampling_rate": 16000}, job["folder"] + "/sample.wav"],
        instruction=job["instruction"],
        max_new_tokens=job["max_new_tokens"],
    )
    return {"class": type(pipe).__name__, "module": type(pipe).__module__, "single": single, "batch": batch}


def expect_error(job: dict) -> dict:
    try:
        AutoModel.from_pretrained(job["folder"], trust_remote_code=True)
    except Exception as error:  # the test inspects the type and message
        return {"type": type(error).__name__, "message": str(error)}
    return {"type": None, "message": "loaded without error"}


def main() -> None:
    torch.set_num_threads(1)
    spec = json.loads(open(sys.argv[1]).read())
    result = {
        "generate": {job["name"]: generate(job) for job in spec.get("generate", [])},
        "snippets": {job["name"]: run_snippet(job) for job in spec.get("snippets", [])},
        "pipelines": {job["name"]: run_pipeline(job) for job in spec.get("pipelines", [])},
        "errors": {job["name"]: expect_error(job) for job in spec.get("errors", [])},
        "voxlm_importable": _voxlm_importable(),
    }
    with open(sys.argv[2], "w") as handle:
        json.dump(result, handle)


def _voxlm_importable() -> bool:
    try:
        import voxlm.modeling  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    main()
