#!/usr/bin/env python3
"""Copies a fixture checkpoint folder and gives it one named out-of-range value, unusable
tokenizer part or non-finite weight, for tests/cli/hardening_values.sh. Standard library only.

    make_value_cases.py SRC_DIR DST_DIR CASE
"""
import json
import os
import shutil
import struct
import sys

SHARDS = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]

# config.json edits: case -> (key path, value)
CONFIG_CASES = {
    "rope_theta_1": (["rope_theta"], 1),
    "beta_fast_0": (["rope_scaling", "beta_fast"], 0),
    "beta_slow_over_fast": (["rope_scaling", "beta_slow"], 64),
    "yarn_factor_huge": (["rope_scaling", "factor"], 1e6),
    "mscale_negative": (["rope_scaling", "mscale"], -1),
    "original_max_over_max": (["rope_scaling", "original_max_position_embeddings"], 1 << 20),
    "original_max_fraction": (["rope_scaling", "original_max_position_embeddings"], 128.5),
    "max_position_0": (["max_position_embeddings"], 0),
    "routed_scaling_huge": (["routed_scaling_factor"], 1e6),
    "rms_norm_eps_half": (["rms_norm_eps"], 0.5),
    "topk_group_over_n_group": (["topk_group"], 5),
    "hidden_size_1e300": (["hidden_size"], 1e300),
    "layers_1e19": (["num_hidden_layers"], 1e19),
}


def edit_json(path, fn):
    with open(path) as f:
        doc = json.load(f)
    fn(doc)
    with open(path, "w") as f:
        json.dump(doc, f, indent=2)


def set_path(doc, keys, value):
    for k in keys[:-1]:
        doc = doc[k]
    doc[keys[-1]] = value


def poke_weight(dst, name, row, col, bits):
    """Writes one bf16 element of tensor name (row, col) with the given bit pattern."""
    for shard in SHARDS:
        path = os.path.join(dst, shard)
        with open(path, "r+b") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(n))
            if name not in header:
                continue
            t = header[name]
            assert t["dtype"] == "BF16", t
            cols = t["shape"][-1] if len(t["shape"]) > 1 else 1
            f.seek(8 + n + t["data_offsets"][0] + 2 * (row * cols + col))
            f.write(struct.pack("<H", bits))
            return
    sys.exit("no tensor " + name)


def main():
    src, dst, case = sys.argv[1:4]
    shutil.copytree(src, dst)
    config = os.path.join(dst, "config.json")
    if case in CONFIG_CASES:
        keys, value = CONFIG_CASES[case]
        edit_json(config, lambda c: set_path(c, keys, value))
    elif case == "many_experts":
        # 1.5 KB promising 1024 layers x 4096 experts: 12.6 million tensors
        def grow(c):
            c["num_hidden_layers"] = 1024
            c["n_routed_experts"] = 4096
        edit_json(config, grow)
    elif case == "nan_output_row_7":
        poke_weight(dst, "lm_head.weight", 7, 3, 0x7FC0)  # quiet NaN
    elif case == "inf_embedding_row_300":
        poke_weight(dst, "model.embed_tokens.weight", 300, 0, 0xFF80)  # -inf
    elif case == "nan_norm":
        poke_weight(dst, "model.layers.1.input_layernorm.weight", 0, 5, 0x7F81)  # signalling NaN
    elif case == "regex_does_not_compile":
        def bad_regex(t):
            t["pre_tokenizer"] = {
                "type": "Sequence",
                "pretokenizers": [
                    {"type": "Split", "pattern": {"Regex": "(unclosed[a-z"}, "behavior": "Isolated",
                     "invert": False},
                    {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                     "use_regex": False},
                ],
            }
        edit_json(os.path.join(dst, "tokenizer.json"), bad_regex)
    elif case == "template_with_nul":
        edit_json(os.path.join(dst, "tokenizer_config.json"), lambda c: c.pop("chat_template"))
        with open(os.path.join(dst, "chat_template.jinja"), "wb") as f:
            f.write(b"{{ bos_token }}User: \x00{{ m }}")
    elif case.startswith("variant:"):
        # the tokenizer the tokenizer tests use (tokenizer-cases/deepseek-llm, BOS 420, EOS 421)
        # with one variant of tokenizer-cases/variants.json applied as those tests apply it
        # (top-level keys replaced, keys under "model" set in it); "variant:base" applies none
        name = case.split(":", 1)[1]
        cases = os.path.join(src, "..", "tokenizer-cases")
        for f in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copy(os.path.join(cases, "deepseek-llm", f), os.path.join(dst, f))

        def ids(c):
            c["bos_token_id"], c["eos_token_id"] = 420, 421
        edit_json(config, ids)
        if name != "base":
            with open(os.path.join(cases, "variants.json")) as f:
                variant = next(v for v in json.load(f)["variants"] if v["name"] == name)

            def apply(t):
                for key, value in variant["override"].items():
                    if key == "model":
                        t["model"].update(value)
                    else:
                        t[key] = value
            edit_json(os.path.join(dst, "tokenizer.json"), apply)
    elif case == "config_large_json":
        # a valid config with 600 KB of empty objects: parsing it takes some 40 MB (jansson
        # makes a hash table for each), more than the suite's 30 MB limit on the process
        with open(config) as f:
            text = json.dumps(json.load(f))
        with open(config, "w") as f:
            f.write(text[:-1] + ', "training_log": [' + ",".join(["{}"] * 200000) + "]}")
    else:
        sys.exit("unknown case " + case)


if __name__ == "__main__":
    main()
