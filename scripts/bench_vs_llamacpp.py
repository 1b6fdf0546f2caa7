#!/usr/bin/env python3
"""CPU speed of dsq next to llama.cpp on one machine, same model, same quantization level, same
threads. Prints ratios; asserts nothing.

Steps (everything built or downloaded goes under --work, outside the repository):
  1. llama.cpp: the sdist of llama-cpp-python (pinned below; it vendors llama.cpp under
     vendor/llama.cpp) is fetched with pip, unpacked, patched so that a deepseek2 GGUF without
     q compression loads at any depth (q_lora_rank optional; upstream keys it on n_layer == 27,
     see docs/QUANT.md), and llama-bench + llama-quantize are built with cmake, CPU only.
  2. Models: the tiny trained model (models/tiny-v2) and the synthetic full-width DeepSeek-V2-Lite
     cut to 2 layers (scripts/make_synthetic_checkpoint.py, made once under build/bench).
     llama.cpp: convert_hf_to_gguf.py --outtype bf16 (through quant_study.py's pre-tokenizer
     wrapper), then llama-quantize to Q8_0, Q4_0, Q4_K_M. dsq: dsq convert --quant
     bf16|q8|q4|q4-q6, and --quant q4-all --override output=q8 or output=q6.
  3. Rounds, alternating the two programs: dsq bench and llama-bench, prefill of 512 tokens and
     64 decode steps at an empty cache and after 512 tokens, each pair
     bf16/BF16, q8/Q8_0, q4/Q4_0, q4/Q4_K_M, q4-all with a q8 or q6 head against Q4_0 (the
     layout of Q4_0; the q6 head also its bytes), and q4-q6 against Q4_K_M (about its bytes).
     Per pair the best of the rounds is reported, with dsq/llama.cpp ratios; decode GB/s is
     each file's weight bytes read per token times tok/s, next to dsq bench's plain threaded
     read of its file in the same round. A second table gives each ratio taken within each
     round (the two programs minutes apart rather than at their best minutes): the smallest
     and the median over the rounds.

Needs: cmake, a C/C++ compiler, and --python (default: python3) with numpy, torch, transformers,
safetensors, tokenizers and sentencepiece for the GGUF conversion.

  scripts/bench_vs_llamacpp.py [--dsq build/dsq] [--work DIR] [--threads N] [--rounds N]
                               [--repeat N] [--busy N]

--repeat N (default 1) times each program N times per round in one process and takes the
median (dsq bench --repeat, llama-bench -r's samples): on a shared VM single runs vary by
10-20% from process to process.

--busy N keeps N other processes spinning on the CPU while the rounds run (a busy machine: with
N = 1 on 2 cores, each program's threads share the cores with someone else's work).
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path

LLAMA_CPP_PYTHON = "0.3.36"
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
import quant_study  # noqa: E402  (the pre-tokenizer check)

PAIRS = [("bf16", "bf16", "BF16"), ("q8", "q8", "Q8_0"), ("q4", "q4", "Q4_0"),
         ("q4", "q4", "Q4_K_M"), ("q4-all+output=q8", "", "Q4_0"),
         ("q4-all+output=q6", "", "Q4_0"), ("q4-q6", "q4-q6", "Q4_K_M")]

# dsq convert options of each dsq variant. Q4_0's make-up is q4-all with a wider head: Q8_0 on the
# tiny model (rows too short for K-quants), Q6_K at full width; docs/QUANT.md. The q4 preset
# keeps attention, shared experts, embeddings and head at q8; q4-q6 stores those (but the
# embedding, of which a token reads one row) as q6, which reads about as many bytes per token
# as Q4_K_M (Q4_K with Q6_K and Q8_0 down projections and a Q6_K head at full width).
DSQ_VARIANTS = {"bf16": ["--quant", "bf16"], "q8": ["--quant", "q8"], "q4": ["--quant", "q4"],
                "q4-all+output=q8": ["--quant", "q4-all", "--override", "output=q8"],
                "q4-all+output=q6": ["--quant", "q4-all", "--override", "output=q6"],
                "q4-q6": ["--quant", "q4-q6"]}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def run_process(cmd, **kw):
    """The finished process, whatever its exit status."""
    log("  $ " + " ".join(str(c) for c in cmd))
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)


def failure(cmd, p):
    return SystemExit(f"{Path(str(cmd[0])).name} exited {p.returncode}:\n"
                      + "\n".join((p.stdout + p.stderr).strip().splitlines()[-15:]))


def run(cmd, **kw):
    p = run_process(cmd, **kw)
    if p.returncode:
        raise failure(cmd, p)
    return p.stdout


# The converter, unmodified, except that a BPE pre-tokenizer hash it does not know is mapped to
# "deepseek-llm" (the caller checks tokenizer.json has that structure), as quant_study.py does
# for the older tree; this llama.cpp keeps get_vocab_base_pre in conversion/base.py.
CONVERT_SHIM = r'''
import importlib.util, sys
llama_dir = sys.argv[1]
sys.argv = [llama_dir + "/convert_hf_to_gguf.py"] + sys.argv[2:]
import conversion.base as base
patched = 0
for obj in list(vars(base).values()):
    if isinstance(obj, type) and "get_vocab_base_pre" in vars(obj):
        orig = vars(obj)["get_vocab_base_pre"]
        def wrapped(self, tokenizer, _orig=orig):
            try:
                return _orig(self, tokenizer)
            except NotImplementedError:
                print("unknown pre-tokenizer hash; using 'deepseek-llm'", file=sys.stderr)
                return "deepseek-llm"
        setattr(obj, "get_vocab_base_pre", wrapped)
        patched += 1
assert patched, "no get_vocab_base_pre in conversion/base.py"
spec = importlib.util.spec_from_file_location("convert_hf_to_gguf", sys.argv[0])
mod = importlib.util.module_from_spec(spec)
sys.modules["convert_hf_to_gguf"] = mod
spec.loader.exec_module(mod)
mod.main()
'''


def build_llama(work, jobs):
    src = work / f"llama_cpp_python-{LLAMA_CPP_PYTHON}" / "vendor" / "llama.cpp"
    if not src.is_dir():
        run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
             f"llama-cpp-python=={LLAMA_CPP_PYTHON}", "-d", work])
        with tarfile.open(work / f"llama_cpp_python-{LLAMA_CPP_PYTHON}.tar.gz") as t:
            t.extractall(work, filter="data")
    # q_lora_rank optional: V2-Lite's layout at any depth (the real 27-layer files have no key)
    model_src = src / "src" / "models" / "deepseek2.cpp"
    text = model_src.read_text()
    old = "ml.get_key(LLM_KV_ATTENTION_Q_LORA_RANK, hparams.n_lora_q);"
    new = "ml.get_key(LLM_KV_ATTENTION_Q_LORA_RANK, hparams.n_lora_q, false);"
    if old in text:
        model_src.write_text(text.replace(old, new, 1))
    elif new not in text:
        raise SystemExit(f"{model_src}: the q_lora_rank line to patch is not there")
    build = work / "llama-build"
    bins = [build / "bin" / "llama-bench", build / "bin" / "llama-quantize"]
    if not all(b.exists() for b in bins):
        run(["cmake", "-S", src, "-B", build, "-DCMAKE_BUILD_TYPE=Release", "-DGGML_NATIVE=ON",
             "-DGGML_CUDA=OFF", "-DLLAMA_CURL=OFF", "-DLLAMA_BUILD_TESTS=OFF",
             "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_SERVER=OFF"])
        run(["cmake", "--build", build, f"-j{jobs}", "--target", "llama-bench", "llama-quantize"])
    return src, bins[0], bins[1]


def ggufs(a, src, quantize, name, hf_dir, out):
    """bf16 GGUF by the converter, the others by llama-quantize; returns {ftype: path}."""
    out.mkdir(parents=True, exist_ok=True)
    files = {"BF16": out / f"{name}-BF16.gguf"}
    if not files["BF16"].exists():
        if not quant_study.deepseek_llm_pretokenizer(hf_dir):
            raise SystemExit(f"{hf_dir}: tokenizer.json is not DeepSeek LLM's pre-tokenizer")
        shim = out / "convert_shim.py"
        shim.write_text(CONVERT_SHIM)
        # the converter imports its own packages (conversion/, gguf-py/) from its folder
        env = dict(os.environ, PYTHONPATH=f"{src}{os.pathsep}{src / 'gguf-py'}")
        run([a.python, shim, src, hf_dir, "--outtype", "bf16", "--outfile", files["BF16"]],
            env=env)
    for ftype in ("Q8_0", "Q4_0", "Q4_K_M"):
        files[ftype] = out / f"{name}-{ftype}.gguf"
        if not files[ftype].exists():
            run([quantize, files["BF16"], files[ftype], ftype, str(a.threads)])
    return files


def dsq_files(a, name, hf_dir, out):
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for preset, options in DSQ_VARIANTS.items():
        files[preset] = out / f"{name}-{preset.replace('+', '-').replace('=', '-')}.dsq"
        if not files[preset].exists():
            run([a.dsq, "convert", hf_dir, "-o", files[preset], *options, "-q"])
    return files


def gguf_decode_bytes(a, src, path):
    """Weight bytes one decode token reads from a GGUF: all tensors but the unused routed experts
    (top-k of n) and all but one row of the token embedding (as dsq bench counts its own)."""
    code = r'''
import json, sys
sys.path.insert(0, sys.argv[1] + "/gguf-py")
from gguf import GGUFReader
r = GGUFReader(sys.argv[2])
arch = r.fields["general.architecture"].contents()
k = int(r.fields[arch + ".expert_used_count"].contents())
n = int(r.fields[arch + ".expert_count"].contents())
total = 0.0
for t in r.tensors:
    b = float(t.n_bytes)
    if "_exps." in t.name:
        b *= k / n
    elif t.name == "token_embd.weight":
        b /= int(t.shape[-1])
    total += b
print(json.dumps(total))
'''
    return float(run([a.python, "-c", code, src, path]))


def dsq_bench(a, path, depth):
    """prefill_tok_s and decode_tok_s are the medians of --repeat runs in one process."""
    out = run([a.dsq, "bench", path, "--prompt", "512", "--gen", "64", "--depth", str(depth),
               "--threads", str(a.threads), "--repeat", str(a.repeat), "--json"])
    return json.loads(out)


# Files llama-bench ran only without its repacked weight buffers (see llama_bench).
NO_REPACK = set()


def llama_bench(a, exe, path):
    """The median of llama-bench's -r runs (its samples_ts), as dsq bench reports. llama.cpp
    0.3.36 on a CPU with AMX fails on quantized deepseek2 files in its repacked (AMX) weight
    buffers: GGML_ASSERT(*cur_backend_id != -1) in ggml-backend.cpp, or killed by a signal
    (SIGILL on the tiny Q4_K_M); such a file is run with --repack 0, as a user would have to,
    and the tables name it."""
    cmd = [exe, "-m", path, "-p", "512", "-n", "64", "-d", "0,512", "-t", str(a.threads),
           "-r", str(a.repeat), "-o", "json"]
    if path not in NO_REPACK:
        p = run_process(cmd)
        if p.returncode == 0:
            out = p.stdout
        elif "cur_backend_id != -1" in p.stderr or p.returncode < 0:
            log(f"  llama-bench failed ({p.returncode}) on {Path(path).name} with its repacked "
                "buffers; again with --repack 0")
            NO_REPACK.add(path)
        else:
            raise failure(cmd, p)
    if path in NO_REPACK:
        out = run(cmd + ["--repack", "0"])
    res = {}
    for row in json.loads(out):
        key = ("prefill" if row["n_prompt"] else "decode", row.get("n_depth", 0))
        res[key] = statistics.median(row.get("samples_ts") or [row["avg_ts"]])
    return res


def load_average():
    return open("/proc/loadavg").read().split()[:3]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dsq", default=str(REPO / "build" / "dsq"))
    ap.add_argument("--work", default=os.environ.get("DSQ_BENCH_WORK",
                                                     str(Path.home() / ".cache" / "dsq-bench")))
    ap.add_argument("--python", default=os.environ.get("LLAMA_PYTHON", "python3"),
                    help="python with torch, transformers, numpy for convert_hf_to_gguf.py")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=1,
                    help="timed runs per program and round, in one process; each reports the "
                         "median (dsq bench --repeat, llama-bench -r)")
    ap.add_argument("--models", default="tiny,v2lite-2layer")
    ap.add_argument("--busy", type=int, default=0,
                    help="processes kept spinning on the CPU during the rounds")
    a = ap.parse_args()
    work = Path(a.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    src, llama, quantize = build_llama(work, a.threads)
    synth = REPO / "build" / "bench" / "v2lite-2layer"
    if "v2lite-2layer" in a.models and not (synth / "model.safetensors.index.json").exists():
        run([a.python, REPO / "scripts" / "make_synthetic_checkpoint.py", synth, "--layers", "2",
             "--shards", "4"])
    models = {"tiny": REPO / "models" / "tiny-v2", "v2lite-2layer": synth}
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                if l.startswith("model name")), "unknown CPU")
    commit = run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"]).strip()
    print(f"machine: {cpu}, {os.cpu_count()} cores; threads {a.threads}; dsq at {commit}; "
          f"llama.cpp from llama-cpp-python {LLAMA_CPP_PYTHON}; {a.rounds} rounds of "
          f"{a.repeat} run{'s' if a.repeat > 1 else ''}"
          + (f"; {a.busy} spinning process{'es' if a.busy > 1 else ''} beside them" if a.busy else ""))
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
                for _ in range(a.busy)]
    try:
        for name in a.models.split(","):
            compare(a, name, models[name], src, llama, quantize, work)
    finally:
        for p in spinners:
            p.kill()


def compare(a, name, hf, src, llama, quantize, work):
    """The rounds of one model and their two tables."""
    g = ggufs(a, src, quantize, name, hf, work / "gguf")
    d = dsq_files(a, name, hf, work / "dsq")
    gbytes = {ft: gguf_decode_bytes(a, src, p) for ft, p in g.items()}
    rounds = []  # per round: (program, file, depth) -> {"prefill", "decode"[, "read", "bytes"]}
    loads = []
    for rnd in range(a.rounds):
        got = {}
        order = [0, 1] if rnd % 2 == 0 else [1, 0]  # alternate who goes first
        for preset, _, ftype in PAIRS:
            for who in order:
                loads.append(load_average()[0])
                if who == 0:
                    for depth in (0, 512):
                        r = dsq_bench(a, d[preset], depth)
                        got[("dsq", preset, depth)] = {
                            "prefill": r["prefill_tok_s"], "decode": r["decode_tok_s"],
                            "read": r["read_baseline_gb_s"], "bytes": r["bytes_per_token"]}
                else:
                    r = llama_bench(a, llama, g[ftype])
                    for depth in (0, 512):
                        got[("llama", ftype, depth)] = {
                            "prefill": r.get(("prefill", depth), 0),
                            "decode": r.get(("decode", depth), 0)}
        rounds.append(got)

    def best(key, what):
        return max(r[key][what] for r in rounds)

    def ratio(x, y):
        return f"{x / y:.2f}" if y else "n/a"

    print(f"\n== {name} (best of {a.rounds} rounds of the median of {a.repeat}; load average "
          f"1-min during the run: {min(loads)}-{max(loads)})")
    print("| dsq / llama.cpp | prefill 512 tok/s | ratio | decode 64 @0 tok/s | ratio "
          "| decode 64 @512 tok/s | ratio | decode GB/s @0 (dsq / llama.cpp) "
          "| read GB/s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for preset, _, ftype in PAIRS:
        dk0, dk5, lk0, lk5 = (("dsq", preset, 0), ("dsq", preset, 512), ("llama", ftype, 0),
                              ("llama", ftype, 512))
        pf = max(best(dk0, "prefill"), best(dk5, "prefill"))
        lpf, d0, d5 = best(lk0, "prefill"), best(dk0, "decode"), best(dk5, "decode")
        l0, l5 = best(lk0, "decode"), best(lk5, "decode")
        print(f"| {preset} / {ftype} | {pf:.1f} / {lpf:.1f} | {ratio(pf, lpf)} | "
              f"{d0:.1f} / {l0:.1f} | {ratio(d0, l0)} | {d5:.1f} / {l5:.1f} | "
              f"{ratio(d5, l5)} | {rounds[0][dk0]['bytes'] * d0 / 1e9:.1f} / "
              f"{gbytes[ftype] * l0 / 1e9:.1f} | {best(dk0, 'read'):.1f} |")
    print(f"\n{name}, ratios within each round (dsq / llama.cpp), smallest and median of "
          f"{a.rounds}:")
    print("| dsq / llama.cpp | prefill 512 | decode 64 @0 | decode 64 @512 |")
    print("|---|---:|---:|---:|")
    for preset, _, ftype in PAIRS:
        cells = []
        for what, dk, lk in (("prefill", ("dsq", preset, 0), ("llama", ftype, 0)),
                             ("decode", ("dsq", preset, 0), ("llama", ftype, 0)),
                             ("decode", ("dsq", preset, 512), ("llama", ftype, 512))):
            rs = [r[dk][what] / r[lk][what] for r in rounds if r[lk][what]]
            cells.append(f"{min(rs):.2f} / {statistics.median(rs):.2f}" if rs else "n/a")
        print(f"| {preset} / {ftype} | " + " | ".join(cells) + " |")
    skipped = sorted(f for f, p in g.items() if p in NO_REPACK)
    if skipped:
        print(f"llama.cpp ran {', '.join(skipped)} with --repack 0 (with its repacked "
              "buffers it failed on this CPU)")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
