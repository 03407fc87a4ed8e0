// Collects every package's error-code registry (objects made by defineErrorCodes) from built dist/.
import { readdirSync, existsSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

/** @returns {Promise<Array<{pkg: string, name: string, codes: Array<{code: string, description: string}>}>>} */
export async function collectRegistries() {
  const out = [];
  for (const dir of readdirSync(join(root, "packages")).sort()) {
    const entry = join(root, "packages", dir, "dist", "index.js");
    if (!existsSync(entry)) continue;
    const mod = await import(pathToFileURL(entry).href);
    for (const [name, value] of Object.entries(mod)) {
      if (value && typeof value === "object" && typeof value.describe === "function" && name.endsWith("ErrorCode")) {
        out.push({ pkg: `@halo/${dir}`, name, codes: value.describe() });
      }
    }
  }
  return out;
}
export { root };
