// Fails when an error code exported by a package is missing from docs/errors.md.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { collectRegistries, root } from "./error-registries.mjs";

const doc = readFileSync(join(root, "docs", "errors.md"), "utf8");
let total = 0;
const missing = [];
for (const { pkg, codes } of await collectRegistries()) {
  for (const { code } of codes) {
    total++;
    if (!doc.includes(`\`${code}\``)) missing.push(`${pkg}: ${code}`);
  }
}
if (missing.length > 0) {
  console.error(`docs/errors.md lacks ${missing.length} code(s):\n  ${missing.join("\n  ")}\nRun: node scripts/gen-errors-doc.mjs`);
  console.log(`${total - missing.length} passed, ${missing.length} failed`);
  process.exit(1);
}
console.log(`error codes documented: ${total} passed, 0 failed`);
