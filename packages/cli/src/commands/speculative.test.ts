// Speculative decoding flags of run, chat, generate, serve and bench: parsing, usage errors, the stats they print, and the same text as without them.
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { synthModel, writeHalo } from "@halo/h1b-format";
import { tinyDraftModelPath, tinyMedusaPath, tinyModelPath } from "@halo/model-tiny";
import { isHaloError } from "@halo/errors";
import { main } from "../main.js";
import { captureOutput } from "../../test/capture.js";
import { bundleBin } from "../../test/built-bin.js";
import { readyUrl } from "../../test/ready-url.js";
import { serveCommand } from "./serve.js";
import { SPECULATIVE_CHOICES, speculativeFlag } from "./speculative-flags.js";

let dir: string;
let modelPath: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "halo-speculative-"));
  modelPath = join(dir, "synth.halo");
  await writeHalo(synthModel({ seed: 11 }), modelPath);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function capture() {
  return captureOutput({ HALO_CACHE_DIR: join(dir, "cache"), HF_HUB_CACHE: join(dir, "hf"), HF_ENDPOINT: "http://127.0.0.1:1" });
}

/** The usage error `speculativeFlag` throws for `values`, as `field: message`. */
function refusal(values: Record<string, unknown>, model?: string): string {
  try {
    speculativeFlag("run", values, model);
  } catch (error) {
    if (isHaloError(error) && error.code === "CLI_USAGE") return `${error.field}: ${error.message}`;
    throw error;
  }
  throw new Error(`no error for ${JSON.stringify(values)}`);
}

describe("speculativeFlag", () => {
  it("maps the CLI's drafter names to loadModel's speculative option", () => {
    expect(SPECULATIVE_CHOICES).toEqual(["ngram", "draft", "medusa"]);
    expect(speculativeFlag("run", {})).toBeUndefined();
    expect(speculativeFlag("run", { speculative: "ngram" })).toEqual({ drafter: "ngram" });
    expect(speculativeFlag("run", { speculative: "ngram", "max-draft": "6", "speculative-policy": "always" })).toEqual({
      drafter: "ngram",
      maxDraft: 6,
      policy: "always",
    });
    expect(speculativeFlag("run", { speculative: "draft", "draft-model": "d.halo" })).toEqual({ drafter: "draft-model", draftModel: "d.halo" });
    expect(speculativeFlag("run", { speculative: "medusa", medusa: "h.h1b-medusa" })).toEqual({ drafter: "medusa", medusa: "h.h1b-medusa" });
  });

  it("gives halo-tiny its own draft model, however its path is spelt, and no other model", () => {
    expect(speculativeFlag("run", { speculative: "draft" }, tinyModelPath)).toEqual({ drafter: "draft-model", draftModel: tinyDraftModelPath });
    expect(speculativeFlag("run", { speculative: "draft" }, relative(process.cwd(), tinyModelPath))).toEqual({
      drafter: "draft-model",
      draftModel: tinyDraftModelPath,
    });
    expect(refusal({ speculative: "draft" }, modelPath)).toMatch(/^draft-model: --speculative draft needs --draft-model <path>/);
    expect(refusal({ speculative: "draft" })).toMatch(/^draft-model: --speculative draft needs --draft-model/);
  });

  it("refuses every wrong combination with a usage error naming the flag", () => {
    expect(refusal({ speculative: "eagle" })).toMatch(/^speculative: --speculative must be ngram, draft, medusa; got "eagle"/);
    expect(refusal({ speculative: "draft-model" })).toMatch(/^speculative: --speculative must be ngram, draft, medusa/);
    expect(refusal({ speculative: "medusa" })).toMatch(/^medusa: --speculative medusa needs --medusa <file>/);
    expect(refusal({ medusa: "h.h1b-medusa" })).toMatch(/^medusa: --medusa is for speculative decoding; it needs --speculative medusa/);
    expect(refusal({ speculative: "ngram", medusa: "h" })).toMatch(/^medusa: --medusa is for --speculative medusa, not --speculative ngram/);
    expect(refusal({ "draft-model": "d.halo" })).toMatch(/^draft-model: --draft-model is for speculative decoding; it needs --speculative draft/);
    expect(refusal({ speculative: "medusa", medusa: "h", "draft-model": "d" })).toMatch(/^draft-model: --draft-model is for --speculative draft/);
    expect(refusal({ "max-draft": "4" })).toMatch(/^max-draft: --max-draft is for speculative decoding; it needs --speculative ngram\|draft\|medusa/);
    expect(refusal({ "speculative-policy": "always" })).toMatch(/^speculative-policy: --speculative-policy is for speculative decoding/);
    expect(refusal({ speculative: "ngram", "max-draft": "0" })).toMatch(/^max-draft: --max-draft must be a whole number ≥ 1/);
    expect(refusal({ speculative: "ngram", "max-draft": "two" })).toMatch(/^max-draft: --max-draft must be a whole number/);
    expect(refusal({ speculative: "ngram", "speculative-policy": "never" })).toMatch(
      /^speculative-policy: --speculative-policy must be auto, always; got "never"/,
    );
  });
});

describe("the commands' flags", () => {
  it("every generating command lists the speculative flags in its help", async () => {
    for (const command of ["run", "chat", "generate", "serve", "bench"]) {
      const c = capture();
      expect(await main([command, "--help"], c.ctx)).toBe(0);
      const help = c.out.join("");
      for (const flag of [
        "--speculative <ngram|draft|medusa>",
        "--draft-model <path>",
        "--medusa <file>",
        "--max-draft <n>",
        "--speculative-policy <auto|always>",
      ]) {
        expect(help, `halo ${command} --help`).toContain(flag);
      }
    }
  });

  it("every generating command refuses a bad combination before loading anything (exit 2, the one error line)", async () => {
    const cases: [string[], RegExp][] = [
      [
        ["run", "--model", modelPath, "--speculative", "medusa", "hi"],
        /^halo run: --speculative medusa needs --medusa <file> \(field medusa\)\. Pass the \.h1b-medusa heads file.*\[CLI_USAGE\]\n$/,
      ],
      [
        ["chat", "--model", modelPath, "--draft-model", modelPath],
        /^halo chat: --draft-model is for speculative decoding; it needs --speculative draft \(field draft-model\)\. .*\[CLI_USAGE\]\n$/,
      ],
      [
        ["generate", "--model", modelPath, "--prompt", "x", "--speculative", "eagle"],
        /^halo generate: --speculative must be ngram, draft, medusa; got "eagle".*\[CLI_USAGE\]\n$/,
      ],
      [
        ["serve", "--model", modelPath, "--speculative", "draft"],
        /^halo serve: --speculative draft needs --draft-model <path> \(field draft-model\)\. Pass a smaller model with the same vocabulary.*\[CLI_USAGE\]\n$/,
      ],
      [["bench", "--model", modelPath, "--max-draft", "3"], /^halo bench: --max-draft is for speculative decoding.*\[CLI_USAGE\]\n$/],
      // The engine's own bound on the draft length comes back as the flag's usage error.
      [
        ["generate", "--model", modelPath, "--prompt", "x", "--speculative", "ngram", "--max-draft", "99"],
        /^halo generate: --max-draft must be an integer in \[1, \d+\].*\[CLI_USAGE\]\n$/,
      ],
    ];
    for (const [argv, pattern] of cases) {
      const c = capture();
      expect(await main(argv, c.ctx), argv.join(" ")).toBe(2);
      expect(c.err.join(""), argv.join(" ")).toMatch(pattern);
      expect(c.out.join(""), argv.join(" ")).toBe("");
    }
  });

  it("a draft model with another vocabulary fails to load, the error naming --draft-model (exit 1)", async () => {
    const c = capture();
    expect(
      await main(
        ["generate", "--model", tinyModelPath, "--prompt", "x", "--context-length", "256", "--speculative", "draft", "--draft-model", modelPath],
        c.ctx,
      ),
    ).toBe(1);
    const text = c.err.join("");
    expect(text).toMatch(/^halo generate: the draft model's vocabulary differs from the model's \(field --draft-model\).*\[SPECULATIVE_DRAFTER_MISMATCH\]\n$/);
    expect(text).not.toMatch(/draftModel/);
  });

  it("halo run --stats names the drafter and prints its acceptance; bench reports it in JSON and in words", async () => {
    const run = capture();
    expect(
      await main(
        ["run", "--model", tinyModelPath, "--raw", "--temperature", "0", "--max-tokens", "32", "--speculative", "ngram", "--stats", "The module"],
        run.ctx,
      ),
    ).toBe(0);
    expect(run.err.join("")).toMatch(
      /^\[length\] prompt \d+ tok .*; answer 32 tok .* backend\); speculative ngram 2-4: \d+ of \d+ drafted tokens accepted \(acceptance \d+\.\d %\), \d+\.\d\d tokens\/step \(\d+ steps, \d+ verifying drafts\)\n$/m,
    );
    const json = capture();
    const lengths = ["--prompt-tokens", "16", "--gen-tokens", "32", "--decode-context", "8"];
    expect(await main(["bench", "--model", tinyModelPath, ...lengths, "--speculative", "ngram", "--speculative-policy", "always", "--json"], json.ctx)).toBe(0);
    const result = JSON.parse(json.out.join("")) as { speculative: Record<string, unknown> | null };
    expect(result.speculative).toMatchObject({ drafter: "ngram", label: "ngram 2-4" });
    const s = result.speculative as { draftedTokens: number; acceptedTokens: number; acceptanceRate: number; tokensPerStep: number; decodeSteps: number };
    expect(s.draftedTokens).toBeGreaterThan(0);
    expect(s.acceptedTokens).toBeLessThanOrEqual(s.draftedTokens);
    expect(s.acceptanceRate).toBeCloseTo(s.acceptedTokens / s.draftedTokens, 2);
    expect(s.decodeSteps).toBeGreaterThan(0);
    const plain = capture();
    expect(await main(["bench", "--model", tinyModelPath, ...lengths, "--json"], plain.ctx)).toBe(0);
    expect((JSON.parse(plain.out.join("")) as { speculative: unknown }).speculative).toBeNull();
    const words = capture();
    expect(await main(["bench", "--model", tinyModelPath, ...lengths, "--speculative", "ngram", "--speculative-policy", "always"], words.ctx)).toBe(0);
    expect(words.out.join("")).toMatch(
      /^speculative {21}speculative ngram 2-4: \d+ of \d+ drafted tokens accepted \(acceptance \d+\.\d %\), \d+\.\d\d tokens\/step/m,
    );
  }, 60_000);

  it("halo serve --demo --speculative draft loads halo-tiny's draft model and says so when ready", async () => {
    const c = capture();
    const stop = new AbortController();
    const running = serveCommand(["--demo", "--speculative", "draft", "--port", "0", "--log-level", "error"], c.ctx, stop.signal);
    try {
      const url = await readyUrl(c.out);
      expect(c.out.join("")).toMatch(/ready on .*, speculative decoding: draft-model /);
      const metrics = await (await fetch(`${url}/metrics`)).text();
      expect(metrics).toMatch(/halo_speculative_info\{drafter="draft-model",/);
    } finally {
      stop.abort();
      await running;
    }
  }, 60_000);
});

describe("halo generate --speculative (the built bin)", () => {
  let bin: string;
  beforeAll(() => {
    bin = bundleBin("speculative-test").bin;
  });

  it("prints acceptance, tokens per step and the drafted/accepted counts, and the same text as without speculation at temperature 0", () => {
    const run = (extra: readonly string[]) => {
      const args = [
        bin,
        "generate",
        "--model",
        tinyModelPath,
        "--prompt",
        "The Python tutorial",
        "--temperature",
        "0",
        "--max-tokens",
        "64",
        "--stats",
        ...extra,
      ];
      return spawnSync(process.execPath, args, { encoding: "utf8" });
    };
    const plain = run([]);
    expect(plain.status).toBe(0);
    expect(plain.stderr).toMatch(/tok\/s decode \(cpu\)\n$/);
    expect(plain.stderr).not.toMatch(/speculative/);
    expect(plain.stdout.trim().length).toBeGreaterThan(20);
    // Policy auto drafts only when the step times measured at load say it pays (so it may not draft on a busy machine); always drafts.
    for (const extra of [
      ["--speculative", "ngram"],
      ["--speculative", "ngram", "--speculative-policy", "always", "--max-draft", "2"],
      ["--speculative", "draft", "--speculative-policy", "always"],
      ["--speculative", "medusa", "--medusa", tinyMedusaPath, "--speculative-policy", "always"],
    ]) {
      const spec = run(extra);
      expect(spec.status, extra.join(" ")).toBe(0);
      expect(spec.stdout, extra.join(" ")).toBe(plain.stdout);
      const line =
        /generated 64 tok, [\d.]+ tok\/s decode \(cpu\); speculative (.+): (\d+) of (\d+) drafted tokens accepted \(acceptance ([\d.]+) %\), ([\d.]+) tokens\/step \((\d+) steps, (\d+) verifying drafts\)\n$/.exec(
          spec.stderr,
        );
      expect(line, `${extra.join(" ")}: ${spec.stderr}`).not.toBeNull();
      const [, label, accepted, drafted, rate, perStep, steps] = line!;
      expect(label).toMatch(extra[1] === "draft" ? /^draft-model / : new RegExp(`^${extra[1]!}`));
      if (extra.includes("always")) expect(Number(drafted), extra.join(" ")).toBeGreaterThan(0);
      expect(Number(accepted)).toBeLessThanOrEqual(Number(drafted));
      expect(Math.abs(Number(rate) - (Number(drafted) === 0 ? 0 : (100 * Number(accepted)) / Number(drafted)))).toBeLessThanOrEqual(0.051);
      // 64 tokens in fewer steps when drafts were accepted: tokens/step is generated tokens over steps.
      expect(Number(perStep)).toBeCloseTo(64 / Number(steps), 1);
      if (extra.includes("--max-draft")) expect(Number(drafted)).toBeLessThanOrEqual(2 * Number(line![7]));
    }
  }, 120_000);
});
