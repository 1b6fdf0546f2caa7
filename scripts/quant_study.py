#!/usr/bin/env python3
"""Quantization study: dsq's storage types (and, when a llama.cpp build is given, llama.cpp's)
measured on one model and one text with the same perplexity and KL-divergence statistics.

Run through scripts/quant_study.sh (same arguments). For each variant it converts the model,
runs `dsq ppl --kld-base BASE --json` against the bf16 base's saved log-probs and collects:
file size, bits per weight (all tensors, and the weight matrices alone, i.e. without the norms
and the router that both tools keep f32), perplexity +/- its standard error, mean KLD, 99th
percentile KLD and top-1 agreement. It writes OUT/results.md (the table), OUT/results.csv and
OUT/results.json (for scripts/plot_quant.py); everything written is a function of the inputs
(no timings, no absolute paths).

llama.cpp rows (optional: --llama-cpp DIR or LLAMA_CPP=DIR, a llama.cpp source tree with
llama-quantize and llama-perplexity built under DIR/build/bin): convert_hf_to_gguf.py to an f32
GGUF (the bf16 weights exactly) and a bf16 GGUF, llama-quantize the bf16 one to Q8_0 / Q4_K_M /
Q4_0, llama-perplexity --kl-divergence-base on the f32 GGUF with an f32 KV cache (nothing
rounded: the base) and --kl-divergence for bf16 and each quant, with the same text and ctx;
then the two bases, dsq's and llama.cpp's, are compared token by token. The converter runs under
--llama-python (LLAMA_PYTHON, default python3), which needs torch, numpy, transformers,
sentencepiece and pyyaml. This script builds nothing: without a build those rows are skipped
(and the table says so).

--quick: dsq rows bf16 / q8 / q4 only (for make demo).
"""
import argparse
import csv
import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# (key, label, convert arguments, what is stored how)
DSQ_VARIANTS = [
    ("bf16", "bf16 (base)", ["--quant", "bf16"], "every matrix bf16"),
    ("q8", "q8", ["--quant", "q8"], "every matrix q8 (G 64)"),
    ("q8-g32", "q8, G 32", ["--quant", "q8", "--group-size", "32"],
     "every matrix q8, groups of 32: the storage of llama.cpp's Q8_0 (int8, one f16 scale "
     "per 32)"),
    ("q4", "q4", ["--quant", "q4"], "routed experts q4, other matrices q8 (G 64)"),
    ("q4-q6", "q4-q6", ["--quant", "q4-q6"],
     "routed experts q4, embeddings q8, other matrices q6 (G 64)"),
    ("q4-all", "q4-all", ["--quant", "q4-all"], "every matrix q4 (G 64)"),
    ("q4+experts-q8", "q4 + experts=q8",
     ["--quant", "q4", "--override", "layers.*.mlp.experts.*=q8"],
     "q4 with the routed experts overridden to q8: every matrix q8, as the q8 preset"),
    ("q4+attn-q4", "q4 + attn=q4",
     ["--quant", "q4", "--override", "layers.*.attn.*=q4",
      "--override", "layers.*.attn.kv_a_norm=f32"],
     "routed experts and attention q4; embeddings, head, dense/shared FFN q8"),
    ("q4-all+output-q8", "q4-all + output=q8",
     ["--quant", "q4-all", "--override", "output=q8"],
     "every matrix q4 but the output head q8: the layout llama.cpp's Q4_0 ends up with here"),
    ("q4-all+output-q6", "q4-all + output=q6",
     ["--quant", "q4-all", "--override", "output=q6"],
     "every matrix q4 but the output head q6 (6.25 bpw): the bits llama.cpp's Q4_0 gives a "
     "head wide enough for its Q6_K"),
    ("q4+output-q6", "q4 + output=q6", ["--quant", "q4", "--override", "output=q6"],
     "routed experts q4, output head q6, other matrices q8"),
    ("q4-all+experts-q8", "q4-all + experts=q8",
     ["--quant", "q4-all", "--override", "layers.*.mlp.experts.*=q8"],
     "the inverse split: routed experts q8, every other matrix q4"),
    ("q4-g32", "q4, G 32", ["--quant", "q4", "--group-size", "32"],
     "as q4, groups of 32 (q4 4.5 -> 5.0 bpw, q8 8.25 -> 8.5)"),
    ("q4-g64", "q4, G 64", ["--quant", "q4", "--group-size", "64"],
     "as q4 (64 is the default group)"),
    ("q4-g128", "q4, G 128", ["--quant", "q4", "--group-size", "128"],
     "as q4, groups of 128 (q4 4.25 bpw, q8 8.125)"),
]
QUICK = ["bf16", "q8", "q4"]

LLAMA_QUANTS = [
    ("Q8_0", "Q8_0"),
    ("Q4_K_M", "Q4_K_M"),
    ("Q4_0", "Q4_0"),
]

# DeepSeek LLM's pre-tokenizer (tokenizer.json of deepseek-llm-7b-base, DeepSeek-V2(-Lite),
# DeepSeek-MoE): five Split regexes, then Digits(individual_digits), then ByteLevel without its
# own regex. llama.cpp implements it as pre-tokenizer "deepseek-llm". These are the first,
# third and fourth regexes verbatim and the start of the second and fifth.
DEEPSEEK_LLM_SPLITS = ["[\r\n]", "\\s?[A-Za-z\u00b5\u00c0-\u00d6", "\\s?[!-/:-~\uff01-\uff0f\uff1a-\uff5e\u2018-\u201f\u3000-\u3002]+",
                       "\\s+$", "[\u4e00-\u9fa5\u0800-\u4e00\uac00-\ud7ff]+"]


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def run(cmd, log_path=None, env=None, check=True, cwd=None):
    """Runs cmd; stdout returned, stdout+stderr also written to log_path."""
    log("  $ " + " ".join(shlex.quote(str(c)) for c in cmd))
    p = subprocess.run([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=env, cwd=cwd)
    out, err = p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")
    if log_path:
        Path(log_path).write_text("$ " + " ".join(shlex.quote(str(c)) for c in cmd) + "\n"
                                  + out + ("\n--- stderr ---\n" + err if err else ""))
    if check and p.returncode != 0:
        tail = "\n".join((out + err).strip().splitlines()[-15:])
        raise RuntimeError(f"{Path(cmd[0]).name} exited {p.returncode}:\n{tail}")
    return out, err, p.returncode


def rel(p):
    try:
        return str(Path(p).resolve().relative_to(ROOT))
    except ValueError:
        return str(p)


# ---- dsq ------------------------------------------------------------------------------------

def dsq_sizes(dsq, path):
    """file bytes, params, bpw over all tensors, bpw over the matrices without norms and router,
    and the storage type of each tensor class."""
    out, _, _ = run([dsq, "info", path, "--json"])
    info = json.loads(out)
    mat_bytes = mat_params = 0
    classes = {}
    for name, c in info["classes"].items():
        classes[name] = c["type"]
        if name in ("norm", "router"):
            continue
        mat_bytes += c["bytes"]
        mat_params += c["params"]
    return {
        "file_bytes": info["file_size"],
        "params": info["params"]["total"],
        "tensor_bytes": info["size"]["bytes"],
        "bpw": info["size"]["bits_per_weight"],
        "bpw_matrices": 8.0 * mat_bytes / mat_params,
        "matrix_params": mat_params,
        "types": classes,
    }


def dsq_rows(a, work, keys):
    rows = []
    base_dsq = work / "dsq-bf16.dsq"
    base_logits = work / "dsq-bf16.logits"
    for key, label, conv, storage in DSQ_VARIANTS:
        if key not in keys:
            continue
        log(f"dsq {label}")
        path = base_dsq if key == "bf16" else work / f"dsq-{key}.dsq"
        row = {"tool": "dsq", "key": key, "label": label, "storage": storage,
               "command": "dsq convert MODEL -o OUT.dsq " + " ".join(shlex.quote(c) for c in conv)}
        try:
            # paths relative to the repository: the file records its convert command, so its
            # size then does not depend on where the checkout is
            run([Path(a.dsq).resolve(), "convert", rel(a.model), "-o", rel(path), "--quiet",
                 "--threads", a.threads] + conv, work / f"dsq-{key}.convert.log", cwd=ROOT)
            row.update(dsq_sizes(a.dsq, path))
            # f32 activations: the storage's own error, without the int8 rounding of the
            # activations that the CPU engine adds by default (docs/QUANT.md)
            common = [a.dsq, "ppl", path, "--text", a.text, "--ctx", a.ctx, "--threads",
                      a.threads, "--activations", "f32", "--json"]
            extra = ["--save-logits" if key == "bf16" else "--kld-base", base_logits]
            out, _, _ = run(common + extra, work / f"dsq-{key}.ppl.log")
            r = json.loads(out)
            row.update(ppl=r["ppl"], ppl_stderr=r["ppl_stderr"], n_tokens=r["n_tokens"],
                       n_chunk=r["n_chunk"], scored=r["scored"])
            if "kld" in r:
                k = r["kld"]
                row.update(kld_mean=k["kld"]["mean"], kld_stderr=k["kld"]["stderr"],
                           kld_p99=k["kld"]["p99"], kld_max=k["kld"]["max"],
                           kld_median=k["kld"]["median"],
                           same_top=100.0 * k["same_top"]["value"],
                           same_top_stderr=100.0 * k["same_top"]["stderr"],
                           ppl_base=k["ppl_base"]["value"])
        except (RuntimeError, KeyError, ValueError) as e:
            row["error"] = str(e).strip().splitlines()[-1]
            log(f"  failed: {row['error']}")
            if key == "bf16":
                raise
        rows.append(row)
    return rows


# ---- llama.cpp ------------------------------------------------------------------------------

CONVERT_SHIM = r'''
# Runs llama.cpp's convert_hf_to_gguf.py unmodified, except that a BPE pre-tokenizer whose hash
# it does not know is mapped to "deepseek-llm" when tokenizer.json's pre-tokenizer has DeepSeek
# LLM's structure (checked by the caller). Arguments: LLAMA_DIR, then the converter's own.
import importlib.util, sys
llama_dir = sys.argv[1]
sys.argv = [llama_dir + "/convert_hf_to_gguf.py"] + sys.argv[2:]
spec = importlib.util.spec_from_file_location("convert_hf_to_gguf", sys.argv[0])
mod = importlib.util.module_from_spec(spec)
sys.modules["convert_hf_to_gguf"] = mod
spec.loader.exec_module(mod)
patched = 0
for obj in list(vars(mod).values()):
    if isinstance(obj, type) and "get_vocab_base_pre" in vars(obj):
        orig = vars(obj)["get_vocab_base_pre"]
        def wrapped(self, tokenizer, _orig=orig):
            try:
                return _orig(self, tokenizer)
            except NotImplementedError:
                print("quant_study: unknown pre-tokenizer hash; using 'deepseek-llm' "
                      "(tokenizer.json has DeepSeek LLM's pre-tokenizer)", file=sys.stderr)
                return "deepseek-llm"
        setattr(obj, "get_vocab_base_pre", wrapped)
        patched += 1
assert patched, "no get_vocab_base_pre in convert_hf_to_gguf.py"
mod.main()
'''


def deepseek_llm_pretokenizer(model_dir):
    """True when tokenizer.json's pre-tokenizer is DeepSeek LLM's (see DEEPSEEK_LLM_SPLITS)."""
    t = json.loads((Path(model_dir) / "tokenizer.json").read_text())
    pre = t.get("pre_tokenizer") or {}
    seq = pre.get("pretokenizers", [])
    if pre.get("type") != "Sequence" or len(seq) != 7:
        return False
    splits = [s.get("pattern", {}).get("Regex", "") for s in seq[:5]]
    if any(s.get("type") != "Split" or s.get("behavior") != "Isolated" for s in seq[:5]):
        return False
    want = DEEPSEEK_LLM_SPLITS
    ok = (splits[0] == want[0] and splits[1].startswith(want[1]) and splits[2] == want[2]
          and splits[3] == want[3] and splits[4] == want[4])
    return (ok and seq[5] == {"type": "Digits", "individual_digits": True}
            and seq[6].get("type") == "ByteLevel" and seq[6].get("use_regex") is False)


def gguf_summary(py, llama_dir, path):
    """Per-tensor types of a GGUF (through llama.cpp's gguf-py): bytes, params, bpw (all
    tensors; matrices without 1-D tensors and the router ffn_gate_inp), types by tensor kind."""
    code = r'''
import json, sys
sys.path.insert(0, sys.argv[1] + "/gguf-py")
from gguf import GGUFReader
r = GGUFReader(sys.argv[2])
out = []
for t in r.tensors:
    out.append([t.name, t.tensor_type.name, int(t.n_elements), int(t.n_bytes),
                [int(x) for x in t.shape]])
print(json.dumps(out))
'''
    out, _, _ = run([py, "-c", code, llama_dir, path])
    tensors = json.loads(out)
    tb = sum(t[3] for t in tensors)
    tp = sum(t[2] for t in tensors)
    mats = [t for t in tensors if len([d for d in t[4] if d > 1]) >= 2
            and "ffn_gate_inp" not in t[0]]
    mb = sum(t[3] for t in mats)
    mp = sum(t[2] for t in mats)
    kinds = {}
    for name, typ, n, b, shape in tensors:
        kind = re.sub(r"^blk\.\d+\.", "", name)
        kind = re.sub(r"\.weight$", "", kind)
        kinds.setdefault(kind, {}).setdefault(typ, 0)
        kinds[kind][typ] += 1
    by_type = {}
    for name, typ, n, b, shape in mats:
        by_type.setdefault(typ, 0)
        by_type[typ] += n
    return {"file_bytes": Path(path).stat().st_size, "params": tp, "tensor_bytes": tb,
            "bpw": 8.0 * tb / tp, "bpw_matrices": 8.0 * mb / mp, "matrix_params": mp,
            "tensor_types": {k: kinds[k] for k in sorted(kinds)},
            "matrix_params_by_type": {k: by_type[k] for k in sorted(by_type)}}


NUM = r"([-+0-9.eE]+|nan|inf)"


def parse_llama_ppl(text):
    m = re.findall(r"Final estimate: PPL = " + NUM + r" \+/- " + NUM, text)
    if not m:
        raise RuntimeError("no 'Final estimate' in llama-perplexity's output")
    return float(m[-1][0]), float(m[-1][1])


def parse_llama_kld(text):
    def one(pattern):
        m = re.search(pattern, text)
        if not m:
            raise RuntimeError(f"llama-perplexity output lacks {pattern!r}")
        return [float(g) for g in m.groups()]
    r = {}
    r["ppl"], r["ppl_stderr"] = one(r"Mean PPL\(Q\)\s*:\s*" + NUM + r"\s*±\s*" + NUM)
    r["ppl_base"], _ = one(r"Mean PPL\(base\)\s*:\s*" + NUM + r"\s*±\s*" + NUM)
    r["kld_mean"], r["kld_stderr"] = one(r"Mean\s+KLD:\s*" + NUM + r"\s*±\s*" + NUM)
    r["kld_max"], = one(r"Maximum KLD:\s*" + NUM)
    r["kld_p99"], = one(r"99\.0%\s+KLD:\s*" + NUM)
    r["kld_median"], = one(r"Median\s+KLD:\s*" + NUM)
    r["same_top"], r["same_top_stderr"] = one(r"Same top p:\s*" + NUM + r"\s*±\s*" + NUM)
    return r


def llama_rows(a, work):
    ld = Path(a.llama_cpp).resolve()
    bindir = ld / "build" / "bin"
    quantize, perplexity = bindir / "llama-quantize", bindir / "llama-perplexity"
    for f in (ld / "convert_hf_to_gguf.py", quantize, perplexity):
        if not f.exists():
            raise RuntimeError(f"{f} is missing")
    commit = subprocess.run(["git", "-C", str(ld), "rev-parse", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "unknown"
    describe = subprocess.run(["git", "-C", str(ld), "describe", "--tags", "--always"],
                              capture_output=True, text=True).stdout.strip() or "unknown"
    patched = subprocess.run(["git", "-C", str(ld), "diff", "--name-only"], capture_output=True,
                             text=True).stdout.split()
    meta = {"llama_cpp_commit": commit, "llama_cpp_describe": describe,
            "llama_cpp_modified_files": patched}
    if not deepseek_llm_pretokenizer(a.model):
        raise RuntimeError("tokenizer.json's pre-tokenizer is not DeepSeek LLM's")
    shim = work / "convert_shim.py"
    shim.write_text(CONVERT_SHIM)
    ggufs = {}
    for outtype in ("f32", "bf16"):
        log(f"llama.cpp: convert_hf_to_gguf.py --outtype {outtype}")
        ggufs[outtype] = work / f"llama-{outtype}.gguf"
        out, err, _ = run([a.llama_python, shim, ld, a.model, "--outtype", outtype,
                           "--outfile", ggufs[outtype]], work / f"llama-convert-{outtype}.log")
    meta["pre_tokenizer_mapped"] = "quant_study: unknown pre-tokenizer hash" in err
    m = re.search(r"chkhsh:\s+([0-9a-f]{64})", err)
    meta["pre_tokenizer_hash"] = m.group(1) if m else None

    # The base: the checkpoint's bf16 weights held exactly in f32, run with an f32 KV cache, so
    # that nothing is rounded (llama.cpp's CPU matmul rounds activations to the weights' dot
    # type: bf16 for bf16 weights, q8_0 blocks for Q8_0/Q4_0/Q5_0/...). Every other row runs
    # as llama.cpp runs by default (f16 KV cache).
    rows = []
    base_kld = work / "llama-f32.kld"
    row = {"tool": "llama.cpp", "key": "llama-f32", "label": "f32 (base)",
           "storage": "the bf16 weights exactly, as f32 (convert_hf_to_gguf.py --outtype f32); "
                      "f32 KV cache",
           "command": "convert_hf_to_gguf.py MODEL --outtype f32; llama-perplexity -ctk f32 -ctv f32"}
    row.update(gguf_summary(a.llama_python, ld, ggufs["f32"]))
    log("llama.cpp: llama-perplexity (base)")
    common = ["-c", a.ctx, "-t", a.threads, "-f", a.text]
    out, err, _ = run([perplexity, "-m", ggufs["f32"], *common, "-ctk", "f32", "-ctv", "f32",
                       "--kl-divergence-base", base_kld], work / "llama-f32.ppl.log")
    row["ppl"], row["ppl_stderr"] = parse_llama_ppl(out + err)
    m = re.search(r"calculating perplexity over (\d+) chunks", out + err)
    row["n_chunk"] = int(m.group(1)) if m else None
    rows.append(row)
    for key, ftype in [("bf16", None)] + LLAMA_QUANTS:
        q = ggufs["bf16"] if ftype is None else work / f"llama-{key}.gguf"
        row = {"tool": "llama.cpp", "key": f"llama-{key}", "label": key}
        try:
            if ftype is None:
                row["command"] = "convert_hf_to_gguf.py MODEL --outtype bf16"
            else:
                log(f"llama.cpp: llama-quantize {ftype}")
                row["command"] = f"llama-quantize MODEL-bf16.gguf OUT.gguf {ftype}"
                out, err, _ = run([quantize, ggufs["bf16"], q, ftype, a.threads],
                                  work / f"llama-{key}.quantize.log")
                qlog = out + err
                row["fallbacks"] = [
                    {"cols": int(m.group(1)), "rows": int(m.group(2)), "wanted": m.group(3),
                     "used": m.group(4)}
                    for m in re.finditer(r"tensor cols (\d+) x (\d+) are not divisible by \d+, "
                                         r"required for (\w+) - using fallback quantization (\w+)",
                                         qlog)]
                m = re.search(r"WARNING: (\d+) of (\d+) tensor\(s\) required fallback", qlog)
                row["fallback_summary"] = m.group(0) if m else "no fallback"
            row.update(gguf_summary(a.llama_python, ld, q))
            row["storage"] = ", ".join(f"{t.lower()} {100.0 * n / row['matrix_params']:.0f}%"
                                       for t, n in sorted(row["matrix_params_by_type"].items(),
                                                          key=lambda kv: (-kv[1], kv[0])))
            if ftype is None:
                row["storage"] += " (activations rounded to bf16 in the matmuls)"
            log(f"llama.cpp: llama-perplexity --kl-divergence ({key})")
            out, err, _ = run([perplexity, "-m", q, *common, "--kl-divergence-base", base_kld,
                               "--kl-divergence"], work / f"llama-{key}.ppl.log")
            row.update(parse_llama_kld(out + err))
        except RuntimeError as e:
            row["error"] = str(e).strip().splitlines()[-1]
            log(f"  failed: {row['error']}")
        rows.append(row)
    return rows, meta


# ---- cross-check: dsq's and llama.cpp's bf16 base log-probs ---------------------------------

def cross_check(a, dsq_logits, llama_kld):
    """Compares the two base runs position by position: the token streams (llama.cpp stores
    its tokens; dsq's are re-derived with Hugging Face tokenizers from tokenizer.json, with which
    dsq's tokenizer is tested to agree) and the distributions (KLD of llama.cpp's from dsq's,
    top-1 agreement). Needs numpy (and tokenizers for the token check) in --llama-python."""
    code = r'''
import json, struct, sys
import numpy as np
dsq_path, llama_path, text_path, tok_path = sys.argv[1:5]
res = {}
with open(llama_path, "rb") as f:
    assert f.read(8) == b"_logits_"
    n_ctx, n_vocab, n_chunk = struct.unpack("<iii", f.read(12))
    ltok = np.frombuffer(f.read(4 * n_chunk * n_ctx), dtype="<i4")
    nv = 2 * ((n_vocab + 1) // 2) + 4
    lrows = np.frombuffer(f.read(), dtype="<u2").reshape(-1, nv)
hdr = open(dsq_path, "rb").read(64)
assert hdr[:8] == b"DSQLOGP\0" and struct.unpack("<I", hdr[8:12])[0] == 2
vocab, ctx, d_chunk, scored = struct.unpack("<IIII", hdr[16:32])
n_tokens = struct.unpack("<Q", hdr[32:40])[0]
# version 2 rows: 16 bytes of fields, 2 * vocab of codes, an 8-byte checksum (dropped here)
drows = np.fromfile(dsq_path, dtype=np.uint8, offset=64).reshape(-1, 16 + 2 * vocab + 8)
drows = drows[:, :16 + 2 * vocab]
res.update(llama_n_chunk=n_chunk, dsq_n_chunk=d_chunk, dsq_n_tokens=n_tokens,
           vocab_equal=vocab == n_vocab, ctx_equal=ctx == n_ctx)
try:
    from tokenizers import Tokenizer
    t = Tokenizer.from_file(tok_path)
    hf = np.array(t.encode(open(text_path, encoding="utf-8").read()).ids, dtype=np.int64)
    res["hf_n_tokens"] = int(len(hf))
    m = min(len(hf), len(ltok))
    diff = np.nonzero(hf[:m] != ltok[:m])[0]
    res["llama_tokens_equal_hf"] = bool(len(diff) == 0)
    res["first_token_difference"] = int(diff[0]) if len(diff) else None
except ImportError:
    pass
n = min(len(lrows), len(drows))
head = lrows[:n, :4].copy().view("<f4")
lscale, lmin = head[:, 0:1].astype(np.float64), head[:, 1:2].astype(np.float64)
lcode = lrows[:n, 4:4 + n_vocab]
llp = lscale * lcode + lmin      # llama.cpp's normalized log-probs, clamped at max - 16 (code 0)
dh = drows[:n, :16].copy()
off = dh[:, 0:4].copy().view("<f4").astype(np.float64)
sc = dh[:, 4:8].copy().view("<f4").astype(np.float64)
dtop = dh[:, 8:12].copy().view("<u4")[:, 0]
codes = drows[:n, 16:].copy().view("<u2").astype(np.float64)
dlp = off + sc * codes
dlp -= np.log(np.exp(dlp - dlp.max(1, keepdims=True)).sum(1, keepdims=True)) + dlp.max(1, keepdims=True)
# llama.cpp's file does not keep the entries more than 16 nats below the top (code 0: clamped
# there). Those are taken equal to dsq's (at most ~1536 * e^-16 of the mass), llama.cpp's row is
# renormalized (its own rounding is 1.2e-4 nats per entry) and the KLD is taken over the whole
# vocabulary: KL(dsq || llama.cpp) on what llama.cpp kept.
kept = lcode > 0
qlp = np.where(kept, llp, dlp)
qmax = qlp.max(1, keepdims=True)
qlp = qlp - (np.log(np.exp(qlp - qmax).sum(1, keepdims=True)) + qmax)
p = np.exp(dlp)
kld = (p * (dlp - qlp)).sum(1)
res.update(rows=int(n), kld_mean=float(kld.mean()), kld_p99=float(np.percentile(kld, 99)),
           kld_max=float(kld.max()),
           same_top=float(100.0 * np.mean(np.argmax(llp, 1) == dtop)))
print(json.dumps(res))
'''
    out, _, _ = run([a.llama_python, "-c", code, dsq_logits, llama_kld, a.text,
                     Path(a.model) / "tokenizer.json"])
    return json.loads(out)


# ---- table ----------------------------------------------------------------------------------

def fmt(v, spec):
    return "—" if v is None else format(v, spec)


def table(rows):
    head = ("| tool | variant | what is stored how | file bytes | bpw all | bpw matrices | PPL ± stderr "
            "| mean KLD | median KLD | KLD p99 | same top-1 % |\n"
            "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
    lines = []
    for r in rows:
        if "error" in r and "ppl" not in r:
            lines.append(f"| {r['tool']} | {r['label']} | {r.get('storage', '')} | "
                         f"failed: {r['error']} | | | | | | | |")
            continue
        ppl = f"{r['ppl']:.4f} ± {r['ppl_stderr']:.4f}"
        kld = "—" if r.get("kld_mean") is None else f"{r['kld_mean']:.6f} ± {r['kld_stderr']:.6f}"
        same = "—" if r.get("same_top") is None else f"{r['same_top']:.2f} ± {r['same_top_stderr']:.2f}"
        lines.append(f"| {r['tool']} | {r['label']} | {r.get('storage', '')} | {r['file_bytes']} "
                     f"| {r['bpw']:.3f} | {r['bpw_matrices']:.3f} | {ppl} | {kld} "
                     f"| {fmt(r.get('kld_median'), '.6f')} | {fmt(r.get('kld_p99'), '.5f')} | {same} |")
    return head + "\n".join(lines) + "\n"


CSV_FIELDS = ["tool", "key", "label", "file_bytes", "params", "bpw", "bpw_matrices", "ppl",
              "ppl_stderr", "kld_mean", "kld_stderr", "kld_median", "kld_p99", "kld_max", "same_top",
              "same_top_stderr", "error"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="dsq bf16/q8/q4 only, print the table")
    ap.add_argument("--dsq", default=str(ROOT / "build" / "dsq"), help="default build/dsq")
    ap.add_argument("--model", default=str(ROOT / "models" / "tiny-v2"),
                    help="Hugging Face checkpoint folder (default models/tiny-v2)")
    ap.add_argument("--text", default=str(ROOT / "data" / "heldout.txt"),
                    help="evaluation text (default data/heldout.txt)")
    ap.add_argument("--ctx", default="128", help="window in tokens (default 128)")
    ap.add_argument("--threads", default="2",
                    help="threads for every tool (default 2; fixed so reruns match)")
    ap.add_argument("--out", default=None,
                    help="work folder for models, logs and results (default build/quant-study, "
                         "build/quant-study-quick with --quick)")
    ap.add_argument("--llama-cpp", default=os.environ.get("LLAMA_CPP"),
                    help="llama.cpp source tree with build/bin/llama-{quantize,perplexity} "
                         "(env LLAMA_CPP); without it the llama.cpp rows are skipped")
    ap.add_argument("--llama-python", default=os.environ.get("LLAMA_PYTHON", "python3"),
                    help="python with torch, transformers, sentencepiece for the converter "
                         "(env LLAMA_PYTHON)")
    a = ap.parse_args()
    out_dir = Path(a.out or (ROOT / "build" / ("quant-study-quick" if a.quick else "quant-study")))
    out_dir.mkdir(parents=True, exist_ok=True)
    work = out_dir
    if not Path(a.dsq).exists():
        sys.exit(f"quant_study: {a.dsq} not found (run make)")

    keys = QUICK if a.quick else [v[0] for v in DSQ_VARIANTS]
    rows = dsq_rows(a, work, keys)
    dsq_version = run([a.dsq, "--version"])[0].strip()
    meta = {"dsq_version": dsq_version, "model": rel(a.model), "text": rel(a.text),
            "ctx": int(a.ctx), "threads": int(a.threads),
            "text_sha256": hashlib.sha256(Path(a.text).read_bytes()).hexdigest()}
    notes = []
    if a.quick:
        notes.append("quick mode: dsq rows bf16, q8, q4 only; no llama.cpp rows")
    elif not a.llama_cpp:
        notes.append("llama.cpp rows skipped: no llama.cpp build given (--llama-cpp DIR or "
                     "LLAMA_CPP=DIR)")
    else:
        try:
            lrows, lmeta = llama_rows(a, work)
            rows += lrows
            meta.update(lmeta)
            try:
                meta["base_cross_check"] = cross_check(a, work / "dsq-bf16.logits",
                                                       work / "llama-f32.kld")
            except RuntimeError as e:
                notes.append(f"cross-check of the two bf16 bases failed: {e}")
        except RuntimeError as e:
            if "q_lora_rank" in str(e):
                e = RuntimeError(f"{e}\n(this llama.cpp takes a DeepSeek-V2 model without q "
                                 "compression for V2-Lite only at 27 layers: see docs/QUANT.md)")
            notes.append(f"llama.cpp rows failed: {e}")
            log(f"llama.cpp rows failed: {e}")
    meta["notes"] = notes

    md = table(rows)
    (work / "results.md").write_text(md + "".join(f"\n{n}\n" for n in notes))
    with open(work / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k) for k in CSV_FIELDS})
    (work / "results.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1,
                                                  sort_keys=True) + "\n")
    print(f"{dsq_version}; {rel(a.model)}; text {rel(a.text)}; ctx {a.ctx}; "
          f"KLD against the dsq bf16 base" + (", llama.cpp rows against llama.cpp's f32 base"
                                               if any(r['tool'] == 'llama.cpp' for r in rows) else ""))
    print(md, end="")
    for n in notes:
        print(n)
    if "base_cross_check" in meta:
        print("the two bases, dsq bf16 vs llama.cpp f32: " + json.dumps(meta["base_cross_check"]))
    print(f"(results: {rel(work)}/results.{{md,csv,json}}; logs beside them)")


if __name__ == "__main__":
    main()
