"""Writes tests/data/tokenizer-cases/deepseek-llm/: a tiny byte-level BPE trained by Hugging Face
`tokenizers` with the normalizer, pre-tokenizer, post-processor, decoder and tokenizer_config.json
of DeepSeek LLM / DeepSeek-V2(-Lite), and cases.json: HF's own encodings of tricky texts.

It complements tests/data/tiny-*/tokenizer.json (scripts/make_fixtures.py): merges are saved in
the newer array spelling, the post_processor is DeepSeek's ByteLevel (adds no BOS, while
add_bos_token is true), and one added token is not special.

    python3 -m pip install tokenizers==0.20.3     # 0.23.3 writes the same bytes
    python3 scripts/make_tokenizer_cases.py
"""
import json
import os

import tokenizers
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers
from tokenizers import pre_tokenizers, processors, trainers

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data",
                   "tokenizer-cases", "deepseek-llm")

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
CASES = [
    "Hello world", "The quick brown fox.", "  leading and trailing  ",
    "line one\nline two\r\n\nend\n", "12345 + 678 = 13023", "２０２４年",
    "深度求索发布了新的语言模型。", "café naïve Straße Ελληνικά", "tabs\tand\u00a0nbsp",
    "emoji 🦀🚀 and ZWJ 👩\u200d💻", BOS + "User: hi" + EOS, "a" + FIM_HOLE + "b",
    "“Quotes” — dashes… ‘single’", 'x = f(y)[0] -> {"k": 1}', "", " ", "\n\n\n",
    "ends with spaces   ",
]


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

    cases = []
    for text in CASES:
        enc = tok.encode(text, add_special_tokens=False)
        cases.append({"text": text, "ids_no_special": enc.ids, "tokens": enc.tokens})
    with open(os.path.join(OUT, "cases.json"), "w", encoding="utf-8") as f:
        json.dump({"_comment": "HF tokenizers encodings (add_special_tokens=False) of the"
                               " tokenizer beside this file; add_bos_token is true, so HF"
                               " (LlamaTokenizerFast) puts bos_token_id before them",
                   "bos_token_id": tok.token_to_id(BOS), "eos_token_id": tok.token_to_id(EOS),
                   "cases": cases}, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print("tokenizers", tokenizers.__version__, "vocab", tok.get_vocab_size())


if __name__ == "__main__":
    main()
