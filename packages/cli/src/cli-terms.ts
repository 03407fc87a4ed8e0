// Engine errors in the CLI's words: the JavaScript option names an error names become the flags that set them.

/**
 * The `loadModel`/`generate` option each `halo` flag sets, by option name. `null`: no flag sets it.
 * Names that are also plain words (`threads`) are translated only where they stand for the option.
 *
 * @internal
 */
export const FLAG_OF_OPTION: Readonly<Record<string, string | null>> = {
  contextLength: "--context-length",
  maxSequences: "--parallel",
  lmHead: "--lm-head",
  kvDtype: "--kv-dtype",
  maxTokens: "--max-tokens",
  chatTemplate: "--chat-template",
  contextShift: "--context-shift",
  threads: "--threads",
  templateVariables: null,
};

const PLAIN_WORDS = new Set(["threads"]);

function flagText(option: string): string {
  const flag = FLAG_OF_OPTION[option];
  return flag === null || flag === undefined ? "template variables (no halo flag sets them)" : flag;
}

/**
 * Rewrites an error message written for the JavaScript API in the CLI's flags:
 * `backend: "reference"` → `--backend reference`, `verify: false` → `--no-verify`,
 * `contextLength` → `--context-length` (see {@link FLAG_OF_OPTION}), "load the model with a
 * larger contextLength" → "pass a larger --context-length", and backend options
 * (`backendOptions.cpu.threads` → `--threads`, `backendOptions.hip.device` → `--backend-option hip.device`).
 *
 * @example
 * ```ts
 * inCliTerms('no backend can run this model. … or pass backend: "reference"'); // '… or pass --backend reference'
 * ```
 * @internal
 */
export function inCliTerms(message: string): string {
  let text = message
    .replace(/load the model with a larger contextLength/g, "pass a larger --context-length")
    // Backend options: the cpu backend's two have flags of their own, every other goes through --backend-option.
    .replace(/\bbackendOptions\.cpu\.(threads|lmHead)\b/g, (_, key: string) => (key === "threads" ? "--threads" : "--lm-head"))
    .replace(/\bbackendOptions\.([a-z][a-z0-9-]*)\.([A-Za-z_$][\w$]*)/g, "--backend-option $1.$2")
    .replace(/\bbackendOptions\.([a-z][a-z0-9-]*)\b/g, "--backend-option $1.…")
    .replace(/\bbackend: "([a-z0-9-]+)"/g, "--backend $1")
    .replace(/\bverify: false\b/g, "--no-verify");
  for (const option of Object.keys(FLAG_OF_OPTION)) {
    const pattern = PLAIN_WORDS.has(option)
      ? new RegExp(`(?<=\\(field )${option}\\b|^${option}(?= must\\b)`, "g")
      : new RegExp(`(?<![\\w.-])${option}\\b`, "g");
    text = text.replace(pattern, flagText(option));
  }
  return text;
}

/**
 * True when an `ENGINE_BAD_OPTION` error's `field` is an option a `halo` flag sets: then the
 * flag's value was wrong, a usage error (exit 2).
 *
 * @internal
 */
export function isFlagOption(field: string | undefined): boolean {
  return field !== undefined && (field === "verify" || FLAG_OF_OPTION[field] !== undefined && FLAG_OF_OPTION[field] !== null || field === "backend");
}
