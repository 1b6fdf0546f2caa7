#!/usr/bin/env python3
"""Golden reference logits for the tiny fixture checkpoints in tests/data/.

Runs the upstream DeepSeek modeling code (the Hugging Face "remote code" files
modeling_deepseek.py / configuration_deepseek.py) on each fixture and writes
tests/data/golden/<fixture>.json, which the C runtime's golden tests compare
against.  The upstream files are NOT part of this repository: they are read from
a folder given with --ref, laid out as

    REF/v1/modeling_deepseek.py  REF/v1/configuration_deepseek.py   (model_type deepseek)
    REF/v2/modeling_deepseek.py  REF/v2/configuration_deepseek.py   (model_type deepseek_v2)

and optionally REF/<family>/SOURCE (free text naming where the files came from,
copied into the output).  tests/data/golden/README.md says where to get them.

Usage (the pinned environment is scripts/requirements.txt):

    python3 scripts/make_golden.py --ref /work/ref            # rewrite the golden files
    python3 scripts/make_golden.py --ref /work/ref --check    # regenerate, compare byte for byte
    python3 scripts/make_golden.py --native                   # cross-check the V2 goldens against
                                                              # transformers' own deepseek_v2

What one run records per fixture (see the README for the exact definitions):
  * float32 run (bf16 weights upcast exactly): prompt ids, logits at every prompt
    position after one prefill forward, then 8 greedy decode steps one token at a
    time through the KV cache (each step's logits and the token fed);
  * bfloat16 run on the same token sequence (teacher-forced), the looser check;
  * debug aids: per-layer hidden-state norms, routed experts per token and layer,
    router and argmax margins;
  * error estimates: the same float32 reference re-run in float64 (with float64
    RoPE tables) and in float32 with every Linear summed in reversed order, and
    the maximum logit differences, from which the C tests' tolerance is argued.

Deterministic: one CPU thread, deterministic algorithms, no sampling; floats are
written with 9 significant digits (round-trips float32 exactly).
"""

import argparse
import hashlib
import importlib
import json
import math
import os
import platform
import sys
import types

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DATA = os.path.join(ROOT, "tests", "data")
FIXTURES = ["tiny-v1", "tiny-v2-lite", "tiny-v2"]
FAMILY_DIR = {"deepseek": "v1", "deepseek_v2": "v2"}
CLASS_NAMES = {
    "deepseek": ("DeepseekConfig", "DeepseekForCausalLM"),
    "deepseek_v2": ("DeepseekV2Config", "DeepseekV2ForCausalLM"),
}
# Chosen among 36 template sentences ("<subject> <verb phrase>.") as the one whose
# float32 run has the largest smallest margins over all three fixtures: every
# top-k router decision (k-th vs (k+1)-th probability, and group choice for V2)
# by >= 1.5e-4 and every greedy decode argmax by >= 0.016 logits, far above the
# ~1e-6 float32 rounding, so another correct float32 implementation routes and
# decodes the same way.
PROMPT_TEXT = "A tired dog learned to count from one to ten."
N_DECODE = 8

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402
import transformers  # noqa: E402


# --------------------------------------------------------------------------- setup

def set_determinism():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(0)


COMPAT_SHIMS = []
SYNTHESIZED_CONFIG = set()


def install_compat_shims():
    """The remote code was written against transformers 4.36-4.39.  Later versions
    dropped DynamicCache.get_usable_length; give it back with the 4.36 semantics
    for a cache without a maximum length (= number of tokens already cached)."""
    from transformers.cache_utils import DynamicCache

    if not hasattr(DynamicCache, "get_usable_length"):
        def get_usable_length(self, new_seq_length, layer_idx=0):
            return self.get_seq_length(layer_idx)
        DynamicCache.get_usable_length = get_usable_length
        COMPAT_SHIMS.append("DynamicCache.get_usable_length(n, i) := get_seq_length(i) "
                            "(transformers 4.36 semantics for a cache without max length)")


# sha256 of the reference files the committed goldens were made with (see
# tests/data/golden/README.md for where they come from); another copy only warns.
EXPECTED_REF_SHA256 = {
    "v1/modeling_deepseek.py": "c21ae68b8466d020cdfaa3a27acbd51acfe6664d8fc1d112902540b964816158",
    "v2/modeling_deepseek.py": "d9ba37fc5817636f126c9ac07f60b11ee1ec999136c4a96c148b4e16f2f9bdce",
    "v2/configuration_deepseek.py": "f3979f0bd07461f4c028c0d35d3c19c98c60111be5c05f0949be5a1464d6200b",
}


def sha256_file(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def load_ref_module(ref_root, model_type):
    """Import REF/<family>/modeling_deepseek.py as module '<pkg>.modeling_deepseek'.
    The folder is made a package (for the V1 file's relative import of
    .configuration_deepseek) and put first on sys.path while importing (for copies
    that import configuration_deepseek absolutely)."""
    folder = os.path.join(ref_root, FAMILY_DIR[model_type])
    pkg = "dsq_golden_ref_" + FAMILY_DIR[model_type]
    if pkg + ".modeling_deepseek" in sys.modules:
        return sys.modules[pkg + ".modeling_deepseek"], folder
    sys.modules.pop("configuration_deepseek", None)
    pkg_mod = types.ModuleType(pkg)
    pkg_mod.__path__ = [folder]
    sys.modules[pkg] = pkg_mod
    if not os.path.exists(os.path.join(folder, "configuration_deepseek.py")):
        # No upstream configuration file (none is publicly copied for V1): the config
        # class only carries config.json's values, which PretrainedConfig stores as
        # attributes; every key the modeling code reads is in the fixture configs.
        from transformers import PretrainedConfig
        cfg_mod = types.ModuleType(pkg + ".configuration_deepseek")
        cfg_name = CLASS_NAMES[model_type][0]
        cfg_mod.__dict__[cfg_name] = type(cfg_name, (PretrainedConfig,), {"model_type": model_type})
        sys.modules[pkg + ".configuration_deepseek"] = cfg_mod
        sys.modules["configuration_deepseek"] = cfg_mod
        SYNTHESIZED_CONFIG.add(model_type)
    sys.path.insert(0, folder)
    try:
        mod = importlib.import_module(pkg + ".modeling_deepseek")
    finally:
        sys.path.remove(folder)
        sys.modules.pop("configuration_deepseek", None)
    return mod, folder


def read_config(fixture_dir):
    with open(os.path.join(fixture_dir, "config.json")) as f:
        return json.load(f)


def load_state_dict(fixture_dir, dtype):
    with open(os.path.join(fixture_dir, "model.safetensors.index.json")) as f:
        index = json.load(f)
    sd = {}
    for shard in sorted(set(index["weight_map"].values())):
        for name, t in load_file(os.path.join(fixture_dir, shard)).items():
            assert t.dtype == torch.bfloat16, (shard, name, t.dtype)
            sd[name] = t.to(dtype)  # bf16 -> f32/f64 is exact
    assert set(sd) == set(index["weight_map"]), "index and shards disagree"
    return sd


def build_ref_model(mod, cfg_json, fixture_dir, dtype):
    """Like from_pretrained(torch_dtype=dtype, attn_implementation="eager"): the
    modules are built with dtype as torch's default dtype (so tensors the code
    creates with an explicit .float() stay float32), then every weight is loaded
    strictly: a missing or unexpected tensor name is an error."""
    cfg_name, model_name = CLASS_NAMES[cfg_json["model_type"]]
    config = getattr(mod, cfg_name)(**cfg_json)
    config._attn_implementation = "eager"
    config.use_cache = True
    prev = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        model = getattr(mod, model_name)(config)
    finally:
        torch.set_default_dtype(prev)
    sd = load_state_dict(fixture_dir, dtype)
    res = model.load_state_dict(sd, strict=False)
    if res.missing_keys or res.unexpected_keys:
        raise SystemExit("make_golden: %s: missing %s, unexpected %s"
                         % (fixture_dir, res.missing_keys, res.unexpected_keys))
    for name, p in model.named_parameters():
        assert p.dtype == dtype, (name, p.dtype)
    model.eval()
    return model


# --------------------------------------------------------------- float64 RoPE tables

def use_float64_rope(model, mod, model_type):
    """For the float64 error-estimate run only: the reference computes its RoPE
    angles in float32 even in a float64 model (explicit .float() / dtype=float32);
    recompute them in float64 with the reference's own formula, so the run is a
    float64 evaluation of the whole model.  Checked against the reference's float32
    tables (must agree to float32 rounding)."""
    def check(emb, seq):
        emb._set_cos_sin_cache(seq_len=seq, device="cpu", dtype=torch.float32)
        c32, s32 = emb.cos_cached.clone(), emb.sin_cached.clone()
        emb._set_cos_sin_cache(seq_len=seq, device="cpu", dtype=torch.float64)
        assert emb.cos_cached.dtype == torch.float64
        err = max((emb.cos_cached - c32.double()).abs().max().item(),
                  (emb.sin_cached - s32.double()).abs().max().item())
        # angles up to ~seq rad, float32 ulp of the angle -> ~seq * 2^-24 in cos/sin
        assert err < seq * 2.0 ** -22, err
        emb.max_seq_len_cached = None

    for layer in model.model.layers:
        emb = layer.self_attn.rotary_emb
        dim, base = emb.dim, emb.base
        if model_type == "deepseek":
            assert type(emb).__name__ == "DeepseekRotaryEmbedding", type(emb)
            emb.inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))
            orig = type(emb)._set_cos_sin_cache

            def set_cache(seq_len, device, dtype, _emb=emb, _orig=orig):
                _orig(_emb, seq_len, device, dtype)
            emb._set_cos_sin_cache = set_cache
        else:
            assert type(emb).__name__ == "DeepseekV2YarnRotaryEmbedding", type(emb)

            def set_cache(seq_len, device, dtype, _emb=emb):
                e = _emb
                d = e.dim
                ar = torch.arange(0, d, 2, dtype=torch.float64) / d
                freq_extra = 1.0 / (e.base ** ar)
                freq_inter = 1.0 / (e.scaling_factor * e.base ** ar)
                low, high = mod.yarn_find_correction_range(
                    e.beta_fast, e.beta_slow, d, e.base, e.original_max_position_embeddings)
                lo, hi = float(low), float(high)
                if lo == hi:
                    hi += 0.001
                ramp = torch.clamp((torch.arange(d // 2, dtype=torch.float64) - lo) / (hi - lo), 0, 1)
                mask = 1.0 - ramp
                inv_freq = freq_inter * (1 - mask) + freq_extra * mask
                e.inv_freq = inv_freq
                e.max_seq_len_cached = seq_len
                t = torch.arange(seq_len, dtype=torch.float64)
                freqs = torch.outer(t, inv_freq)
                msc = (mod.yarn_get_mscale(e.scaling_factor, e.mscale)
                       / mod.yarn_get_mscale(e.scaling_factor, e.mscale_all_dim))
                emb_ = torch.cat((freqs, freqs), dim=-1)
                e.cos_cached = (emb_.cos() * msc).to(dtype)
                e.sin_cached = (emb_.sin() * msc).to(dtype)
            emb._set_cos_sin_cache = set_cache
        check(emb, 64)


class ReversedLinear:
    """Context manager: every nn.Linear sums its dot products in reversed order
    (x and W flipped along the reduction axis): the same exact result, a different
    float32 rounding.  Stands in for the C runtime's own summation order."""
    def __enter__(self):
        self.orig = torch.nn.Linear.forward

        def fwd(lin, x):
            return F.linear(x.flip(-1), lin.weight.flip(-1), lin.bias)
        torch.nn.Linear.forward = fwd
        return self

    def __exit__(self, *a):
        torch.nn.Linear.forward = self.orig


# ------------------------------------------------------------------------ the runs

class RoutingProbe:
    """Forward hooks on every MoE gate: records the routed expert ids and weights
    the reference chose per token, and the float64 router margins."""
    def __init__(self, model, cfg):
        self.cfg = cfg
        self.records = {}  # layer -> list of (ids, weights) per token, in call order
        self.margins = []  # (layer, token_in_call, kind, margin)
        self.handles = []
        for i, layer in enumerate(model.model.layers):
            gate = getattr(layer.mlp, "gate", None)
            if gate is not None and hasattr(gate, "weight") and gate.weight.dim() == 2 \
                    and gate.weight.shape[0] == cfg["n_routed_experts"]:
                self.handles.append(gate.register_forward_hook(self._hook(i)))

    def _hook(self, layer_idx):
        def hook(gate, inputs, output):
            x = inputs[0].reshape(-1, inputs[0].shape[-1])
            topk_idx, topk_weight = output[0], output[1]
            rec = self.records.setdefault(layer_idx, [])
            for t in range(topk_idx.shape[0]):
                pairs = sorted(zip(topk_weight[t].tolist(), topk_idx[t].tolist()),
                               key=lambda p: (-p[0], p[1]))
                rec.append(([int(e) for _, e in pairs], [float(w) for w, _ in pairs]))
            self._margins(layer_idx, x.double(), gate.weight.double())
        return hook

    def _margins(self, layer_idx, x, w):
        cfg = self.cfg
        k = cfg["num_experts_per_tok"]
        scores = torch.softmax(x @ w.T, dim=-1)
        for t in range(scores.shape[0]):
            s = scores[t]
            if cfg.get("topk_method") == "group_limited_greedy":
                ng, kg = cfg["n_group"], cfg["topk_group"]
                g = s.view(ng, -1).max(dim=-1).values
                gs = torch.sort(g, descending=True).values
                self.margins.append((layer_idx, "group", float(gs[kg - 1] - gs[kg])))
                keep = torch.topk(g, kg).indices
                mask = torch.zeros(ng, dtype=torch.bool)
                mask[keep] = True
                s = s.masked_fill(~mask.repeat_interleave(s.numel() // ng), 0.0)
            ss = torch.sort(s, descending=True).values
            self.margins.append((layer_idx, "expert", float(ss[k - 1] - ss[k])))

    def remove(self):
        for h in self.handles:
            h.remove()


def new_cache():
    from transformers.cache_utils import DynamicCache
    return DynamicCache()


@torch.no_grad()
def run_sequence(model, prompt_ids, feed_tokens=None, n_decode=N_DECODE, hidden=False):
    """Prefill the prompt, then decode one token at a time through the KV cache.
    If feed_tokens is None the decode is greedy (token i = argmax of the previous
    logits); otherwise those tokens are fed (teacher forcing)."""
    cache = new_cache()
    ids = torch.tensor([prompt_ids], dtype=torch.long)
    # an all-ones 2D attention mask, as generate() passes (the V2 code asserts one)
    out = model(input_ids=ids, attention_mask=torch.ones_like(ids), past_key_values=cache,
                use_cache=True, output_hidden_states=hidden, return_dict=True)
    prefill = out.logits[0].double()
    hs = [h[0].double() for h in out.hidden_states] if hidden else None
    cache = out.past_key_values
    last = prefill[-1]
    tokens, dec = [], []
    for i in range(n_decode):
        tok = int(torch.argmax(last)) if feed_tokens is None else int(feed_tokens[i])
        tokens.append(tok)
        n = len(prompt_ids) + i + 1
        out = model(input_ids=torch.tensor([[tok]], dtype=torch.long),
                    attention_mask=torch.ones((1, n), dtype=torch.long), past_key_values=cache,
                    use_cache=True, return_dict=True)
        cache = out.past_key_values
        last = out.logits[0, -1].double()
        dec.append(last)
    return {"prefill": prefill, "tokens": tokens, "decode": torch.stack(dec), "hidden": hs}


@torch.no_grad()
def run_nocache(model, ids):
    t = torch.tensor([ids], dtype=torch.long)
    out = model(input_ids=t, attention_mask=torch.ones_like(t), use_cache=False, return_dict=True)
    return out.logits[0].double()


def max_abs(a, b):
    return float((a - b).abs().max())


def diff_summary(a, b):
    """a, b: run dicts; max |a-b| over prefill and decode logits, and relative to
    the largest |logit|."""
    pa, pb = a["prefill"], b["prefill"]
    da, db = a["decode"], b["decode"]
    scale = float(max(pb.abs().max(), db.abs().max()))
    p, d = max_abs(pa, pb), max_abs(da, db)
    return {"prefill_max_abs": g9(p), "decode_max_abs": g9(d),
            "max_abs": g9(max(p, d)), "max_abs_over_max_logit": g9(max(p, d) / scale)}


def before_flip(a, b, flips, n_prompt):
    """max |a-b| over the token positions before the first token whose routing
    differs between the two runs (a flip changes that token and, through the KV
    cache, every later one)."""
    first = min([t for _, t in flips], default=10 ** 9)
    va = torch.cat([a["prefill"], a["decode"]])[:first]
    vb = torch.cat([b["prefill"], b["decode"]])[:first]
    return {"positions": int(va.shape[0]), "max_abs": g9(max_abs(va, vb)),
            "max_abs_over_max_logit": g9(max_abs(va, vb) / float(vb.abs().max()))}


def g9(x):
    return float(f"{float(x):.9g}")


def top2_margin(v):
    s = torch.sort(v, descending=True).values
    return float(s[0] - s[1])


def fixture_record(fixture, ref_root):
    fdir = os.path.join(DATA, fixture)
    cfg = read_config(fdir)
    mt = cfg["model_type"]
    mod, folder = load_ref_module(ref_root, mt)

    tok = Tokenizer.from_file(os.path.join(fdir, "tokenizer.json"))
    prompt_ids = [cfg["bos_token_id"]] + tok.encode(PROMPT_TEXT, add_special_tokens=False).ids

    # golden: float32
    m32 = build_ref_model(mod, cfg, fdir, torch.float32)
    probe = RoutingProbe(m32, cfg)
    r32 = run_sequence(m32, prompt_ids, hidden=True)
    probe.remove()
    full_ids = prompt_ids + r32["tokens"]
    nocache = run_nocache(m32, full_ids)
    cache_vs_nocache = max(max_abs(nocache[:len(prompt_ids)], r32["prefill"]),
                           max_abs(nocache[len(prompt_ids):], r32["decode"]))
    # reordered float32 (perturbation of the summation order)
    with ReversedLinear():
        r32rev = run_sequence(m32, prompt_ids, feed_tokens=r32["tokens"])
    del m32

    # float64 (the "exact" value the float32 run approximates)
    m64 = build_ref_model(mod, cfg, fdir, torch.float64)
    use_float64_rope(m64, mod, mt)
    # the 4d causal mask helper fills with finfo(model dtype).min in the default dtype
    torch.set_default_dtype(torch.float64)
    try:
        r64 = run_sequence(m64, prompt_ids, feed_tokens=r32["tokens"])
    finally:
        torch.set_default_dtype(torch.float32)
    del m64

    # bfloat16, same tokens
    m16 = build_ref_model(mod, cfg, fdir, torch.bfloat16)
    probe16 = RoutingProbe(m16, cfg)
    r16 = run_sequence(m16, prompt_ids, feed_tokens=r32["tokens"])
    probe16.remove()
    del m16
    flips = []
    for layer in sorted(probe.records):
        for t, (a, b) in enumerate(zip(probe.records[layer], probe16.records[layer])):
            if sorted(a[0]) != sorted(b[0]):
                flips.append([layer, t])

    # greedy argmax of the decode steps must not be a near tie, or another
    # implementation could legitimately pick another token
    step_logits = [r32["prefill"][-1]] + [r32["decode"][i] for i in range(N_DECODE - 1)]
    greedy_margins = [top2_margin(v) for v in step_logits]

    n_prompt = len(prompt_ids)
    routing = []
    for layer in sorted(probe.records):
        rec = probe.records[layer]
        assert len(rec) == n_prompt + N_DECODE, (layer, len(rec))
        routing.append({"layer": layer,
                        "experts": [r[0] for r in rec],
                        "weights": [[g9(w) for w in r[1]] for r in rec]})
    margins = {}
    for layer, kind, m in probe.margins:
        key = "min_" + kind + "_margin"
        margins[key] = g9(min(margins.get(key, math.inf), m))

    files = {}
    for name in sorted(os.listdir(folder)):
        if name.endswith(".py"):
            files[name] = sha256_file(os.path.join(folder, name))
            want = EXPECTED_REF_SHA256.get(FAMILY_DIR[mt] + "/" + name)
            if want and want != files[name]:
                print("make_golden: warning: %s/%s is not the file the committed goldens were "
                      "made with (sha256 %s)" % (folder, name, want), file=sys.stderr)
    source = ""
    if os.path.exists(os.path.join(folder, "SOURCE")):
        with open(os.path.join(folder, "SOURCE")) as f:
            source = f.read().strip()

    hs = r32["hidden"]
    rec = {
        "fixture": fixture,
        "model_type": mt,
        "reference": {
            "code": "upstream remote modeling_deepseek.py (%s), run by scripts/make_golden.py"
                    % {"deepseek": "DeepSeek-MoE V1", "deepseek_v2": "DeepSeek-V2"}[mt],
            "files": files,
            "source": source,
            "configuration_class": ("synthesized by make_golden.py: a PretrainedConfig subclass "
                                    "holding config.json" if mt in SYNTHESIZED_CONFIG
                                    else "configuration_deepseek.py from the reference folder"),
            "compat_shims": list(COMPAT_SHIMS),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
            "threads": torch.get_num_threads(),
            "attn_implementation": "eager",
        },
        "dtype": "float32",
        "weights": "bf16 safetensors upcast exactly to float32; modules built with float32 as default dtype",
        "prompt_text": PROMPT_TEXT,
        "prompt_ids": prompt_ids,
        "prefill_logits": [[g9(x) for x in row] for row in r32["prefill"].tolist()],
        "decode_tokens": r32["tokens"],
        "decode_logits": [[g9(x) for x in row] for row in r32["decode"].tolist()],
        "next_token": int(torch.argmax(r32["decode"][-1])),
        "bf16": {
            "dtype": "bfloat16",
            "input": "prompt_ids, then decode_tokens fed one at a time (teacher-forced)",
            "prefill_logits": [[g9(x) for x in row] for row in r16["prefill"].tolist()],
            "decode_logits": [[g9(x) for x in row] for row in r16["decode"].tolist()],
            "routing_differs_from_float32": flips,
            "routing_differs_note": "[layer, token] (token as in debug.routing) where the bf16 "
                                    "run routed to another expert set than the float32 run",
            "argmax_agrees_with_float32": bool(
                (r16["prefill"].argmax(-1) == r32["prefill"].argmax(-1)).all()
                and (r16["decode"].argmax(-1) == r32["decode"].argmax(-1)).all()),
        },
        "debug": {
            "hidden_norms_note": "L2 norm per position (prompt) of the float32 run's hidden "
                                 "states: [i] = input of layer i for i < num_hidden_layers, "
                                 "[num_hidden_layers] = output of the final RMSNorm",
            "hidden_norms": [[g9(x) for x in h.norm(dim=-1).tolist()] for h in hs],
            "routing_note": "per MoE layer, per token (prompt positions then the 8 decode "
                            "steps): routed expert ids and weights, by weight descending",
            "routing": routing,
            "router_margins": margins,
            "greedy_top2_margins": [g9(m) for m in greedy_margins],
            "cache_vs_nocache_max_abs": g9(cache_vs_nocache),
        },
        "error_estimates": {
            "float64_vs_float32": diff_summary(r64, r32),
            "float32_reversed_sum_vs_float32": diff_summary(r32rev, r32),
            "bf16_vs_float32": diff_summary(r16, r32),
            "float64_vs_bf16": diff_summary(r64, r16),
            "bf16_vs_float32_before_first_routing_flip": before_flip(r16, r32, flips, n_prompt),
            "max_abs_logit_float32": g9(max(r32["prefill"].abs().max(), r32["decode"].abs().max())),
        },
    }
    return rec


# -------------------------------------------------------------------------- output

def dump(rec):
    """JSON with one line per logits row (diff-friendly)."""
    def enc(v, ind):
        pad = "  " * ind
        if isinstance(v, dict):
            items = [pad + "  " + json.dumps(k) + ": " + enc(x, ind + 1) for k, x in v.items()]
            return "{\n" + ",\n".join(items) + "\n" + pad + "}"
        if isinstance(v, list) and v and isinstance(v[0], (list, dict)):
            return "[\n" + ",\n".join(pad + "  " + enc(x, ind + 1) for x in v) + "\n" + pad + "]"
        return json.dumps(v, ensure_ascii=False)
    text = enc(rec, 0) + "\n"
    assert json.loads(text) == rec
    return text


def generate(ref_root, fixtures):
    transformers.logging.set_verbosity_error()
    set_determinism()
    install_compat_shims()
    out = {}
    for fx in fixtures:
        out[fx] = dump(fixture_record(fx, ref_root))
    return out


# ------------------------------------------------------------- native cross-check

@torch.no_grad()
def native_check(fixtures, golden_dir):
    """Compare the committed V2 goldens with Hugging Face transformers' own
    deepseek_v2 implementation (no remote code), as it is and with the YaRN
    softmax-scale factor m^2 applied if the installed version lacks it."""
    transformers.logging.set_verbosity_error()
    set_determinism()
    from transformers import AutoModelForCausalLM
    rows = []
    for fx in fixtures:
        fdir = os.path.join(DATA, fx)
        cfg = read_config(fdir)
        if cfg["model_type"] != "deepseek_v2":
            continue
        with open(os.path.join(golden_dir, fx + ".json")) as f:
            gold = json.load(f)
        kw = {"attn_implementation": "eager", "output_loading_info": True}
        try:
            model, info = AutoModelForCausalLM.from_pretrained(fdir, dtype=torch.float32, **kw)
        except TypeError:
            model, info = AutoModelForCausalLM.from_pretrained(fdir, torch_dtype=torch.float32, **kw)
        bad = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
        if bad:
            raise SystemExit("make_golden: %s: transformers' loader reports %s" % (fx, bad))
        model.eval()
        assert "transformers.models.deepseek_v2" in type(model).__module__, type(model)
        rs = cfg["rope_scaling"]
        m = 0.1 * rs["mscale_all_dim"] * math.log(rs["factor"]) + 1.0
        qk = cfg["qk_nope_head_dim"] + cfg["qk_rope_head_dim"]
        attn0 = model.model.layers[0].self_attn
        applied = abs(attn0.scaling - qk ** -0.5 * m * m) < 1e-12
        variants = [("as installed", None)]
        if not applied:
            variants.append(("scaling x m^2", m * m))
        gp = torch.tensor(gold["prefill_logits"], dtype=torch.float64)
        gd = torch.tensor(gold["decode_logits"], dtype=torch.float64)
        for label, mul in variants:
            if mul is not None:
                for layer in model.model.layers:
                    layer.self_attn.scaling = qk ** -0.5 * mul
            ids = gold["prompt_ids"]
            out = model(input_ids=torch.tensor([ids]), use_cache=True)
            pre = out.logits[0].double()
            cache = out.past_key_values
            dec = []
            for tok in gold["decode_tokens"]:
                out = model(input_ids=torch.tensor([[tok]]), past_key_values=cache, use_cache=True)
                cache = out.past_key_values
                dec.append(out.logits[0, -1].double())
            dec = torch.stack(dec)
            rows.append((fx, transformers.__version__, applied, label,
                         max_abs(pre, gp), max_abs(dec, gd)))
    print("| fixture | transformers | m^2 in softmax scale | variant | prefill max abs | decode max abs |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print("| %s | %s | %s | %s | %.3g | %.3g |" % r)


# ---------------------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ref", help="folder with v1/ and v2/ upstream modeling files")
    ap.add_argument("--out", default=os.path.join(DATA, "golden"))
    ap.add_argument("--fixture", action="append", choices=FIXTURES,
                    help="only this fixture (repeatable)")
    ap.add_argument("--check", action="store_true",
                    help="regenerate in memory and compare with the files in --out")
    ap.add_argument("--native", action="store_true",
                    help="compare the V2 goldens with transformers' deepseek_v2 (no --ref needed)")
    args = ap.parse_args()
    fixtures = args.fixture or FIXTURES

    if args.native:
        native_check(fixtures, args.out)
        return
    if not args.ref:
        ap.error("--ref is required")
    texts = generate(args.ref, fixtures)
    if args.check:
        bad = 0
        for fx, text in texts.items():
            path = os.path.join(args.out, fx + ".json")
            old = open(path, encoding="utf-8").read() if os.path.exists(path) else None
            if old != text:
                bad += 1
                print("make_golden: %s differs from a fresh run" % path)
                if old is not None:
                    a, b = json.loads(old), json.loads(text)
                    for key in ("prefill_logits", "decode_logits"):
                        d = np.abs(np.array(a[key]) - np.array(b[key])).max()
                        print("  %s: max abs difference %.3g" % (key, d))
        if bad:
            sys.exit(1)
        print("make_golden: %d golden files reproduce byte for byte" % len(texts))
        return
    os.makedirs(args.out, exist_ok=True)
    for fx, text in texts.items():
        path = os.path.join(args.out, fx + ".json")
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
        print("make_golden: wrote %s (%d bytes)" % (os.path.relpath(path, ROOT), len(text)))


if __name__ == "__main__":
    main()
