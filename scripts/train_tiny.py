#!/usr/bin/env python3
"""Train a tiny DeepSeek-V2-Lite-architecture model on English text and save it
as a Hugging Face checkpoint folder (models/tiny-v2/).

    apt-get install fortunes                       # the training text (see below)
    python3 -m pip install -r scripts/requirements.txt
    python3 scripts/train_tiny.py                  # ~10 minutes on 2 CPU cores
    python3 scripts/train_tiny.py --verify-only    # reload models/tiny-v2, recompute ppl

Text: the Debian package `fortunes` (and `fortunes-min`, which it depends on),
files /usr/share/games/fortunes/{computers,cookie,...} (FORTUNE_FILES below):
fortune cookies, short English quotations, jokes, definitions and poems.
Left out: pictures (art, ascii-art), program code (perl), files that are
mostly chat logs (debian, knghtbrd, linux, linuxcookie), the translation stub
(translate-me) and three files whose jokes are about groups of people
(drugs, ethnic, men-women). Each file is split into cookies at its "%" lines;
backspace overstrikes ("_^Hx") are resolved, other control characters dropped,
cookies that are not plain ASCII afterwards (a few, mostly mojibake) dropped,
exact duplicates dropped (first kept). Cookie number i (in file order) with
i % 20 == 19 is held out: it is never used for training, not even for the
tokenizer, and is written to data/heldout.txt (cookies separated by one empty
line, the same layout as the training text). The sha256 of every source file
and of the training and held-out texts go to models/tiny-v2/training.json.

Model: written here in PyTorch, following the upstream DeepSeek-V2 remote code
(modeling_deepseek.py) operation for operation: RMSNorm in fp32 (eps 1e-6);
MLA without q compression (q_proj; kv_a_proj_with_mqa -> kv_lora_rank latent
+ rope part; kv_a_layernorm; kv_b_proj -> per head nope key + value; o_proj);
RoPE on the rope part with upstream's interleaved-to-halves permutation of q
and k before rotate_half; YaRN frequencies and the softmax scale
(nope+rope)^-0.5 * m^2 with m = 0.1 * mscale_all_dim * ln(factor) + 1;
layer 0 a dense SwiGLU FFN, later layers MoE: fp32 softmax router
(mlp.gate.weight), greedy top-k, no renormalization, routed_scaling_factor 1,
plus shared experts, combined in fp32. YaRN is configured with factor 4 and
original_max_position_embeddings = the training context (256), so the
scaling code path (interpolated low frequencies, m^2 in the softmax scale)
is exercised while training stays inside the original window;
max_position_embeddings = factor * 256 = 1024.

Training: AdamW, linear warm-up then cosine decay, fixed seed, 2 threads,
no dropout (the "dropout" option puts it on the embeddings and on each
residual branch, in training only; 0.1 gave a worse held-out ppl at this
budget, 41.5 against 40.8),
random windows of CTX tokens from the training token stream whose first
token is replaced by BOS (as llama.cpp's perplexity tool does with each
window), upstream's sequence-level auxiliary load-balancing loss
(seq_aux, alpha = aux_loss_alpha). Perplexity is computed the llama.cpp way:
the held-out text is tokenized once with BOS in front, cut into
floor(n / ctx) non-overlapping windows of ctx tokens, each window's first
token is replaced by BOS, and only the second half of each window is scored
(predictions from positions ctx/2 .. ctx-2); ppl = exp(mean NLL).

Output (models/tiny-v2/): config.json (the published DeepSeek-V2-Lite
config.json with the dimensions changed, every key kept), generation_config.json,
tokenizer.json (DeepSeek's pre-tokenizer, normalizer, decoder, post-processor
and special tokens; BPE vocabulary trained here with `tokenizers`),
tokenizer_config.json (DeepSeek chat template), two bf16 safetensors shards
(round to nearest even) with model.safetensors.index.json, training.json.
After saving, the checkpoint is read back from the files, upcast to float32
and its held-out perplexity recomputed and compared.

Requirements: torch, numpy, tokenizers (scripts/requirements.txt).
"""

import argparse
import hashlib
import json
import math
import os
import re
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers
from tokenizers import pre_tokenizers, processors, trainers

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "scripts"))
import make_fixtures as fx  # noqa: E402  (DeepSeek tokenizer regexes, chat template, safetensors writer)

FORTUNE_DIR = "/usr/share/games/fortunes"
DEBIAN_PACKAGES = ["fortunes", "fortunes-min"]
FORTUNE_FILES = [
    "computers", "cookie", "definitions", "education", "food", "fortunes", "goedel",
    "humorists", "kids", "law", "literature", "love", "magic", "medicine", "miscellaneous",
    "news", "paradoxum", "people", "pets", "platitudes", "politics", "pratchett", "riddles",
    "science", "songs-poems", "sports", "startrek", "tao", "wisdom", "work", "zippy",
]
HELDOUT_EVERY = 20        # cookie i with i % 20 == 19 is held out (5 %)

BOS, EOS = fx.BOS, fx.EOS
VOCAB_SIZE = 1536         # total, the two special tokens included
BOS_ID, EOS_ID = VOCAB_SIZE - 2, VOCAB_SIZE - 1

CTX = 256                 # training context = YaRN original_max_position_embeddings
YARN_FACTOR = 4

# Model dimensions (config.json keys).
DIMS = {
    "vocab_size": VOCAB_SIZE, "hidden_size": 128, "num_hidden_layers": 4,
    "num_attention_heads": 4, "num_key_value_heads": 4,
    "q_lora_rank": None, "kv_lora_rank": 128, "qk_nope_head_dim": 32, "qk_rope_head_dim": 16,
    "v_head_dim": 32, "intermediate_size": 384, "moe_intermediate_size": 128,
    "n_routed_experts": 8, "num_experts_per_tok": 2, "n_shared_experts": 1,
    "first_k_dense_replace": 1, "moe_layer_freq": 1, "n_group": 1, "topk_group": 1,
    "topk_method": "greedy", "norm_topk_prob": False, "routed_scaling_factor": 1.0,
    "scoring_func": "softmax", "seq_aux": True, "aux_loss_alpha": 0.01,
    "rms_norm_eps": 1e-06, "rope_theta": 10000,
    "max_position_embeddings": YARN_FACTOR * CTX,
    "rope_scaling": {"beta_fast": 32, "beta_slow": 1, "factor": YARN_FACTOR, "mscale": 0.707,
                     "mscale_all_dim": 0.707, "original_max_position_embeddings": CTX,
                     "type": "yarn"},
    "bos_token_id": BOS_ID, "eos_token_id": EOS_ID, "initializer_range": 0.02,
}

TRAIN = {
    "seed": 1234, "threads": 2, "batch_size": 16, "seq_len": CTX, "steps": 1500,
    "lr": 3e-3, "min_lr_ratio": 0.1, "warmup_steps": 60, "weight_decay": 0.1,
    "betas": [0.9, 0.95], "grad_clip": 1.0, "dropout": 0.0, "log_every": 25,
}


# ---------------------------------------------------------------------------
# Text
# ---------------------------------------------------------------------------

def sha256_bytes(b):
    return hashlib.sha256(b).hexdigest()


def clean_cookie(s):
    out = []
    for ch in s:
        if ch == "\b":            # overstrike: "_\bx" underlines x; keep what was typed last
            if out:
                out.pop()
        elif ch in "\n\t" or " " <= ch <= "~":
            out.append(ch)
        elif ord(ch) < 32 or ord(ch) == 127:
            continue              # bell and other control characters
        else:
            out.append(ch)
    lines = [ln.rstrip() for ln in "".join(out).split("\n")]
    return "\n".join(lines).strip("\n")


def load_text():
    missing = [f for f in FORTUNE_FILES if not os.path.isfile(os.path.join(FORTUNE_DIR, f))]
    if missing:
        sys.exit("train_tiny: %s missing; install the training text with: apt-get install %s"
                 % (", ".join(os.path.join(FORTUNE_DIR, f) for f in missing), " ".join(DEBIAN_PACKAGES)))
    sources, cookies, seen = [], [], set()
    dropped_nonascii = dropped_dup = 0
    for name in FORTUNE_FILES:
        path = os.path.join(FORTUNE_DIR, name)
        with open(path, "rb") as f:
            raw = f.read()
        sources.append({"file": path, "bytes": len(raw), "sha256": sha256_bytes(raw)})
        text = raw.decode("utf-8", errors="replace")
        for part in re.split(r"(?m)^%\n", text):
            c = clean_cookie(part)
            if not c.strip():
                continue
            if not all(ch in "\n\t" or " " <= ch <= "~" for ch in c):
                dropped_nonascii += 1
                continue
            if c in seen:
                dropped_dup += 1
                continue
            seen.add(c)
            cookies.append(c)
    train = [c for i, c in enumerate(cookies) if i % HELDOUT_EVERY != HELDOUT_EVERY - 1]
    held = [c for i, c in enumerate(cookies) if i % HELDOUT_EVERY == HELDOUT_EVERY - 1]
    info = {"cookies": len(cookies), "train_cookies": len(train), "heldout_cookies": len(held),
            "dropped_non_ascii": dropped_nonascii, "dropped_duplicates": dropped_dup}
    return sources, train, held, info


def join_cookies(cookies):
    return "\n\n".join(cookies) + "\n"


# ---------------------------------------------------------------------------
# Tokenizer (DeepSeek LLM / V2 configuration, vocabulary trained on the training text)
# ---------------------------------------------------------------------------

def build_tokenizer(train_cookies):
    checks = train_cookies[:200] + ["The ", "Hello world", "  x  ", "12345"]
    text, reloaded = fx.train_deepseek_tokenizer(train_cookies, VOCAB_SIZE, 2, checks)
    for s in checks:
        assert reloaded.decode(reloaded.encode(s, add_special_tokens=False).ids) == s, s
    return text, reloaded


def tokenizer_config_json():
    d = json.loads(fx.tokenizer_config())       # DeepSeek's key order and chat template
    d["model_max_length"] = DIMS["max_position_embeddings"]
    assert d["chat_template"] == fx.CHAT_TEMPLATE
    return json.dumps(d, indent=2, ensure_ascii=False) + "\n"


# ---------------------------------------------------------------------------
# Model (upstream DeepSeek-V2 modeling_deepseek.py, rewritten compactly)
# ---------------------------------------------------------------------------

class RMSNorm(nn.Module):
    def __init__(self, n, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.eps = eps

    def forward(self, x):
        dt = x.dtype
        x = x.to(torch.float32)
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dt)


def yarn_find_correction_dim(num_rot, dim, base, max_pos):
    return (dim * math.log(max_pos / (num_rot * 2 * math.pi))) / (2 * math.log(base))


def yarn_find_correction_range(low_rot, high_rot, dim, base, max_pos):
    low = math.floor(yarn_find_correction_dim(low_rot, dim, base, max_pos))
    high = math.ceil(yarn_find_correction_dim(high_rot, dim, base, max_pos))
    return max(low, 0), min(high, dim - 1)


def yarn_get_mscale(scale=1.0, mscale=1.0):
    if scale <= 1:
        return 1.0
    return 0.1 * mscale * math.log(scale) + 1.0


def yarn_cos_sin(cfg, seq_len):
    """cos/sin tables [seq_len, rope_dim] exactly as DeepseekV2YarnRotaryEmbedding builds them."""
    dim, base = cfg["qk_rope_head_dim"], float(cfg["rope_theta"])
    rs = cfg["rope_scaling"]
    factor = rs["factor"]
    freq_extra = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    freq_inter = 1.0 / (factor * base ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    low, high = yarn_find_correction_range(rs["beta_fast"], rs["beta_slow"], dim, base,
                                           rs["original_max_position_embeddings"])
    if low == high:
        high += 0.001
    ramp = torch.clamp((torch.arange(dim // 2, dtype=torch.float32) - low) / (high - low), 0, 1)
    inv_freq_mask = 1.0 - ramp
    inv_freq = freq_inter * (1 - inv_freq_mask) + freq_extra * inv_freq_mask
    t = torch.arange(seq_len, dtype=torch.float32)
    freqs = torch.outer(t, inv_freq)
    _mscale = float(yarn_get_mscale(factor, rs["mscale"]) / yarn_get_mscale(factor, rs["mscale_all_dim"]))
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos() * _mscale, emb.sin() * _mscale


def rotate_half(x):
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary_pos_emb(q, k, cos, sin):
    # upstream: q, k [b, h, s, d] go from interleaved pairs (2i, 2i+1) to halves, then rotate_half
    b, h, s, d = q.shape
    q = q.view(b, h, s, d // 2, 2).transpose(4, 3).reshape(b, h, s, d)
    b, h, s, d = k.shape
    k = k.view(b, h, s, d // 2, 2).transpose(4, 3).reshape(b, h, s, d)
    return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin


class MLP(nn.Module):
    def __init__(self, hidden, inter):
        super().__init__()
        self.gate_proj = nn.Linear(hidden, inter, bias=False)
        self.up_proj = nn.Linear(hidden, inter, bias=False)
        self.down_proj = nn.Linear(inter, hidden, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Attention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        H, nh = cfg["hidden_size"], cfg["num_attention_heads"]
        self.nh, self.nope, self.rope = nh, cfg["qk_nope_head_dim"], cfg["qk_rope_head_dim"]
        self.vd, self.kvr = cfg["v_head_dim"], cfg["kv_lora_rank"]
        self.qd = self.nope + self.rope
        self.q_proj = nn.Linear(H, nh * self.qd, bias=False)
        self.kv_a_proj_with_mqa = nn.Linear(H, self.kvr + self.rope, bias=False)
        self.kv_a_layernorm = RMSNorm(self.kvr, cfg["rms_norm_eps"])
        self.kv_b_proj = nn.Linear(self.kvr, nh * (self.nope + self.vd), bias=False)
        self.o_proj = nn.Linear(nh * self.vd, H, bias=False)
        self.softmax_scale = self.qd ** (-0.5)
        rs = cfg["rope_scaling"]
        if rs is not None and rs.get("mscale_all_dim", 0):
            m = yarn_get_mscale(rs["factor"], rs["mscale_all_dim"])
            self.softmax_scale = self.softmax_scale * m * m

    def forward(self, x, cos, sin, mask):
        b, s, _ = x.shape
        q = self.q_proj(x).view(b, s, self.nh, self.qd).transpose(1, 2)
        q_nope, q_pe = torch.split(q, [self.nope, self.rope], dim=-1)
        ckv = self.kv_a_proj_with_mqa(x)
        ckv, k_pe = torch.split(ckv, [self.kvr, self.rope], dim=-1)
        k_pe = k_pe.view(b, s, 1, self.rope).transpose(1, 2)
        kv = self.kv_b_proj(self.kv_a_layernorm(ckv)).view(b, s, self.nh, self.nope + self.vd).transpose(1, 2)
        k_nope, v = torch.split(kv, [self.nope, self.vd], dim=-1)
        q_pe, k_pe = apply_rotary_pos_emb(q_pe, k_pe, cos, sin)
        qs = torch.cat([q_nope, q_pe], dim=-1)
        ks = torch.cat([k_nope, k_pe.expand(b, self.nh, s, self.rope)], dim=-1)
        att = torch.matmul(qs, ks.transpose(2, 3)) * self.softmax_scale + mask
        att = F.softmax(att, dim=-1, dtype=torch.float32).to(qs.dtype)
        out = torch.matmul(att, v).transpose(1, 2).reshape(b, s, self.nh * self.vd)
        return self.o_proj(out)


class MoEGate(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.top_k, self.E = cfg["num_experts_per_tok"], cfg["n_routed_experts"]
        self.alpha, self.scale = cfg["aux_loss_alpha"], cfg["routed_scaling_factor"]
        self.weight = nn.Parameter(torch.empty(self.E, cfg["hidden_size"]))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))   # as upstream

    def forward(self, x):
        b, s, h = x.shape
        logits = F.linear(x.reshape(-1, h).float(), self.weight.float())
        scores = logits.softmax(dim=-1, dtype=torch.float32)
        w, idx = torch.topk(scores, k=self.top_k, dim=-1, sorted=False)   # greedy, no renorm
        w = w * self.scale
        aux = None
        if self.training and self.alpha > 0:
            # upstream seq_aux: per sequence, fraction of picks per expert x mean score
            ce = torch.zeros(b, self.E, device=x.device)
            ce.scatter_add_(1, idx.view(b, -1), torch.ones(b, s * self.top_k, device=x.device))
            ce = ce / (s * self.top_k / self.E)
            aux = (ce * scores.view(b, s, -1).mean(dim=1)).sum(dim=1).mean() * self.alpha
        return idx, w, aux


class MoE(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        H, I = cfg["hidden_size"], cfg["moe_intermediate_size"]
        self.k = cfg["num_experts_per_tok"]
        self.experts = nn.ModuleList([MLP(H, I) for _ in range(cfg["n_routed_experts"])])
        self.gate = MoEGate(cfg)
        self.shared_experts = MLP(H, I * cfg["n_shared_experts"])
        self.last_idx = None

    def forward(self, x):
        shape = x.shape
        idx, w, aux = self.gate(x)
        self.last_idx = idx.detach()
        h = x.reshape(-1, shape[-1])
        flat = idx.reshape(-1)
        order = torch.argsort(flat, stable=True)
        counts = torch.bincount(flat, minlength=len(self.experts)).tolist()
        xs = h[order // self.k]
        outs, o = [], 0
        for e, n in enumerate(counts):
            if n:
                outs.append(self.experts[e](xs[o:o + n]))
            o += n
        ys = torch.cat(outs, dim=0)
        y = torch.empty_like(ys)
        y[order] = ys
        # combine in fp32: sum over the k selected experts of weight * expert(x)
        y = (y.view(-1, self.k, shape[-1]).float() * w.unsqueeze(-1)).sum(dim=1).to(x.dtype)
        y = y.view(*shape) + self.shared_experts(x)
        return y, aux


class Layer(nn.Module):
    def __init__(self, cfg, i):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg["hidden_size"], cfg["rms_norm_eps"])
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg["hidden_size"], cfg["rms_norm_eps"])
        self.is_moe = i >= cfg["first_k_dense_replace"] and i % cfg["moe_layer_freq"] == 0
        self.mlp = MoE(cfg) if self.is_moe else MLP(cfg["hidden_size"], cfg["intermediate_size"])

    def forward(self, x, cos, sin, mask, drop):
        x = x + F.dropout(self.self_attn(self.input_layernorm(x), cos, sin, mask), drop, self.training)
        h = self.post_attention_layernorm(x)
        if self.is_moe:
            y, aux = self.mlp(h)
        else:
            y, aux = self.mlp(h), None
        return x + F.dropout(y, drop, self.training), aux


class Backbone(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg["vocab_size"], cfg["hidden_size"])
        self.layers = nn.ModuleList([Layer(cfg, i) for i in range(cfg["num_hidden_layers"])])
        self.norm = RMSNorm(cfg["hidden_size"], cfg["rms_norm_eps"])


class DeepseekV2ForCausalLM(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.dropout = 0.0      # training-only regularization (residual branches); none at inference
        self.model = Backbone(cfg)
        self.lm_head = nn.Linear(cfg["hidden_size"], cfg["vocab_size"], bias=False)
        std = cfg["initializer_range"]
        for mod in self.modules():
            if isinstance(mod, (nn.Linear, nn.Embedding)):
                nn.init.normal_(mod.weight, mean=0.0, std=std)
        cos, sin = yarn_cos_sin(cfg, cfg["max_position_embeddings"])
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)

    def forward(self, ids):
        b, s = ids.shape
        x = F.dropout(self.model.embed_tokens(ids), self.dropout, self.training)
        mask = torch.full((s, s), float("-inf")).triu(1)
        cos, sin = self.cos[:s], self.sin[:s]     # positions 0..s-1
        aux_total = None
        for layer in self.model.layers:
            x, aux = layer(x, cos, sin, mask, self.dropout)
            if aux is not None:
                aux_total = aux if aux_total is None else aux_total + aux
        x = self.model.norm(x)
        return self.lm_head(x).float(), aux_total


# ---------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------

@torch.no_grad()
def perplexity(model, tokens, ctx, batch=8):
    """llama.cpp llama-perplexity: tokens include the leading BOS; n_chunk = len // ctx
    windows; window[0] := BOS; score the predictions of tokens ctx/2+1 .. ctx-1."""
    model.eval()
    n_chunk = len(tokens) // ctx
    first = ctx // 2
    nll, count = 0.0, 0
    usage = None
    for c0 in range(0, n_chunk, batch):
        rows = []
        for c in range(c0, min(n_chunk, c0 + batch)):
            w = list(tokens[c * ctx:(c + 1) * ctx])
            w[0] = BOS_ID
            rows.append(w)
        ids = torch.tensor(rows, dtype=torch.long)
        logits, _ = model(ids)
        lp = F.log_softmax(logits[:, first:ctx - 1].double(), dim=-1)
        tgt = ids[:, first + 1:ctx]
        nll -= lp.gather(-1, tgt.unsqueeze(-1)).sum().item()
        count += tgt.numel()
        u = expert_usage(model)
        usage = u if usage is None else [[a + b for a, b in zip(x, y)] for x, y in zip(usage, u)]
    return math.exp(nll / count), n_chunk, count, usage


def expert_usage(model):
    out = []
    for layer in model.model.layers:
        if layer.is_moe and layer.mlp.last_idx is not None:
            c = torch.bincount(layer.mlp.last_idx.reshape(-1), minlength=len(layer.mlp.experts))
            out.append(c.tolist())
    return out


@torch.no_grad()
def greedy(model, tok, prompt, n=48):
    model.eval()
    ids = tok.encode(prompt).ids
    for _ in range(n):
        logits, _ = model(torch.tensor([ids[-CTX:]]))
        nxt = int(logits[0, -1].argmax())
        if nxt == EOS_ID:
            break
        ids.append(nxt)
    return tok.decode(ids[len(tok.encode(prompt).ids):], skip_special_tokens=False)


# ---------------------------------------------------------------------------
# Saving and loading
# ---------------------------------------------------------------------------

def model_config():
    with open(os.path.join(fx.CONFIGS, "deepseek-v2-lite.json")) as f:
        cfg = json.load(f)
    unknown = set(DIMS) - set(cfg)
    assert not unknown, "keys not in the published V2-Lite config: %s" % sorted(unknown)
    cfg.update(DIMS)
    return cfg


def bf16_bits_to_f32(bits):
    return (bits.astype(np.uint32) << 16).view(np.float32)


def save_checkpoint(model, out, tok_json, train_info):
    os.makedirs(out, exist_ok=True)
    cfg = model_config()
    fx.write(os.path.join(out, "config.json"), json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    gen = dict(fx.GENERATION["deepseek-v2-lite.json"], bos_token_id=BOS_ID, eos_token_id=EOS_ID)
    fx.write(os.path.join(out, "generation_config.json"), json.dumps(gen, indent=2) + "\n")
    fx.write(os.path.join(out, "tokenizer.json"), tok_json)
    fx.write(os.path.join(out, "tokenizer_config.json"), tokenizer_config_json())

    sd = model.state_dict()
    expect = {name: shape for name, shape, _ in fx.tensor_specs(cfg)}
    assert set(sd) == set(expect), sorted(set(sd) ^ set(expect))
    tensors = []
    for name in sorted(sd):
        x = sd[name].detach().float().numpy()
        assert list(x.shape) == expect[name], (name, x.shape, expect[name])
        tensors.append((name, list(x.shape), fx.f32_to_bf16_bits(x)))
    fx.write_two_shards(out, tensors)
    return cfg


def load_checkpoint(d):
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    with open(os.path.join(d, "model.safetensors.index.json")) as f:
        index = json.load(f)
    model = DeepseekV2ForCausalLM(cfg)
    sd = {}
    for fname in sorted(set(index["weight_map"].values())):
        with open(os.path.join(d, fname), "rb") as f:
            for name, (shape, bits) in fx.parse_safetensors(f.read()).items():
                sd[name] = torch.from_numpy(bf16_bits_to_f32(bits).reshape(shape).copy())
    model.load_state_dict(sd, strict=True)
    return model, cfg


def round_to_bf16_(model):
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.from_numpy(bf16_bits_to_f32(fx.f32_to_bf16_bits(p.numpy())).reshape(p.shape)))


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------

def lr_at(step, hp):
    if step < hp["warmup_steps"]:
        return hp["lr"] * (step + 1) / hp["warmup_steps"]
    p = (step - hp["warmup_steps"]) / max(1, hp["steps"] - hp["warmup_steps"])
    lo = hp["lr"] * hp["min_lr_ratio"]
    return lo + 0.5 * (hp["lr"] - lo) * (1 + math.cos(math.pi * p))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join(REPO, "models", "tiny-v2"))
    ap.add_argument("--data-out", default=os.path.join(REPO, "data"))
    ap.add_argument("--steps", type=int, default=TRAIN["steps"])
    ap.add_argument("--verify-only", action="store_true",
                    help="reload --out and recompute the held-out perplexity from data/heldout.txt")
    args = ap.parse_args()
    hp = dict(TRAIN, steps=args.steps)
    torch.set_num_threads(hp["threads"])

    if args.verify_only:
        model, cfg = load_checkpoint(args.out)
        tok = Tokenizer.from_file(os.path.join(args.out, "tokenizer.json"))
        with open(os.path.join(args.data_out, "heldout.txt"), encoding="utf-8") as f:
            held = tok.encode(f.read()).ids
        for ctx in (CTX, CTX // 2):
            ppl, n_chunk, n, _ = perplexity(model, held, ctx)
            print("held-out ppl (ctx %d, %d windows, %d scored tokens): %.4f" % (ctx, n_chunk, n, ppl))
        print("greedy 'The ': %r" % greedy(model, tok, "The "))
        return 0

    t_start = time.time()
    torch.manual_seed(hp["seed"])
    sources, train_c, held_c, text_info = load_text()
    train_text, held_text = join_cookies(train_c), join_cookies(held_c)
    os.makedirs(args.data_out, exist_ok=True)
    fx.write(os.path.join(args.data_out, "heldout.txt"), held_text)
    assert len(held_text.encode()) < 200_000, len(held_text.encode())
    print("text: %d cookies (%d train, %d held out; dropped %d non-ASCII, %d duplicate); "
          "train %d bytes, held-out %d bytes" % (
              text_info["cookies"], text_info["train_cookies"], text_info["heldout_cookies"],
              text_info["dropped_non_ascii"], text_info["dropped_duplicates"],
              len(train_text), len(held_text)), flush=True)

    tok_json, tok = build_tokenizer(train_c)
    train_ids = torch.tensor(tok.encode(train_text).ids, dtype=torch.long)
    held_ids = tok.encode(held_text).ids
    assert train_ids[0] == BOS_ID and held_ids[0] == BOS_ID
    print("tokens: train %d (%.2f bytes/token), held-out %d" % (
        len(train_ids), len(train_text) / len(train_ids), len(held_ids)), flush=True)

    cfg = model_config()
    model = DeepseekV2ForCausalLM(cfg)
    model.dropout = hp["dropout"]
    n_params = sum(p.numel() for p in model.parameters())
    E, k = cfg["n_routed_experts"], cfg["num_experts_per_tok"]
    per_expert = 3 * cfg["hidden_size"] * cfg["moe_intermediate_size"]
    n_moe = sum(1 for l in model.model.layers if l.is_moe)
    n_active = n_params - n_moe * (E - k) * per_expert
    print("model: %d parameters (%.2f M), %.2f M active per token" % (
        n_params, n_params / 1e6, n_active / 1e6), flush=True)

    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": hp["weight_decay"]},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=hp["lr"], betas=tuple(hp["betas"]))
    gen = torch.Generator().manual_seed(hp["seed"])
    B, S = hp["batch_size"], hp["seq_len"]
    curve, t_train = [], time.time()
    run_loss = run_aux = 0.0
    run_n = 0
    model.train()
    for step in range(hp["steps"]):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, hp)
        starts = torch.randint(0, len(train_ids) - S - 1, (B,), generator=gen)
        win = torch.stack([train_ids[s:s + S + 1] for s in starts.tolist()])
        x, y = win[:, :-1].clone(), win[:, 1:]
        x[:, 0] = BOS_ID
        logits, aux = model(x)
        ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        loss = ce + (aux if aux is not None else 0.0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), hp["grad_clip"])
        opt.step()
        run_loss += ce.item()
        run_aux += aux.item() if aux is not None else 0.0
        run_n += 1
        if (step + 1) % hp["log_every"] == 0 or step + 1 == hp["steps"]:
            el = time.time() - t_train
            rec = {"step": step + 1, "loss": round(run_loss / run_n, 4),
                   "aux": round(run_aux / run_n, 5), "lr": round(lr_at(step, hp), 6),
                   "elapsed_s": round(el, 1)}
            curve.append(rec)
            print("step %5d  loss %.4f  aux %.5f  lr %.2e  %6.1f s  %.0f tok/s" % (
                step + 1, rec["loss"], rec["aux"], rec["lr"], el,
                (step + 1) * B * S / el), flush=True)
            run_loss = run_aux = 0.0
            run_n = 0
    train_s = time.time() - t_train

    ppl_f32, n_chunk, n_scored, usage = perplexity(model, held_ids, CTX)
    print("held-out ppl, float32 weights (ctx %d, %d windows, %d scored): %.4f" % (
        CTX, n_chunk, n_scored, ppl_f32), flush=True)
    round_to_bf16_(model)
    ppl_bf16, _, _, usage = perplexity(model, held_ids, CTX)
    # The same measure on a slice of the training text of the held-out size (overfitting check).
    train_sample = tok.encode(join_cookies(train_c[::HELDOUT_EVERY - 1])).ids[:len(held_ids)]
    ppl_train_sample = perplexity(model, train_sample, CTX)[0]
    ppl_bf16_half, n_chunk_half, n_scored_half, _ = perplexity(model, held_ids, CTX // 2)
    print("held-out ppl, bf16-rounded weights: ctx %d %.4f, ctx %d %.4f; on %d training tokens %.4f" % (
        CTX, ppl_bf16, CTX // 2, ppl_bf16_half, len(train_sample), ppl_train_sample), flush=True)
    for li, u in enumerate(usage):
        tot = sum(u)
        print("expert usage, MoE layer %d (held-out tokens x top-%d): %s" % (
            li + cfg["first_k_dense_replace"], k, " ".join("%.3f" % (c / tot) for c in u)))
    samples = {p: greedy(model, tok, p) for p in ["The ", "The", "A man", "Love is"]}
    for p, s in samples.items():
        print("greedy %r -> %r" % (p, s))

    save_checkpoint(model, args.out, tok_json, text_info)
    reloaded, _ = load_checkpoint(args.out)
    ppl_reload, _, _, _ = perplexity(reloaded, held_ids, CTX)
    print("reloaded from %s (bf16 -> float32): held-out ppl %.4f" % (args.out, ppl_reload))
    assert abs(ppl_reload - ppl_bf16) <= 1e-6 * ppl_bf16, (ppl_reload, ppl_bf16)
    assert abs(ppl_bf16 - ppl_f32) <= 0.02 * ppl_f32, (ppl_bf16, ppl_f32)
    assert ppl_reload < VOCAB_SIZE / 10

    hash_dir = {}
    for name in sorted(os.listdir(args.out)):
        if name.endswith(".safetensors"):
            with open(os.path.join(args.out, name), "rb") as f:
                hash_dir[name] = sha256_bytes(f.read())
    report = {
        "script": "scripts/train_tiny.py",
        "torch_version": torch.__version__,
        "text": {
            "debian_packages": DEBIAN_PACKAGES,
            "source_files": sources,
            "selection": "cookies split at '%%' lines; overstrikes resolved; control characters, "
                         "non-ASCII cookies and duplicates dropped; cookie i with i %% %d == %d held out"
                         % (HELDOUT_EVERY, HELDOUT_EVERY - 1),
            **text_info,
            "train_text_bytes": len(train_text.encode()),
            "train_text_sha256": sha256_bytes(train_text.encode()),
            "heldout_file": "data/heldout.txt",
            "heldout_text_bytes": len(held_text.encode()),
            "heldout_text_sha256": sha256_bytes(held_text.encode()),
            "train_tokens": len(train_ids), "heldout_tokens": len(held_ids),
        },
        "model": {"parameters": n_params, "active_parameters": n_active,
                  "config": {k2: cfg[k2] for k2 in DIMS}},
        "training": dict(hp, optimizer="AdamW", schedule="linear warm-up, cosine to min_lr_ratio",
                         tokens_seen=hp["steps"] * B * S, train_wall_s=round(train_s, 1),
                         final_train_loss=curve[-1]["loss"],
                         aux_loss="upstream seq_aux, alpha = aux_loss_alpha"),
        "eval": {
            "method": "llama.cpp perplexity: BOS + text, floor(n/ctx) non-overlapping windows, "
                      "window[0] := BOS, score second half (ctx/2 - 1 tokens per window)",
            "heldout_ppl_f32_weights": round(ppl_f32, 4),
            "heldout_ppl": round(ppl_bf16, 4),
            "heldout_ppl_ctx": CTX, "heldout_windows": n_chunk, "heldout_scored_tokens": n_scored,
            "heldout_ppl_ctx_half": round(ppl_bf16_half, 4),
            "heldout_ctx_half": CTX // 2, "heldout_windows_ctx_half": n_chunk_half,
            "heldout_scored_tokens_ctx_half": n_scored_half,
            "heldout_ppl_reloaded": round(ppl_reload, 4),
            "train_sample_ppl": round(ppl_train_sample, 4),
            "train_sample": "every %dth training cookie, first %d tokens, same method and ctx"
                            % (HELDOUT_EVERY - 1, len(train_sample)),
            "expert_usage_heldout": {"layer_%d" % (li + cfg["first_k_dense_replace"]): u
                                     for li, u in enumerate(usage)},
            "greedy_samples": samples,
        },
        "loss_curve": curve,
        "safetensors_sha256": hash_dir,
        "total_wall_s": round(time.time() - t_start, 1),
    }
    fx.write(os.path.join(args.out, "training.json"), json.dumps(report, indent=2) + "\n")
    size = sum(os.path.getsize(os.path.join(args.out, f)) for f in os.listdir(args.out))
    print("wrote %s (%d bytes), %s; total %.0f s" % (
        args.out, size, os.path.join(args.data_out, "heldout.txt"), time.time() - t_start))
    return 0


if __name__ == "__main__":
    sys.exit(main())
