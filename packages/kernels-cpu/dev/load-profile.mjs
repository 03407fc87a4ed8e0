// dev/load-profile.mjs: where a CPU-backend model load goes (file reads, JS decode, native packing, embedding, huge pages).
// Usage (after `pnpm --filter @halo/kernels-cpu build`; wrap in `flock /tmp/heavy.lock` on the shared machine):
//   node dev/load-profile.mjs [/tmp/halo-bench/bitnet-2b-4t.halo] [threads=2] [repeats=1]
// Prints one JSON object: each phase alone, then whole loads through the native fast path (raw bytes()),
// through the decodeRows path (the same tensors with their packing renamed), the fast path without huge pages, and
// the fast path with every tensor's bytes read beforehand (what is left is native: packing, copies, page faults).
import { readHalo } from "@halo/h1b-format";
import { createBackend } from "../dist/index.js";

const path = process.argv[2] ?? "/tmp/halo-bench/bitnet-2b-4t.halo";
const threads = Number(process.argv[3] ?? 2);
const repeats = Number(process.argv[4] ?? 1);
const KEYS = ["q", "k", "v", "o", "gate", "up", "down"];
const now = () => performance.now();
const round = (ms) => Math.round(ms);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const t0 = now();
const weights = readHalo(path);
const openMs = now() - t0;
const ternary = weights.layers.flatMap((layer) => KEYS.map((key) => layer[key]));
const packings = [...new Set(ternary.map((t) => t.packing))];
const ternaryBytes = ternary.reduce((n, t) => n + t.bytes().byteLength, 0);

function phase(fn) {
  const times = [];
  for (let i = 0; i < repeats; i++) {
    const start = now();
    fn();
    times.push(now() - start);
  }
  return round(median(times));
}

let sink = 0;
// 1. Reading every ternary tensor's bytes from the ByteSource (a fileSource reads into a fresh buffer).
const readTernaryMs = phase(() => {
  for (const t of ternary) sink += t.bytes().byteLength;
});
// 2. JS decodeRows of every ternary tensor into a 4 MiB int8 staging buffer (what the old loader did; reads included).
const decodeTernaryMs = phase(() => {
  const staging = new Int8Array(4 << 20);
  for (const t of ternary) {
    const chunk = Math.max(1, Math.floor(staging.length / t.cols));
    for (let r = 0; r < t.rows; r += chunk) {
      const n = Math.min(chunk, t.rows - r);
      t.decodeRows(r, n, staging.subarray(0, n * t.cols));
    }
    sink += staging[0];
  }
});
// 3. Embedding (and untied head) bytes, plus every norm decoded to f32.
const floatsMs = phase(() => {
  sink += weights.tokenEmbedding.bytes().byteLength;
  if (weights.lmHead !== null) sink += weights.lmHead.bytes().byteLength;
  sink += weights.outputNorm.toFloat32().length;
  for (const layer of weights.layers) for (const n of [layer.attnNorm, layer.attnSubNorm, layer.ffnNorm, layer.ffnSubNorm]) sink += n.toFloat32().length;
});

/** The same weights with every ternary packing renamed, so the loader takes the decodeRows path. */
function viaDecodeRows(w) {
  const wrap = (t) => ({
    rows: t.rows,
    cols: t.cols,
    packing: `${t.packing} (via decodeRows)`,
    scale: t.scale,
    bytes: () => t.bytes(),
    decodeRows: (start, count, out) => t.decodeRows(start, count, out),
  });
  return { ...w, layers: w.layers.map((layer) => ({ ...layer, ...Object.fromEntries(KEYS.map((k) => [k, wrap(layer[k])])) })) };
}

/** The same weights with every tensor's bytes read once beforehand: a load then costs only the native work. */
function preread(w) {
  const cache = (t) => {
    const bytes = t.bytes();
    return Object.assign(Object.create(Object.getPrototypeOf(t)), t, {
      bytes: () => bytes,
      packing: t.packing,
      rows: t.rows,
      cols: t.cols,
      scale: t.scale,
      dtype: t.dtype,
      shape: t.shape,
      decodeRows: (...a) => t.decodeRows(...a),
      toFloat32: () => t.toFloat32(),
    });
  };
  return {
    ...w,
    tokenEmbedding: cache(w.tokenEmbedding),
    lmHead: w.lmHead === null ? null : cache(w.lmHead),
    layers: w.layers.map((layer) => ({ ...layer, ...Object.fromEntries(KEYS.map((k) => [k, cache(layer[k])])) })),
  };
}

async function load(w, options) {
  const times = [];
  let info;
  for (let i = 0; i < repeats; i++) {
    const start = now();
    const model = await createBackend({ threads, ...options }).loadModel(w, { contextLength: 128 });
    times.push(now() - start);
    info = model.nativeInfo();
    model.dispose();
  }
  return { ms: round(median(times)), all: times.map(round), arenaBytes: info.arenaBytes, hugePages: info.hugePages };
}

const fast = await load(weights, {});
const fastNoHuge = await load(weights, { hugePages: false });
const decoded = await load(viaDecodeRows(weights), {});
const nativeOnly = await load(preread(weights), {});
weights.close?.();
console.log(
  JSON.stringify(
    {
      path,
      threads,
      repeats,
      packings,
      ternaryBytes,
      embeddingDtype: weights.tokenEmbedding.dtype,
      phases: { openMs: round(openMs), readTernaryMs, decodeTernaryMs, floatsMs },
      loadFastPath: fast,
      loadFastPathNoHugePages: fastNoHuge,
      loadDecodeRowsPath: decoded,
      loadFastPathBytesPreread: nativeOnly,
      sink,
    },
    null,
    2,
  ),
);
