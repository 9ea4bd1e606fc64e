"""Seed corpora for the fuzz targets of tests/fuzz, written by independent libraries (safetensors,
gguf, sentencepiece, tokenizers and transformers from PyPI) plus real files when they are on this
machine (the model cache's checkpoints, llama.cpp's vocabulary files in the test data folder).
    make_seeds.py OUT [--testdata DIR] [--models DIR] [--max-bytes N]
Writes OUT/<target>/<name> for every target; real files over --max-bytes (default 1 MB) are left
out, so that each fuzz run starts from inputs it can mutate quickly."""
import argparse
import io
import json
import os
import pathlib
import shutil

import numpy as np

TEXT = [
    "The licence grants permission to use, copy and modify the software.",
    "Patients with hypertension were given 5 mg of amlodipine daily.",
    "Die Würde des Menschen ist unantastbar. 人人生而自由。 Всё хорошо!",
    "def add(a, b):\n    return a + b  # 42",
    "Interest rates rose by 0.25% in the third quarter of 2024.",
] * 20


def put(out, target, name, data):
    folder = out / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data if isinstance(data, bytes) else data.encode())


def copy_real(out, target, name, path, max_bytes):
    if path.is_file() and path.stat().st_size <= max_bytes:
        put(out, target, name, path.read_bytes())


def safetensors_seeds(out):
    from safetensors.numpy import save
    rng = np.random.default_rng(0)
    put(out, "safetensors", "f32.safetensors", save({"w": rng.standard_normal((3, 4)).astype(np.float32)}))
    put(out, "safetensors", "mixed.safetensors", save({
        "a.weight": rng.standard_normal((2, 2)).astype(np.float16),
        "b.bias": np.arange(5, dtype=np.int64), "c": np.zeros((0, 3), np.float32),
        "d": np.array([1, 0, 1], dtype=np.bool_), "e": np.arange(4, dtype=np.uint8)},
        metadata={"format": "pt"}))
    put(out, "safetensors", "scalar.safetensors", save({"s": np.array(3.5, dtype=np.float64)}))
    index = {"metadata": {"total_size": 32},
             "weight_map": {"x": "a.safetensors", "y": "a.safetensors", "z": "b.safetensors"}}
    put(out, "safetensors_index", "index.json", json.dumps(index))
    put(out, "safetensors_index", "index_wrong_shard.json",
        json.dumps({**index, "weight_map": {**index["weight_map"], "z": "a.safetensors"}}))
    put(out, "safetensors_index", "index_traversal.json",
        json.dumps({**index, "weight_map": {**index["weight_map"], "z": "../b.safetensors"}}))


def gguf_file(build, arch="llama"):
    import gguf
    path = "/tmp/gemkit_seed.gguf"
    w = gguf.GGUFWriter(path, arch)
    build(w, gguf)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    data = pathlib.Path(path).read_bytes()
    os.remove(path)
    return data


def gguf_seeds(out):
    rng = np.random.default_rng(1)

    def every_type(w, gguf):
        w.add_uint8("t.u8", 7); w.add_int8("t.i8", -7); w.add_uint16("t.u16", 700); w.add_int16("t.i16", -700)
        w.add_uint32("t.u32", 70000); w.add_int32("t.i32", -70000); w.add_uint64("t.u64", 2**40)
        w.add_int64("t.i64", -2**40); w.add_float32("t.f32", 0.5); w.add_float64("t.f64", 0.25)
        w.add_bool("t.bool", True); w.add_string("t.str", "héllo")
        w.add_array("t.ints", [1, 2, 3]); w.add_array("t.strs", ["a", "bb", ""]); w.add_array("t.floats", [0.5, 1.5])
        w.add_array("t.nested", [[1, 2], [3]])
        w.add_tensor("f32", rng.standard_normal((4, 8)).astype(np.float32))
        w.add_tensor("f16", rng.standard_normal((8,)).astype(np.float16))

    def quantized(w, gguf):
        w.add_block_count(1); w.add_context_length(64); w.add_embedding_length(32)
        x = rng.standard_normal((2, 64)).astype(np.float32)
        w.add_tensor("q8", gguf.quants.quantize(x, gguf.GGMLQuantizationType.Q8_0),
                     raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        w.add_tensor("q4", gguf.quants.quantize(x, gguf.GGMLQuantizationType.Q4_0),
                     raw_dtype=gguf.GGMLQuantizationType.Q4_0)

    put(out, "gguf", "every_type.gguf", gguf_file(every_type))
    put(out, "gguf", "quantized.gguf", gguf_file(quantized))

    pieces = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)] + ["▁the", "▁a", "er", "▁", "e", "t"]

    def spm_vocab(w, gguf):
        w.add_tokenizer_model("llama")
        w.add_token_list(pieces)
        w.add_token_scores([0.0] * 3 + [0.0] * 256 + [-1.0, -2.0, -3.0, -4.0, -5.0, -6.0])
        w.add_token_types([2, 3, 3] + [6] * 256 + [1] * 6)
        w.add_bos_token_id(1); w.add_eos_token_id(2); w.add_unk_token_id(0)

    byte_tokens = [chr(c) for c in range(ord("!"), ord("~") + 1)] + ["Ġ", "Ċ", "Ġt", "he", "Ġthe"]

    def bpe_vocab(w, gguf):
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre("default")
        w.add_token_list(byte_tokens + ["<|endoftext|>"])
        w.add_token_types([1] * len(byte_tokens) + [3])
        w.add_token_merges(["Ġ t", "h e", "Ġt he"])
        w.add_bos_token_id(len(byte_tokens)); w.add_eos_token_id(len(byte_tokens))

    def bert_vocab(w, gguf):
        w.add_tokenizer_model("bert")
        w.add_token_list(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "##s", "a", "hello", "world"])
        w.add_token_types([3, 2, 3, 3, 3, 1, 1, 1, 1, 1])
        w.add_unk_token_id(1); w.add_pad_token_id(0)
        w.add_uint32("tokenizer.ggml.cls_token_id", 2); w.add_uint32("tokenizer.ggml.seperator_token_id", 3)

    for name, build in (("spm", spm_vocab), ("bpe", bpe_vocab), ("bert", bert_vocab)):
        put(out, "gguf_tokenizer", f"{name}.gguf", gguf_file(build))


def gguf_import_seeds(out):
    """A tiny qwen2 model (byte-level BPE vocabulary, q/k/v biases, Q8_0 and F16 tensors); the
    llama seeds come from tests/llama_cpp/make_tiny_gguf.py (run.sh)."""
    rng = np.random.default_rng(2)
    # GPT-2's byte-to-character table: printable bytes stand for themselves, the rest map to 256+.
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    merges = ["Ġ t", "h e", "Ġt he", "i n", "e r"]
    tokens = [chars[b] for b in range(256)] + [m.replace(" ", "") for m in merges] + \
        ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    dim, ffn, heads, kv_heads = 32, 64, 4, 2
    kv = dim // heads * kv_heads

    def qwen2(w, gguf):
        w.add_context_length(128); w.add_embedding_length(dim); w.add_feed_forward_length(ffn)
        w.add_block_count(1); w.add_head_count(heads); w.add_head_count_kv(kv_heads)
        w.add_layer_norm_rms_eps(1e-6); w.add_rope_freq_base(1000000.0)
        w.add_tokenizer_model("gpt2"); w.add_tokenizer_pre("qwen2")
        w.add_token_list(tokens); w.add_token_types([1] * (len(tokens) - 3) + [3] * 3)
        w.add_token_merges(merges)
        w.add_bos_token_id(len(tokens) - 3); w.add_eos_token_id(len(tokens) - 1)
        w.add_chat_template("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}")

        def tensor(name, shape, q8=False):
            x = rng.standard_normal(shape).astype(np.float32)
            if q8:
                w.add_tensor(name, gguf.quants.quantize(x, gguf.GGMLQuantizationType.Q8_0),
                             raw_dtype=gguf.GGMLQuantizationType.Q8_0)
            else:
                w.add_tensor(name, x.astype(np.float16) if len(shape) == 2 else x)
        tensor("token_embd.weight", (len(tokens), dim))
        tensor("output_norm.weight", (dim,))
        tensor("blk.0.attn_norm.weight", (dim,))
        tensor("blk.0.ffn_norm.weight", (dim,))
        for name, rows in (("attn_q", dim), ("attn_k", kv), ("attn_v", kv)):
            tensor(f"blk.0.{name}.weight", (rows, dim), q8=True)
            tensor(f"blk.0.{name}.bias", (rows,))
        tensor("blk.0.attn_output.weight", (dim, dim), q8=True)
        tensor("blk.0.ffn_gate.weight", (ffn, dim), q8=True)
        tensor("blk.0.ffn_up.weight", (ffn, dim))
        tensor("blk.0.ffn_down.weight", (dim, ffn), q8=True)
    put(out, "gguf_import", "qwen2.gguf", gguf_file(qwen2, "qwen2"))


def sentencepiece_seeds(out):
    import sentencepiece as spm
    for kind in ("bpe", "unigram"):
        model = io.BytesIO()
        spm.SentencePieceTrainer.train(sentence_iterator=iter(TEXT), model_writer=model, vocab_size=400 if kind == "bpe" else 150,
                                       model_type=kind, byte_fallback=(kind == "bpe"), hard_vocab_limit=False,
                                       minloglevel=2)
        put(out, "sentencepiece", f"{kind}.model", model.getvalue())


def hf_tokenizer_seeds(out):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, decoders, trainers, processors
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(TEXT, trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>", "<|im_end|>"],
                                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    put(out, "hf_tokenizer", "byte_level_bpe.json", bpe.to_str())
    wp = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    wp.normalizer = normalizers.BertNormalizer(lowercase=True)
    wp.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    wp.train_from_iterator(TEXT, trainers.WordPieceTrainer(vocab_size=200,
                                                           special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]))
    wp.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    put(out, "hf_tokenizer", "wordpiece.json", wp.to_str())
    vocab = sorted(wp.get_vocab().items(), key=lambda kv: kv[1])
    put(out, "wordpiece_vocab", "vocab.txt", "".join(token + "\n" for token, _ in vocab))


def config_seeds(out):
    from transformers import BertConfig, LlamaConfig, Qwen2Config
    small = dict(vocab_size=320, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4)
    put(out, "model_config", "llama.json", LlamaConfig(num_key_value_heads=2, tie_word_embeddings=True, max_position_embeddings=131072,
                                                       rope_scaling={"rope_type": "llama3", "factor": 8.0,
                                                                     "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                                                     "original_max_position_embeddings": 8192},
                                                       **small).to_json_string())
    put(out, "model_config", "qwen2.json", Qwen2Config(num_key_value_heads=2, **small).to_json_string())
    put(out, "model_config", "bert.json", BertConfig(**small).to_json_string())


def chat_template_seeds(out):
    chatml = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
              "{{ '<|im_start|>system\\nYou are a helpful AI assistant.<|im_end|>\\n' }}{% endif %}"
              "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
              "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
    llama3 = ("{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + "
              "'<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}{% endfor %}"
              "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}")
    put(out, "chat_template", "chatml.json", json.dumps({"chat_template": chatml, "bos_token": "<|im_start|>"}))
    put(out, "chat_template", "llama3.json", json.dumps({"chat_template": llama3, "bos_token": "<|begin_of_text|>"}))
    put(out, "chat_template", "named.json",
        json.dumps({"chat_template": [{"name": "default", "template": chatml}, {"name": "tool_use", "template": "x"}]}))


def jsonl_seeds(out):
    lines = lambda records: "".join(json.dumps(r) + "\n" for r in records)
    put(out, "task_jsonl", "classification.jsonl",
        lines([{"id": "a", "text": "Is this OSI approved?", "label": "yes"}, {"id": "b", "text": "Proprietary.", "label": "no"}]))
    put(out, "task_jsonl", "multiple_choice.jsonl",
        lines([{"id": "q1", "context": "Which licence?", "choices": ["MIT", "GPL-3.0", "Apache-2.0"], "answer": 2},
               {"id": "q2", "context": "2+2=", "choices": ["4", "5"], "answer": 0}]))
    put(out, "corpus_jsonl", "corpus.jsonl",
        lines([{"id": f"d{i}", "text": t, "domain": "law", "source": "seed"} for i, t in enumerate(TEXT[:5])]))


def recipe_seeds(out):
    """The repository's own recipes, some with overrides after the target's "#--overrides" line."""
    root = pathlib.Path(__file__).resolve().parents[2]
    overrides = ["train.max_steps=7", "~train.lr", "lora.target_modules=q_proj,v_proj", "dtr.enabled=true"]
    for i, recipe in enumerate(sorted(root.glob("recipes/**/*.toml"))):
        text = recipe.read_text()
        if i % 3 == 0:
            text += "#--overrides\n" + "\n".join(overrides[: 1 + i % len(overrides)]) + "\n"
        put(out, "recipe", "_".join(recipe.relative_to(root / "recipes").parts), text)


def token_shard_seeds(out, gemkit):
    """Small shards written by `gemkit data prepare` (the format's only writer), with and without labels."""
    if not gemkit:
        return
    import subprocess
    import tempfile
    root = pathlib.Path(__file__).resolve().parents[2]
    with tempfile.TemporaryDirectory() as tmp:
        docs = pathlib.Path(tmp) / "law.train.jsonl"
        docs.write_text("".join(json.dumps({"id": str(i), "text": t, "domain": "law", "label": ["a", "b"][i % 2]}) + "\n"
                                for i, t in enumerate(TEXT[:4])))
        for name, extra in (("plain.h5", []), ("labelled.h5", ["--labels", "a,b"])):
            target = pathlib.Path(tmp) / name
            subprocess.run([gemkit, "data", "prepare", "--quiet", "--tokenizer", str(root / "checkpoints/gemkit-base"),
                            "--out", str(target), str(docs)] + extra, check=True)
            put(out, "token_shard", name, target.read_bytes())


def real_files(out, models, testdata, max_bytes):
    for folder in sorted(models.glob("*")) if models.is_dir() else []:
        copy_real(out, "model_config", f"{folder.name}.json", folder / "config.json", max_bytes)
        copy_real(out, "chat_template", f"{folder.name}.json", folder / "tokenizer_config.json", max_bytes)
        copy_real(out, "hf_tokenizer", f"{folder.name}.json", folder / "tokenizer.json", max_bytes)
        copy_real(out, "wordpiece_vocab", f"{folder.name}.txt", folder / "vocab.txt", max_bytes)
        copy_real(out, "sentencepiece", f"{folder.name}.model", folder / "tokenizer.model", max_bytes)
    for vocab in sorted(testdata.glob("ggml-vocab-*.gguf")) if testdata.is_dir() else []:
        copy_real(out, "gguf_tokenizer", vocab.name, vocab, max_bytes)
        copy_real(out, "gguf", vocab.name, vocab, max_bytes)
    for folder in sorted(models.glob("*/source")) if models.is_dir() else []:
        for model in sorted(folder.glob("*.gguf")):  # a real model file, when one is small enough
            copy_real(out, "gguf_import", model.name, model, max_bytes)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", type=pathlib.Path)
    ap.add_argument("--testdata", type=pathlib.Path, default=pathlib.Path("build/testdata"))
    ap.add_argument("--models", type=pathlib.Path,
                    default=pathlib.Path(os.environ.get("GEMKIT_CACHE", pathlib.Path.home() / ".cache/gemkit")) / "models")
    ap.add_argument("--max-bytes", type=int, default=1 << 20)
    ap.add_argument("--gemkit", help="the gemkit binary, for token shard seeds")
    a = ap.parse_args()
    shutil.rmtree(a.out, ignore_errors=True)
    for make in (safetensors_seeds, gguf_seeds, gguf_import_seeds, sentencepiece_seeds, hf_tokenizer_seeds, config_seeds,
                 chat_template_seeds, jsonl_seeds, recipe_seeds):
        make(a.out)
    token_shard_seeds(a.out, a.gemkit)
    real_files(a.out, a.models, a.testdata, a.max_bytes)
    for folder in sorted(a.out.iterdir()):
        print(f"{folder.name}: {len(list(folder.iterdir()))} seed(s)")


if __name__ == "__main__":
    main()
