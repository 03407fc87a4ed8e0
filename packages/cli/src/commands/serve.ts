// `halo serve`: the OpenAI-compatible HTTP server (@halo/server) on a model file, or on the shipped demo model (halo-tiny).
import { statSync } from "node:fs";
import { HaloError } from "@halo/errors";
import { writeBackendNotice } from "../backend-notice.js";
import { openModel } from "@halo/h1b-format";
import { loadModel } from "@halo/engine";
import { ModelTinyErrorCode, TINY_MODEL, tinyModelPath } from "@halo/model-tiny";
import { createJsonLogger, createServer, parseKeyList, readApiKeyFile, type LogLevel } from "@halo/server";
import { helpText, kvDtypeFlag, numberFlag, parseFlags, type FlagSpec } from "../args.js";
import type { CommandContext } from "../context.js";
import { CliErrorCode } from "../errors.js";
import { CONTEXT_SHIFT_FLAG, contextShiftFlag } from "./context-shift-flag.js";
import { resolveModel } from "../hub/resolve-model.js";
import { backendFlags, checkBackendFlags, chatTemplateFlag, chatTemplateOrigin, LOAD_FLAGS, loadSwitches, MODEL_FLAG } from "./model-options.js";
import { speculativeFlag, speculativeNotice, speculativeOptionError } from "./speculative-flags.js";

const FLAGS: Record<string, FlagSpec> = {
  model: MODEL_FLAG,
  demo: {
    type: "boolean",
    description: `serve ${TINY_MODEL.id}, the small demo model shipped with halo (offline; its answers are English-like Python-docs text, not an assistant's)`,
  },
  host: { type: "string", placeholder: "address", description: "address to bind (default 127.0.0.1; 0.0.0.0 exposes it to the network)" },
  port: { type: "string", placeholder: "port", description: "TCP port (default 8080; 0 picks a free one)" },
  parallel: { type: "string", placeholder: "n", description: "sequences generating at once (default 4)" },
  queue: { type: "string", placeholder: "n", description: "requests that may wait for a sequence; more get 429 (default 64)" },
  "api-key": { type: "string", placeholder: "key", multiple: true, description: "accepted Bearer key (repeat, or comma-separate); also HALO_API_KEY" },
  "api-key-file": { type: "string", placeholder: "path", description: "file with one key per line; also HALO_API_KEY_FILE" },
  "cors-origin": {
    type: "string",
    placeholder: "origin",
    multiple: true,
    description: "browser origin allowed to call the API (repeat; * patterns, or * for any)",
  },
  "allowed-host": {
    type: "string",
    placeholder: "host",
    multiple: true,
    description:
      "Host name the server answers to besides loopback and its own address, when no API key is set (repeat; .example.com for subdomains, * for any): the public name behind a reverse proxy",
  },
  timeout: { type: "string", placeholder: "seconds", description: "seconds one request may take, queue wait included (default 600)" },
  "max-body": { type: "string", placeholder: "bytes", description: "largest request body in bytes (default 4194304)" },
  "model-id": { type: "string", placeholder: "id", description: "the model id clients send (default: the file name)" },
  ...LOAD_FLAGS,
  "context-shift": CONTEXT_SHIFT_FLAG,
  "log-level": { type: "string", placeholder: "debug|info|warn|error", description: "debug | info | warn | error (JSON lines on stderr; default info)" },
  help: { type: "boolean", short: "h", description: "show this help" },
};

/** Help text of `halo serve`. */
export const serveHelp = helpText(
  "halo serve [--model <path|owner/name>] [--host 127.0.0.1] [--port 8080] [--parallel n] [--api-key k] [--demo]",
  "Serves the model over HTTP with OpenAI's API (/v1/chat/completions, /v1/completions, /v1/models),\n" +
    "/health, /tokenize, /detokenize, /metrics (Prometheus), /_live/stats and a chat page at /.\n" +
    "Logs are JSON lines on stderr. Ctrl-C (or SIGTERM) finishes running requests, then exits; a second one\n" +
    "cancels them (streams still end with an error record and [DONE]). Without an API key only loopback\n" +
    "names and the server's own address are accepted as Host (a DNS-rebinding guard): add others with --allowed-host.\n" +
    `--demo serves ${TINY_MODEL.id}, a ${TINY_MODEL.numLayers}-layer ternary model trained on Python's documentation and shipped\n` +
    "with halo: it works offline and shows the whole path (API, streaming, chat page); its answers read like\n" +
    "Python-docs text, it is no assistant and not microsoft/bitnet-b1.58-2B-4T.",
  FLAGS,
  [
    "halo serve --demo --port 8080",
    "halo serve --model bitnet-2b.halo --parallel 8 --api-key sk-local-1",
    "halo serve --demo --speculative draft --max-draft 4",
    "HALO_API_KEY_FILE=keys.txt halo serve --model model.gguf --host 0.0.0.0 --cors-origin https://app.example",
  ],
);

/** The model id `halo serve --demo` serves under (halo-tiny's, from @halo/model-tiny). */
export const DEMO_MODEL_ID: string = TINY_MODEL.id;
/** What the `--demo` model is, in the listening and ready lines, `/v1/models` and the chat page: @halo/model-tiny's label. */
export const DEMO_LABEL: string = TINY_MODEL.label;

/**
 * The `--demo` model file (`path`, halo-tiny's by default), checked to be a file: a broken install says what is
 * missing and how to fix it instead of failing inside the model reader.
 *
 * @internal
 */
export function demoModelPath(path: string = tinyModelPath): string {
  let found: string;
  try {
    found = statSync(path).isFile() ? "file" : "something that is not a file";
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    found = code === "ENOENT" ? "no such file" : `an unreadable path (${code ?? String(cause)})`;
  }
  if (found === "file") return path;
  throw new HaloError(ModelTinyErrorCode.MODEL_TINY_FILE_MISSING, `the demo model (${TINY_MODEL.id}) is missing: the halo install is incomplete`, {
    path,
    expected: `${TINY_MODEL.id}'s model file, shipped in @halo/model-tiny (a dependency of @halo/cli)`,
    actual: found,
    hint:
      "Reinstall halo (npm install -g @halo/cli); in a checkout of the halo repository the file is committed: " +
      "`git checkout -- packages/model-tiny/models` restores it and `pnpm install` relinks the package. Or serve your own model with --model <path>",
  });
}

function list(value: unknown): string[] {
  return Array.isArray(value) ? (value as string[]) : typeof value === "string" ? [value] : [];
}

function allowedHosts(value: unknown): string[] {
  const hosts = list(value);
  const bad = hosts.find((host) => !/^(\*|\.?[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\])$/.test(host));
  if (bad !== undefined) {
    throw new HaloError(CliErrorCode.CLI_USAGE, "--allowed-host takes a host name", {
      expected: "a name (halo.example.com), .example.com for a domain and its subdomains, an address, or *",
      actual: bad,
      hint: "Give the name without scheme, path or port: --allowed-host halo.example.com",
    });
  }
  return hosts;
}

/**
 * The URL to print for a server listening at `url` on `address`: bound to every interface
 * (`0.0.0.0`, `::`), the listening address is no name a client may send as `Host` (the server's
 * Host check refuses it), so the loopback address stands in, with a note for other machines.
 */
function shownUrl(address: string, port: number, url: string): { url: string; note: string } {
  if (address !== "0.0.0.0" && address !== "::") return { url, note: "" };
  return {
    url: address === "::" ? `http://[::1]:${port}` : `http://127.0.0.1:${port}`,
    note: ` (all interfaces; from other machines use this machine's address, or a name given with --allowed-host)`,
  };
}

/**
 * Runs `halo serve` until SIGINT/SIGTERM (or `stop` aborts, for embedding and tests), then shuts
 * down gracefully. Opens the model file first (a missing or malformed model fails before
 * anything listens), then prints where it listens (the weights load in the background; /health
 * answers 503 meanwhile) and what it loaded when ready.
 */
export async function serveCommand(argv: readonly string[], ctx: CommandContext, stop?: AbortSignal): Promise<number> {
  const { values } = parseFlags("serve", argv, FLAGS);
  if (values["help"] === true) {
    ctx.stdout.write(serveHelp);
    return 0;
  }
  const demo = values["demo"] === true;
  if (demo && values["model"] !== undefined) {
    throw new HaloError(CliErrorCode.CLI_USAGE, "--demo and --model exclude each other", { hint: "Drop --demo to serve your model" });
  }
  const host = (values["host"] as string | undefined) ?? "127.0.0.1";
  const port = numberFlag("serve", values, "port", { integer: true, min: 0, max: 65535 }) ?? 8080;
  const parallel = numberFlag("serve", values, "parallel", { integer: true, min: 1, max: 4096 }) ?? 4;
  const maxQueue = numberFlag("serve", values, "queue", { integer: true, min: 0 }) ?? 64;
  const timeout = numberFlag("serve", values, "timeout", { min: 0.001 }) ?? 600;
  const maxBodyBytes = numberFlag("serve", values, "max-body", { integer: true, min: 1 });
  const backend = backendFlags("serve", values, "auto");
  await checkBackendFlags(backend);
  const contextLength = numberFlag("serve", values, "context-length", { integer: true, min: 2 });
  const kvDtype = kvDtypeFlag("serve", values);
  const contextShift = contextShiftFlag("serve", values);
  const chatTemplate = chatTemplateFlag("serve", values);
  const speculative = speculativeFlag("serve", values, demo ? tinyModelPath : (values["model"] as string | undefined));
  const logLevel = ((values["log-level"] as string | undefined) ?? "info") as LogLevel;
  if (!["debug", "info", "warn", "error"].includes(logLevel)) {
    throw new HaloError(CliErrorCode.CLI_USAGE, "--log-level must be debug, info, warn or error", { actual: logLevel });
  }
  const hosts = allowedHosts(values["allowed-host"]);
  const keys = parseKeyList([...list(values["api-key"]), ...(ctx.env["HALO_API_KEY"] !== undefined ? [ctx.env["HALO_API_KEY"]] : [])]);
  const keyFile = (values["api-key-file"] as string | undefined) ?? ctx.env["HALO_API_KEY_FILE"];
  if (keyFile !== undefined) keys.push(...readApiKeyFile(keyFile));

  const source = demo ? demoModelPath() : await resolveModel(values["model"] as string | undefined, ctx, { progress: values["progress"] === true });
  // A model that does not exist or does not parse fails here, before "listening": opening reads the
  // header only (the weights load in the background below, with /health at 503 until they are in).
  // So does a --context-length the model cannot take (the engine would refuse it only once loading).
  const model = await openModel(source);
  const maxPositions = model.config.maxPositionEmbeddings;
  model.close();
  if (contextLength !== undefined && contextLength > maxPositions) {
    throw new HaloError(CliErrorCode.CLI_USAGE, "--context-length is larger than the model's context", {
      field: "context-length",
      expected: `at most ${maxPositions} (the model's max position embeddings)`,
      actual: contextLength,
      hint: `Pass --context-length ${maxPositions} or less, or leave it out for min(model, 4096)`,
    });
  }
  const loadOptions = {
    ...backend,
    maxSequences: parallel,
    ...(contextLength !== undefined ? { contextLength } : {}),
    ...(kvDtype !== undefined ? { kvDtype } : {}),
    ...loadSwitches(values),
    ...(chatTemplate !== undefined ? { chatTemplate: chatTemplate.template } : {}),
    ...(speculative !== undefined ? { speculative } : {}),
  };
  // A speculative option the engine refuses (--max-draft above its limit) fails the load as a usage error naming the flag.
  const engine = loadModel(source, loadOptions).catch((error: unknown) => {
    throw speculativeOptionError(error);
  });
  const modelId = (values["model-id"] as string | undefined) ?? (demo ? DEMO_MODEL_ID : undefined);
  const app = createServer({
    engine,
    parallel,
    maxQueue,
    requestTimeoutMs: Math.round(timeout * 1000),
    apiKeys: keys,
    corsOrigins: list(values["cors-origin"]),
    allowedHosts: hosts,
    logger: createJsonLogger(ctx.stderr, logLevel),
    disposeEngineOnClose: true,
    ...(maxBodyBytes !== undefined ? { maxBodyBytes } : {}),
    ...(contextShift !== undefined ? { contextShift } : {}),
    ...(modelId !== undefined ? { modelId } : {}),
    ...(demo ? { modelLabel: DEMO_LABEL } : {}),
  });
  const listening = await app.listen(port, host).catch(async (error: unknown) => {
    await app.close({ graceMs: 0 });
    await engine.then((e) => e.dispose()).catch(() => {});
    throw error;
  });
  const { url, note } = shownUrl(listening.host, listening.port, listening.url);
  const what = demo ? `the demo model (${DEMO_LABEL})` : source;
  ctx.stdout.write(`halo serve: listening on ${url}${note} — loading ${what}${keys.length > 0 ? `; ${keys.length} API key(s) required` : ""}\n`);

  const stopped = new AbortController();
  const onSignal = (): void => stopped.abort();
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  stop?.addEventListener("abort", onSignal, { once: true });
  try {
    const ready = await Promise.race([
      app.ready.then(() => true),
      new Promise<false>((resolve) => stopped.signal.addEventListener("abort", () => resolve(false), { once: true })),
    ]);
    if (ready) {
      const s = app.stats();
      const loaded = await engine;
      writeBackendNotice("serve", loaded, ctx, backend.backendOptions);
      const notice = speculativeNotice(loaded);
      ctx.stdout.write(
        `halo serve: ready on ${url} — model "${s.model}" (${demo ? DEMO_LABEL : source}), ${s.backend} backend, ${notice === null ? "" : `${notice}, `}` +
          `context ${s.contextLength}, chat template ${loaded.chatTemplate.name} (${chatTemplateOrigin(loaded.chatTemplate, chatTemplate)}), ${parallel} parallel, queue ${maxQueue}; loaded in ${(loaded.loadMs / 1000).toFixed(1)} s. ` +
          `Chat page: ${url}/  API: ${url}/v1\n`,
      );
      if (!stopped.signal.aborted) await new Promise((resolve) => stopped.signal.addEventListener("abort", resolve, { once: true }));
    }
  } catch (error) {
    await app.close({ graceMs: 0 });
    throw error;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
  ctx.stdout.write("halo serve: shutting down (finishing running requests)…\n");
  // A second Ctrl-C/SIGTERM cancels running requests now, through the server (streams end with an
  // error record and [DONE]) instead of the default signal action cutting them.
  const onSecondSignal = (): void => {
    ctx.stdout.write("halo serve: second signal — cancelling running requests\n");
    void app.close({ graceMs: 0 });
  };
  process.on("SIGINT", onSecondSignal);
  process.on("SIGTERM", onSecondSignal);
  try {
    await app.close({ graceMs: 10_000 });
  } finally {
    process.off("SIGINT", onSecondSignal);
    process.off("SIGTERM", onSecondSignal);
  }
  ctx.stdout.write("halo serve: stopped\n");
  return 0;
}
