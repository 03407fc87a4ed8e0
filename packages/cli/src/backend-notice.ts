// One stderr line per backend that loadModel passed over: a fallback to a slower backend is never silent.
import type { BackendOptions, Engine } from "@halo/engine";
import type { CommandContext } from "./context.js";

/**
 * Writes `halo <command>: running on the <backend> backend; <name> was not used: <reason and fix>` to stderr for
 * each backend the engine skipped (nothing when the first choice runs), and one line for each backend whose
 * options were given (`--threads`, `--lm-head`, `--backend-option`) but which does not run, so an option that had
 * no effect is never silent. Returns the lines written.
 *
 * @example
 * ```ts
 * const engine = await loadModel(path, { backendOptions: { cpu: { threads: 4 } } });
 * writeBackendNotice("run", engine, ctx, { cpu: { threads: 4 } });
 * ```
 */
export function writeBackendNotice(
  command: string,
  engine: Pick<Engine, "backend" | "skippedBackends">,
  ctx: CommandContext,
  backendOptions: BackendOptions = {},
): string[] {
  const slower = engine.backend === "reference" ? " (the TypeScript reference backend: correct but far slower)" : "";
  const lines = engine.skippedBackends.map((s) => `halo ${command}: running on the ${engine.backend} backend${slower}; the ${s.name} backend was not used: ${s.reason}\n`);
  for (const [name, options] of Object.entries(backendOptions)) {
    if (name === engine.backend) continue;
    const given = Object.keys(options).map((key) => (name === "cpu" && key === "threads" ? "--threads" : name === "cpu" && key === "lmHead" ? "--lm-head" : `--backend-option ${name}.${key}`));
    lines.push(`halo ${command}: ${given.join(", ")} ${given.length === 1 ? "applies" : "apply"} to the ${name} backend, which does not run here (the ${engine.backend} backend runs): not used\n`);
  }
  for (const line of lines) ctx.stderr.write(line);
  return lines;
}
