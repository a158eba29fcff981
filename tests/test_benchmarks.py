"""The benchmark scripts: timing and memory helpers, the peers' inputs, and a smoke run of `--quick` (no thresholds)."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import peers  # noqa: E402
from benchmarks.timing import Cell, Round, RssProbe, measure, run_interleaved  # noqa: E402


def test_contended_rounds_never_enter_the_statistic():
    cell = Cell(("m", 3.0), lambda: None, [Round(1.0, 1.0), Round(9.0, 2.0), Round(3.0, 2.9)])
    stats = cell.summary(min_cpu_ratio=0.9)
    assert stats["clean_rounds"] == 2 and stats["rounds"] == 3 and not stats["contended"]
    assert stats["wall_s"] == 2.0  # median of 1.0 and 3.0; the 9 s contended round is left out
    only_contended = Cell(("m", 3.0), lambda: None, [Round(4.0, 1.0), Round(6.0, 1.0)]).summary(0.9)
    assert only_contended["contended"] and only_contended["wall_s"] == 5.0


def test_contended_rounds_are_repeated_while_the_budget_lasts():
    ratios = iter([0.3, 0.5, 1.0, 1.0, 0.2])  # CPU seconds per wall second of successive rounds

    def fake_measure(work, probe):
        work()
        return Round(wall=1.0, cpu=next(ratios))

    calls = []
    cell = Cell(("m",), lambda: calls.append(1))
    run_interleaved([cell], rounds=2, min_cpu_ratio=0.9, deadline=time.perf_counter() + 60, measure_round=fake_measure)
    assert [r.cpu for r in cell.rounds] == [0.3, 0.5, 1.0, 1.0]  # two contended rounds, then two clean retries
    assert len(calls) == 4 and cell.summary(0.9)["clean_rounds"] == 2

    # Past the deadline: the first pass still runs, nothing more.
    late = Cell(("m",), lambda: None)
    past = time.perf_counter()
    run_interleaved([late], rounds=3, min_cpu_ratio=0.9, deadline=past, measure_round=fake_measure)
    assert len(late.rounds) == 1 and late.summary(0.9)["contended"]


def test_measure_records_cpu_and_wall_time():
    slept = measure(lambda: time.sleep(0.2))
    assert slept.wall >= 0.2 and slept.cpu_ratio < 0.5  # waiting is not computing


@pytest.mark.skipif(not RssProbe().available, reason="needs Linux /proc/self/clear_refs")
def test_rss_probe_sees_the_peak_of_torch_allocations():
    probe = RssProbe()

    def allocate(mib):
        def work():
            tensor = torch.ones(mib * 2**18)  # float32: mib MiB, touched
            del tensor

        return work

    big = measure(allocate(300), probe)
    small = measure(allocate(60), probe)  # after a bigger one was freed: the reset must still see only 60 MiB
    assert 290 <= big.peak_mib <= 330
    assert 55 <= small.peak_mib <= 90


@pytest.mark.parametrize("name", peers.MODELS)
def test_each_model_gets_as_many_placeholders_as_its_audio_path_yields(name):
    size = peers.SIZES["tiny"]
    model = peers.build_model(name, size).eval()
    bank = peers.FeatureBank(size.num_mel_bins)
    for seconds in (2.0, 3.3):
        inputs = peers.audio_inputs(name, model, bank, seconds, batch_size=2)
        with torch.no_grad():
            if name.startswith("voxlm-"):
                produced = model.get_audio_features(inputs["input_features"], inputs["input_features_mask"]).shape[0]
            elif name == "qwen2-audio":
                lengths = inputs["feature_attention_mask"].sum(-1)
                produced = int(model.model.audio_tower._get_feat_extract_output_lengths(lengths)[1].sum())
            else:
                produced = (
                    model.get_audio_features(inputs["input_features"])
                    .pooler_output.reshape(-1, size.llm_width)
                    .shape[0]
                )
        assert produced == 2 * peers.audio_positions(name, model, seconds)
        batch = peers.training_batch(name, model, size, bank, seconds, batch_size=2)
        assert (batch["input_ids"] == peers.audio_token_id(size)).sum() == produced
        assert torch.isfinite(model(**batch).loss)


def test_models_share_the_language_model_size():
    size = peers.SIZES["tiny"]
    llm = {name: peers.parameter_counts(peers.build_model(name, size))["llm"] for name in peers.MODELS}
    assert len(set(llm.values())) == 1


def test_quick_run_writes_every_section(tmp_path):
    output = tmp_path / "quick.json"
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "benchmarks.compare_peers", "--quick", "--output", str(output)]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Training step" in done.stdout and "VoxLM against Qwen2-Audio" in done.stdout
    results = json.loads(output.read_text())
    assert set(results["section_seconds"]) == {"train", "generate", "profile", "continuation", "lasso"}
    train = {(row["model"], row["seconds"]): row for row in results["train"]}
    assert set(train) == {(name, s) for name in peers.MODELS for s in (3.0, 30.0)}
    assert all(row["audio_s_per_wall_s"] > 0 and len(row["cpu_ratios"]) >= 1 for row in train.values())
    assert train[("voxlm-blsp", 30.0)]["positions_per_second"] == pytest.approx(6.25, abs=0.05)
    assert train[("voxlm-speechverse", 30.0)]["positions_per_second"] == pytest.approx(12.5, abs=0.05)
    assert train[("qwen2-audio", 3.0)]["positions"] == 75
    assert train[("voxtral", 3.0)]["positions"] == 375  # the whole padded 30 s window reaches the LLM
    assert {check["preset"] for check in results["acceptance"]} == {f"voxlm-{p}" for p in peers.VOXLM_PRESETS}
    profile = results["profile"][0]
    assert {"encoder", "adapter", "llm layers", "lm head"} <= set(profile["parts"])
    assert sum(part["share"] for part in profile["parts"].values()) == pytest.approx(1.0)
    assert len(results["generate"]) == 2 * len(peers.MODELS)
    assert results["continuation"]["identical_fraction"] is not None
    assert [row["clips"] for row in results["lasso"]] == [30, 60]
    selection = {"C", "token_types", "nonzero_weights", "selected_tokens", "label_tokens_recovered"}
    assert all(selection <= set(row) for row in results["lasso"])  # what SpeechTokenSelector.fit selected


@pytest.mark.skipif(not RssProbe().available, reason="needs Linux /proc/self/clear_refs")
def test_in_process_peak_memory_agrees_with_a_fresh_process():
    from benchmarks import compare_peers

    args = compare_peers.parse_args(["--quick", "--batch-size", "4"])
    in_process = compare_peers.first_step_peak(args, "qwen2-audio", 30.0, RssProbe())
    command = [sys.executable, "-m", "benchmarks.compare_peers", "--quick", "--batch-size", "4",
               "--memory-child", "qwen2-audio", "30"]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=240, check=True)
    fresh = json.loads(done.stdout.strip().splitlines()[-1])["peak_mib"]
    # The probe trims glibc's free lists first, so it also counts pages a fresh process would reuse unseen from its
    # free lists: it reads the same magnitude, somewhat higher.
    assert fresh is not None and 0.8 * fresh <= in_process <= 1.5 * fresh
