#!/usr/bin/env python3
"""Plots mean KL-divergence from the bf16 base (log scale) against bits per weight for every
row of a quant study (scripts/quant_study.sh): dsq's variants and, where the study had them,
llama.cpp's. Reads results.json, writes a PNG (default docs/quant_kld.png).

    python3 scripts/plot_quant.py [build/quant-study/results.json] [-o docs/quant_kld.png]

Needs matplotlib (pinned in scripts/requirements.txt).
"""
import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
STYLE = {
    "dsq": dict(color="#1f5fa8", marker="o", label="dsq (KLD from dsq's bf16 run)"),
    "llama.cpp": dict(color="#d2691e", marker="s",
                      label="llama.cpp (KLD from its f32 run of the same weights)"),
}
# label placement (offset in points, alignment) where the default (right of the point) would
# collide on this study's points; rows with identical results share one point and one label
PLACE = {
    "q4-all": ((-7, 2), "right"),
    "q4-all + output=q8": ((7, -9), "left"),
    "Q4_0": ((7, 1), "left"),
    "q4, G 128": ((-7, -3), "right"),
    "q4 = q4, G 64": ((-7, -3), "right"),
    "q8 = q4 + experts=q8": ((-7, -6), "right"),
    "q8, G 32": ((7, -7), "left"),
    "bf16": ((-7, -3), "right"),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", nargs="?", default=str(ROOT / "build" / "quant-study" / "results.json"))
    ap.add_argument("-o", "--output", default=str(ROOT / "docs" / "quant_kld.png"))
    ap.add_argument("--x", choices=["bpw", "bpw_matrices"], default="bpw",
                    help="bits per weight over all tensors (default) or the matrices alone")
    a = ap.parse_args()
    data = json.loads(Path(a.results).read_text())
    meta, rows = data["meta"], data["rows"]
    rows = [r for r in rows if r.get("kld_mean") is not None and "error" not in r]

    plt.rcParams.update({"font.size": 9})
    fig, ax = plt.subplots(figsize=(9.0, 5.6), dpi=100)
    # merge rows whose results are identical (e.g. q4 and "q4, G 64": the same recipe)
    points = []
    for r in rows:
        same = [p for p in points if p["tool"] == r["tool"] and abs(p[a.x] - r[a.x]) < 0.005
                and p["kld_mean"] == r["kld_mean"]]
        if same:
            same[0]["label"] += " = " + r["label"]
        else:
            points.append(dict(r))
    for tool, st in STYLE.items():
        rs = [r for r in points if r["tool"] == tool]
        if not rs:
            continue
        ax.errorbar([r[a.x] for r in rs], [r["kld_mean"] for r in rs],
                    yerr=[r["kld_stderr"] for r in rs], fmt=st["marker"], color=st["color"],
                    markersize=6, capsize=2, linestyle="none", label=st["label"])
        for r in rs:
            off, ha = PLACE.get(r["label"], ((7, -3), "left"))
            ax.annotate(r["label"], (r[a.x], r["kld_mean"]), textcoords="offset points",
                        xytext=off, fontsize=8, color=st["color"], ha=ha)
    ax.set_yscale("log")
    xl = "bits per weight, all tensors" if a.x == "bpw" else "bits per weight, weight matrices"
    ax.set_xlabel(xl + " (norms and router f32 in both tools)")
    ax.set_ylabel("mean KL-divergence from the unquantized model (nats per token)")
    ctx = meta.get("ctx")
    title = (f"{meta.get('model', '')}: mean KLD vs size, {meta.get('text', '')}, ctx {ctx}")
    if meta.get("llama_cpp_describe"):
        title += f"\n{meta.get('dsq_version', '')} vs llama.cpp {meta['llama_cpp_describe']}"
        if meta.get("llama_cpp_modified_files"):
            title += " (locally patched, see docs/QUANT.md)"
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    xs = [r[a.x] for r in rows]
    if xs:
        ax.set_xlim(min(xs) - 1.6, max(xs) + 2.4)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    out = Path(a.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100, metadata={"Software": None})
    print(f"wrote {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
