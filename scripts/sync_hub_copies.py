"""Write the generated copies of Hub-travelling files that two folders need.

`modeling/` and `processing/` are each copied to Hub repositories on their own (flat imports only), so a file both
import exists in both folders. The file in `modeling/` is the one to edit; the copy in `processing/` is generated
from it with a do-not-edit header:

    python scripts/sync_hub_copies.py           # rewrite the copies
    python scripts/sync_hub_copies.py --check   # exit 1 if a copy differs from its source (tests run this check)
"""

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# copy -> the canonical file it is generated from
HUB_COPIES = {
    "processing/audio_lengths.py": "modeling/audio_lengths.py",
    "processing/encoder_sizes.py": "modeling/encoder_sizes.py",
    "processing/whisper_encoder.py": "modeling/whisper_encoder.py",
}


def generated_copy(source: str) -> str:
    """The text of the copy of `source` (a path relative to the repository root): a header, then the source."""
    header = f"# Generated from {source} by `python scripts/sync_hub_copies.py`: edit that file, not this copy.\n"
    return header + (ROOT / source).read_text(encoding="utf-8")


def stale_copies() -> list[str]:
    """The copies whose text is not what their source generates."""
    return [
        copy
        for copy, source in HUB_COPIES.items()
        if not (ROOT / copy).is_file() or (ROOT / copy).read_text(encoding="utf-8") != generated_copy(source)
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only report copies that differ from their source")
    args = parser.parse_args(argv)
    stale = stale_copies()
    if args.check:
        for copy in stale:
            print(f"{copy} differs from {HUB_COPIES[copy]}; run `python scripts/sync_hub_copies.py`.")
        return 1 if stale else 0
    for copy in stale:
        (ROOT / copy).write_text(generated_copy(HUB_COPIES[copy]), encoding="utf-8")
        print(f"wrote {copy}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
