#!/usr/bin/env bash
# Trains and exports halo-tiny end to end, as the shipped files were made: corpus, tokenizer, main model,
# draft model, Hugging Face snapshots and .halo files through halo's own writers, Medusa heads, then the
# held-out perplexity and speculation acceptance the README reports. Run from the repository root after
# `pnpm install && turbo run build` (export.mjs, corpus.mjs and tokenizer.mjs import the built packages).
# Takes about an hour on 2 cores (the README lists each step's time on the CPUs it ran on).
set -euo pipefail

T=packages/model-tiny/train
W=$T/work
M=packages/model-tiny
PY=${HALO_PYTHON:-/usr/bin/python3}

missing=()
[ -d /usr/share/doc/python3.11/html/_sources ] || missing+=(python3-doc)
"$PY" -c "import torch, numpy" 2>/dev/null || missing+=(python3-torch python3-numpy)
ls /usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3 >/dev/null 2>&1 || missing+=(libopenblas0-pthread)
if [ ${#missing[@]} -gt 0 ]; then
  echo "run.sh: missing Debian packages: ${missing[*]} — run: apt-get install -y ${missing[*]}" >&2
  exit 1
fi
# The training speed depends on OpenBLAS picking this CPU's kernels: leave its overrides unset.
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE

mkdir -p "$W" "$M/models" "$M/hf"
node $T/corpus.mjs
node $T/tokenizer.mjs

"$PY" $T/train.py train --kind main --train $W/train.u16 --heldout $W/heldout.u16 --out $W/main \
  --steps 900 --warmup 60 --lr 3e-3 --log-every 50
"$PY" $T/train.py train --kind draft --train $W/train.u16 --heldout $W/heldout.u16 --out $W/draft \
  --steps 400 --warmup 40 --lr 3e-3 --log-every 50

node $T/export.mjs --checkpoint $W/main --tokenizer-dir $W --hf-out $M/hf/halo-tiny --halo-out $M/models/halo-tiny.halo --name halo-tiny
node $T/export.mjs --checkpoint $W/draft --tokenizer-dir $W --hf-out $M/hf/halo-tiny-draft --halo-out $M/models/halo-tiny-draft.halo --name halo-tiny-draft

"$PY" $T/train.py medusa --snapshot $M/hf/halo-tiny --train $W/train.u16 --out $W/medusa --steps 300
node $T/export.mjs --medusa $W/medusa --out $M/models/halo-tiny.h1b-medusa

# What the README reports: held-out perplexity (256-token windows, as `halo ppl -c 256`) against a unigram
# model, and greedy speculation acceptance of the draft model and the Medusa heads.
node $T/heldout-ids.mjs $M/hf/halo-tiny $M/data/heldout.txt $W/heldout-ppl.u16
"$PY" $T/train.py ppl --snapshot $M/hf/halo-tiny --tokens $W/heldout-ppl.u16 --context-length 256 --unigram-from $W/train.u16 | tee $W/ppl.json
"$PY" $T/train.py accept --snapshot $M/hf/halo-tiny --draft $M/hf/halo-tiny-draft --medusa $M/models/halo-tiny.h1b-medusa \
  --tokens $W/heldout.u16 | tee $W/accept.json
