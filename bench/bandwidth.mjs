// Compiles bench/bandwidth.c and prints the median 2-thread (or argv) DRAM read bandwidth as JSON.
// Usage: flock /tmp/heavy.lock node bench/bandwidth.mjs [threads]
import { execFileSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** Builds the probe once into /tmp/halo-bench and runs it; returns { threads, readGBps, ... }. */
export function measureBandwidth(threads = 2) {
  const here = dirname(fileURLToPath(import.meta.url));
  mkdirSync("/tmp/halo-bench", { recursive: true });
  const binary = "/tmp/halo-bench/bandwidth";
  execFileSync("gcc", ["-O3", "-march=native", "-fopenmp", join(here, "bandwidth.c"), "-o", binary]);
  return JSON.parse(execFileSync(binary, [String(threads)], { encoding: "utf8" }));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) console.log(JSON.stringify(measureBandwidth(Number(process.argv[2] ?? 2))));
