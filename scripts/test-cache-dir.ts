// Vitest global setup for every package: model loads verify weights once and remember the file in $HALO_CACHE_DIR,
// so the tests get one private cache dir per run (removed afterwards) and never write into the user's ~/.cache/halo.
// A test that needs its own cache still sets HALO_CACHE_DIR or passes a cacheDir itself.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export default function setup(): () => void {
  if (process.env["HALO_CACHE_DIR"] !== undefined) return () => {};
  const dir = mkdtempSync(join(tmpdir(), "halo-test-cache-"));
  process.env["HALO_CACHE_DIR"] = dir;
  return () => rmSync(dir, { recursive: true, force: true });
}
