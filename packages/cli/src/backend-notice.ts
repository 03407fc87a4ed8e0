// One stderr line per backend that loadModel passed over: a fallback to a slower backend is never silent.
import type { Engine } from "@halo/engine";
import type { CommandContext } from "./context.js";

/**
 * Writes `halo <command>: running on the <backend> backend; <name> was not used: <reason and fix>` to stderr for
 * each backend the engine skipped (nothing when the first choice runs). Returns the lines written.
 *
 * @example
 * ```ts
 * const engine = await loadModel(path);
 * writeBackendNotice("run", engine, ctx);
 * ```
 */
export function writeBackendNotice(command: string, engine: Pick<Engine, "backend" | "skippedBackends">, ctx: CommandContext): string[] {
  const slower = engine.backend === "reference" ? " (the TypeScript reference backend: correct but far slower)" : "";
  const lines = engine.skippedBackends.map((s) => `halo ${command}: running on the ${engine.backend} backend${slower}; the ${s.name} backend was not used: ${s.reason}\n`);
  for (const line of lines) ctx.stderr.write(line);
  return lines;
}
