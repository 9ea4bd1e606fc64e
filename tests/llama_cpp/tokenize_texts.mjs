#!/usr/bin/env node
// tokenize_texts.mjs: token ids of texts from llama.cpp's own tokenizer (the GGUF's vocabulary,
// merges and tokenizer.ggml.pre), for comparing an exported GGUF's tokenizer with gemkit's.
//
//   node tests/llama_cpp/tokenize_texts.mjs MODEL.gguf TEXTS.json OUT.json [--dest DIR]
//
// TEXTS.json: {"texts": ["...", ...]}. OUT.json: {"ids": [[...], ...], "pre": "<tokenizer.ggml.pre>"}.
// Texts are tokenized as plain text: no BOS/EOS added, special-token strings not parsed
// (node-llama-cpp's model.tokenize(text, false)). The model is loaded vocabulary-only.
// DEST: --dest, else $GEMKIT_LLAMA_CPP, else <repo>/build/llama_cpp (tests/llama_cpp/install.sh).
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
let dest = null;
const pos = [];
for (let i = 0; i < args.length; i++) {
    if (args[i] === "--dest" && i + 1 < args.length) dest = args[++i];
    else pos.push(args[i]);
}
if (pos.length !== 3) {
    process.stderr.write("usage: node tokenize_texts.mjs MODEL.gguf TEXTS.json OUT.json [--dest DIR]\n");
    process.exit(2);
}
const [modelPath, textsPath, outPath] = pos;
dest = path.resolve(dest ?? process.env.GEMKIT_LLAMA_CPP ?? path.join(HERE, "..", "..", "build", "llama_cpp"));
const entry = path.join(dest, "node_modules", "node-llama-cpp", "dist", "index.js");
if (!fs.existsSync(entry)) {
    process.stderr.write(`tokenize_texts: node-llama-cpp is not installed in ${dest} (run tests/llama_cpp/install.sh)\n`);
    process.exit(1);
}
const texts = JSON.parse(fs.readFileSync(textsPath, "utf8")).texts;
if (!Array.isArray(texts) || texts.some((t) => typeof t !== "string")) {
    process.stderr.write(`tokenize_texts: ${textsPath}: expected {"texts": ["...", ...]}\n`);
    process.exit(2);
}
const { getLlama, LlamaLogLevel } = await import(pathToFileURL(entry).href);
const llama = await getLlama({ gpu: false, build: "never", usePrebuiltBinaries: true, progressLogs: false,
    logLevel: LlamaLogLevel.error });
let model;
try {
    model = await llama.loadModel({ modelPath: path.resolve(modelPath), gpuLayers: 0, vocabOnly: true });
} catch (e) {
    process.stderr.write(`tokenize_texts: llama.cpp cannot load ${modelPath}: ${e.message}\n`);
    process.exit(1);
}
const ids = texts.map((t) => Array.from(model.tokenize(t, false), Number));
const pre = model.fileInfo?.metadata?.tokenizer?.ggml?.pre ?? null;
fs.writeFileSync(outPath, JSON.stringify({ ids, pre }));
await model.dispose();
await llama.dispose();
