#!/usr/bin/env python3
"""Copies a fixture checkpoint folder and damages it in one named way, for the CLI bad-input
tests. Standard library only.

    mutate.py SRC_DIR DST_DIR CASE
"""
import json
import os
import shutil
import struct
import sys

SHARD1 = "model-00001-of-00002.safetensors"
SHARD2 = "model-00002-of-00002.safetensors"


def read_shard(path):
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    return json.loads(blob[8 : 8 + n]), blob[8 + n :]


def write_shard(path, header, data):
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + data)


def first_tensor(header, needle):
    return next(k for k in sorted(header) if needle in k)


def edit_index(dst, fn):
    path = os.path.join(dst, "model.safetensors.index.json")
    with open(path) as f:
        index = json.load(f)
    fn(index["weight_map"])
    with open(path, "w") as f:
        json.dump(index, f, indent=2)


def edit_config(dst, fn):
    path = os.path.join(dst, "config.json")
    with open(path) as f:
        config = json.load(f)
    fn(config)
    with open(path, "w") as f:
        json.dump(config, f, indent=2)


def main():
    src, dst, case = sys.argv[1:4]
    shutil.copytree(src, dst)
    s1 = os.path.join(dst, SHARD1)
    s2 = os.path.join(dst, SHARD2)
    header, data = read_shard(s1)

    if case == "truncated_shard":
        os.truncate(s2, os.path.getsize(s2) - 100)
    elif case == "header_length_past_end":
        with open(s1, "r+b") as f:
            f.write(struct.pack("<Q", os.path.getsize(s1) + 1000))
    elif case == "malformed_header_json":
        with open(s1, "r+b") as f:
            f.seek(8 + 1)  # the quote opening the first key: '{#__metadata__"...' is not JSON
            f.write(b"#")
    elif case == "overlapping_offsets":
        a, b = sorted((k for k in header if k != "__metadata__"), key=lambda k: header[k]["data_offsets"][0])[:2]
        length = header[b]["data_offsets"][1] - header[b]["data_offsets"][0]
        start = header[a]["data_offsets"][0]
        header[b]["data_offsets"] = [start, start + length]
        write_shard(s1, header, data)
    elif case == "offset_out_of_range":
        name = first_tensor(header, "norm")
        b, e = header[name]["data_offsets"]
        header[name]["data_offsets"] = [len(data) - 2, len(data) - 2 + (e - b)]
        write_shard(s1, header, data)
    elif case == "unsupported_dtype":
        name = first_tensor(header, "embed_tokens")
        header[name]["dtype"] = "I16"
        write_shard(s1, header, data)
    elif case == "wrong_shape":
        name = first_tensor(header, "o_proj")
        header[name]["shape"] = list(reversed(header[name]["shape"]))
        if header[name]["shape"][0] == header[name]["shape"][1]:
            rows, cols = header[name]["shape"]
            header[name]["shape"] = [rows * 2, cols // 2]
        write_shard(s1, header, data)
    elif case == "missing_tensor":
        name = first_tensor(header, "post_attention_layernorm")
        del header[name]
        write_shard(s1, header, data)
        edit_index(dst, lambda m: m.pop(name))
    elif case == "extra_tensor":
        name = "model.layers.0.mlp.extra_proj.weight"
        header[name] = {"dtype": "BF16", "shape": [4], "data_offsets": [len(data), len(data) + 8]}
        write_shard(s1, header, data + bytes(8))
        edit_index(dst, lambda m: m.__setitem__(name, SHARD1))
    elif case == "missing_shard":
        os.remove(s2)
    elif case == "unknown_model_type":
        edit_config(dst, lambda c: c.__setitem__("model_type", "mixtral"))
    elif case == "config_not_json":
        with open(os.path.join(dst, "config.json"), "w") as f:
            f.write("{ this is not json")
    elif case == "config_missing":
        os.remove(os.path.join(dst, "config.json"))
    elif case == "tokenizer_missing":
        os.remove(os.path.join(dst, "tokenizer.json"))
    else:
        sys.exit("unknown case " + case)


if __name__ == "__main__":
    main()
