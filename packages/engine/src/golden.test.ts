// Golden runs: exact token ids and text of greedy and seeded generations on the tiny synthetic model (reference backend).
// Pinned before the generation loop was split into step plans, a sampling step and a TokenEmitter: a change to any of these
// values is a change in what the engine generates, to be explained, not re-pinned.
import { describe, expect, it } from "vitest";
import { synthModel } from "@halo/h1b-format";
import { loadModel, type Engine, type GenerateEvent, type GenerateRequest, type RequestEndEvent } from "./index.js";

interface Run {
  readonly tokenIds: readonly number[];
  readonly text: string;
  readonly finishReason: string;
  readonly deltas: readonly string[];
  readonly logprobs?: readonly number[];
}

async function run(stream: AsyncIterable<GenerateEvent>): Promise<Run> {
  const deltas: string[] = [];
  const logprobs: number[] = [];
  let end: RequestEndEvent | null = null;
  for await (const e of stream) {
    if (e.type === "token-delta") {
      deltas.push(e.text);
      if (e.logprob !== undefined) logprobs.push(e.logprob);
    }
    if (e.type === "request-end") end = e;
  }
  if (end === null) throw new Error("no request-end event");
  return { tokenIds: [...end.tokenIds], text: end.text, finishReason: end.finishReason, deltas, ...(logprobs.length > 0 ? { logprobs } : {}) };
}

const load = (): Promise<Engine> => loadModel(synthModel({ shape: "tiny", seed: 11 }), { backend: "reference", contextLength: 128, maxSequences: 4 });

const REQUESTS: Record<string, GenerateRequest> = {
  greedy: { prompt: "Once upon a time", maxTokens: 24, temperature: 0, ignoreEos: true },
  "greedy token ids": { prompt: [500, 72, 101, 108, 108, 111], maxTokens: 16, temperature: 0, ignoreEos: true },
  seeded: { prompt: "Once upon a time", maxTokens: 24, temperature: 0.9, topK: 40, topP: 0.95, seed: 1234, ignoreEos: true },
  "seeded with penalties": { prompt: [500, 3, 4, 5], maxTokens: 20, temperature: 0.8, minP: 0.02, repeatPenalty: 1.3, seed: 99, ignoreEos: true },
  "greedy with logprobs": { prompt: [500, 9, 8, 7], maxTokens: 8, temperature: 0, logprobs: true, topLogprobs: 2, ignoreEos: true },
  "seeded with logprobs": { prompt: [500, 9, 8, 7], maxTokens: 8, temperature: 1.1, seed: 7, logprobs: true, ignoreEos: true },
};

const EXPECTED: Record<string, Run> = {
  greedy: {
    tokenIds: [226, 510, 269, 420, 409, 498, 259, 457, 315, 311, 168, 201, 184, 467, 467, 467, 467, 467, 467, 467, 467, 467, 42, 142],
    text: "\ufffd anjumpshree sendser engineesber\ufffd\u0278 are are are are are are are are are*\ufffd",
    finishReason: "length",
    deltas: [
      "",
      "",
      "\ufffd an",
      "jumps",
      "hree",
      " sends",
      "er",
      " engine",
      "es",
      "ber",
      "\ufffd",
      "",
      "\u0278",
      " are",
      " are",
      " are",
      " are",
      " are",
      " are",
      " are",
      " are",
      " are",
      "*",
      "\ufffd",
    ],
  },
  "greedy token ids": {
    tokenIds: [75, 75, 135, 230, 48, 48, 48, 48, 48, 48, 48, 48, 48, 326, 326, 326],
    text: "KK\ufffd\ufffd000000000 fo fo fo",
    finishReason: "length",
    deltas: ["K", "K", "\ufffd", "", "\ufffd0", "0", "0", "0", "0", "0", "0", "0", "0", " fo", " fo", " fo"],
  },
  seeded: {
    tokenIds: [336, 10, 188, 469, 388, 234, 329, 457, 352, 455, 502, 307, 130, 356, 11, 403, 123, 329, 329, 356, 110, 109, 256, 151],
    text: "(a\n\ufffd answerece\ufffd qu engineLangua code stepat\ufffdNumbers\u000bfun{ qu quNumbersnm t\ufffd",
    finishReason: "length",
    deltas: [
      "(a",
      "\n",
      "\ufffd",
      " answer",
      "ece",
      "",
      "\ufffd qu",
      " engine",
      "Langua",
      " code",
      " step",
      "at",
      "\ufffd",
      "Numbers",
      "\u000b",
      "fun",
      "{",
      " qu",
      " qu",
      "Numbers",
      "n",
      "m",
      " t",
      "\ufffd",
    ],
  },
  "seeded with penalties": {
    tokenIds: [236, 463, 291, 16, 318, 380, 124, 64, 306, 94, 63, 138, 232, 84, 428, 463, 158, 284, 290, 447],
    text: "\ufffd useron\u0010odelction|@ar^?\ufffd\ufffdTnto user\ufffddeode +",
    finishReason: "length",
    deltas: [
      "",
      "\ufffd user",
      "on",
      "\u0010",
      "odel",
      "ction",
      "|",
      "@",
      "ar",
      "^",
      "?",
      "\ufffd",
      "",
      "\ufffdT",
      "nto",
      " user",
      "\ufffd",
      "de",
      "ode",
      " +",
    ],
  },
  "greedy with logprobs": {
    tokenIds: [362, 154, 173, 12, 431, 494, 431, 323],
    text: "ation\ufffd\ufffd\fore quickorevery",
    finishReason: "length",
    deltas: ["ation", "\ufffd", "\ufffd", "\f", "ore", " quick", "ore", "very"],
    logprobs: [-3.501187226, -3.081274232, -2.973762285, -3.36068122, -3.086180831, -3.131833124, -2.994242343, -2.85895097],
  },
  "seeded with logprobs": {
    tokenIds: [212, 360, 229, 389, 53, 407, 60, 245],
    text: "\ufffdWh\ufffdefo5groups<\ufffd",
    finishReason: "length",
    deltas: ["", "\ufffdWh", "", "\ufffdefo", "5", "groups", "<", "\ufffd"],
    logprobs: [-4.458078286, -5.973715006, -3.263437678, -6.911502098, -6.750597323, -5.416458628, -5.715648528, -7.064829636],
  },
};

const TOGETHER_PROMPTS = [
  [500, 1, 2, 3],
  [500, 40, 41],
  [500, 7, 8, 9, 10, 11],
  [500, 99],
];
const TOGETHER_EXPECTED = [
  [66, 416, 318, 66, 356, 194, 40, 49, 475, 475],
  [18, 12, 382, 263, 411, 51, 309, 205, 196, 128],
  [490, 180, 198, 164, 127, 374, 164, 127, 281, 230],
  [154, 154, 29, 78, 68, 166, 31, 175, 474, 138],
];

const CHAT_EXPECTED: Run = {
  tokenIds: [
    288, 245, 298, 431, 385, 288, 59, 270, 375, 419, 140, 417, 375, 327, 494, 63, 63, 335, 63, 314, 378, 252, 313, 409, 408, 104, 282, 56, 90, 263, 308, 149,
    59, 294, 427, 417, 411, 6, 375, 217,
  ],
  text: "ight\ufffd woredictight;acatrijum\ufffdinusatri l quick?? weight?eightcales\ufffddshreehrehThe8Z sach\ufffd;umnumberinusik\u0006atri\ufffd",
  finishReason: "length",
  deltas: [
    "ight",
    "\ufffd",
    " w",
    "ore",
    "dict",
    "ight",
    ";",
    "ac",
    "atri",
    "jum",
    "\ufffd",
    "inus",
    "atri",
    " l",
    " quick",
    "?",
    "?",
    " weight",
    "?",
    "eight",
    "cales",
    "\ufffd",
    "ds",
    "hree",
    "hre",
    "h",
    "The",
    "8",
    "Z",
    " s",
    "ach",
    "\ufffd",
    ";",
    "um",
    "number",
    "inus",
    "ik",
    "\u0006",
    "atri",
    "",
    "\ufffd",
  ],
};

const CHAT_STOP_EXPECTED: Run = {
  tokenIds: [288, 245, 298, 431, 385, 288, 59, 270, 375, 419, 140, 417, 375, 327, 494, 63],
  text: "ight\ufffd woredictight;acatrijum\ufffdinusatri l quick",
  finishReason: "stop",
  deltas: ["ight", "\ufffd", " w", "ore", "dict", "ight", ";", "ac", "atri", "jum", "\ufffd", "inus", "atri", " l", " quick", ""],
};

function expectRun(actual: Run, expected: Run, name: string): void {
  expect(actual.tokenIds, name).toEqual(expected.tokenIds);
  expect(actual.text, name).toBe(expected.text);
  expect(actual.finishReason, name).toBe(expected.finishReason);
  expect(actual.deltas, name).toEqual(expected.deltas);
  if (expected.logprobs === undefined) expect(actual.logprobs, name).toBeUndefined();
  else {
    expect(actual.logprobs, name).toHaveLength(expected.logprobs.length);
    // Logprobs are float64 sums over float32 logits: pinned to 9 decimals (rounded when pinned).
    expected.logprobs.forEach((value, i) => expect(actual.logprobs![i], `${name} logprob ${i}`).toBeCloseTo(value, 8));
  }
}

describe("golden runs (tiny synth model, reference backend)", () => {
  for (const [name, request] of Object.entries(REQUESTS)) {
    it(name, async () => {
      await using engine = await load();
      expectRun(await run(engine.generate(request)), EXPECTED[name]!, name);
    });
  }

  it("four sequences in one batch, greedy and seeded mixed", async () => {
    await using engine = await load();
    const together = await Promise.all(
      TOGETHER_PROMPTS.map((prompt, i) => run(engine.generate({ prompt, maxTokens: 10, temperature: i % 2 === 0 ? 0 : 0.7, seed: 40 + i, ignoreEos: true }))),
    );
    expect(together.map((r) => r.tokenIds)).toEqual(TOGETHER_EXPECTED);
  });

  it("seeded chat, and the same chat cut by a stop string", async () => {
    await using engine = await load();
    expectRun(await run(engine.chat([{ role: "user", content: "Hello there" }], { maxTokens: 40, temperature: 0.6, seed: 3 })), CHAT_EXPECTED, "chat");
    expectRun(
      await run(engine.chat([{ role: "user", content: "Hello there" }], { maxTokens: 40, temperature: 0.6, seed: 3, stop: ["?"] })),
      CHAT_STOP_EXPECTED,
      "chat with stop",
    );
  });
});
