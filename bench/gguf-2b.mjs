// Writes the 2B-4T shape (synthetic weights) as GGUF TQ2_0 / TQ1_0 and times write, open and one layer's decode.
// Usage (after `pnpm --filter @halo/h1b-format build`): flock /tmp/heavy.lock node bench/gguf-2b.mjs [tq2_0|tq1_0 ...]
import { mkdirSync, statSync } from "node:fs";
import { synthModel, writeGguf, readGguf, TERNARY_ROLES } from "../packages/h1b-format/dist/index.js";

const dir = "/tmp/halo-bench";
mkdirSync(dir, { recursive: true });
const types = process.argv.slice(2).length > 0 ? process.argv.slice(2) : ["tq2_0", "tq1_0"];
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

for (const ternaryType of types) {
  const model = synthModel({ shape: "bitnet-2b-4t", activation: "relu2", seed: 0 });
  const path = `${dir}/synth-2b-${ternaryType}.gguf`;
  const t0 = performance.now();
  const report = await writeGguf(model, path, { ternaryType, embeddingType: "f16" });
  const writeS = (performance.now() - t0) / 1000;
  const opens = [];
  let layerMs = 0;
  for (let i = 0; i < 3; i++) {
    const t = performance.now();
    const m = readGguf(path);
    opens.push(performance.now() - t);
    if (i === 0) {
      const d = performance.now();
      for (const role of TERNARY_ROLES) {
        const w = m.layers[0][role];
        w.decodeRows(0, w.rows, new Int8Array(w.rows * w.cols));
      }
      layerMs = performance.now() - d;
    }
    m.close();
  }
  console.log(
    JSON.stringify({
      ternaryType,
      bytes: statSync(path).size,
      writeSeconds: +writeS.toFixed(1),
      openMsMedianOf3: +median(opens).toFixed(1),
      decodeLayer0TritsMs: +layerMs.toFixed(0),
      maxRssMiB: Math.round(process.resourceUsage().maxRSS / 1024),
      scaleRounding: report.scaleRounding,
      notes: report.notes,
    }),
  );
}
