// Every model halo opens can chat: a seed .h1b, a GGUF without a template and a .halo made from them, through run, chat, serve and show.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadModel, type ChatMessage } from "@halo/engine";
import { openModel, runCli, synthModel, writeHalo } from "@halo/h1b-format";
import { main } from "../main.js";
import { serveCommand } from "./serve.js";
import { readyUrl } from "../../test/ready-url.js";
import { captureOutput } from "../../test/capture.js";

let dir: string;
/** The seed .h1b (+ .htok) `h1b synth` writes, as in the issue. */
let h1b: string;
/** A GGUF converted from it: no `tokenizer.chat_template`. */
let gguf: string;
/** A .halo converted from it: no template either. */
let halo: string;
/** A .halo that carries a template (the synthetic model's). */
let haloWithTemplate: string;

const INFERRED = "inferred: BitNet architecture with Llama-3 vocabulary";

function capture(stdin?: PassThrough) {
  return captureOutput({ HALO_CACHE_DIR: join(dir, "cache"), HF_ENDPOINT: "http://127.0.0.1:1" }, stdin);
}

async function h1bCli(args: string[]): Promise<void> {
  const err: string[] = [];
  const code = await runCli(args, { out: () => {}, err: (t) => err.push(t) });
  if (code !== 0) throw new Error(`h1b ${args.join(" ")} failed: ${err.join("\n")}`);
}

async function greedyChat(path: string, messages: ChatMessage[], maxTokens: number, chatTemplate?: string): Promise<string> {
  await using engine = await loadModel(path, { backend: "reference", ...(chatTemplate !== undefined ? { chatTemplate } : {}) });
  let text = "";
  for await (const e of engine.chat(messages, { maxTokens, temperature: 0 })) if (e.type === "request-end") text = e.text;
  return text;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "halo-template-"));
  h1b = join(dir, "tiny.h1b");
  gguf = join(dir, "tiny.gguf");
  halo = join(dir, "tiny.halo");
  haloWithTemplate = join(dir, "with-template.halo");
  await h1bCli(["synth", "--shape", "tiny", "--seed", "1", "-o", h1b]);
  await h1bCli(["convert", h1b, "-o", gguf, "--force"]);
  await h1bCli(["convert", h1b, "-o", halo]);
  await writeHalo(synthModel({ seed: 1 }), haloWithTemplate);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("models without a chat template chat with the inferred one", () => {
  it("halo run answers on a seed .h1b, a template-less GGUF and a .halo made from them", async () => {
    for (const path of [h1b, gguf, halo]) {
      const expected = await greedyChat(path, [{ role: "user", content: "hi" }], 6);
      const c = capture();
      expect(await main(["run", "--model", path, "--backend", "reference", "-t", "0", "-n", "6", "hi"], c.ctx), c.err.join("")).toBe(0);
      expect(c.out.join("")).toBe(`${expected}\n`);
      expect(c.err.join("")).toBe("");
    }
  });

  it("halo chat answers every message over piped stdin", async () => {
    for (const path of [h1b, gguf, halo]) {
      const stdin = new PassThrough();
      const c = capture(stdin);
      stdin.end("hi\nand again\n");
      expect(await main(["chat", "--model", path, "--backend", "reference", "-t", "0", "-n", "4"], c.ctx)).toBe(0);
      expect(c.err.join("")).toBe("");
      const first = await greedyChat(path, [{ role: "user", content: "hi" }], 4);
      const second = await greedyChat(
        path,
        [
          { role: "user", content: "hi" },
          { role: "assistant", content: first },
          { role: "user", content: "and again" },
        ],
        4,
      );
      expect(c.out.join("")).toBe(`${first}\n${second}\n`);
    }
  });

  it("halo serve answers /v1/chat/completions and names the template in /v1/models and /_live/stats", async () => {
    const c = capture();
    const stop = new AbortController();
    const running = serveCommand(["--model", h1b, "--port", "0", "--backend", "reference", "--parallel", "1"], c.ctx, stop.signal);
    try {
      const url = await readyUrl(c.out);
      expect(c.out.join("")).toContain(`chat template bitnet (${INFERRED})`);
      const models = (await (await fetch(`${url}/v1/models`)).json()) as { data: Array<{ meta: Record<string, unknown> }> };
      expect(models.data[0]!.meta["chat_template"]).toEqual({ name: "bitnet", origin: "inferred", reason: INFERRED });
      expect(await firstStatsRecord(url)).toMatchObject({ chatTemplate: { name: "bitnet", origin: "inferred", reason: INFERRED } });
      const answer = await fetch(`${url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "tiny", messages: [{ role: "user", content: "hi" }], max_tokens: 6, temperature: 0 }),
      });
      expect(answer.status).toBe(200);
      const body = (await answer.json()) as { choices: Array<{ message: { content: string } }> };
      expect(body.choices[0]!.message.content).toBe(await greedyChat(h1b, [{ role: "user", content: "hi" }], 6));
    } finally {
      stop.abort();
      expect(await running).toBe(0);
    }
  });
});

describe("--chat-template", () => {
  it("takes a built-in name or a Jinja file on run, chat and serve", async () => {
    const jinja = join(dir, "template.jinja");
    writeFileSync(jinja, "{% for m in messages %}<{{ m.role }}> {{ m.content }}\n{% endfor %}<assistant> ");
    for (const [value, template] of [
      ["plain", "plain"],
      [jinja, "{% for m in messages %}<{{ m.role }}> {{ m.content }}\n{% endfor %}<assistant> "],
    ] as const) {
      const expected = await greedyChat(gguf, [{ role: "user", content: "hi" }], 5, template);
      const run = capture();
      expect(await main(["run", "--model", gguf, "--backend", "reference", "-t", "0", "-n", "5", "--chat-template", value, "hi"], run.ctx)).toBe(0);
      expect(run.out.join("")).toBe(`${expected}\n`);
      const stdin = new PassThrough();
      const chat = capture(stdin);
      stdin.end("hi\n");
      expect(await main(["chat", "--model", gguf, "--backend", "reference", "-t", "0", "-n", "5", "--chat-template", value], chat.ctx)).toBe(0);
      expect(chat.out.join("")).toBe(`${expected}\n`);
    }

    const c = capture();
    const stop = new AbortController();
    const running = serveCommand(["--model", gguf, "--port", "0", "--backend", "reference", "--parallel", "1", "--chat-template", jinja], c.ctx, stop.signal);
    try {
      const url = await readyUrl(c.out);
      expect(c.out.join("")).toContain(`chat template custom (--chat-template ${jinja})`);
      const models = (await (await fetch(`${url}/v1/models`)).json()) as { data: Array<{ meta: Record<string, unknown> }> };
      expect(models.data[0]!.meta["chat_template"]).toMatchObject({ name: "custom", origin: "option" });
    } finally {
      stop.abort();
      expect(await running).toBe(0);
    }
  });

  it("anything but a built-in or a readable file is a usage error naming the built-ins; Jinja that does not parse is refused", async () => {
    for (const command of ["run", "chat", "serve", "show"]) {
      const c = capture();
      const args = command === "show" ? [gguf] : ["--model", gguf, ...(command === "run" ? ["hi"] : [])];
      expect(await main([command, ...args, "--chat-template", "chatml"], c.ctx)).toBe(2);
      expect(c.err.join("")).toMatch(
        new RegExp(
          `^halo ${command}: .*--chat-template must be bitnet, llama3, plain or a readable Jinja file.*found chatml \\(no such file\\).*\\[CLI_USAGE\\]\\n$`,
        ),
      );
    }
    const empty = join(dir, "empty.jinja");
    writeFileSync(empty, " \n");
    const e = capture();
    expect(await main(["run", "--model", gguf, "--chat-template", empty, "hi"], e.ctx)).toBe(2);
    expect(e.err.join("")).toMatch(/--chat-template file is empty/);
    // Refused by the flag parser (a usage error), on one line although the file's text spans two.
    const broken = join(dir, "broken.jinja");
    writeFileSync(broken, "{{ bos_token }}\n{% for m in %}");
    for (const command of ["run", "chat", "serve", "show"]) {
      const b = capture();
      const args = command === "show" ? [gguf] : ["--model", gguf, ...(command === "run" ? ["hi"] : [])];
      expect(
        await main(
          [command, ...args, "--backend", "reference", "--chat-template", broken].filter((a) => command !== "show" || (a !== "--backend" && a !== "reference")),
          b.ctx,
        ),
      ).toBe(2);
      const text = b.err.join("");
      expect(text).toMatch(
        new RegExp(
          `^halo ${command}: the --chat-template file does not parse as a Jinja template.*${broken.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}.*\\[CLI_USAGE\\]\\n$`,
        ),
      );
      expect(text.split("\n")).toHaveLength(2);
      // serve never got as far as listening.
      expect(b.out.join("")).not.toMatch(/listening/);
    }
  });

  it("an error message that quotes text with line breaks is still one line", async () => {
    const b = capture();
    expect(await main(["run", "--model", join(dir, "two\nlines.halo"), "hi"], b.ctx)).toBe(1);
    const text = b.err.join("");
    expect(text.trimEnd().split("\n")).toHaveLength(1);
    expect(text).toContain("two\\nlines.halo");
  });
});

describe("halo show", () => {
  it("prints config, format, weight packing, the chat template with its origin, and the files", async () => {
    const c = capture();
    expect(await main(["show", h1b], c.ctx)).toBe(0);
    const text = c.out.join("");
    expect(text).toMatch(/^.*tiny\.h1b\n {2}format {9}h1b v2\n/);
    expect(text).toMatch(/architecture {3}bitnet: 2 layers, hidden 256, ffn 512 \(relu2\), heads 4\/2 × 64, tied head\n/);
    expect(text).toMatch(/weights {8}ternary halo-v2, 2\.000 bits\/weight, row scale: 14 tensors, .*\n {17}f32: 10 tensors/);
    expect(text).toContain(`chat template  bitnet — ${INFERRED} (none in the file)\n`);
    expect(text).toMatch(/files {10}.*tiny\.h1b {2}\S+ KiB\n {17}.*tiny\.htok {2}\S+ KiB\n$/);

    // A file whose template does not parse: the reason says so, and nothing claims the file has none.
    const brokenTemplate = join(dir, "broken-template.halo");
    // Made from the template-less .halo (the synthetic model's tokenizer carries a template of its own).
    const source = await openModel(halo);
    try {
      await writeHalo({ ...source, chatTemplate: "{% for m in %}" }, brokenTemplate);
    } finally {
      source.close();
    }
    const broken = capture();
    expect(await main(["show", brokenTemplate], broken.ctx)).toBe(0);
    const brokenLine = broken.out
      .join("")
      .split("\n")
      .find((l) => l.includes("chat template"))!;
    expect(brokenLine).toMatch(/the template in the model file does not parse/);
    expect(brokenLine).not.toMatch(/none in the file/);

    const withTemplate = capture();
    expect(await main(["show", haloWithTemplate], withTemplate.ctx)).toBe(0);
    expect(withTemplate.out.join("")).toContain("chat template  bitnet — from the model file\n");
    expect(withTemplate.out.join("")).toMatch(/format {9}halo v\d+, alignment \d+ B, \d+ CRC-32 checksums/);

    const json = capture();
    expect(await main(["show", gguf, "--json", "--chat-template", "plain"], json.ctx)).toBe(0);
    const shown = JSON.parse(json.out.join("")) as Record<string, unknown>;
    expect(shown).toMatchObject({
      format: "gguf",
      config: { architecture: "bitnet", vocabSize: 512 },
      chatTemplate: { name: "plain", origin: "option", reason: "--chat-template", inFile: false },
      storage: [{ kind: "ternary", type: "tq2_0" }, { kind: "float" }],
      files: [{ path: gguf, bytes: expect.any(Number) as number }],
    });
  });

  it("needs a model, is listed in `halo --help`, and inspect says the file has no template", async () => {
    const none = capture();
    expect(await main(["show"], none.ctx)).toBe(2);
    expect(none.err.join("")).toMatch(/which model\?/);
    const help = capture();
    expect(await main(["--help"], help.ctx)).toBe(0);
    expect(help.out.join("")).toMatch(/\n {2}show {6}what a model is/);
    const inspect = capture();
    expect(await main(["inspect", h1b], inspect.ctx)).toBe(0);
    expect(inspect.out.join("")).toContain("chat template none in the file (halo infers one: see `halo show`)");
  });
});

/** The first record of the `/_live/stats` SSE feed. */
async function firstStatsRecord(url: string): Promise<unknown> {
  const controller = new AbortController();
  const response = await fetch(`${url}/_live/stats`, { signal: controller.signal });
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  let text = "";
  while (!text.includes("\n\n")) {
    const { value, done } = await reader.read();
    if (done) break;
    text += decoder.decode(value, { stream: true });
  }
  controller.abort();
  return JSON.parse(/^data: (.*)$/m.exec(text)![1]!);
}
