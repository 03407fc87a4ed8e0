// file-change.mjs: a model whose weights are mapped from a .halo file, stepped while that file is truncated, rewritten
// in place or replaced by rename. Run by src/file-change.test.ts in a child process: a SIGBUS here is a failed test
// there, not a dead test runner. Usage: node test/file-change.mjs <truncate|shrink|overwrite|rename|during> <dir>.
// `during` truncates the file while a 500-token step runs on the native thread (that step reads a page past the new
// end and the SIGBUS handler answers it, unless the truncation lands before or after the step: timing decides which
// check catches it, never whether one does).
// Prints one JSON line: { mappedBytes, before, after: [outcome, outcome], same } where an outcome is
// { ok: true, logits0 } or { ok: false, code, message }.
import { readFileSync, renameSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { readHalo, synthModel, writeHalo } from "@halo/h1b-format";
import { cpuPacking, createBackend } from "../dist/index.js";

const [mode, dir] = process.argv.slice(2);
const path = join(dir, `${mode}.halo`);
// Stored in the kernels' own layout (halo-i2x256, the cpu codec), so the ternary weights are mapped from the file.
const codecs = [cpuPacking];
await writeHalo(synthModel({ shape: "tiny", seed: 1 }), path, { codecs });
const other = join(dir, `${mode}-other.halo`);
await writeHalo(synthModel({ shape: "tiny", seed: 2 }), other, { codecs });

const model = await createBackend({ threads: 2 }).loadModel(readHalo(path, { codecs }), { contextLength: 512 });
const { mappedBytes } = model.nativeInfo();
const slot = model.allocateSequence();
const batch = { tokens: Int32Array.of(5, 9, 2), positions: Int32Array.of(0, 1, 2), slots: Int32Array.of(slot, slot, slot), logitRows: Int32Array.of(2) };
// Each step prefills the slot from position 0 again, so an unchanged model gives the same logits every time.
async function step() {
  model.truncateSequence(slot, 0);
  try {
    return { ok: true, logits: await model.step(batch) };
  } catch (error) {
    return { ok: false, code: error.code, message: error.message };
  }
}

const before = await step();
const size = readFileSync(path).byteLength;
let inFlight = null;
if (mode === "during") {
  const n = 500;
  model.truncateSequence(slot, 0);
  const long = {
    tokens: Int32Array.from({ length: n }, (_, i) => i % 200),
    positions: Int32Array.from({ length: n }, (_, i) => i),
    slots: new Int32Array(n).fill(slot),
    logitRows: Int32Array.of(n - 1),
  };
  const pending = model.step(long).then(
    (logits) => ({ ok: true, logits }),
    (error) => ({ ok: false, code: error.code, message: error.message }),
  );
  await new Promise((resolve) => setTimeout(resolve, 2));
  truncateSync(path, 0);
  inFlight = await pending;
} else if (mode === "truncate") truncateSync(path, 0);
else if (mode === "shrink") truncateSync(path, Math.floor(size / 2));
else if (mode === "overwrite") {
  const bytes = readFileSync(other);
  if (bytes.byteLength !== size) throw new Error(`the two tiny models differ in size (${size} vs ${bytes.byteLength}): the overwrite case needs equal sizes`);
  writeFileSync(path, bytes); // same path, same inode, same size: O_TRUNC then write, as cp does
} else if (mode === "rename") renameSync(other, path);
else throw new Error(`unknown mode ${mode}`);
const after = inFlight === null ? [await step(), await step()] : [inFlight, await step()];

const same = before.ok && after.every((o) => o.ok && o.logits.length === before.logits.length && o.logits.every((v, i) => Object.is(v, before.logits[i])));
const outcome = (o) => (o.ok ? { ok: true, logits0: o.logits[0] } : { ok: false, code: o.code, message: o.message });
model.dispose();
console.log(JSON.stringify({ mappedBytes, before: outcome(before), after: after.map(outcome), same }));
