#!/usr/bin/env bash
# Records llama-perplexity's numbers for crates/cli/tests/perplexity.rs into
# perplexity_golden.json (next to this script): the real fixture model on
# declaration.txt, 2 threads, one chunk per step (-b = -c).
#   - perplexity at -c 128 (all chunks) and -c 512 (all chunks);
#   - a KL-divergence base of the real model (-c 128 --chunks 3), then the
#     real model requantized to Q4_0 by llama-quantize --allow-requantize
#     (byte-identical to `shohin quantize ... Q4_0 --allow-requantize`)
#     compared against it.
# Usage: bash crates/cli/tests/data/gen_perplexity_golden.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
peer=$(bash "$here/../../../../../shared/peer/build-llama-cpp.sh" | tail -1)
model=$(bash "$here/../../../../../shared/fixtures/fetch-real-model.sh" | tail -1)
text="$here/declaration.txt"
export LD_LIBRARY_PATH="$peer/bin${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

ppl() { "$peer/bin/llama-perplexity" -m "$1" -f "$text" -t 2 "${@:2}" 2>&1; }

ppl "$model" -c 128 -b 128 > "$tmp/c128.log"
ppl "$model" -c 512 -b 512 > "$tmp/c512.log"
ppl "$model" -c 128 -b 128 --chunks 3 --kl-divergence-base "$tmp/base.kld" > "$tmp/base.log"
"$peer/bin/llama-quantize" --allow-requantize "$model" "$tmp/q4_0.gguf" Q4_0 2 > "$tmp/quant.log" 2>&1
ppl "$tmp/q4_0.gguf" -c 128 -b 128 --kl-divergence-base "$tmp/base.kld" --kl-divergence > "$tmp/kld.log"

python3 - "$tmp" "$here/perplexity_golden.json" "$(git -C "$peer/src" describe --always 2>/dev/null || echo llama-cpp-python-0.3.36)" <<'PY'
import json, re, sys
tmp, out, version = sys.argv[1:4]

def ppl(name):
    log = open(f"{tmp}/{name}.log").read()
    chunks = [float(x) for x in re.findall(r"\[\d+\]([0-9.]+),", log)]
    m = re.search(r"Final estimate: PPL = ([0-9.]+) \+/- ([0-9.]+)", log)
    return {"chunks": chunks, "ppl": float(m.group(1)), "err": float(m.group(2))}

log = open(f"{tmp}/kld.log").read()
def stat(label):
    m = re.search(re.escape(label) + r"\s*:?\s*(-?[0-9.]+)\s*(?:±\s*(-?[0-9.]+))?", log)
    return float(m.group(1))

kld = {
    "mean_ppl_q": stat("Mean PPL(Q)                   :"),
    "mean_ppl_base": stat("Mean PPL(base)                :"),
    "ppl_ratio": stat("Mean PPL(Q)/PPL(base)         :"),
    "mean_kld": stat("Mean    KLD:"),
    "max_kld": stat("Maximum KLD:"),
    "kld_99_9": stat("99.9%   KLD:"),
    "kld_99": stat("99.0%   KLD:"),
    "kld_95": stat("95.0%   KLD:"),
    "kld_90": stat("90.0%   KLD:"),
    "median_kld": stat("Median  KLD:"),
    "kld_10": stat("10.0%   KLD:"),
    "kld_5": stat(" 5.0%   KLD:"),
    "kld_1": stat(" 1.0%   KLD:"),
    "rms_dp": stat("RMS Δp    :"),
    "same_top_p": stat("Same top p:"),
}
golden = {
    "source": f"llama-perplexity ({version}), -t 2, -b = -c, real fixture model, declaration.txt",
    "c128": ppl("c128"),
    "c512": ppl("c512"),
    "kld_base_c128_chunks3": ppl("base"),
    "kld_q4_0_vs_base_c128_chunks3": kld,
}
with open(out, "w") as f:
    json.dump(golden, f, indent=1)
    f.write("\n")
print(json.dumps(golden, indent=1))
PY
