#!/usr/bin/env python3
"""Generate the tiny DeepSeek checkpoint fixtures under tests/data/.

    python3 scripts/make_fixtures.py            # (re)write the fixtures
    python3 scripts/make_fixtures.py --check    # regenerate in a temp dir, compare byte for byte

Writes three tiny random Hugging Face checkpoint folders:

    tests/data/tiny-v1/        DeepSeek-MoE (V1): model_type "deepseek", MHA
    tests/data/tiny-v2-lite/   DeepSeek-V2-Lite style: MLA without q compression, greedy top-k, YaRN
    tests/data/tiny-v2/        DeepSeek-V2 style: MLA with q_lora_rank, group-limited greedy, x2.5

each with config.json, generation_config.json, two safetensors shards plus
model.safetensors.index.json, tokenizer.json and tokenizer_config.json; and
tests/data/tokenizer-cases.json (reference encodings from the `tokenizers`
library for the shared tokenizer).

config.json of each fixture is the real published config of its family
(tests/data/configs/, typed from the published files) with the dimensions
overridden, so every key the real file has is present with the same spelling.

Requirements: scripts/requirements-fixtures.txt (numpy, tokenizers; no torch).
The output is deterministic: fixed seeds (one per tensor, derived from its
name), the legacy numpy RandomState stream, a deterministic BPE trainer and
JSON written with fixed key order. Running it twice gives identical bytes.
"""

import argparse
import filecmp
import hashlib
import json
import math
import os
import struct
import sys
import tempfile

import numpy as np
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers
from tokenizers import pre_tokenizers, processors, trainers

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = os.path.join(REPO, "tests", "data", "configs")

# ---------------------------------------------------------------------------
# Tokenizer: DeepSeek LLM / V2 configuration, tiny trained vocabulary
# ---------------------------------------------------------------------------

BOS = "<\uff5cbegin\u2581of\u2581sentence\uff5c>"  # <｜begin▁of▁sentence｜>
EOS = "<\uff5cend\u2581of\u2581sentence\uff5c>"    # <｜end▁of▁sentence｜>
VOCAB_SIZE = 512          # total, special tokens included
BOS_ID, EOS_ID = 510, 511

# The five Split regexes of DeepSeek's tokenizer.json pre_tokenizer (deepseek-llm,
# deepseek-moe, DeepSeek-V2/-Lite), written with escapes because several of the
# code points have look-alikes in other Unicode blocks (U+1F7D vs U+03CE,
# U+2126 vs U+03A9, U+212A vs 'K', ...). llama.cpp's LLAMA_VOCAB_PRE_TYPE_DEEPSEEK_LLM
# lists the same regexes (with \p{N}+ for the Digits step).
DS_NEWLINE = "[\r\n]"
DS_LETTERS = (
    "\\s?[A-Za-z\u00B5\u00C0-\u00D6\u00D8-\u00F6\u00F8-\u01BA\u01BC-"
    "\u01BF\u01C4-\u0293\u0295-\u02AF\u0370-\u0373\u0376\u0377\u037B-"
    "\u037D\u037F\u0386\u0388-\u038A\u038C\u038E-\u03A1\u03A3-\u03F5"
    "\u03F7-\u0481\u048A-\u052F\u0531-\u0556\u10A0-\u10C5\u13A0-\u13F5"
    "\u13F8-\u13FD\u1C90-\u1CBA\u1CBD-\u1CBF\u1D00-\u1D2B\u1D6B-\u1D77"
    "\u1D79-\u1D9A\u1E00-\u1F15\u1F18-\u1F1D\u1F20-\u1F45\u1F48-\u1F4D"
    "\u1F50-\u1F57\u1F59\u1F5B\u1F5D\u1F5F-\u1F7D\u1F80-\u1FB4\u1FB6-"
    "\u1FBC\u1FBE\u1FC2-\u1FC4\u1FC6-\u1FCC\u1FD0-\u1FD3\u1FD6-\u1FDB"
    "\u1FE0-\u1FEC\u1FF2-\u1FF4\u1FF6-\u1FFC\u2102\u2107\u210A-\u2113"
    "\u2115\u2119-\u211D\u2124\u2126\u2128\u212A-\u212D\u212F-\u2134"
    "\u2139\u213C-\u213F\u2145-\u2149\u214E\u2183\u2184\u2C00-\u2C7B"
    "\u2C7E-\u2CE4\u2CEB-\u2CEE\u2CF2\u2CF3\uA640-\uA66D\uA680-\uA69B"
    "\uA722-\uA76F\uA771-\uA787\uA78B-\uA78E\uAB70-\uABBF\uFB00-\uFB06"
    "\uFB13-\uFB17\uFF21-\uFF3A\uFF41-\uFF5A\U00010400-\U0001044F"
    "\U000104B0-\U000104D3\U000104D8-\U000104FB\U00010C80-\U00010CB2"
    "\U00010CC0-\U00010CF2\U000118A0-\U000118DF\U0001E900-\U0001E943]+")
DS_PUNCT = "\\s?[!-/:-~\uFF01-\uFF0F\uFF1A-\uFF5E\u2018-\u201F\u3000-\u3002]+"
DS_TRAIL_WS = "\\s+$"
DS_CJK = "[\u4E00-\u9FA5\u0800-\u4E00\uAC00-\uD7FF]+"
DS_SPLITS = [DS_NEWLINE, DS_LETTERS, DS_PUNCT, DS_TRAIL_WS, DS_CJK]

# DeepSeek-V2-Lite-Chat / DeepSeek-V2-Chat tokenizer_config.json chat_template, verbatim.
CHAT_TEMPLATE = (
    "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}"
    "{{ bos_token }}{% for message in messages %}"
    "{% if message['role'] == 'user' %}{{ 'User: ' + message['content'] + '\n\n' }}"
    "{% elif message['role'] == 'assistant' %}{{ 'Assistant: ' + message['content'] + eos_token }}"
    "{% elif message['role'] == 'system' %}{{ message['content'] + '\n\n' }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}")

# Training text: mostly English, some Chinese, digits, punctuation, a little of
# other scripts and code. Only the merges it yields matter; keep it stable.
CORPUS = [
    "The quick brown fox jumps over the lazy dog. A mixture of experts routes each token "
    "to a few small feed-forward networks, the experts, chosen by a learned router; the "
    "shared experts see every token. DeepSeek-MoE splits each expert into finer pieces and "
    "isolates shared experts, so that the routed ones can specialize.",
    "Multi-head latent attention compresses the keys and values into a small latent vector. "
    "During decoding the model caches only that latent and the rotary part of the key, which "
    "makes the cache about ten times smaller than with ordinary multi-head attention. The "
    "queries can be compressed too, through a low-rank projection and a norm.",
    "In 2024 the model was trained on 8.1 trillion tokens; its context grew from 4096 to "
    "163840 positions with YaRN (factor 40, beta_fast = 32, beta_slow = 1, mscale = 0.707). "
    "Prices: $3.50, 12% off, 1,000,000 units... Really?! Yes: (a) one; [b] two; {c} three. "
    "Email: someone@example.com, path /usr/local/bin, version v2.5.1-rc3, time 09:45.",
    "def forward(self, x):\n    h = self.norm(x)\n    return x + self.mlp(h)  # residual\n\n"
    "for i in range(10):\n\tprint(i * i, end=' ')\n",
    "深度求索发布了混合专家模型。这个模型使用多头潜在注意力，大幅减少了键值缓存。"
    "我们在中文和英文的基准测试上评估了它的性能，结果很好！你好，世界。今天天气不错，我们去公园散步吧？",
    "Les modèles de langage apprennent à prédire le mot suivant. Über den Wolken muss die "
    "Freiheit wohl grenzenlos sein. El niño comió una manzana. Ωμέγα και άλφα. Привет, мир! "
    "한국어 문장도 조금 있습니다. 日本語の文も少しあります。",
    "User: What is the capital of France?\n\nAssistant: The capital of France is Paris.\n\n"
    "User: And of Italy?\n\nAssistant: Rome.",
    "“Quoted text,” she said — and then… silence.   Multiple   spaces   and trailing spaces   \n"
    "Tabs\tand\r\nWindows line endings.\n\n\nThree newlines above.",
]

# Texts whose reference encodings go to tests/data/tokenizer-cases.json.
CASES = [
    "Hello world",
    "The quick brown fox jumps over the lazy dog.",
    "  leading spaces and trailing spaces   ",
    "numbers 12345 and 3.14159, 1,000,000",
    "深度求索发布了混合专家模型。",
    "mixed 中文 and English, 2024年!",
    "line one\nline two\r\n\n\tindented",
    "Ωμέγα, Привет, café, naïve, Über",
    "emoji \U0001F600 and symbols \u2603 \u00A9",
    "User: Hi\n\nAssistant: Hello!" + EOS + "User: Bye\n\nAssistant:",
    "special " + BOS + " inside text",
    "",
    " ",
    "a",
]


def train_deepseek_tokenizer(texts, vocab_size, min_frequency, check_texts):
    """A byte-level BPE trained on texts with DeepSeek's tokenizer.json pipeline (normalizer,
    split regexes, digits, byte level, decoder, BOS post-processor) and its two special tokens
    at the last ids. Returns (tokenizer.json text in DeepSeek's layout, reloaded Tokenizer)."""
    bos_id, eos_id = vocab_size - 2, vocab_size - 1
    tok = Tokenizer(models.BPE(byte_fallback=False))
    tok.normalizer = normalizers.Sequence([])
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split(Regex(r), behavior="isolated", invert=False) for r in DS_SPLITS]
        + [pre_tokenizers.Digits(individual_digits=True),
           pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - 2, min_frequency=min_frequency, show_progress=False,
        special_tokens=[], initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer=trainer)
    if tok.get_vocab_size(with_added_tokens=False) != vocab_size - 2:
        sys.exit("the BPE trainer gave %d tokens, need %d; add training text"
                 % (tok.get_vocab_size(with_added_tokens=False), vocab_size - 2))
    tok.add_special_tokens([AddedToken(BOS, special=True, normalized=True),
                            AddedToken(EOS, special=True, normalized=True)])
    assert tok.token_to_id(BOS) == bos_id and tok.token_to_id(EOS) == eos_id
    tok.post_processor = processors.TemplateProcessing(
        single=BOS + ":0 $A:0", pair=BOS + ":0 $A:0 " + BOS + ":1 $B:1",
        special_tokens=[(BOS, bos_id)])

    # Serialize in the layout of DeepSeek's own tokenizer.json (written by an
    # older `tokenizers`): merges as "left right" strings, no ignore_merges key.
    d = json.loads(tok.to_str())
    m = d["model"]
    merges = []
    for pair in m["merges"]:
        a, b = pair if isinstance(pair, list) else pair.split(" ")
        assert " " not in a and " " not in b
        merges.append(a + " " + b)
    d["model"] = {
        "type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
        "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
        "vocab": m["vocab"], "merges": merges,
    }
    text = json.dumps(d, indent=2, ensure_ascii=False) + "\n"
    # The rewritten file must tokenize exactly like the trained object.
    reloaded = Tokenizer.from_str(text)
    for s in check_texts:
        assert reloaded.encode(s).ids == tok.encode(s).ids, s
    return text, reloaded


def build_tokenizer():
    return train_deepseek_tokenizer(CORPUS, VOCAB_SIZE, 0, CORPUS + CASES)


def tokenizer_config():
    def added(content):
        return {"__type": "AddedToken", "content": content, "lstrip": False,
                "normalized": True, "rstrip": False, "single_word": False}
    # Key order as in DeepSeek's files (not sorted).
    d = {
        "add_bos_token": True,
        "add_eos_token": False,
        "bos_token": added(BOS),
        "clean_up_tokenization_spaces": False,
        "eos_token": added(EOS),
        "legacy": True,
        "model_max_length": 16384,
        "pad_token": added(EOS),
        "sp_model_kwargs": {},
        "unk_token": None,
        "tokenizer_class": "LlamaTokenizerFast",
        "chat_template": CHAT_TEMPLATE,
    }
    return json.dumps(d, indent=2, ensure_ascii=False) + "\n"


def check_tokenizer(tok):
    assert tok.get_vocab_size(with_added_tokens=True) == VOCAB_SIZE
    assert tok.id_to_token(BOS_ID) == BOS and tok.id_to_token(EOS_ID) == EOS
    for s in CORPUS + CASES:
        enc = tok.encode(s)
        assert enc.ids[0] == BOS_ID, s
        assert tok.decode(enc.ids, skip_special_tokens=False) == BOS + s, s
        plain = tok.encode(s, add_special_tokens=False).ids
        assert tok.decode(plain, skip_special_tokens=False) == s, s


def tokenizer_cases(tok):
    cases = []
    for s in CASES:
        cases.append({
            "text": s,
            "ids": tok.encode(s).ids,                                  # with BOS (post_processor)
            "ids_no_special": tok.encode(s, add_special_tokens=False).ids,
            "tokens": tok.encode(s, add_special_tokens=False).tokens,
        })
    head = {"_comment": "Reference encodings of the tiny fixture tokenizer (tests/data/tiny-*/tokenizer.json) "
                        "made by the Hugging Face `tokenizers` library; regenerate with "
                        "python3 scripts/make_fixtures.py",
            "bos_token_id": BOS_ID, "eos_token_id": EOS_ID}
    lines = ["{"] + ["  %s: %s," % (json.dumps(k), json.dumps(v, ensure_ascii=False)) for k, v in head.items()]
    lines.append('  "cases": [')
    lines += ["    " + json.dumps(c, ensure_ascii=False) + ("," if i + 1 < len(cases) else "")
              for i, c in enumerate(cases)]
    lines += ["  ]", "}"]
    text = "\n".join(lines) + "\n"
    assert json.loads(text)["cases"] == cases
    return text


# ---------------------------------------------------------------------------
# Model configs
# ---------------------------------------------------------------------------

COMMON = {
    "vocab_size": VOCAB_SIZE, "hidden_size": 64, "num_hidden_layers": 3, "intermediate_size": 128,
    "moe_intermediate_size": 32, "n_routed_experts": 8, "n_shared_experts": 2,
    "num_experts_per_tok": 3, "num_attention_heads": 4, "num_key_value_heads": 4,
    "first_k_dense_replace": 1, "moe_layer_freq": 1, "bos_token_id": BOS_ID, "eos_token_id": EOS_ID,
    "rms_norm_eps": 1e-06, "rope_theta": 10000,
}
YARN = {"beta_fast": 32, "beta_slow": 1, "factor": 40, "mscale": 0.707, "mscale_all_dim": 0.707,
        "original_max_position_embeddings": 128, "type": "yarn"}
MLA = {"qk_nope_head_dim": 16, "qk_rope_head_dim": 8, "v_head_dim": 16, "kv_lora_rank": 32,
       "max_position_embeddings": 40 * 128}

FIXTURES = [
    # name, published config it copies, overrides, keys added beyond the published file
    ("tiny-v1", "deepseek-moe-16b.json",
     dict(COMMON, max_position_embeddings=4096, rope_scaling=None,
          # deepseek-moe-16b-chat's published config.json carries these two (the -base one does not)
          aux_loss_alpha=0.001, seq_aux=True),
     {"aux_loss_alpha", "seq_aux"}),
    ("tiny-v2-lite", "deepseek-v2-lite.json",
     dict(COMMON, **MLA, q_lora_rank=None, rope_scaling=YARN, n_group=1, topk_group=1,
          topk_method="greedy", routed_scaling_factor=1.0),
     set()),
    ("tiny-v2", "deepseek-v2.json",
     dict(COMMON, **MLA, q_lora_rank=48, rope_scaling=YARN, n_group=4, topk_group=2,
          topk_method="group_limited_greedy", routed_scaling_factor=2.5),
     set()),
]

GENERATION = {
    # Key order as in the published files.
    "deepseek-moe-16b.json": {"_from_model_config": True, "bos_token_id": BOS_ID,
                              "eos_token_id": EOS_ID, "transformers_version": "4.36.2"},
    "deepseek-v2-lite.json": {"_from_model_config": True, "bos_token_id": BOS_ID,
                              "eos_token_id": EOS_ID, "do_sample": True, "temperature": 0.3,
                              "top_p": 0.95, "transformers_version": "4.39.3"},
}
GENERATION["deepseek-v2.json"] = GENERATION["deepseek-v2-lite.json"]


def model_config(template, overrides, extra_keys):
    with open(os.path.join(CONFIGS, template)) as f:
        cfg = json.load(f)
    unknown = set(overrides) - set(cfg) - extra_keys
    assert not unknown, "override keys not in %s: %s" % (template, sorted(unknown))
    cfg.update(overrides)
    return cfg


# ---------------------------------------------------------------------------
# Tensors
# ---------------------------------------------------------------------------

def tensor_specs(cfg):
    """(name, shape, init) for every tensor of the checkpoint, as the upstream
    modeling_deepseek.py names them (nn.Linear weight = [out_features, in_features])."""
    H, V, nh = cfg["hidden_size"], cfg["vocab_size"], cfg["num_attention_heads"]
    specs = [("model.embed_tokens.weight", [V, H], "embed"),
             ("model.norm.weight", [H], "norm"),
             ("lm_head.weight", [V, H], "linear")]
    v2 = cfg["model_type"] == "deepseek_v2"
    for L in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % L
        specs += [(p + "input_layernorm.weight", [H], "norm"),
                  (p + "post_attention_layernorm.weight", [H], "norm")]
        a = p + "self_attn."
        if not v2:
            hd = H // nh
            nkv = cfg["num_key_value_heads"]
            specs += [(a + "q_proj.weight", [nh * hd, H], "linear"),
                      (a + "k_proj.weight", [nkv * hd, H], "linear"),
                      (a + "v_proj.weight", [nkv * hd, H], "linear"),
                      (a + "o_proj.weight", [H, nh * hd], "linear")]
        else:
            nope, rope, vd = cfg["qk_nope_head_dim"], cfg["qk_rope_head_dim"], cfg["v_head_dim"]
            kvr, qr = cfg["kv_lora_rank"], cfg["q_lora_rank"]
            if qr is None:
                specs.append((a + "q_proj.weight", [nh * (nope + rope), H], "linear"))
            else:
                specs += [(a + "q_a_proj.weight", [qr, H], "linear"),
                          (a + "q_a_layernorm.weight", [qr], "norm"),
                          (a + "q_b_proj.weight", [nh * (nope + rope), qr], "linear")]
            specs += [(a + "kv_a_proj_with_mqa.weight", [kvr + rope, H], "linear"),
                      (a + "kv_a_layernorm.weight", [kvr], "norm"),
                      (a + "kv_b_proj.weight", [nh * (nope + vd), kvr], "linear"),
                      (a + "o_proj.weight", [H, nh * vd], "linear")]
        m = p + "mlp."
        moe = (cfg["n_routed_experts"] is not None and L >= cfg["first_k_dense_replace"]
               and L % cfg["moe_layer_freq"] == 0)
        if not moe:
            I = cfg["intermediate_size"]
            specs += [(m + "gate_proj.weight", [I, H], "linear"),
                      (m + "up_proj.weight", [I, H], "linear"),
                      (m + "down_proj.weight", [H, I], "linear")]
        else:
            I = cfg["moe_intermediate_size"]
            specs.append((m + "gate.weight", [cfg["n_routed_experts"], H], "router"))
            for e in range(cfg["n_routed_experts"]):
                x = m + "experts.%d." % e
                specs += [(x + "gate_proj.weight", [I, H], "linear"),
                          (x + "up_proj.weight", [I, H], "linear"),
                          (x + "down_proj.weight", [H, I], "linear")]
            S = I * cfg["n_shared_experts"]
            specs += [(m + "shared_experts.gate_proj.weight", [S, H], "linear"),
                      (m + "shared_experts.up_proj.weight", [S, H], "linear"),
                      (m + "shared_experts.down_proj.weight", [H, S], "linear")]
    names = [s[0] for s in specs]
    assert len(set(names)) == len(names)
    return specs


def init_tensor(fixture, name, shape, kind, hidden):
    seed = int.from_bytes(hashlib.sha256(("%s/%s" % (fixture, name)).encode()).digest()[:4], "little")
    # Legacy RandomState: its stream is frozen by numpy's compatibility policy (NEP 19).
    z = np.random.RandomState(seed).standard_normal(size=shape)
    if kind == "norm":
        x = 1.0 + 0.1 * z                      # around 1, not trivially all ones
    elif kind == "embed":
        x = z                                  # residual stream O(1)
    elif kind == "router":
        x = z * (3.0 / math.sqrt(hidden))      # decisive routing
    else:
        x = z / math.sqrt(shape[1])            # std 1/sqrt(in_features): activations stay O(1)
    return x.astype(np.float32)


def f32_to_bf16_bits(x):
    """float32 -> bf16 bit patterns, round to nearest even (no NaN/Inf here)."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    assert np.all(np.isfinite(x))
    r = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return r.astype("<u2")


def safetensors_bytes(tensors):
    """tensors: list of (name, shape, bf16 uint16 array). Layout as the safetensors
    library writes it: u64 LE header length, compact JSON header (__metadata__ first,
    tensors sorted by name), padded with spaces to a multiple of 8, then data."""
    tensors = sorted(tensors, key=lambda t: t[0])
    header = {"__metadata__": {"format": "pt"}}
    off = 0
    for name, shape, arr in tensors:
        n = arr.nbytes
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [off, off + n]}
        off += n
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(arr.tobytes() for _, _, arr in tensors)


def parse_safetensors(blob):
    (n,) = struct.unpack_from("<Q", blob, 0)
    header = json.loads(blob[8:8 + n])
    header.pop("__metadata__")
    data = blob[8 + n:]
    out = {}
    end = 0
    for name, t in header.items():
        b, e = t["data_offsets"]
        assert t["dtype"] == "BF16" and e - b == 2 * math.prod(t["shape"]) and b == end
        end = e
        out[name] = (t["shape"], np.frombuffer(data[b:e], dtype="<u2"))
    assert end == len(data)
    return out


# ---------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------

def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)


def write_two_shards(d, tensors):
    """Writes (name, shape, bf16 bits) tensors, in name order, as two safetensors shards split
    roughly in half (a layer may straddle) plus model.safetensors.index.json, as HF does."""
    total = sum(t[2].nbytes for t in tensors)
    acc, cut = 0, len(tensors)
    for i, t in enumerate(tensors):
        if acc >= total / 2:
            cut = i
            break
        acc += t[2].nbytes
    shards = [tensors[:cut], tensors[cut:]]
    weight_map = {}
    for i, sh in enumerate(shards):
        fname = "model-%05d-of-%05d.safetensors" % (i + 1, len(shards))
        blob = safetensors_bytes(sh)
        write(os.path.join(d, fname), blob)
        back = parse_safetensors(blob)
        for tname, shape, arr in sh:
            assert back[tname][0] == list(shape) and np.array_equal(back[tname][1], arr.reshape(-1))
            weight_map[tname] = fname
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    write(os.path.join(d, "model.safetensors.index.json"),
          json.dumps(index, indent=2, sort_keys=True) + "\n")


def make_fixture(out, name, template, overrides, extra_keys, tok_json, tok_cfg):
    d = os.path.join(out, name)
    cfg = model_config(template, overrides, extra_keys)
    write(os.path.join(d, "config.json"), json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    write(os.path.join(d, "generation_config.json"),
          json.dumps(GENERATION[template], indent=2) + "\n")
    write(os.path.join(d, "tokenizer.json"), tok_json)
    write(os.path.join(d, "tokenizer_config.json"), tok_cfg)

    tensors = []
    for tname, shape, kind in tensor_specs(cfg):
        x = init_tensor(name, tname, shape, kind, cfg["hidden_size"])
        tensors.append((tname, shape, f32_to_bf16_bits(x)))
    tensors.sort(key=lambda t: t[0])
    write_two_shards(d, tensors)


def generate(out):
    tok_json, tok = build_tokenizer()
    check_tokenizer(tok)
    tok_cfg = tokenizer_config()
    for name, template, overrides, extra in FIXTURES:
        make_fixture(out, name, template, overrides, extra, tok_json, tok_cfg)
    write(os.path.join(out, "tokenizer-cases.json"), tokenizer_cases(tok))


def written_files(root):
    files = [os.path.join(root, "tokenizer-cases.json")]
    for name, _, _, _ in FIXTURES:
        d = os.path.join(root, name)
        files += [os.path.join(d, f) for f in sorted(os.listdir(d))]
    return [os.path.relpath(f, root) for f in files]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join(REPO, "tests", "data"),
                    help="output folder (default: tests/data of this repository)")
    ap.add_argument("--check", action="store_true",
                    help="regenerate into a temporary folder and compare with --out byte for byte")
    args = ap.parse_args()
    if not args.check:
        generate(args.out)
        for f in written_files(args.out):
            print("%8d  %s" % (os.path.getsize(os.path.join(args.out, f)), f))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        generate(tmp)
        bad = [f for f in written_files(tmp)
               if not os.path.exists(os.path.join(args.out, f))
               or not filecmp.cmp(os.path.join(tmp, f), os.path.join(args.out, f), shallow=False)]
    if bad:
        print("make_fixtures --check: differs from a fresh run: " + ", ".join(bad))
        return 1
    print("make_fixtures --check: all fixtures match a fresh run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
