#!/usr/bin/env node
// next_token_logprobs.mjs: full next-token log-probability distributions from llama.cpp.
//
//   node tests/llama_cpp/next_token_logprobs.mjs MODEL.gguf SEQUENCES.json OUT.bin [--threads N]
//        [--dest DIR] [--kv-type f32|f16] [--flash-attn] [--batch N]
//
// SEQUENCES.json: {"sequences": [[token ids...], ...]}. Every sequence is fed exactly as given (no BOS
// is added, nothing is tokenized) into a fresh, empty KV cache, and for every position p the
// distribution of the token that follows tokens[0..p] is recorded as natural-log probabilities:
// log_softmax(raw logits) over the whole vocabulary (temperature 1, no penalties, no truncation).
// OUT.bin: little-endian float32, sequence after sequence, position after position, n_vocab values
// each. stdout: one JSON line {"n_vocab":..., "positions":[...], ...settings}.
//
// llama.cpp is the prebuilt CPU build in npm node-llama-cpp@3.22.1 (+ @node-llama-cpp/linux-x64),
// installed by tests/llama_cpp/install.sh into DEST (--dest, else $GEMKIT_LLAMA_CPP, else
// <repo>/build/llama_cpp). The raw logits come from LlamaContextSequence.controlledEvaluate() with
// generateNext.logits = true, which returns llama_get_logits_ith() for every vocabulary entry
// (sampler chain: greedy only, which selects a token but leaves the logits untouched).
//
// Defaults favour precision and determinism: F32 KV cache and no flash attention (llama.cpp's own
// defaults are an F16 KV cache and flash attention "auto", which on CPU also rounds Q to F16; use
// --kv-type f16 --flash-attn to measure that configuration). One sequence at a time, each in one
// decode batch of up to --batch tokens (default 512, as llama.cpp; longer sequences continue in
// further batches on the KV cache), fixed thread count (default 2): the same inputs and options
// give bit-identical outputs (a different --batch may change the last bits).
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const HERE = path.dirname(fileURLToPath(import.meta.url));

function usage(msg) {
    if (msg) process.stderr.write(`next_token_logprobs: ${msg}\n`);
    process.stderr.write("usage: node next_token_logprobs.mjs MODEL.gguf SEQUENCES.json OUT.bin [--threads N] " +
        "[--dest DIR] [--kv-type f32|f16] [--flash-attn] [--batch N]\n");
    process.exit(2);
}

function parseArgs(argv) {
    const pos = [];
    const opt = { threads: 2, dest: null, kvType: "f32", flashAttn: false, batch: 0 };
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        const val = () => {
            if (i + 1 >= argv.length) usage(`${a} needs a value`);
            return argv[++i];
        };
        const posInt = (s, name) => {
            if (!/^[0-9]+$/.test(s) || Number(s) < 1) usage(`${name} must be a positive integer, got '${s}'`);
            return Number(s);
        };
        if (a === "--threads") opt.threads = posInt(val(), "--threads");
        else if (a === "--dest") opt.dest = val();
        else if (a === "--kv-type") {
            opt.kvType = val().toLowerCase();
            if (opt.kvType !== "f32" && opt.kvType !== "f16") usage("--kv-type must be f32 or f16");
        } else if (a === "--flash-attn") opt.flashAttn = true;
        else if (a === "--batch") opt.batch = posInt(val(), "--batch");
        else if (a === "-h" || a === "--help") usage();
        else if (a.startsWith("--")) usage(`unknown option ${a}`);
        else pos.push(a);
    }
    if (pos.length !== 3) usage("expected MODEL.gguf SEQUENCES.json OUT.bin");
    [opt.model, opt.sequences, opt.out] = pos;
    return opt;
}

function readSequences(file) {
    let doc;
    try {
        doc = JSON.parse(fs.readFileSync(file, "utf8"));
    } catch (e) {
        usage(`cannot read ${file}: ${e.message}`);
    }
    const seqs = doc?.sequences;
    if (!Array.isArray(seqs) || seqs.length === 0) usage(`${file}: expected {"sequences": [[token ids...], ...]}`);
    seqs.forEach((s, i) => {
        if (!Array.isArray(s) || s.length === 0) usage(`${file}: sequence ${i} is not a non-empty array`);
        s.forEach((t) => {
            if (!Number.isInteger(t) || t < 0) usage(`${file}: sequence ${i} holds an invalid token id ${JSON.stringify(t)}`);
        });
    });
    return seqs;
}

async function loadNodeLlamaCpp(dest) {
    const entry = path.join(dest, "node_modules", "node-llama-cpp", "dist", "index.js");
    if (!fs.existsSync(entry)) {
        process.stderr.write(`next_token_logprobs: node-llama-cpp is not installed in ${dest} ` +
            "(run tests/llama_cpp/install.sh [DEST], or pass --dest / set GEMKIT_LLAMA_CPP)\n");
        process.exit(1);
    }
    return import(pathToFileURL(entry).href);
}

const opt = parseArgs(process.argv.slice(2));
const dest = path.resolve(opt.dest ?? process.env.GEMKIT_LLAMA_CPP ?? path.join(HERE, "..", "..", "build", "llama_cpp"));
const seqs = readSequences(opt.sequences);
if (!fs.existsSync(opt.model)) usage(`model ${opt.model} not found`);
const { getLlama, LlamaLogLevel } = await loadNodeLlamaCpp(dest);

const maxLen = Math.max(...seqs.map((s) => s.length));
const batchSize = Math.min(opt.batch || 512, maxLen);

const llama = await getLlama({
    gpu: false,                 // CPU only
    build: "never",             // never compile or download: use the prebuilt binary from the package
    usePrebuiltBinaries: true,
    progressLogs: false,
    logLevel: LlamaLogLevel.error,
    maxThreads: opt.threads,
});
let model;
try {
    model = await llama.loadModel({ modelPath: path.resolve(opt.model), gpuLayers: 0 });
} catch (e) {
    process.stderr.write(`next_token_logprobs: llama.cpp cannot load ${opt.model}: ${e.message} (see llama.cpp's messages above)\n`);
    process.exit(1);
}
const kv = opt.kvType.toUpperCase();
const context = await model.createContext({
    // node-llama-cpp keeps one cell free: a sequence holds at most contextSize - 1 tokens before it
    // shifts the context (drops early tokens). llama.cpp rounds the allocation up to 256 cells.
    contextSize: maxLen + 1,
    batchSize,
    sequences: 1,
    threads: { ideal: opt.threads, min: opt.threads },
    flashAttention: opt.flashAttn,
    experimentalKvCacheKeyType: kv,
    experimentalKvCacheValueType: kv,
});
if (context.contextSize < maxLen + 1) {
    process.stderr.write(`next_token_logprobs: context of ${context.contextSize} tokens is shorter than the longest sequence (${maxLen})\n`);
    process.exit(1);
}
const sequence = context.getSequence();
// Never shift (drop) context tokens: every sequence fits, and a shift would silently change the results.
const noShift = {
    size: 1,
    strategy: () => {
        throw new Error("node-llama-cpp wanted to shift the context (sequence longer than the context)");
    },
};

// Token ids must index the vocabulary (llama.cpp rejects the batch otherwise).
const metaVocab = model.fileInfo?.metadata?.tokenizer?.ggml?.tokens?.length;
if (Number.isInteger(metaVocab) && metaVocab > 0) {
    seqs.forEach((s, i) => {
        const bad = s.find((t) => t >= metaVocab);
        if (bad !== undefined) usage(`sequence ${i}: token id ${bad} >= vocabulary size ${metaVocab}`);
    });
}

const fd = fs.openSync(opt.out, "w");
let nVocab = -1;
const positions = [];
try {
    for (let si = 0; si < seqs.length; si++) {
        const tokens = seqs[si];
        await sequence.clearHistory();
        let rows = null;
        let done = 0;
        let error = null;  // node-llama-cpp swallows exceptions thrown by onTokenResult: keep the first one
        const onTokenResult = (index, result) => {
            try {
                const logits = result?.next?.logits;
                if (logits == null) throw new Error(`no logits for sequence ${si} position ${index}`);
                if (nVocab < 0) nVocab = logits.size;
                if (logits.size !== nVocab) throw new Error(`got ${logits.size} logits, expected ${nVocab}`);
                rows ??= new Float32Array(tokens.length * nVocab);
                // log_softmax in double precision: x - max - log(sum(exp(x - max)))
                const raw = new Float64Array(nVocab).fill(NaN);
                let max = -Infinity;
                for (const [tok, value] of logits) {
                    raw[tok] = value;
                    if (value > max) max = value;
                }
                let sum = 0;
                for (let v = 0; v < nVocab; v++) sum += Math.exp(raw[v] - max);
                const lse = max + Math.log(sum);
                if (!Number.isFinite(lse)) throw new Error(`missing or non-finite logits at sequence ${si} position ${index}`);
                const row = rows.subarray(index * nVocab, (index + 1) * nVocab);
                for (let v = 0; v < nVocab; v++) row[v] = raw[v] - lse;
                result.next.logits = undefined;  // free the Map now; the result array lives until the call returns
                done++;
            } catch (e) {
                error ??= e;
            }
        };
        await sequence.controlledEvaluate(
            tokens.map((t) => [t, { generateNext: { logits: true } }]),
            { contextShift: noShift, onTokenResult },
        );
        if (error) throw error;
        const state = sequence.contextTokens;
        if (sequence.nextTokenIndex !== tokens.length || state.length !== tokens.length || state.some((t, i) => t !== tokens[i]))
            throw new Error(`sequence ${si}: the context state does not hold exactly the given tokens`);
        if (done !== tokens.length) throw new Error(`sequence ${si}: got ${done} of ${tokens.length} positions`);
        const bytes = Buffer.from(rows.buffer, rows.byteOffset, rows.byteLength);  // x86-64/arm64: little-endian
        let off = 0;
        while (off < bytes.length) off += fs.writeSync(fd, bytes, off, bytes.length - off);
        positions.push(tokens.length);
    }
} catch (e) {
    fs.closeSync(fd);
    fs.rmSync(opt.out, { force: true });
    process.stderr.write(`next_token_logprobs: ${e.message}\n`);
    process.exit(1);
}
fs.closeSync(fd);
await context.dispose();
await model.dispose();
await llama.dispose();
process.stdout.write(JSON.stringify({
    n_vocab: nVocab,
    positions,
    threads: opt.threads,
    batch_size: batchSize,
    context_size: context.contextSize,
    kv_type: opt.kvType,
    flash_attn: opt.flashAttn,
}) + "\n");
