"""How long Lasso audio-token selection takes on a codec-sized problem.

    python -m benchmarks.token_selection_speed            # 10,000 clips x 8,192 tokens (8 levels x 1,024 codes)
    python -m benchmarks.token_selection_speed --clips 2000 --rounds 1

A synthetic corpus stands in for codec units (`benchmarks/token_corpus.py`, shared with the `lasso` section of
`compare_peers`): per clip, `--clip-seconds` of 50 Hz frames with one token per level (Zipf-distributed codes),
and a handful of tokens that carry the binary label. The script times building the sparse bag of tokens, the
whole `SpeechTokenSelector.fit` (bag -> TF-IDF -> max-abs -> L1 logistic regression with saga -> mean threshold),
and the random baseline; it checks that the label-carrying tokens are recovered, prints a table and writes JSON
(`--output`).
"""

import argparse
import json
import os
import platform
import statistics
import time

from voxlm.processing import SpeechTokenSelector, bag_of_tokens
from voxlm.train.core.tables import render_table

from .token_corpus import CODES, FRAME_RATE, LEVELS, synthetic_units, unit_vocabulary


def timed(function, rounds: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(rounds):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=10_000)
    parser.add_argument("--levels", type=int, default=LEVELS)
    parser.add_argument("--codes", type=int, default=CODES)
    parser.add_argument("--clip-seconds", type=float, default=5.0, help="clip length at 50 frames per second")
    parser.add_argument("--informative", type=int, default=8, help="label-carrying tokens per class")
    parser.add_argument("--C", type=float, default=0.01)
    parser.add_argument("--rounds", type=int, default=3, help="timed repetitions (the median is reported)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default="benchmarks/results/token_selection_speed.json")
    args = parser.parse_args(argv)

    frames = int(args.clip_seconds * FRAME_RATE)
    start = time.perf_counter()
    ids, labels, carriers = synthetic_units(args.clips, args.levels, args.codes, frames, args.informative, args.seed)
    generation = time.perf_counter() - start
    vocabulary = unit_vocabulary(args.levels, args.codes)
    sequences = list(ids)

    bag_time, counts = timed(lambda: bag_of_tokens(sequences, vocabulary), args.rounds)
    lasso_time, lasso = timed(
        lambda: SpeechTokenSelector(vocabulary, C=args.C, seed=args.seed).fit(sequences, labels), args.rounds
    )
    kept = len(lasso.kept_tokens)
    random_selector = SpeechTokenSelector(vocabulary, method="random", num_tokens=kept, seed=args.seed)
    random_time, _ = timed(lambda: random_selector.fit(sequences, labels), args.rounds)
    recovered = len({vocabulary[i] for i in carriers} & set(lasso.kept_tokens))
    result = {
        "clips": args.clips,
        "vocabulary": len(vocabulary),
        "tokens_per_clip": int(ids.shape[1]),
        "total_tokens": int(ids.size),
        "nonzeros": int(counts.nnz),
        "C": args.C,
        "rounds": args.rounds,
        "seconds": {
            "bag_of_tokens": round(bag_time, 3),
            "lasso_selection_total": round(lasso_time, 3),
            "tfidf_scaling_and_lasso": round(lasso_time - bag_time, 3),
            "random_selection_total": round(random_time, 3),
        },
        "kept_tokens": kept,
        "label_tokens_recovered": f"{recovered}/{len(carriers)}",
        "nonzero_weights": lasso.report.get("nonzero_audio_weights"),
        "corpus_generation_seconds": round(generation, 1),
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_1min": round(os.getloadavg()[0], 1),  # other work on a shared machine slows every step
            "python": platform.python_version(),
        },
    }
    print(
        f"Token selection: {args.clips:,} clips x {len(vocabulary):,}-token vocabulary, "
        f"{ids.shape[1]:,} tokens per clip ({ids.size / 1e6:.0f} M tokens), median of {args.rounds}"
    )
    steps = [[step.replace("_", " "), seconds] for step, seconds in result["seconds"].items()]
    print(render_table(["step", "seconds"], steps, markdown=True, float_format=".2f"))
    print(f"kept {kept} tokens; label-carrying tokens recovered: {result['label_tokens_recovered']}")
    print(f"{os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f} (other processes share them)")
    if args.output:
        os.makedirs(os.path.dirname(args.output) or ".", exist_ok=True)
        with open(args.output, "w", encoding="utf-8") as file:
            json.dump(result, file, indent=1)
        print(f"wrote {args.output}")
    return result


if __name__ == "__main__":
    main()
