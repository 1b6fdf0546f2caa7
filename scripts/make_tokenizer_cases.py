"""Writes tests/data/tokenizer-cases/deepseek-llm/: a tiny byte-level BPE trained by Hugging Face
`tokenizers` with the normalizer, pre-tokenizer, post-processor, decoder and tokenizer_config.json
of DeepSeek LLM / DeepSeek-V2(-Lite), and cases.json: HF's own encodings of tricky texts.

It complements tests/data/tiny-*/tokenizer.json (scripts/make_fixtures.py): merges are saved in
the newer array spelling, the post_processor is DeepSeek's ByteLevel (adds no BOS, while
add_bos_token is true), and one added token is not special.

It also writes, from the same CASES (text and invalid UTF-8 given as bytes):

- tokenizer-cases/tiny-fixture/cases.json: the same encodings for the tiny fixture tokenizer
  (tests/data/tiny-v2-lite/tokenizer.json);
- tokenizer-cases/variants.json: the deepseek-llm tokenizer with one part replaced per variant
  (each Split behavior with and without invert, an empty-matching regex, String patterns,
  Punctuation, Digits, add_prefix_space, ByteLevel's own regex, Oniguruma regex syntax,
  ignore_merges, added tokens with lstrip / rstrip / single_word / normalized) and HF's
  encodings of VARIANT_TEXTS under each. A variant's "override" replaces top-level keys of
  tokenizer.json (keys under "model" are set in model); tests/test_tokenizer.c does the same
  and imports the result.

Invalid UTF-8 inputs are stored as "hex"; their expected ids are HF's encoding of
bytes.decode("utf-8", errors="replace"), which is what dsq defines for such input.

    python3 -m pip install tokenizers==0.20.3     # 0.23.3 writes the same bytes
    python3 scripts/make_tokenizer_cases.py
"""
import copy
import json
import os

import tokenizers
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers
from tokenizers import pre_tokenizers, processors, trainers

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data")
CASES_DIR = os.path.join(DATA, "tokenizer-cases")
OUT = os.path.join(CASES_DIR, "deepseek-llm")

# DeepSeek's letter class as code points, in the files' order (a pasted copy of the text may have
# been Unicode-normalized: U+1FD3 would turn into U+0390 and the range "ῐ-ΐ" would break).
LETTER_RANGES = [
    (0x0041, 0x005A), (0x0061, 0x007A), (0x00B5, 0x00B5), (0x00C0, 0x00D6), (0x00D8, 0x00F6),
    (0x00F8, 0x01BA), (0x01BC, 0x01BF), (0x01C4, 0x0293), (0x0295, 0x02AF), (0x0370, 0x0373),
    (0x0376, 0x0376), (0x0377, 0x0377), (0x037B, 0x037D), (0x037F, 0x037F), (0x0386, 0x0386),
    (0x0388, 0x038A), (0x038C, 0x038C), (0x038E, 0x03A1), (0x03A3, 0x03F5), (0x03F7, 0x0481),
    (0x048A, 0x052F), (0x0531, 0x0556), (0x10A0, 0x10C5), (0x13A0, 0x13F5), (0x13F8, 0x13FD),
    (0x1C90, 0x1CBA), (0x1CBD, 0x1CBF), (0x1D00, 0x1D2B), (0x1D6B, 0x1D77), (0x1D79, 0x1D9A),
    (0x1E00, 0x1F15), (0x1F18, 0x1F1D), (0x1F20, 0x1F45), (0x1F48, 0x1F4D), (0x1F50, 0x1F57),
    (0x1F59, 0x1F59), (0x1F5B, 0x1F5B), (0x1F5D, 0x1F5D), (0x1F5F, 0x1F7D), (0x1F80, 0x1FB4),
    (0x1FB6, 0x1FBC), (0x1FBE, 0x1FBE), (0x1FC2, 0x1FC4), (0x1FC6, 0x1FCC), (0x1FD0, 0x1FD3),
    (0x1FD6, 0x1FDB), (0x1FE0, 0x1FEC), (0x1FF2, 0x1FF4), (0x1FF6, 0x1FFC), (0x2102, 0x2102),
    (0x2107, 0x2107), (0x210A, 0x2113), (0x2115, 0x2115), (0x2119, 0x211D), (0x2124, 0x2124),
    (0x2126, 0x2126), (0x2128, 0x2128), (0x212A, 0x212D), (0x212F, 0x2134), (0x2139, 0x2139),
    (0x213C, 0x213F), (0x2145, 0x2149), (0x214E, 0x214E), (0x2183, 0x2183), (0x2184, 0x2184),
    (0x2C00, 0x2C7B), (0x2C7E, 0x2CE4), (0x2CEB, 0x2CEE), (0x2CF2, 0x2CF2), (0x2CF3, 0x2CF3),
    (0xA640, 0xA66D), (0xA680, 0xA69B), (0xA722, 0xA76F), (0xA771, 0xA787), (0xA78B, 0xA78E),
    (0xAB70, 0xABBF), (0xFB00, 0xFB06), (0xFB13, 0xFB17), (0xFF21, 0xFF3A), (0xFF41, 0xFF5A),
    (0x10400, 0x1044F), (0x104B0, 0x104D3), (0x104D8, 0x104FB), (0x10C80, 0x10CB2),
    (0x10CC0, 0x10CF2), (0x118A0, 0x118DF), (0x1E900, 0x1E943),
]
LETTERS = "\\s?[" + "".join(chr(a) if a == b else chr(a) + "-" + chr(b)
                            for a, b in LETTER_RANGES) + "]+"
PUNCT = "\\s?[!-/:-~\uff01-\uff0f\uff1a-\uff5e\u2018-\u201f\u3000-\u3002]+"
CJK = "[\u4e00-\u9fa5\u0800-\u4e00\uac00-\ud7ff]+"
BOS, EOS = "<\uff5cbegin\u2581of\u2581sentence\uff5c>", "<\uff5cend\u2581of\u2581sentence\uff5c>"
FIM_HOLE = "<\uff5cfim\u2581hole\uff5c>"
CHAT_TEMPLATE = (
    "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}"
    "{% endif %}{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}"
    "{{ 'User: ' + message['content'] + '\\n\\n' }}{% elif message['role'] == 'assistant' %}"
    "{{ 'Assistant: ' + message['content'] + eos_token }}{% elif message['role'] == 'system' %}"
    "{{ message['content'] + '\\n\\n' }}{% endif %}{% endfor %}{% if add_generation_prompt %}"
    "{{ 'Assistant:' }}{% endif %}")
TRAINING_TEXT = [
    "The quick brown fox jumps over the lazy dog. The dog sleeps; the fox runs away!",
    "def tokenize(text):\n    return [t for t in text.split() if t]\n",
    "In 2024, DeepSeek-V2 had 236B parameters and 21B active ones (about 9%).",
    "深度求索发布了新的语言模型，它的中文能力很强。我们今天测试一下分词器。",
    "Hello there, hello world; hello again. “Quotes” and ‘single’ — dashes… ellipsis",
    "Ünïcödé wörds: café, naïve, résumé, Straße, Ελληνικά, русский текст.",
    "User: what is 12+34?\n\nAssistant: 12+34 = 46.",
] * 20
ORIGINAL_CASES = [
    "Hello world", "The quick brown fox.", "  leading and trailing  ",
    "line one\nline two\r\n\nend\n", "12345 + 678 = 13023", "２０２４年",
    "深度求索发布了新的语言模型。", "café naïve Straße Ελληνικά", "tabs\tand\u00a0nbsp",
    "emoji 🦀🚀 and ZWJ 👩\u200d💻", BOS + "User: hi" + EOS, "a" + FIM_HOLE + "b",
    "“Quotes” — dashes… ‘single’", 'x = f(y)[0] -> {"k": 1}', "", " ", "\n\n\n",
    "ends with spaces   ",
]


def paragraph_5k():
    """About 5 KB of mixed text: prose, Chinese, code, numbers, punctuation, emoji."""
    parts = [
        "DeepSeek-V2 is a strong Mixture-of-Experts (MoE) language model characterized by "
        "economical training and efficient inference. It comprises 236B total parameters, of "
        "which 21B are activated for each token, and supports a context length of 128K tokens.",
        "我们在一个包含8.1万亿词元的高质量多源语料库上对模型进行了预训练，随后进行了监督微调和强化学习。",
        "def forward(self, x):\n    h = self.attn(self.norm1(x)) + x\n    return self.moe(self.norm2(h)) + h\n",
        "Results: MMLU 78.5%, GSM8K 79.2%, HumanEval 81.1% -- see Table 3 (p. 12); "
        "cost: $0.14 / 1M tokens!!! Really?! Yes... 100% true.",
        "딥시크는 한국어도 지원합니다. 日本語のテキストも少し。 Ελληνικά και русский текст.",
        "Emoji 👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 🇺🇸 1️⃣ and combining: e\u0301 n\u0303 a\u0308\u0304.",
        "\tTabbed line with  two  spaces and trailing spaces   \r\nWindows line\rOld Mac line\n",
        "<｜begin▁of▁sentence｜>User: What is 2+2?\n\nAssistant: 4<｜end▁of▁sentence｜>",
    ]
    out, k = [], 0
    while len("".join(out).encode()) < 5000:
        out.append(parts[k % len(parts)] + (" " if k % 3 else "\n\n"))
        k += 1
    return "".join(out)


# Inputs for every tokenizer here: str, or bytes (possibly invalid UTF-8); (name, input) pairs
# name the ones the test looks up.
CASES = ORIGINAL_CASES + [
    # scripts
    "中文分词测试：我们今天去北京大学参观。", "繁體中文與简体中文混合", "한국어 텍스트입니다. 안녕하세요!",
    "ひらがなとカタカナ、漢字。", "ไทย ภาษา", "العربية نص", "हिन्दी पाठ", "Привет, мир! ЁЖИК",
    "ΐ ΐ K Ω µ μ ǅ ﬁ", "ａｂｃ ＡＢＣ！？", "Ⅻ ½ ² ٣٤٥ ١٢٣ ９９",
    # emoji
    "👍 👍🏻 👍🏽 👍🏿", "👨\u200d👩\u200d👧\u200d👦 family", "🏳️\u200d🌈 🏴\u200d☠️", "🇺🇸🇯🇵🇩🇪",
    "1️⃣ #️⃣ ©️ ™", "🦀🦀🦀🦀🦀", "a👍b👍🏽c",
    # combining marks
    "e\u0301 vs é", "n\u0303a\u0308\u0304", "Z\u0324\u0354\u0367\u0311a\u0308\u0356\u032dl\u036e\u0312\u036bgo",
    "\u0915\u094d\u0937", "\u0301\u0301leading marks",
    # digits
    "1234567890" * 8, "3.14159265358979323846264338327950288419716939937510",
    "phone: +1 (555) 123-4567, year 2024, 0x1F, 1e-10",
    # whitespace
    "a\tb\t\tc", "a  b   c    d", "trailing   ", "   ", "\t", "\r\n", "a\r\nb", "a\rb", "\r",
    "line\r\n\r\nnext", " \n \n", "mixed \t \r\n  \u3000 end", "\u00a0\u00a0nbsp", "x\u2028y\u2029z",
    "nel\u0085x \u0085abc", "\u3000全角空格", "\u200bzero\u200bwidth", "  \n  indented\n",
    # punctuation
    "!!!???...", "Wait... what?!?!", "--- *** ___ ===", "“”‘’«»「」『』【】", "…—–", "(((nested)))",
    "a,b;c:d", "email@example.com https://example.com/path?q=1&r=2#frag", "'s 're 've 'll 'd",
    # special and added tokens inside text
    "x" + BOS + "y", BOS + BOS, EOS + " after", "before " + EOS, "<｜begin▁of▁sentence｜",
    "<｜end▁of▁sentence｜>>", "a" + FIM_HOLE + FIM_HOLE + "b", "User: A" + EOS + "User: B" + BOS,
    # code
    "for (int i = 0; i < n; i++) {\n\tsum += a[i];\n}\n", "    return x ** 2  # square",
    # long runs
    "a" * 3000, " " * 100, "!" * 200, "深" * 300,
    # invalid UTF-8 (stored as hex, expected = HF on the U+FFFD-replaced text)
    b"\xff", b"abc\x80def", b"\xe4\xbd", b"\xed\xa0\x80", b"\xc0\x80", b"\xf4\x90\x80\x80",
    b"\xf0\x9f\x98x", b"ok \xf0\x9f\x98\x80 \x80\x80 end", b"\xe6\xb7\xb1\xe5", b"a\x00b",
    b"\xfe\xfe\xfe", b"caf\xe9", b"\xc3", b"\xe2\x82", b"\xe2\x28\xa1",
    # the timing paragraph
    ("paragraph_5k", paragraph_5k()),
]

# Texts encoded under every variant of tokenizer-cases/variants.json.
VARIANT_TEXTS = [
    "Hello, world. Hi!", "a  b,, c..d!! e", " leading", "trailing ", ",start", "end.",
    "xxaxxxbx", "x", "axb", "--a--b----c", "a.b a-b aXb", "12 and 345, 6789", "３４ ٣٤",
    "line1  \n  line2 \nline3", "ab\r\ncd\re", "the_th rather \u203f th\u0301x", "deadbeef 0x1F 09af",
    "\u0085nel \u2028ls \u3000ideo \u00a0nb", "1\n2 3.4", "éé ee e\u0301", "中文，标点。 한국어", "emoji 👍🏽!",
    "<mask>", "a <mask> b", "a  <mask>  b", "[SEP] x", "x [SEP]  y", "foo", "foobar", "a foo b",
    "_foo", "foo_", "xfo", "fo foo", "he", "hehe he", "the theme there, he?", "   ", "",
    BOS + "x" + EOS, "a" + FIM_HOLE + "b",
]


def bl(add_prefix_space=False, use_regex=False):
    return {"type": "ByteLevel", "add_prefix_space": add_prefix_space, "trim_offsets": True,
            "use_regex": use_regex}


def split(regex, behavior, invert=False, string=False):
    return {"type": "Split", "pattern": {"String" if string else "Regex": regex},
            "behavior": behavior, "invert": invert}


def seq(*steps):
    return {"pre_tokenizer": {"type": "Sequence", "pretokenizers": list(steps)}}


BEHAVIORS = ["Isolated", "Removed", "MergedWithPrevious", "MergedWithNext", "Contiguous"]


def variants(base):
    """(name, override) pairs; override is merged recursively into tokenizer.json."""
    vocab = base["model"]["vocab"]
    out = []
    for b in BEHAVIORS:
        for inv in (False, True):
            out.append(("split-%s%s" % (b, "-invert" if inv else ""),
                        seq(split("[ ,.!]", b, inv), bl())))
    for b in BEHAVIORS:
        out.append(("empty-matches-%s" % b, seq(split("x*", b), bl())))
    out += [
        ("string-patterns", seq(split("--", "Removed", string=True),
                                split("a.b", "MergedWithNext", string=True), bl())),
        ("punctuation-digits-prefix-space",
         seq({"type": "Punctuation", "behavior": "Contiguous"},
             {"type": "Digits", "individual_digits": False}, bl(add_prefix_space=True))),
        ("bytelevel-regex", {"pre_tokenizer": bl(use_regex=True)}),
        ("onig-line-anchors", seq(split("^ +| +$", "Removed"), split("^l|\\d$", "Isolated"), bl())),
        ("onig-word", seq(split("\\w+", "Isolated"), bl())),
        ("onig-word-boundary", seq(split("\\bth", "MergedWithNext"), split("\\Bx", "Isolated"),
                                   bl())),
        ("onig-hex-space", seq(split("\\h+", "Contiguous"), split("\\s+", "MergedWithNext"),
                               bl())),
        ("onig-escapes", seq(split("\\u00e9|e{,2}|(?m:\\d.\\d)", "Isolated"), bl())),
        ("onig-posix-brackets", seq(split("[[:alpha:][:digit:]]+", "Isolated"), bl())),
        ("ignore-merges", {"model": {"ignore_merges": True}}),
    ]
    # Added tokens with every flag: ids as HF assigns them (content in the vocab: its id;
    # otherwise the next id after the vocab, in file order).
    specs = [("<mask>", dict(lstrip=True, rstrip=False, normalized=False, special=True)),
             ("[SEP]", dict(rstrip=True, normalized=True, special=True)),
             ("foo", dict(single_word=True, normalized=True, special=False)),
             ("fo", dict(normalized=False, special=False)),
             ("he", dict(single_word=True, normalized=False, special=False)),
             ("\u00e9", dict(normalized=False, special=False))]  # a byte symbol: 2 bytes, stands for 1
    assert "fo" in vocab and "he" in vocab and "foo" not in vocab  # both id rules are used
    added = copy.deepcopy(base["added_tokens"])
    next_id = len(vocab) + len(added)
    for content, flags in specs:
        t = {"id": None, "content": content, "single_word": False, "lstrip": False,
             "rstrip": False, "normalized": True, "special": False}
        t.update(flags)
        if content in vocab:
            t["id"] = vocab[content]
        else:
            t["id"] = next_id
            next_id += 1
        added.append(t)
    out.append(("added-token-flags", {"added_tokens": added}))
    return out


def apply_override(dst, override):
    """Each top-level key replaces tokenizer.json's; the keys under "model" are set in model."""
    for k, v in override.items():
        if k == "model":
            dst["model"].update(copy.deepcopy(v))
        else:
            dst[k] = copy.deepcopy(v)


def encode_case(tok, item, tokens=True):
    name, inp = item if isinstance(item, tuple) else (None, item)
    case = {}
    if name:
        case["name"] = name
    if isinstance(inp, bytes):
        text = inp.decode("utf-8", errors="replace")
        case["hex"] = inp.hex()
    else:
        text = inp
    case["text"] = text
    enc = tok.encode(text, add_special_tokens=False)
    case["ids_no_special"] = enc.ids
    if tokens:
        case["tokens"] = enc.tokens
    # decoding gives the text back unless a character had no symbol (HF drops it)
    case["round_trip"] = tok.decode(enc.ids, skip_special_tokens=False) == text
    return case


def dump_cases(path, head, cases):
    """One case per line, so a diff shows which encodings changed."""
    with open(path, "w", encoding="utf-8") as f:
        f.write("{\n")
        for k, v in head.items():
            f.write(" %s: %s,\n" % (json.dumps(k), json.dumps(v, ensure_ascii=False)))
        f.write(' "cases": [\n')
        f.write(",\n".join("  " + json.dumps(c, ensure_ascii=False) for c in cases))
        f.write("\n ]\n}\n")


def main():
    tok = Tokenizer(models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    tok.normalizer = normalizers.Sequence([])
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex("[\r\n]"), "isolated"),
        pre_tokenizers.Split(Regex(LETTERS), "isolated"),
        pre_tokenizers.Split(Regex(PUNCT), "isolated"),
        pre_tokenizers.Split(Regex("\\s+$"), "isolated"),
        pre_tokenizers.Split(Regex(CJK), "isolated"),
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=420, min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=[])
    tok.train_from_iterator(TRAINING_TEXT, trainer)
    tok.add_special_tokens([AddedToken(BOS, special=True, normalized=True),
                            AddedToken(EOS, special=True, normalized=True)])
    tok.add_tokens([AddedToken(FIM_HOLE, special=False, normalized=True)])

    os.makedirs(OUT, exist_ok=True)
    tok.save(os.path.join(OUT, "tokenizer.json"), pretty=True)

    def added(content):
        return {"__type": "AddedToken", "content": content, "lstrip": False, "normalized": True,
                "rstrip": False, "single_word": False}

    config = {"add_bos_token": True, "add_eos_token": False, "bos_token": added(BOS),
              "clean_up_tokenization_spaces": False, "eos_token": added(EOS), "legacy": True,
              "model_max_length": 16384, "pad_token": added(EOS), "sp_model_kwargs": {},
              "unk_token": None, "tokenizer_class": "LlamaTokenizerFast",
              "chat_template": CHAT_TEMPLATE}
    with open(os.path.join(OUT, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2, ensure_ascii=False)
        f.write("\n")

    comment = ("HF tokenizers encodings (add_special_tokens=False) of the tokenizer beside this"
               " file; add_bos_token is true, so HF (LlamaTokenizerFast) puts bos_token_id"
               " before them. hex: the input bytes (invalid UTF-8), text: what they decode to"
               " with errors='replace'. round_trip: decoding the ids gives the text back."
               " Regenerate with python3 scripts/make_tokenizer_cases.py")
    dump_cases(os.path.join(OUT, "cases.json"),
               {"_comment": comment, "bos_token_id": tok.token_to_id(BOS),
                "eos_token_id": tok.token_to_id(EOS)},
               [encode_case(tok, c) for c in CASES])

    tiny = Tokenizer.from_file(os.path.join(DATA, "tiny-v2-lite", "tokenizer.json"))
    os.makedirs(os.path.join(CASES_DIR, "tiny-fixture"), exist_ok=True)
    dump_cases(os.path.join(CASES_DIR, "tiny-fixture", "cases.json"),
               {"_comment": comment.replace("the tokenizer beside this file",
                                            "tests/data/tiny-v2-lite/tokenizer.json"),
                "bos_token_id": tiny.token_to_id(BOS), "eos_token_id": tiny.token_to_id(EOS)},
               [encode_case(tiny, c) for c in CASES])

    with open(os.path.join(OUT, "tokenizer.json"), encoding="utf-8") as f:
        base = json.load(f)
    out = []
    for name, override in variants(base):
        d = copy.deepcopy(base)
        apply_override(d, override)
        vt = Tokenizer.from_str(json.dumps(d))
        for t in d["added_tokens"]:
            assert vt.token_to_id(t["content"]) == t["id"], t
        out.append({"name": name, "override": override,
                    "cases": [encode_case(vt, c, tokens=False) for c in VARIANT_TEXTS]})
    with open(os.path.join(CASES_DIR, "variants.json"), "w", encoding="utf-8") as f:
        f.write("{\n \"_comment\": %s,\n \"base\": \"deepseek-llm\",\n \"variants\": [\n" % json.dumps(
            "HF tokenizers encodings (add_special_tokens=False) of VARIANT_TEXTS by the"
            " deepseek-llm tokenizer with each variant's override applied to its tokenizer.json:"
            " each top-level key replaces the file's, the keys under \"model\" are set in model."
            " Regenerate with python3 scripts/make_tokenizer_cases.py"))
        f.write(",\n".join(
            "  {\"name\": %s, \"override\": %s, \"cases\": [\n%s]}" % (
                json.dumps(v["name"]), json.dumps(v["override"], ensure_ascii=False),
                ",\n".join("   " + json.dumps(c, ensure_ascii=False) for c in v["cases"]))
            for v in out))
        f.write("\n ]\n}\n")
    print("tokenizers", tokenizers.__version__, "vocab", tok.get_vocab_size())


if __name__ == "__main__":
    main()
