#!/usr/bin/env python3
"""Write a synthetic full-width DeepSeek-V2-Lite checkpoint, truncated to a few layers.

    python3 scripts/make_synthetic_checkpoint.py OUT_DIR [--layers 2] [--shards 4] [--seed 0]

Used by scripts/bench-convert.sh (`make bench`) to time `dsq convert` on tensors of the
real size without downloading the real model. The result is a Hugging Face checkpoint
folder with:

- config.json: the published DeepSeek-V2-Lite config (tests/data/configs/deepseek-v2-lite.json:
  hidden 2048, vocab 102400, 16 heads, q_proj 2048->3072 (q_lora_rank null),
  kv_a_proj_with_mqa 2048->576, kv_b 512->4096, layer 0 dense FFN 10944, later layers
  64 routed experts x 1408 + 2 shared (2816), YaRN rope_scaling) with only
  `num_hidden_layers` changed and bos/eos_token_id set to 510/511 (see below);
- random BF16 weights under the real Hugging Face tensor names and shapes, sorted by
  name and split into --shards safetensors files of about equal size, plus
  model.safetensors.index.json;
- tokenizer.json, tokenizer_config.json, generation_config.json copied from the tiny
  fixture tests/data/tiny-v2-lite/. That tokenizer has 512 tokens with BOS 510 and EOS 511,
  so the config names those ids: the converter requires the config's bos/eos ids to be
  tokens of the tokenizer (and below vocab_size), and the real 102400-token tokenizer is
  not in the repository. The embedding and lm_head keep the real 102400 rows.

With 2 layers this is about 2.2 GB. The output is deterministic (one seed per tensor,
derived from --seed and the tensor name). The folder is written under OUT_DIR.tmp and
renamed when complete, so an interrupted run never leaves a folder that looks finished.

Requirements: numpy only (scripts/requirements-fixtures.txt pins it).
"""

import argparse
import json
import os
import shutil
import struct
import sys
import zlib

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG_TEMPLATE = os.path.join(REPO, "tests", "data", "configs", "deepseek-v2-lite.json")
TOKENIZER_DIR = os.path.join(REPO, "tests", "data", "tiny-v2-lite")
TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json", "generation_config.json"]
BOS_ID, EOS_ID = 510, 511  # the ids of the special tokens in the tiny tokenizer

CHUNK = 1 << 23  # elements generated per step (32 MB of float32)


def tensor_shapes(cfg):
    """{hf_name: shape} of a DeepSeek-V2 checkpoint described by cfg (nn.Linear = [out, in])."""
    h = cfg["hidden_size"]
    heads = cfg["num_attention_heads"]
    nope, rope, v = cfg["qk_nope_head_dim"], cfg["qk_rope_head_dim"], cfg["v_head_dim"]
    kv_rank = cfg["kv_lora_rank"]
    shapes = {
        "model.embed_tokens.weight": [cfg["vocab_size"], h],
        "model.norm.weight": [h],
        "lm_head.weight": [cfg["vocab_size"], h],
    }
    for layer in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % layer
        shapes[p + "input_layernorm.weight"] = [h]
        shapes[p + "post_attention_layernorm.weight"] = [h]
        a = p + "self_attn."
        if cfg.get("q_lora_rank"):
            shapes[a + "q_a_proj.weight"] = [cfg["q_lora_rank"], h]
            shapes[a + "q_a_layernorm.weight"] = [cfg["q_lora_rank"]]
            shapes[a + "q_b_proj.weight"] = [heads * (nope + rope), cfg["q_lora_rank"]]
        else:
            shapes[a + "q_proj.weight"] = [heads * (nope + rope), h]
        shapes[a + "kv_a_proj_with_mqa.weight"] = [kv_rank + rope, h]
        shapes[a + "kv_a_layernorm.weight"] = [kv_rank]
        shapes[a + "kv_b_proj.weight"] = [heads * (nope + v), kv_rank]
        shapes[a + "o_proj.weight"] = [h, heads * v]
        m = p + "mlp."
        moe = (cfg["n_routed_experts"] and layer >= cfg["first_k_dense_replace"]
               and layer % cfg["moe_layer_freq"] == 0)
        if not moe:
            ffn = cfg["intermediate_size"]
            shapes[m + "gate_proj.weight"] = [ffn, h]
            shapes[m + "up_proj.weight"] = [ffn, h]
            shapes[m + "down_proj.weight"] = [h, ffn]
            continue
        ffn = cfg["moe_intermediate_size"]
        shapes[m + "gate.weight"] = [cfg["n_routed_experts"], h]
        for e in range(cfg["n_routed_experts"]):
            x = m + "experts.%d." % e
            shapes[x + "gate_proj.weight"] = [ffn, h]
            shapes[x + "up_proj.weight"] = [ffn, h]
            shapes[x + "down_proj.weight"] = [h, ffn]
        shared = ffn * cfg["n_shared_experts"]  # the shared experts are one fused MLP
        shapes[m + "shared_experts.gate_proj.weight"] = [shared, h]
        shapes[m + "shared_experts.up_proj.weight"] = [shared, h]
        shapes[m + "shared_experts.down_proj.weight"] = [h, shared]
    return shapes


def nbytes(shape):
    n = 2  # BF16
    for d in shape:
        n *= d
    return n


def write_tensor(f, name, shape, seed):
    """Writes random BF16 values: N(0, 0.02) for weights, 1 + N(0, 0.02) for norms.
    BF16 = the high 16 bits of the float32 (truncation: fast, and any BF16 will do)."""
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    norm = "layernorm" in name or name == "model.norm.weight"
    left = nbytes(shape) // 2
    while left:
        n = min(left, CHUNK)
        x = rng.standard_normal(n, dtype=np.float32)
        x *= np.float32(0.02)
        if norm:
            x += np.float32(1.0)
        (x.view(np.uint32) >> 16).astype("<u2").tofile(f)
        left -= n


def shard_plan(names, shapes, n_shards):
    """Splits the name-sorted tensors into about n_shards runs of equal bytes: a tensor goes
    to the shard its middle byte falls in. Returns a list of lists of names (none empty)."""
    total = sum(nbytes(shapes[n]) for n in names)
    target = total / n_shards
    shards, pos = [[] for _ in range(n_shards)], 0
    for name in names:
        size = nbytes(shapes[name])
        shards[min(n_shards - 1, int((pos + size / 2) / target))].append(name)
        pos += size
    return [s for s in shards if s]


def write_shard(path, names, shapes, seed):
    """Writes one safetensors file: u64 LE header length, JSON header (__metadata__ first,
    then the tensors in data order), padded with spaces to a multiple of 8, then the data."""
    header, off = {"__metadata__": {"format": "pt"}}, 0
    for name in names:
        size = nbytes(shapes[name])
        header[name] = {"dtype": "BF16", "shape": shapes[name], "data_offsets": [off, off + size]}
        off += size
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for name in names:
            write_tensor(f, name, shapes[name], seed)
    return off


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--layers", type=int, default=2, help="num_hidden_layers (default 2)")
    ap.add_argument("--shards", type=int, default=4, help="number of safetensors files (default 4)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.layers < 1 or args.shards < 1:
        ap.error("--layers and --shards must be at least 1")

    with open(CONFIG_TEMPLATE) as f:
        cfg = json.load(f)
    cfg["num_hidden_layers"] = args.layers
    cfg["bos_token_id"], cfg["eos_token_id"] = BOS_ID, EOS_ID

    out = os.path.abspath(args.out_dir)
    tmp = out + ".tmp"
    if os.path.exists(out):
        sys.exit("%s already exists; remove it first" % out)
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)

    with open(os.path.join(tmp, "config.json"), "w") as f:
        f.write(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    for name in TOKENIZER_FILES:
        shutil.copyfile(os.path.join(TOKENIZER_DIR, name), os.path.join(tmp, name))

    shapes = tensor_shapes(cfg)
    shards = shard_plan(sorted(shapes), shapes, args.shards)
    weight_map, total = {}, 0
    for i, names in enumerate(shards):
        fname = "model-%05d-of-%05d.safetensors" % (i + 1, len(shards))
        total += write_shard(os.path.join(tmp, fname), names, shapes, args.seed)
        for name in names:
            weight_map[name] = fname
        print("  %s: %d tensors, %.0f MB" % (fname, len(names),
              os.path.getsize(os.path.join(tmp, fname)) / 1e6), file=sys.stderr)
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    with open(os.path.join(tmp, "model.safetensors.index.json"), "w") as f:
        f.write(json.dumps(index, indent=2, sort_keys=True) + "\n")
    os.rename(tmp, out)
    print("wrote %s: %d tensors, %.2f GB of weights" % (out, len(shapes), total / 1e9),
          file=sys.stderr)


if __name__ == "__main__":
    main()
