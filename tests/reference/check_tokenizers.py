#!/usr/bin/env python3
"""Tokenizer and chat-template parity of gemkit against the real peers (requirements.txt).

Token ids: gemkit (tests/tools/encode_lines) against Hugging Face `tokenizers`
(Tokenizer.from_file(tokenizer.json).encode(text).ids, special tokens added by the file's own
post-processor, as gemkit's encode(text, add_special=true)), on every line's "text" of every
domain's train/validation/test JSONL under --data:
  (a) the SmolLM2 tokenizer.json written from the GGUF by import/tokenizer_files.cpp,
  (b) gemkit's own GGUF tokenizer of the same file, against (a)'s tokenizer.json in `tokenizers`
      (so GGUF-direct and imported tokenize alike),
  (c) all-MiniLM-L6-v2's tokenizer.json (WordPiece),
  (d) with --spm-gguf, SentencePiece GGUFs: the tokenizer.model written from each (and gemkit
      on the GGUF itself) against the `sentencepiece` library.
Chat templates: gemkit's rendering (tests/tools/render_chat) against transformers'
apply_chat_template(messages, tokenize=False, add_generation_prompt=...) for the imported
folder's own template and for ChatML / Llama 3 templates of the shapes gemkit recognises.
With --gemkit, when the SmolLM2 folder holds the model (`gemkit import gguf`): `gemkit generate
--chat` (greedy) prints the same reply as transformers' greedy generate on the same template,
stopped at the end-of-turn token.

Prints the measured counts and exits 1 on any mismatch.

usage: check_tokenizers.py --encode-lines BIN --render-chat BIN --data DIR
                           --smollm2-folder DIR --smollm2-gguf FILE --minilm-folder DIR
                           [--write-tokenizer-files BIN --spm-gguf FILE...] [--gemkit BIN]
"""
import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile

from tokenizers import Tokenizer
from transformers import AutoTokenizer

SPLITS = ("train", "validation", "test")


def corpus_files(data):
    files = []
    for domain in sorted(os.listdir(data)):
        for split in SPLITS:
            path = os.path.join(data, domain, split + ".jsonl")
            if os.path.isfile(path):
                files.append(path)
    return files


def read_texts(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in f if line.strip()]


def gemkit_ids(encode_lines, tokenizer, path):
    out = subprocess.run([encode_lines, tokenizer, path], check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines()]


def hf_tokenizer(path):
    tok = Tokenizer.from_file(path)
    tok.no_truncation()  # MiniLM's file truncates at 128; gemkit encodes whole texts
    tok.no_padding()
    return tok


def check_ids(name, encode_lines, gemkit_tokenizer, hf_json, files):
    """Returns the number of mismatching lines; prints the counts."""
    hf = hf_tokenizer(hf_json)
    return compare_ids(name, encode_lines, gemkit_tokenizer, lambda texts: [e.ids for e in hf.encode_batch(texts)],
                       files, "tokenizers")


def compare_ids(name, encode_lines, gemkit_tokenizer, reference, files, ref_name):
    lines = tokens = bad = 0
    for path in files:
        texts = read_texts(path)
        ours = gemkit_ids(encode_lines, gemkit_tokenizer, path)
        if len(ours) != len(texts):
            print(f"  {name}: {path}: gemkit gave {len(ours)} lines for {len(texts)} texts")
            bad += max(1, len(texts))
            continue
        theirs = reference(texts)
        for i, (a, b) in enumerate(zip(ours, theirs)):
            lines += 1
            tokens += len(b)
            if a != b:
                bad += 1
                if bad <= 5:
                    k = next((j for j in range(min(len(a), len(b))) if a[j] != b[j]), min(len(a), len(b)))
                    print(f"  {name}: {path}:{i + 1}: first difference at token {k}: gemkit {a[k:k + 8]} "
                          f"{ref_name} {b[k:k + 8]} (text {texts[i][:80]!r})")
    print(f"[ids] {name}: {len(files)} files, {lines} lines, {tokens} tokens, {bad} mismatching lines")
    return bad


CONVERSATIONS = [
    {"messages": [{"role": "user", "content": "What is the capital of France?"}], "add_generation_prompt": True},
    {"messages": [{"role": "system", "content": "You answer in one word."},
                  {"role": "user", "content": "Capital of Italy?"}], "add_generation_prompt": True},
    {"messages": [{"role": "user", "content": "Hi!"},
                  {"role": "assistant", "content": "Hello. How can I help?"},
                  {"role": "user", "content": "  Tell me a joke.\n"}], "add_generation_prompt": True},
    {"messages": [{"role": "system", "content": "Be brief."},
                  {"role": "user", "content": "2+2?"},
                  {"role": "assistant", "content": "4"},
                  {"role": "user", "content": "And 3+3?"}], "add_generation_prompt": True},
    {"messages": [{"role": "user", "content": "Ünïcödé ✓ and 12345"},
                  {"role": "assistant", "content": "Noted."}], "add_generation_prompt": False},
]

# Templates of the shapes gemkit recognises, written for this check: ChatML with a default
# system turn (its literal newline spelled as the escape \n, as some files store it), and the
# Llama 3 layout (BOS, trimmed contents).
CHATML_DEFAULT_SYSTEM = (
    r"{%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}"
    r"{%- else %}{{- '<|im_start|>system\nYou are a careful assistant. Don\'t guess.<|im_end|>\n' }}{%- endif %}"
    r"{%- for message in messages %}{%- if not (message.role == 'system' and loop.first) %}"
    r"{{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}{%- endif %}{%- endfor %}"
    r"{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}")
LLAMA3 = (
    "{% for message in messages %}{% set turn = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' "
    "+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set turn = bos_token + turn %}{% endif %}"
    "{{ turn }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}")


def check_chat(render_chat, folder, name):
    with tempfile.TemporaryDirectory() as tmp:
        conv_path = os.path.join(tmp, "conversations.json")
        with open(conv_path, "w", encoding="utf-8") as f:
            json.dump(CONVERSATIONS, f)
        out = subprocess.run([render_chat, folder, conv_path], capture_output=True, text=True)
        if out.returncode != 0:
            print(f"  chat {name}: render_chat failed: {out.stderr.strip()}")
            return len(CONVERSATIONS)
        ours = [json.loads(line) for line in out.stdout.splitlines()]
    hf = AutoTokenizer.from_pretrained(folder)
    bad = 0
    for conv, mine in zip(CONVERSATIONS, ours):
        theirs = hf.apply_chat_template(conv["messages"], tokenize=False,
                                        add_generation_prompt=conv["add_generation_prompt"])
        if mine != theirs:
            bad += 1
            print(f"  chat {name}: differs for {conv['messages']!r}\n    gemkit       {mine!r}\n    transformers {theirs!r}")
    bad += abs(len(ours) - len(CONVERSATIONS))
    print(f"[chat] {name}: {len(CONVERSATIONS)} conversations, {bad} mismatching")
    return bad


# Training conversations (every one with an answer): the default system turn, several answers,
# answers with leading spaces, newlines and non-ASCII text.
TRAIN_CONVERSATIONS = [
    {"messages": [{"role": "user", "content": "What is the capital of France?"},
                  {"role": "assistant", "content": "Paris."}]},
    {"messages": [{"role": "system", "content": "You answer in one word."},
                  {"role": "user", "content": "Capital of Italy?"},
                  {"role": "assistant", "content": "Rome"},
                  {"role": "user", "content": "And of Japan?"},
                  {"role": "assistant", "content": " Tokyo (東京).\nSince 1868."}]},
    {"messages": [{"role": "user", "content": "Ünïcödé ✓ and 12345"},
                  {"role": "assistant", "content": "  Noted: 12345 ✓\n\n"}]},
    {"messages": [{"role": "system", "content": "Be brief."},
                  {"role": "user", "content": "List two primes."},
                  {"role": "assistant", "content": "2, 3"},
                  {"role": "user", "content": "Thanks"}]},
]


def reference_answer_mask(hf, messages, end_of_turn, trim):
    """ids of apply_chat_template, and a mask computed from character offsets: 1 on tokens that
    overlap an assistant message's text plus the end-of-turn marker after it (the rule of
    transformers' return_assistant_tokens_mask, which needs {% generation %} tags these templates
    lack)."""
    text = hf.apply_chat_template(messages, tokenize=False)
    ids = hf.apply_chat_template(messages, tokenize=True)
    if isinstance(ids, dict) or hasattr(ids, "keys"):
        ids = ids["input_ids"]
    enc = hf(text, add_special_tokens=False, return_offsets_mapping=True)
    assert enc["input_ids"] == list(ids), "apply_chat_template(tokenize=True) differs from tokenizing its text"
    spans, pos = [], 0
    for m in messages:
        if m["role"] != "assistant":
            continue
        answer = (m["content"].strip() if trim else m["content"]) + end_of_turn
        begin = text.index(answer, pos)
        spans.append((begin, begin + len(answer)))
        pos = begin + len(answer)
    mask = [int(any(s < end and e > b for b, end in spans)) for s, e in enc["offset_mapping"]]
    return list(ids), mask


def check_chat_masks(render_chat, folder, name, end_of_turn, trim=False):
    with tempfile.TemporaryDirectory() as tmp:
        conv_path = os.path.join(tmp, "conversations.json")
        with open(conv_path, "w", encoding="utf-8") as f:
            json.dump(TRAIN_CONVERSATIONS, f)
        out = subprocess.run([render_chat, "--tokens", folder, conv_path], capture_output=True, text=True)
        if out.returncode != 0:
            print(f"  chat masks {name}: render_chat --tokens failed: {out.stderr.strip()}")
            return len(TRAIN_CONVERSATIONS)
        ours = [json.loads(line) for line in out.stdout.splitlines()]
    hf = AutoTokenizer.from_pretrained(folder)
    bad, tokens, answer_tokens = 0, 0, 0
    for conv, mine in zip(TRAIN_CONVERSATIONS, ours):
        ids, mask = reference_answer_mask(hf, conv["messages"], end_of_turn, trim)
        tokens += len(ids)
        answer_tokens += sum(mask)
        if mine["ids"] != ids or mine["mask"] != mask:
            bad += 1
            print(f"  chat masks {name}: differ for {conv['messages']!r}\n    gemkit       {mine!r}\n"
                  f"    transformers {ids!r} {mask!r}")
    bad += abs(len(ours) - len(TRAIN_CONVERSATIONS))
    print(f"[chat masks] {name}: {len(TRAIN_CONVERSATIONS)} conversations, {tokens} tokens, "
          f"{answer_tokens} answer tokens, {bad} mismatching")
    return bad


CHAT_PROMPTS = [("What is the capital of France?", None),
                ("Name three colours of the rainbow.", "Answer in one short sentence.")]
NEW_TOKENS = 48


def check_chat_generation(gemkit, folder):
    import torch
    from transformers import AutoModelForCausalLM

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    end_of_turn = "<|im_end|>" if "<|im_start|>" in tok.chat_template else "<|eot_id|>"
    stops = [tok.convert_tokens_to_ids(end_of_turn)] + ([tok.eos_token_id] if tok.eos_token_id is not None else [])
    bad = 0
    for prompt, system in CHAT_PROMPTS:
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
        inputs = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        with torch.no_grad():
            out = model.generate(**inputs, max_new_tokens=NEW_TOKENS, do_sample=False, eos_token_id=stops)
        theirs = tok.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
        cmd = [gemkit, "generate", "--model", folder, "--chat", "--prompt", prompt, "--temperature", "0",
               "-n", str(NEW_TOKENS)] + (["--system", system] if system else [])
        run = subprocess.run(cmd, capture_output=True, text=True)
        mine = run.stdout[:-1] if run.stdout.endswith("\n") else run.stdout  # gemkit ends with a newline
        if run.returncode != 0 or mine != theirs:
            bad += 1
            print(f"  generate --chat {prompt!r}: rc {run.returncode} {run.stderr.strip()}\n"
                  f"    gemkit       {mine!r}\n    transformers {theirs!r}")
    print(f"[generate --chat] {len(CHAT_PROMPTS)} prompts, greedy {NEW_TOKENS} tokens, {bad} mismatching")
    return bad


def check_spm(write_tool, encode_lines, gguf, files):
    """A SentencePiece GGUF: the tokenizer.model gemkit writes, in the `sentencepiece` library
    (BOS as tokenizer_config.json's add_bos_token says), against gemkit on the GGUF and on the
    written folder."""
    import sentencepiece

    name = os.path.basename(gguf)
    with tempfile.TemporaryDirectory() as tmp:
        folder = os.path.join(tmp, "tokenizer")
        subprocess.run([write_tool, gguf, folder], check=True)
        with open(os.path.join(folder, "tokenizer_config.json"), encoding="utf-8") as f:
            add_bos = json.load(f)["add_bos_token"]
        sp = sentencepiece.SentencePieceProcessor(model_file=os.path.join(folder, "tokenizer.model"))
        reference = lambda texts: [sp.encode(t, add_bos=add_bos) for t in texts]
        bad = compare_ids(f"{name} written tokenizer.model", encode_lines, folder, reference, files, "sentencepiece")
        bad += compare_ids(f"{name} (gemkit direct)", encode_lines, gguf, reference, files, "sentencepiece")
    return bad


def folder_with_template(base, tmp, name, template, bos):
    folder = os.path.join(tmp, name)
    os.makedirs(folder)
    shutil.copy(os.path.join(base, "tokenizer.json"), folder)
    with open(os.path.join(base, "tokenizer_config.json"), encoding="utf-8") as f:
        cfg = json.load(f)
    cfg["chat_template"] = template
    cfg["bos_token"] = bos
    with open(os.path.join(folder, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(cfg, f)
    return folder


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--encode-lines", required=True)
    ap.add_argument("--render-chat", required=True)
    ap.add_argument("--data", required=True, help="suite folder (data/mini): DOMAIN/{train,validation,test}.jsonl")
    ap.add_argument("--smollm2-folder", required=True, help="folder written from the SmolLM2 GGUF")
    ap.add_argument("--smollm2-gguf", required=True)
    ap.add_argument("--minilm-folder", required=True)
    ap.add_argument("--write-tokenizer-files", help="tests/tools/write_tokenizer_files, for --spm-gguf")
    ap.add_argument("--spm-gguf", nargs="*", default=[],
                    help="SentencePiece (tokenizer.ggml.model llama) GGUF files: their written tokenizer.model "
                         "against the sentencepiece library")
    ap.add_argument("--gemkit", help="gemkit binary: also check generate --chat when the SmolLM2 folder has the model")
    args = ap.parse_args()

    files = corpus_files(args.data)
    domains = {os.path.basename(os.path.dirname(p)) for p in files}
    if len(domains) != 8 or len(files) != 24:
        print(f"expected 8 domains x 3 splits under {args.data}, got {len(domains)} domains, {len(files)} files")
        return 1
    smol_json = os.path.join(args.smollm2_folder, "tokenizer.json")
    bad = 0
    bad += check_ids("smollm2 imported tokenizer.json", args.encode_lines, smol_json, smol_json, files)
    bad += check_ids("smollm2 gguf (gemkit direct)", args.encode_lines, args.smollm2_gguf, smol_json, files)
    bad += check_ids("all-MiniLM-L6-v2 tokenizer.json", args.encode_lines,
                     os.path.join(args.minilm_folder, "tokenizer.json"),
                     os.path.join(args.minilm_folder, "tokenizer.json"), files)

    if args.spm_gguf and not args.write_tokenizer_files:
        ap.error("--spm-gguf needs --write-tokenizer-files")
    for gguf in args.spm_gguf:
        bad += check_spm(args.write_tokenizer_files, args.encode_lines, gguf, files)

    bad += check_chat(args.render_chat, args.smollm2_folder, "smollm2 (template from the GGUF)")
    with tempfile.TemporaryDirectory() as tmp:
        bad += check_chat(args.render_chat,
                          folder_with_template(args.smollm2_folder, tmp, "chatml", CHATML_DEFAULT_SYSTEM, "<|im_start|>"),
                          "ChatML, default system as an escaped literal")
        llama3 = folder_with_template(args.smollm2_folder, tmp, "llama3", LLAMA3, "<|endoftext|>")
        bad += check_chat(args.render_chat, llama3, "Llama 3 layout")
        bad += check_chat_masks(args.render_chat, llama3, "Llama 3 layout", "<|eot_id|>", trim=True)
    bad += check_chat_masks(args.render_chat, args.smollm2_folder, "smollm2 (template from the GGUF)", "<|im_end|>")
    if args.gemkit:
        if not os.path.isfile(os.path.join(args.smollm2_folder, "model.safetensors")):
            print(f"--gemkit given but {args.smollm2_folder} has no model.safetensors (write it with gemkit import gguf)")
            bad += 1
        else:
            bad += check_chat_generation(args.gemkit, args.smollm2_folder)
    print("tokenizer parity: " + ("OK" if bad == 0 else f"FAILED ({bad} mismatches)"))
    return 0 if bad == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
