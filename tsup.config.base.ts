// Shared tsup settings: ESM + .d.ts + sourcemaps for every package.
import type { Options } from "tsup";

export function packageBuild(entry: Record<string, string> = { index: "src/index.ts" }): Options {
  return {
    entry,
    format: ["esm"],
    dts: true,
    sourcemap: true,
    clean: true,
    target: "node20",
    platform: "node",
    splitting: false,
  };
}
