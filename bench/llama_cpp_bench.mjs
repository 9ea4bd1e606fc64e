#!/usr/bin/env node
// llama_cpp_bench.mjs: llama.cpp's CPU speed on one GGUF file, through npm node-llama-cpp@3.22.1 (the
// llama.cpp side of the gemkit-run vs llama.cpp benchmark; see bench/README-llama-cpp.md).
//
//   node bench/llama_cpp_bench.mjs MODEL.gguf [--threads N] [--prompt 128] [--gen 64] [--reps 3]
//        [--warmup 1] [--dest DIR] [--kv-type f16|f32] [--flash-attn auto|on|off] [--batch N]
//        [--no-addon] [--llama-bench [PATH]]
//
// Per repetition, each phase on an empty KV cache:
//   pp     prompt processing: --prompt token ids (fixed, see promptIds) evaluated as ONE batch
//          (sequence.evaluateWithoutGeneratingNewTokens); tokens/s = prompt / wall time.
//   ttft   time to first token: the same prompt through sequence.evaluate() (logits of the last
//          position only) up to the first greedily sampled token, ms.
//   decode the same generator continues: --gen more steps, each one llama_decode of 1 token (the
//          previously sampled one) + a greedy sample; tokens/s = gen / wall time of those steps.
//          EOS does not stop it (yieldEogToken), so every step is a real 1-token decode.
// "addon" (unless --no-addon): the same ttft/decode loop straight on node-llama-cpp's N-API addon
//          (initBatch/addToBatch/decodeBatch/sampleToken: two async N-API calls per token and no
//          node-llama-cpp JavaScript), to separate node-llama-cpp's JS overhead from the N-API cost.
// llama.cpp's own timers (performanceTracking + llama_perf_context_print) give the time spent inside
// llama_decode for the same calls; wall - internal = binding overhead.
// --llama-bench: also runs llama.cpp's native llama-bench (bench/build_llama_bench.sh; PATH default
//          $LLAMA_BENCH, else <repo>/build/llama_cpp/llama-bench-build/bin/llama-bench) first, in its own
//          process, with the same threads / prompt / gen / reps: pp<prompt>, tg<gen> on an empty cache
//          (llama-bench's usual test) and tg<gen> at depth <prompt> (-d, the same positions as here);
//          adds llama_bench_* fields. Its defaults match the ones here (F16 KV, flash attention auto).
// Figures: best (fastest) repetition, and the median; per-repetition values in "reps_detail".
// Memory: VmRSS/VmHWM of this process from /proc/self/status, before the model is loaded (node +
// llama.cpp libraries) and after the run (model mmapped + KV cache + compute buffers).
//
// Settings are llama.cpp's defaults unless given: F16 KV cache, flash attention "auto" (enabled on
// CPU for this architecture; the resolved value is reported), one context of prompt + gen + 1 cells
// (at least; "n_ctx" reports what the context got), n_batch = n_ubatch = --batch (default: --prompt, so the prompt is
// one batch). Context shifting cannot happen: the context holds every token, any shift throws, and
// the final sequence length is checked. Threads: getLlama maxThreads = N, context threads
// {ideal: N, min: N}; llama.cpp's threads are not pinned (no CPU mask).
// Output: one JSON line on stdout; progress/errors on stderr. DEST: --dest, else $GEMKIT_LLAMA_CPP,
// else <repo>/build/llama_cpp (tests/llama_cpp/install.sh installs node-llama-cpp there).
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const USAGE = "usage: node bench/llama_cpp_bench.mjs MODEL.gguf [--threads N] [--prompt 128] [--gen 64] [--reps 3] " +
    "[--warmup 1] [--dest DIR] [--kv-type f16|f32] [--flash-attn auto|on|off] [--batch N] [--no-addon] [--llama-bench [PATH]]";

function usage(msg) {
    if (msg) process.stderr.write(`llama_cpp_bench: ${msg}\n`);
    process.stderr.write(USAGE + "\n");
    process.exit(2);
}
function fail(msg) {
    process.stderr.write(`llama_cpp_bench: ERROR: ${msg}\n`);
    process.exit(1);
}

function parseArgs(argv) {
    const opt = { threads: 2, prompt: 128, gen: 64, reps: 3, warmup: 1, dest: null, kvType: "f16",
        flashAttn: "auto", batch: 0, addon: true, model: null, llamaBench: null };
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        const val = () => {
            if (i + 1 >= argv.length) usage(`${a} needs a value`);
            return argv[++i];
        };
        const int = (s, name, min) => {
            if (!/^[0-9]+$/.test(s) || Number(s) < min) usage(`${name} must be an integer >= ${min}, got '${s}'`);
            return Number(s);
        };
        if (a === "--threads") opt.threads = int(val(), a, 1);
        else if (a === "--prompt") opt.prompt = int(val(), a, 1);
        else if (a === "--gen") opt.gen = int(val(), a, 1);
        else if (a === "--reps") opt.reps = int(val(), a, 1);
        else if (a === "--warmup") opt.warmup = int(val(), a, 0);
        else if (a === "--batch") opt.batch = int(val(), a, 1);
        else if (a === "--dest") opt.dest = val();
        else if (a === "--kv-type") {
            opt.kvType = val().toLowerCase();
            if (opt.kvType !== "f16" && opt.kvType !== "f32") usage("--kv-type must be f16 or f32");
        } else if (a === "--flash-attn") {
            opt.flashAttn = val().toLowerCase();
            if (!["auto", "on", "off"].includes(opt.flashAttn)) usage("--flash-attn must be auto, on or off");
        } else if (a === "--no-addon") opt.addon = false;
        else if (a === "--llama-bench") {
            // optional PATH: the next argument when it is not an option and not the model (a .gguf)
            const next = argv[i + 1];
            opt.llamaBench = next != null && !next.startsWith("--") && !next.endsWith(".gguf") ? argv[++i] : "";
        }
        else if (a === "-h" || a === "--help") usage();
        else if (a.startsWith("--")) usage(`unknown option ${a}`);
        else if (opt.model == null) opt.model = a;
        else usage(`unexpected argument ${a}`);
    }
    if (opt.model == null) usage("MODEL.gguf is required");
    if (opt.llamaBench != null && opt.kvType === "f32")
        usage("--llama-bench cannot use an F32 KV cache (llama-bench's -ctk/-ctv accept f16, bf16, q8_0, ... but not f32)");
    if (opt.batch === 0) opt.batch = opt.prompt;
    if (opt.batch < opt.prompt) usage(`--batch ${opt.batch} is smaller than --prompt ${opt.prompt}: the prompt must be one batch`);
    return opt;
}

// Fixed prompt ids: BOS, then 3 + (i * 997) mod (n_vocab - 3) for i = 1..n-1 (skips ids 0-2 = unk/bos/eos
// of the bundled tokenizer). Only the count matters for speed; the ids are fixed so that other runtimes
// can feed the same ones.
function promptIds(n, nVocab, bos) {
    const ids = [bos];
    for (let i = 1; i < n; i++) ids.push(3 + ((i * 997) % (nVocab - 3)));
    return ids;
}

function procStatusKb() {
    const out = {};
    for (const line of fs.readFileSync("/proc/self/status", "utf8").split("\n")) {
        const m = /^(VmRSS|VmHWM|RssAnon|RssFile):\s+(\d+) kB/.exec(line);
        if (m) out[m[1]] = Number(m[2]);
    }
    return out;
}
const loadavg = () => fs.readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).map(Number);
const nowMs = () => Number(process.hrtime.bigint()) / 1e6;
const median = (xs) => {
    const s = [...xs].sort((a, b) => a - b);
    const m = s.length >> 1;
    return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const r3 = (x) => (x == null || !Number.isFinite(x) ? null : Math.round(x * 1000) / 1000);

const opt = parseArgs(process.argv.slice(2));
if (!fs.existsSync(opt.model)) fail(`model ${opt.model} not found`);
const modelPath = path.resolve(opt.model);
const dest = path.resolve(opt.dest ?? process.env.GEMKIT_LLAMA_CPP ?? path.join(HERE, "..", "build", "llama_cpp"));
const entry = path.join(dest, "node_modules", "node-llama-cpp", "dist", "index.js");
if (!fs.existsSync(entry))
    fail(`node-llama-cpp is not installed in ${dest} (run tests/llama_cpp/install.sh [DEST], or pass --dest / set GEMKIT_LLAMA_CPP)`);
const load0 = loadavg();

// llama.cpp's native llama-bench on the same file and settings (before node loads anything).
function runLlamaBench() {
    const exe = path.resolve(opt.llamaBench || process.env.LLAMA_BENCH || path.join(HERE, "..", "build", "llama_cpp", "llama-bench-build", "bin", "llama-bench"));
    if (!fs.existsSync(exe)) fail(`llama-bench not found at ${exe} (run bench/build_llama_bench.sh, or give --llama-bench PATH)`);
    const kvArgs = ["-ctk", opt.kvType, "-ctv", opt.kvType, "-fa", opt.flashAttn];
    const common = ["-m", modelPath, "-t", String(opt.threads), "-r", String(opt.reps), "-o", "jsonl", ...kvArgs];
    const run = (args) => {
        const r = spawnSync(exe, [...common, ...args], { encoding: "utf8", maxBuffer: 16 << 20 });
        if (r.status !== 0) fail(`llama-bench ${args.join(" ")} failed (${r.status ?? r.signal}): ${(r.stderr || "").split("\n").slice(-5).join(" | ")}`);
        return r.stdout.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
    };
    const recs = [...run(["-p", String(opt.prompt), "-n", String(opt.gen)]), ...run(["-p", "0", "-n", String(opt.gen), "-d", String(opt.prompt)])];
    const pick = (pred) => recs.find(pred)?.samples_ts ?? null;
    const pp = pick((d) => d.n_prompt === opt.prompt && d.n_gen === 0);
    const tg0 = pick((d) => d.n_gen === opt.gen && d.n_depth === 0);
    const tgD = pick((d) => d.n_gen === opt.gen && d.n_depth === opt.prompt);
    if (!pp || !tg0 || !tgD) fail("llama-bench did not report the pp / tg / tg-at-depth tests");
    const med = (xs) => { const s = [...xs].sort((a, b) => a - b), m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
    return {
        exe, pp: { best: Math.max(...pp), median: med(pp) }, tg0: { best: Math.max(...tg0), median: med(tg0) },
        tgD: { best: Math.max(...tgD), median: med(tgD) }, commit: recs[0].build_commit, threads: recs[0].n_threads,
        n_ubatch: recs[0].n_ubatch, poll: recs[0].poll,
    };
}
const lb = opt.llamaBench != null ? runLlamaBench() : null;

const { getLlama, LlamaLogLevel } = await import(pathToFileURL(entry).href);

// All llama.cpp messages are collected (the perf counters, the resolved flash attention and the CPU
// backend variant are read from them); warnings and errors also go to stderr.
const logLines = [];
let logWaiter = null;
const logger = (level, message) => {
    logLines.push(message);
    if (level === LlamaLogLevel.error || level === LlamaLogLevel.fatal || level === LlamaLogLevel.warn)
        process.stderr.write(`llama.cpp [${level}]: ${message}${message.endsWith("\n") ? "" : "\n"}`);
    if (logWaiter && logWaiter.re.test(message)) logWaiter.done();
};

const llama = await getLlama({
    gpu: false,                 // CPU only
    build: "never",             // the prebuilt binary from @node-llama-cpp/linux-x64, never compile or download
    usePrebuiltBinaries: true,
    progressLogs: false,
    logLevel: LlamaLogLevel.info,
    logger,
    maxThreads: opt.threads,
});
const memBeforeModel = procStatusKb();

let model;
try {
    model = await llama.loadModel({ modelPath, gpuLayers: 0 });
} catch (e) {
    fail(`llama.cpp cannot load ${opt.model}: ${e.message}`);
}
const meta = model.fileInfo?.metadata ?? {};
const nVocab = meta.tokenizer?.ggml?.tokens?.length;
if (!Number.isInteger(nVocab) || nVocab < 4) fail(`${opt.model}: cannot read the vocabulary size from tokenizer.ggml.tokens`);
const bos = Number.isInteger(meta.tokenizer?.ggml?.bos_token_id) ? meta.tokenizer.ggml.bos_token_id : 1;
const prompt = promptIds(opt.prompt, nVocab, bos);

const needCells = opt.prompt + opt.gen + 1;   // node-llama-cpp keeps one cell free
const kv = opt.kvType.toUpperCase();
const context = await model.createContext({
    contextSize: needCells,
    batchSize: opt.batch,
    sequences: 1,
    threads: { ideal: opt.threads, min: opt.threads },
    flashAttention: opt.flashAttn === "auto" ? "auto" : opt.flashAttn === "on",
    experimentalKvCacheKeyType: kv,
    experimentalKvCacheValueType: kv,
    performanceTracking: true,
});
if (context.contextSize < needCells) fail(`context of ${context.contextSize} cells < prompt + gen + 1 = ${needCells}`);
const noShift = {
    size: 1,
    strategy: () => {
        throw new Error("node-llama-cpp wanted to shift the context (this must not happen in a benchmark)");
    },
};
const sequence = context.getSequence({ contextShift: noShift });

// llama.cpp's perf counters since the last call (llama_perf_context_print + reset), from the log lines.
async function readPerf() {
    const start = logLines.length;
    const arrived = new Promise((resolve) => {
        const timer = setTimeout(resolve, 2000);
        logWaiter = { re: /total time/, done: () => { clearTimeout(timer); resolve(); } };
    });
    await context.printTimings();
    await arrived;
    logWaiter = null;
    const text = logLines.slice(start).join("");
    const grab = (re) => {
        const m = re.exec(text);
        return m ? { ms: Number(m[1]), n: Number(m[2]) } : null;
    };
    const p = grab(/prompt eval time =\s*([\d.]+) ms \/\s*(\d+) tokens/);
    const e = grab(/\beval time =\s*([\d.]+) ms \/\s*(\d+) runs/);
    if (!p || !e) throw new Error(`cannot parse llama.cpp's perf output: ${JSON.stringify(text.slice(0, 400))}`);
    return { promptMs: p.ms, promptTokens: p.n, evalMs: e.ms, evalRuns: e.n };
}

function checkState(expectLen, what) {
    if (sequence.nextTokenIndex !== expectLen || sequence.contextTokens.length !== expectLen)
        throw new Error(`${what}: the sequence holds ${sequence.nextTokenIndex} tokens, expected ${expectLen} (context shift or lost tokens)`);
}

// One repetition through node-llama-cpp's public API.
async function runApi() {
    await sequence.clearHistory();
    await readPerf();   // resets the counters
    let t0 = nowMs();
    await sequence.evaluateWithoutGeneratingNewTokens(prompt, { contextShift: noShift });
    const ppMs = nowMs() - t0;
    checkState(opt.prompt, "prompt");
    const perfPp = await readPerf();
    if (perfPp.promptTokens !== opt.prompt)
        throw new Error(`llama.cpp counted ${perfPp.promptTokens} prompt tokens in one call, expected ${opt.prompt} (prompt was not one batch)`);

    await sequence.clearHistory();
    await readPerf();
    t0 = nowMs();
    const it = sequence.evaluate(prompt, { temperature: 0, yieldEogToken: true, contextShift: noShift });
    let r = await it.next();
    const t1 = nowMs();
    if (r.done) throw new Error("evaluate() produced no first token");
    const perfFirst = await readPerf();
    const generated = [r.value];
    const t2 = nowMs();
    for (let i = 0; i < opt.gen; i++) {
        r = await it.next();
        if (r.done) throw new Error(`generation stopped after ${i} decode steps`);
        generated.push(r.value);
    }
    const t3 = nowMs();
    await it.return();
    const perfDecode = await readPerf();
    checkState(opt.prompt + opt.gen, "decode");
    if (perfDecode.evalRuns !== opt.gen) throw new Error(`llama.cpp counted ${perfDecode.evalRuns} 1-token decodes, expected ${opt.gen}`);
    return {
        ppMs, ppInternalMs: perfPp.promptMs,
        ttftMs: t1 - t0, ttftInternalPromptMs: perfFirst.promptMs,
        decodeMs: t3 - t2, decodeInternalMs: perfDecode.evalMs,
        generated,
    };
}

// One repetition straight on the N-API addon (internal objects of node-llama-cpp 3.22.1).
let addonSampler = null;
async function runAddon() {
    const ctx = context._ctx;
    const seqId = sequence._sequenceId;
    if (addonSampler == null) {
        addonSampler = new llama._bindings.AddonSampler(model._model);
        addonSampler.applyConfig(sequence._resolveSamplerConfig({ temperature: 0 }));
    }
    const sample = async (idx) => {
        const s = await ctx.sampleToken(idx, addonSampler);
        const tok = Array.isArray(s) ? s[0] : s;
        if (!Number.isInteger(tok) || tok < 0) throw new Error(`sampleToken returned ${JSON.stringify(s)}`);
        return tok;
    };
    await sequence.clearHistory();
    ctx.removeTokenCellsFromSequence(seqId, 0, context.contextSize);
    await readPerf();
    const t0 = nowMs();
    ctx.initBatch(opt.prompt);
    let idx = ctx.addToBatch(seqId, 0, Uint32Array.from(prompt), Uint32Array.of(opt.prompt - 1));
    await ctx.decodeBatch();
    let tok = await sample(idx[0]);
    const t1 = nowMs();
    const generated = [tok];
    const t2 = nowMs();
    for (let i = 0; i < opt.gen; i++) {
        ctx.initBatch(1);
        idx = ctx.addToBatch(seqId, opt.prompt + i, Uint32Array.of(tok), Uint32Array.of(0));
        await ctx.decodeBatch();
        tok = await sample(idx[0]);
        generated.push(tok);
    }
    const t3 = nowMs();
    const perf = await readPerf();
    ctx.removeTokenCellsFromSequence(seqId, 0, context.contextSize);
    if (perf.evalRuns !== opt.gen || perf.promptTokens !== opt.prompt)
        throw new Error(`llama.cpp counted ${perf.promptTokens} prompt tokens / ${perf.evalRuns} decodes, expected ${opt.prompt} / ${opt.gen}`);
    return { ttftMs: t1 - t0, ttftInternalPromptMs: perf.promptMs, decodeMs: t3 - t2, decodeInternalMs: perf.evalMs, generated };
}

const results = [];
const addonResults = [];
let addonError = null;
try {
    for (let w = 0; w < opt.warmup; w++) {
        await runApi();
        if (opt.addon) await runAddon().catch((e) => { addonError = e.message; });
    }
    for (let rep = 0; rep < opt.reps; rep++) {
        results.push(await runApi());
        if (opt.addon && addonError == null) {
            try {
                addonResults.push(await runAddon());
            } catch (e) {
                addonError = e.message;
            }
        }
    }
} catch (e) {
    fail(e.message);
}
if (addonError) process.stderr.write(`llama_cpp_bench: the addon-level loop failed (${addonError}); addon figures omitted\n`);
const memAfter = procStatusKb();
const load1 = loadavg();

// Greedy decoding is deterministic: every repetition (and the addon loop) must produce the same tokens.
const ref = JSON.stringify(results[0].generated);
const sameTokens = results.every((r) => JSON.stringify(r.generated) === ref)
    && addonResults.every((r) => JSON.stringify(r.generated) === ref);

const mapsText = fs.readFileSync("/proc/self/maps", "utf8");
const cpuVariant = [...new Set([...mapsText.matchAll(/\/(libggml-cpu-[\w-]+)\.so/g)].map((m) => m[1]))];
const logText = logLines.join("");
const faMatch = /Flash Attention (enabled|not supported)/.exec(logText);
const flashResolved = opt.flashAttn === "auto" ? (faMatch ? faMatch[1] === "enabled" : null) : opt.flashAttn === "on";
let llamaCommit = null;
try {
    const fd = fs.openSync(path.join(dest, "node_modules", "node-llama-cpp", "llama", "gitRelease.bundle"), "r");
    const buf = Buffer.alloc(200);
    fs.readSync(fd, buf, 0, 200, 0);
    fs.closeSync(fd);
    llamaCommit = /\n([0-9a-f]{40}) /.exec(buf.toString("latin1"))?.[1] ?? null;
} catch { /* not essential */ }
const nlcVersion = JSON.parse(fs.readFileSync(path.join(dest, "node_modules", "node-llama-cpp", "package.json"), "utf8")).version;

const stats = (xs) => ({ best: Math.min(...xs), median: median(xs) });
const P = opt.prompt, G = opt.gen;
const pp = stats(results.map((r) => r.ppMs));
const ppIn = stats(results.map((r) => r.ppInternalMs));
const ttft = stats(results.map((r) => r.ttftMs));
const dec = stats(results.map((r) => r.decodeMs));
const decIn = stats(results.map((r) => r.decodeInternalMs));
const out = {
    model: modelPath,
    model_bytes: fs.statSync(modelPath).size,
    model_name: meta.general?.name ?? null,
    file_type: meta.general?.file_type ?? null,
    n_vocab: nVocab,
    threads: opt.threads,
    prompt_tokens: P,
    gen_tokens: G,
    reps: opt.reps,
    warmup: opt.warmup,
    stat: "best = fastest repetition; *_median = median over reps",
    // public node-llama-cpp API
    pp_tok_s: r3(P / pp.best * 1000),
    pp_tok_s_median: r3(P / pp.median * 1000),
    ttft_ms: r3(ttft.best),
    ttft_ms_median: r3(ttft.median),
    decode_tok_s: r3(G / dec.best * 1000),
    decode_tok_s_median: r3(G / dec.median * 1000),
    // the same calls timed inside llama.cpp (llama_decode .. llama_synchronize)
    pp_tok_s_llama_internal: r3(P / ppIn.best * 1000),
    decode_tok_s_llama_internal: r3(G / decIn.best * 1000),
    decode_ms_per_token: r3(dec.best / G),
    decode_ms_per_token_llama_internal: r3(decIn.best / G),
    // binding overhead per token: median over reps of (wall - llama.cpp internal) / gen
    decode_overhead_ms_per_token: r3(median(results.map((r) => (r.decodeMs - r.decodeInternalMs) / G))),
    pp_overhead_ms_per_call: r3(median(results.map((r) => r.ppMs - r.ppInternalMs))),
    // thinnest node path: N-API addon calls only
    addon_ttft_ms: addonResults.length ? r3(Math.min(...addonResults.map((r) => r.ttftMs))) : null,
    addon_decode_tok_s: addonResults.length ? r3(G / Math.min(...addonResults.map((r) => r.decodeMs)) * 1000) : null,
    addon_decode_tok_s_median: addonResults.length ? r3(G / median(addonResults.map((r) => r.decodeMs)) * 1000) : null,
    addon_decode_overhead_ms_per_token: addonResults.length
        ? r3(median(addonResults.map((r) => (r.decodeMs - r.decodeInternalMs) / G))) : null,
    ...(lb ? {
        llama_bench_pp_tok_s: r3(lb.pp.best), llama_bench_pp_tok_s_median: r3(lb.pp.median),
        llama_bench_tg_tok_s: r3(lb.tg0.best), llama_bench_tg_tok_s_median: r3(lb.tg0.median),
        llama_bench_tg_at_depth_tok_s: r3(lb.tgD.best), llama_bench_tg_at_depth_tok_s_median: r3(lb.tgD.median),
        llama_bench: { exe: lb.exe, build_commit: lb.commit, threads: lb.threads, n_ubatch: lb.n_ubatch, poll: lb.poll,
            note: "native llama.cpp, persistent thread pool; tg on an empty cache and at depth = prompt" },
    } : {}),
    greedy_tokens_identical: sameTokens,
    first_generated: results[0].generated.slice(0, 8),
    rss_before_model_kb: memBeforeModel.VmRSS,
    hwm_before_model_kb: memBeforeModel.VmHWM,
    rss_after_kb: memAfter.VmRSS,
    peak_rss_kb: memAfter.VmHWM,
    rss_anon_after_kb: memAfter.RssAnon ?? null,
    rss_file_after_kb: memAfter.RssFile ?? null,
    model_share_kb: memAfter.VmHWM - memBeforeModel.VmRSS,
    n_ctx: context.contextSize,
    n_batch: opt.batch,
    n_ubatch: opt.batch,
    kv_type: opt.kvType,
    flash_attn: opt.flashAttn,
    flash_attn_resolved: flashResolved,
    context_shift: "impossible (context >= prompt + gen + 1; a shift throws; final length checked)",
    context_threads: context.currentThreads,
    thread_pinning: "none (node-llama-cpp sets no CPU mask; ggml creates its worker threads per graph compute)",
    mmap: true,
    cpu_backend: cpuVariant,
    system_info: llama.systemInfo,
    llama_cpp_release: llama.llamaCppRelease?.release ?? null,
    llama_cpp_commit: llamaCommit,
    node_llama_cpp: nlcVersion,
    build_type: llama.buildType,
    node: process.version,
    cpu: os.cpus()[0]?.model ?? null,
    nproc: os.cpus().length,
    nice: os.getPriority(),
    autogroup: (() => { try { return fs.readFileSync("/proc/self/autogroup", "utf8").trim(); } catch { return null; } })(),
    loadavg_start: load0,
    loadavg_end: load1,
    reps_detail: results.map((r, i) => ({
        pp_ms: r3(r.ppMs), pp_internal_ms: r3(r.ppInternalMs),
        ttft_ms: r3(r.ttftMs), decode_ms: r3(r.decodeMs), decode_internal_ms: r3(r.decodeInternalMs),
        addon_ttft_ms: r3(addonResults[i]?.ttftMs), addon_decode_ms: r3(addonResults[i]?.decodeMs),
        addon_decode_internal_ms: r3(addonResults[i]?.decodeInternalMs),
    })),
};
if (addonError) out.addon_error = addonError;
await context.dispose();
await model.dispose();
await llama.dispose();
process.stdout.write(JSON.stringify(out) + "\n");
