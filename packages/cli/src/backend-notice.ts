// One stderr line per backend that loadModel passed over, and per backend whose options were given but which does not run: nothing is silent.
import type { BackendOptions, Engine } from "@halo/engine";
import { flagThatSet } from "./backend-option-flags.js";
import type { CommandContext } from "./context.js";

/**
 * Writes `halo <command>: running on the <backend> backend (<its description>); the <name> backend was not
 * used: <reason and fix>` to stderr for each backend the engine skipped (nothing when the first choice runs),
 * and one line for each backend the engine lists in `unusedBackendOptions` (options given with `--threads`,
 * `--lm-head` or `--backend-option`, but another backend runs), naming the flags that set them, so an option
 * that had no effect is never silent. `backendOptions` are the options the flags gave (to name the flags).
 * The running backend is named by its factory (`reference`, not its display name `reference split-kv 64`).
 * Returns the lines written.
 *
 * @example
 * ```ts
 * const engine = await loadModel(path, { backend: "reference", backendOptions: { cpu: { threads: 4 } } });
 * writeBackendNotice("run", engine, ctx, { cpu: { threads: 4 } }); // "halo run: --threads applies to the cpu backend, which does not run here …"
 * ```
 */
export function writeBackendNotice(
  command: string,
  engine: Pick<Engine, "backend" | "backendFactory" | "skippedBackends" | "unusedBackendOptions">,
  ctx: CommandContext,
  backendOptions: BackendOptions = {},
): string[] {
  const running = engine.backendFactory?.name ?? engine.backend;
  const description = engine.backendFactory?.description;
  const what = description === undefined || description === "" ? "" : ` (${description})`;
  const lines = engine.skippedBackends.map(
    (s) => `halo ${command}: running on the ${running} backend${what}; the ${s.name} backend was not used: ${s.reason}\n`,
  );
  // Options are keyed by factory name: the running factory's were used whatever its display name.
  for (const name of engine.unusedBackendOptions.filter((n) => n !== running)) {
    const given = Object.keys(backendOptions[name] ?? {}).map((key) => flagThatSet(backendOptions, name, key));
    const flags = given.length > 0 ? given.join(", ") : `--backend-option ${name}.…`;
    lines.push(
      `halo ${command}: ${flags} ${given.length > 1 ? "apply" : "applies"} to the ${name} backend, which does not run here (the ${running} backend runs): not used\n`,
    );
  }
  for (const line of lines) ctx.stderr.write(line);
  return lines;
}
