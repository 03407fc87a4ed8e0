// Exports a train.py checkpoint with halo's own writers: a model checkpoint becomes a Hugging Face BitNet snapshot laid
// out as microsoft/bitnet-b1.58-2B-4T ships (packed uint8 weights, bf16 weight_scale, bf16 everything else), then a
// .halo converted FROM that snapshot (so both hold the same numbers); a Medusa checkpoint becomes a .h1b-medusa file
// (fp16). Every output is reopened with @halo/h1b-format's readers and compared with the checkpoint before it returns.
//
// Usage, from the repository root (checkpoint format: checkpoint.json + checkpoint.bin, written by train.py):
//   node packages/model-tiny/train/export.mjs --checkpoint <dir> --tokenizer-dir <dir> --hf-out <dir> --halo-out <file.halo> --name <name>
//   node packages/model-tiny/train/export.mjs --medusa <dir> --out <file.h1b-medusa>
// --tokenizer-dir holds tokenizer.json and tokenizer_config.json (with the chat template), as train/tokenizer.mjs writes them.
import { readFileSync, readdirSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { parseArgs } from "node:util";
import {
  NORM_ROLES,
  TERNARY_ROLES,
  bf16ToF32,
  convertModel,
  f16ToF32,
  f32ToBf16,
  f32ToF16,
  floatTensor,
  normLength,
  openModel,
  readMedusa,
  ternaryShape,
  ternaryTensor,
  validateConfig,
  writeHfSnapshot,
  writeMedusa,
} from "@halo/h1b-format";

const USAGE = `usage:
  node packages/model-tiny/train/export.mjs --checkpoint <dir> --tokenizer-dir <dir> --hf-out <dir> --halo-out <file.halo> --name <name>
  node packages/model-tiny/train/export.mjs --medusa <dir> --out <file.h1b-medusa>`;

const CHECKPOINT_FORMAT = "halo-train-checkpoint";
const CHECKPOINT_VERSION = 1;
const DTYPE_BYTES = { f32: 4, i8: 1 };
/** The config keys train.py writes for a model checkpoint (design: packages/model-tiny/train/train.py MAIN_CONFIG). */
const MODEL_CONFIG_KEYS = [
  "hiddenSize",
  "intermediateSize",
  "numLayers",
  "numHeads",
  "numKvHeads",
  "headDim",
  "vocabSize",
  "maxPositionEmbeddings",
  "ropeTheta",
  "rmsNormEps",
  "activation",
  "tiedEmbeddings",
  "bosTokenId",
  "eosTokenIds",
];
const MEDUSA_HEADS = 4;
/** The largest finite fp16 value: Medusa weights beyond it cannot be stored. */
const F16_MAX = 65504;

class ExportError extends Error {}

function fail(message) {
  throw new ExportError(message);
}

function mib(bytes) {
  return `${(bytes / 2 ** 20).toFixed(2)} MiB (${bytes} bytes)`;
}

function readJson(path, what) {
  let text;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    fail(`cannot read ${what} ${path}: ${error.code ?? error.message}`);
  }
  try {
    return { text, value: JSON.parse(text) };
  } catch (error) {
    fail(`${what} ${path} is not valid JSON: ${error.message}`);
  }
}

/** checkpoint.json + checkpoint.bin, checked: the format, every tensor's dtype, shape, byte range, codes and scale. */
function readCheckpoint(dir, kind) {
  const { value: manifest } = readJson(join(dir, "checkpoint.json"), "checkpoint manifest");
  if (manifest.format !== CHECKPOINT_FORMAT || manifest.version !== CHECKPOINT_VERSION) {
    fail(
      `${dir}/checkpoint.json: expected format "${CHECKPOINT_FORMAT}" version ${CHECKPOINT_VERSION}, found ${JSON.stringify(manifest.format)} version ${manifest.version}`,
    );
  }
  if (manifest.kind !== kind) fail(`${dir}/checkpoint.json: expected kind "${kind}", found ${JSON.stringify(manifest.kind)}`);
  const bin = readFileSync(join(dir, "checkpoint.bin"));
  const tensors = new Map();
  for (const [name, entry] of Object.entries(manifest.tensors ?? {})) {
    const where = `${dir}/checkpoint.json tensor ${name}`;
    const bytesPer = DTYPE_BYTES[entry.dtype];
    if (bytesPer === undefined) fail(`${where}: dtype must be f32 or i8, found ${JSON.stringify(entry.dtype)}`);
    if (!Array.isArray(entry.shape) || entry.shape.length === 0 || !entry.shape.every((d) => Number.isSafeInteger(d) && d > 0)) {
      fail(`${where}: shape must be positive whole numbers, found ${JSON.stringify(entry.shape)}`);
    }
    const count = entry.shape.reduce((a, b) => a * b, 1);
    if (entry.byteLength !== count * bytesPer) fail(`${where}: byteLength ${entry.byteLength} ≠ ${count} elements × ${bytesPer}`);
    if (!Number.isSafeInteger(entry.offset) || entry.offset < 0 || entry.offset + entry.byteLength > bin.byteLength) {
      fail(`${where}: bytes [${entry.offset}, ${entry.offset + entry.byteLength}) lie outside checkpoint.bin (${bin.byteLength} bytes)`);
    }
    // A copy: aligned for the typed-array views below, independent of the file buffer.
    const bytes = new Uint8Array(bin.subarray(entry.offset, entry.offset + entry.byteLength));
    if (entry.dtype === "i8") {
      const codes = new Int8Array(bytes.buffer);
      for (let i = 0; i < codes.length; i++) {
        if (codes[i] < -1 || codes[i] > 1) fail(`${where}: code ${codes[i]} at element ${i} is not in {-1, 0, 1}`);
      }
      if (!(Number.isFinite(entry.scale) && entry.scale > 0)) fail(`${where}: a ternary tensor needs a positive finite scale, found ${entry.scale}`);
      if (Math.fround(entry.scale) !== entry.scale) fail(`${where}: scale ${entry.scale} is not a float32 value`);
    } else {
      if (entry.scale !== undefined) fail(`${where}: an f32 tensor has no scale, found ${entry.scale}`);
      const values = new Float32Array(bytes.buffer);
      for (let i = 0; i < values.length; i++) if (!Number.isFinite(values[i])) fail(`${where}: element ${i} is ${values[i]}`);
    }
    tensors.set(name, { ...entry, bytes });
  }
  return { manifest, tensors };
}

/** Takes a tensor out of the checkpoint's map (so unused ones can be reported), checking dtype and shape. */
function take(tensors, name, dtype, shape) {
  const tensor = tensors.get(name);
  if (tensor === undefined) fail(`checkpoint has no tensor ${name} (expected ${dtype} ${JSON.stringify(shape)})`);
  if (tensor.dtype !== dtype || JSON.stringify(tensor.shape) !== JSON.stringify(shape)) {
    fail(`checkpoint tensor ${name}: expected ${dtype} ${JSON.stringify(shape)}, found ${tensor.dtype} ${JSON.stringify(tensor.shape)}`);
  }
  tensors.delete(name);
  return tensor;
}

function noneLeft(tensors) {
  if (tensors.size > 0) fail(`checkpoint tensors the export does not know: ${[...tensors.keys()].join(", ")}`);
}

function modelConfig(raw) {
  const keys = Object.keys(raw ?? {}).sort();
  const expected = [...MODEL_CONFIG_KEYS].sort();
  if (JSON.stringify(keys) !== JSON.stringify(expected)) fail(`checkpoint config keys: expected ${expected.join(", ")}, found ${keys.join(", ")}`);
  return validateConfig({ architecture: "bitnet", ...raw, eosTokenIds: [...raw.eosTokenIds], hadamardRotated: false }, "checkpoint.json config");
}

/** tokenizer.json + tokenizer_config.json as text, their chat template, checked against the config's vocabulary and special ids. */
function readTokenizer(dir, config) {
  const tokenizer = readJson(join(dir, "tokenizer.json"), "tokenizer");
  const tokenizerConfig = readJson(join(dir, "tokenizer_config.json"), "tokenizer config");
  const chatTemplate = tokenizerConfig.value.chat_template;
  if (typeof chatTemplate !== "string" || chatTemplate.length === 0) fail(`${dir}/tokenizer_config.json has no chat_template string`);
  const vocab = tokenizer.value.model?.vocab;
  const added = tokenizer.value.added_tokens;
  if (typeof vocab !== "object" || vocab === null || !Array.isArray(added)) fail(`${dir}/tokenizer.json: expected model.vocab and added_tokens`);
  const ids = new Set([...Object.values(vocab), ...added.map((t) => t.id)]);
  for (let id = 0; id < config.vocabSize; id++) if (!ids.has(id)) fail(`${dir}/tokenizer.json has no token with id ${id} (vocabSize ${config.vocabSize})`);
  if (ids.size !== config.vocabSize) fail(`${dir}/tokenizer.json has ${ids.size} token ids; the checkpoint's vocabSize is ${config.vocabSize}`);
  for (const id of [config.bosTokenId, ...config.eosTokenIds]) {
    if (!added.some((t) => t.id === id && t.special === true)) fail(`${dir}/tokenizer.json: BOS/EOS id ${id} is not a special added token`);
  }
  return { tokenizerJson: tokenizer.text, tokenizerConfigJson: tokenizerConfig.text, chatTemplate };
}

/** The checkpoint as an in-memory HaloModel: int8 ternary codes with one f32 scale per matrix, f32 floats. */
function checkpointModel(checkpointDir, tokenizerDir, name) {
  const { manifest, tensors } = readCheckpoint(checkpointDir, "model");
  const config = modelConfig(manifest.config);
  const tokenizer = readTokenizer(tokenizerDir, config);
  const codes = new Map(); // name → { codes: Int8Array, scale }
  const f32 = (tensorName, shape) => floatTensor(tensorName, "f32", shape, { data: take(tensors, tensorName, "f32", shape).bytes });
  const layers = [];
  for (let l = 0; l < config.numLayers; l++) {
    const layer = {};
    for (const role of NORM_ROLES) layer[role] = f32(`blk.${l}.${role}`, [normLength(config, role)]);
    for (const role of TERNARY_ROLES) {
      const [rows, cols] = ternaryShape(config, role);
      const tensor = take(tensors, `blk.${l}.${role}`, "i8", [rows, cols]);
      codes.set(`blk.${l}.${role}`, { codes: new Int8Array(tensor.bytes.buffer), scale: tensor.scale });
      layer[role] = ternaryTensor(`blk.${l}.${role}`, "int8", rows, cols, { kind: "tensor", value: tensor.scale }, { data: tensor.bytes });
    }
    layers.push(layer);
  }
  const embeddingShape = [config.vocabSize, config.hiddenSize];
  const tokenEmbedding = f32("token_embd", embeddingShape);
  const outputNorm = f32("output_norm", [config.hiddenSize]);
  const lmHead = config.tiedEmbeddings ? null : f32("output", embeddingShape);
  noneLeft(tensors);
  const training = manifest.training ?? {};
  const metadata = {
    "general.name": name,
    "halo.trained_by": "packages/model-tiny/train/train.py (halo repository)",
    "halo.training": JSON.stringify(training),
  };
  const model = {
    config,
    tokenEmbedding,
    outputNorm,
    lmHead,
    layers,
    tokenizer: { kind: "hf-json", tokenizerJson: tokenizer.tokenizerJson, tokenizerConfigJson: tokenizer.tokenizerConfigJson },
    chatTemplate: tokenizer.chatTemplate,
    metadata,
    source: { format: "halo", version: null, path: relative(process.cwd(), checkpointDir) || "." },
    close() {},
  };
  return { model, codes, training };
}

function sameConfig(a, b, what) {
  for (const key of Object.keys(a)) {
    if (JSON.stringify(a[key]) !== JSON.stringify(b[key]))
      fail(`${what}: config.${key} is ${JSON.stringify(b[key])}, the checkpoint's is ${JSON.stringify(a[key])}`);
  }
  if (Object.keys(a).length !== Object.keys(b).length) fail(`${what}: config keys differ (${Object.keys(b).join(", ")})`);
}

/** Bit-exact float comparison of a reopened tensor against the checkpoint's values rounded to bf16. */
function sameBf16(reopened, source, what) {
  const expected = source.toFloat32();
  const actual = reopened.toFloat32();
  if (actual.length !== expected.length) fail(`${what}: ${actual.length} values, expected ${expected.length}`);
  for (let i = 0; i < expected.length; i++) {
    const want = bf16ToF32(f32ToBf16(expected[i]));
    if (!Object.is(actual[i], want)) fail(`${what}[${i}] is ${actual[i]}, expected bf16(${expected[i]}) = ${want}`);
  }
}

/** Every ternary code and scale, every float and the tokenizer of a reopened file against the checkpoint. */
function verifyAgainstCheckpoint(reopened, source, codes, what) {
  sameConfig(source.config, reopened.config, what);
  let checkedCodes = 0;
  reopened.layers.forEach((layer, l) => {
    for (const role of TERNARY_ROLES) {
      const tensor = layer[role];
      const { codes: want, scale } = codes.get(`blk.${l}.${role}`);
      const got = new Int8Array(tensor.rows * tensor.cols);
      tensor.decodeRows(0, tensor.rows, got);
      for (let i = 0; i < want.length; i++) {
        if (got[i] !== want[i]) fail(`${what} blk.${l}.${role}: code ${i} is ${got[i]}, the checkpoint's is ${want[i]}`);
      }
      checkedCodes += want.length;
      const scaleWant = bf16ToF32(f32ToBf16(scale));
      if (tensor.scale.kind !== "tensor" || tensor.scale.value !== scaleWant) {
        fail(`${what} blk.${l}.${role}: scale ${JSON.stringify(tensor.scale)}, expected bf16(${scale}) = ${scaleWant}`);
      }
    }
    for (const role of NORM_ROLES) sameBf16(layer[role], source.layers[l][role], `${what} blk.${l}.${role}`);
  });
  sameBf16(reopened.tokenEmbedding, source.tokenEmbedding, `${what} token_embd`);
  sameBf16(reopened.outputNorm, source.outputNorm, `${what} output_norm`);
  if (source.lmHead !== null) sameBf16(reopened.lmHead, source.lmHead, `${what} output`);
  if (reopened.tokenizer?.kind !== "hf-json" || reopened.tokenizer.tokenizerJson !== source.tokenizer.tokenizerJson) fail(`${what}: tokenizer.json differs`);
  if (reopened.chatTemplate !== source.chatTemplate) fail(`${what}: chat template differs`);
  return checkedCodes;
}

async function exportModel(values) {
  for (const key of ["checkpoint", "tokenizer-dir", "hf-out", "halo-out", "name"]) if (values[key] === undefined) fail(`--${key} is required\n${USAGE}`);
  const { model, codes, training } = checkpointModel(values.checkpoint, values["tokenizer-dir"], values.name);
  const hfOut = values["hf-out"];
  const haloOut = values["halo-out"];

  // 1. The Hugging Face snapshot, as Microsoft ships 2B-4T: packed uint8 weights + bf16 weight_scale, bf16 embedding and
  //    norms, config.json, generation_config.json, tokenizer.json, tokenizer_config.json (with the chat template).
  const hf = await writeHfSnapshot(model, hfOut, { variant: "packed", scaleDtype: "bf16", floatDtype: "bf16" });
  console.log(`wrote ${hfOut}/ (Hugging Face BitNet snapshot, packed, bf16):`);
  for (const file of readdirSync(hfOut).sort()) {
    const mark = hf.files.includes(file) ? "" : "   (not written by this export: left from before)";
    console.log(`  ${file.padEnd(24)} ${mib(statSync(join(hfOut, file)).size)}${mark}`);
  }

  // 2. The .halo, converted from the snapshot just written (not from the checkpoint), so it holds the snapshot's
  //    numbers: bf16-rounded scales and floats. Packing: no codecs are passed, so convertModel stores
  //    HALO_DEFAULT_PACKING (halo-v2), the portable layout `h1b convert` writes and every backend loads; `halo convert`
  //    would instead store the best backend installed on the exporting machine (halo-i2x256 with @halo/kernels-cpu),
  //    which would make the shipped file depend on where it was exported.
  const snapshot = await openModel(hfOut);
  try {
    const report = await convertModel({ ...snapshot, metadata: { ...snapshot.metadata, ...model.metadata } }, haloOut, { format: "halo" });
    if (report.lossy) fail(`converting ${hfOut} to .halo was lossy: ${report.changes.join("; ")}`);
    console.log(`wrote ${haloOut} (${mib(report.bytes)}); changes from the snapshot: ${report.changes.join("; ") || "none"}`);
  } finally {
    snapshot.close();
  }

  // 3. Reopen both and compare them with the checkpoint.
  for (const [path, what] of [
    [hfOut, "snapshot"],
    [haloOut, ".halo"],
  ]) {
    const reopened = await openModel(path);
    try {
      const checked = verifyAgainstCheckpoint(reopened, model, codes, `${what} ${path}`);
      if (what === ".halo" && reopened.metadata["general.name"] !== values.name) fail(`${path}: general.name is ${reopened.metadata["general.name"]}`);
      console.log(`verified ${path}: config, ${checked} ternary codes, scales and floats (= checkpoint rounded to bf16), tokenizer, chat template`);
    } finally {
      reopened.close();
    }
  }
  const { steps, tokens, finalHeldoutLoss } = training;
  console.log(
    `${values.name}: ${model.config.numLayers} layers, hidden ${model.config.hiddenSize}; training: ${steps} steps, ${tokens} tokens, held-out loss ${finalHeldoutLoss}`,
  );
}

async function exportMedusa(values) {
  if (values.out === undefined) fail(`--out is required with --medusa\n${USAGE}`);
  const { manifest, tensors } = readCheckpoint(values.medusa, "medusa");
  const hidden = manifest.config?.hiddenSize;
  if (!Number.isSafeInteger(hidden) || hidden <= 0)
    fail(`${values.medusa}/checkpoint.json: config.hiddenSize must be a positive whole number, found ${hidden}`);
  if (manifest.config.numHeads !== MEDUSA_HEADS)
    fail(`${values.medusa}/checkpoint.json: config.numHeads must be ${MEDUSA_HEADS}, found ${manifest.config.numHeads}`);
  const heads = [];
  const rounded = [];
  let maxAbsError = 0;
  for (let i = 0; i < MEDUSA_HEADS; i++) {
    const head = {};
    for (const [key, part] of [
      ["wIn", "w_in"],
      ["wOut", "w_out"],
    ]) {
      const name = `medusa.${i}.${part}`;
      const values32 = new Float32Array(take(tensors, name, "f32", [hidden, hidden]).bytes.buffer);
      // The format stores fp16 only: round (to nearest even) here, refusing values fp16 cannot hold at all.
      const half = new Uint16Array(values32.length);
      const back = new Float32Array(values32.length);
      for (let j = 0; j < values32.length; j++) {
        if (Math.abs(values32[j]) > F16_MAX) fail(`${name}[${j}] = ${values32[j]} is beyond fp16's range (±${F16_MAX})`);
        half[j] = f32ToF16(values32[j]);
        back[j] = f16ToF32(half[j]);
        maxAbsError = Math.max(maxAbsError, Math.abs(back[j] - values32[j]));
      }
      head[key] = floatTensor(name, "f16", [hidden, hidden], { data: new Uint8Array(half.buffer) });
      rounded.push({ name, key, head: i, values: back });
    }
    heads.push(head);
  }
  noneLeft(tensors);
  await writeMedusa({ hiddenDim: hidden, heads }, values.out);
  console.log(
    `wrote ${values.out} (${mib(statSync(values.out).size)}): ${MEDUSA_HEADS} heads, hidden ${hidden}, fp16 (largest rounding change ${maxAbsError.toExponential(2)})`,
  );
  const reopened = readMedusa(values.out, { hiddenDim: hidden });
  try {
    for (const { name, key, head, values: want } of rounded) {
      const got = reopened.heads[head][key].toFloat32();
      for (let j = 0; j < want.length; j++) if (!Object.is(got[j], want[j])) fail(`${values.out} ${name}[${j}] is ${got[j]}, expected fp16 ${want[j]}`);
    }
  } finally {
    reopened.close();
  }
  console.log(`verified ${values.out}: every weight equals the checkpoint's rounded to fp16`);
}

async function main() {
  let parsed;
  try {
    parsed = parseArgs({
      options: {
        checkpoint: { type: "string" },
        "tokenizer-dir": { type: "string" },
        "hf-out": { type: "string" },
        "halo-out": { type: "string" },
        name: { type: "string" },
        medusa: { type: "string" },
        out: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    });
  } catch (error) {
    fail(`${error.message}\n${USAGE}`);
  }
  const { values } = parsed;
  if (values.help) {
    console.log(USAGE);
    return;
  }
  if (values.medusa !== undefined) {
    const extra = ["checkpoint", "tokenizer-dir", "hf-out", "halo-out", "name"].filter((key) => values[key] !== undefined);
    if (extra.length > 0) fail(`--medusa takes only --out; also given: ${extra.map((k) => `--${k}`).join(", ")}\n${USAGE}`);
    await exportMedusa(values);
  } else {
    if (values.out !== undefined) fail(`--out goes with --medusa; a model export takes --hf-out and --halo-out\n${USAGE}`);
    await exportModel(values);
  }
}

main().catch((error) => {
  // Checkpoint and argument problems are ours (ExportError); anything else (a HaloError from a writer or reader) is
  // printed with its code.
  console.error(`export: ${error instanceof ExportError ? error.message : `${error.code ?? error.name}: ${error.message}`}`);
  process.exitCode = 1;
});
