import { IncomingMessage, ServerResponse, createServer as createHttpServer } from "node:http";
import { Socket } from "node:net";
import { PassThrough } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createServer, silentLogger, type HaloServer } from "./index.js";
import { synthModel } from "@halo/h1b-format";
import { loadModel, type Engine } from "@halo/engine";

// The factory without a listening socket: `handle(req, res)` on hand-made request/response objects,
// and mounted inside another node server.

let engine: Engine;
let app: HaloServer;

beforeAll(async () => {
  engine = await loadModel(synthModel({ seed: 3 }), { backend: "reference", contextLength: 128, maxSequences: 2 });
  app = createServer({ engine, parallel: 2, logger: silentLogger, modelId: "tiny" });
  await app.ready;
});
afterAll(async () => {
  await app.close();
  engine.dispose();
});

/** Runs one request through `app.handle` with no network: the response's raw bytes are captured from a fake socket. */
async function inject(method: string, url: string, body?: unknown): Promise<{ status: number; headers: string; body: string }> {
  const socket = new Socket();
  const req = new IncomingMessage(socket);
  req.method = method;
  req.url = url;
  const text = body === undefined ? "" : JSON.stringify(body);
  req.headers = { host: "localhost", "content-type": "application/json", "content-length": String(Buffer.byteLength(text)) };
  req.push(text.length > 0 ? text : null);
  if (text.length > 0) req.push(null);
  const res = new ServerResponse(req);
  // The response writes its head and body to the connection it is assigned: here an in-memory stream.
  const sink = new PassThrough();
  const chunks: Buffer[] = [];
  sink.on("data", (chunk: Buffer) => chunks.push(chunk));
  res.assignSocket(sink as unknown as Socket);
  const finished = new Promise<void>((resolve) => res.once("finish", () => resolve()));
  app.handle(req, res);
  await finished;
  const raw = Buffer.concat(chunks).toString("utf8");
  const split = raw.indexOf("\r\n\r\n");
  const head = raw.slice(0, split);
  let payload = raw.slice(split + 4);
  if (/transfer-encoding: chunked/i.test(head)) payload = payload.replace(/(^|\r\n)[0-9a-f]+\r\n/gi, "$1").replace(/\r\n/g, "");
  return { status: Number(/^HTTP\/1\.1 (\d+)/.exec(head)?.[1]), headers: head, body: payload };
}

describe("handle without a socket", () => {
  it("answers /health, /v1/models and a completion", async () => {
    const health = await inject("GET", "/health");
    expect(health.status).toBe(200);
    expect(JSON.parse(health.body)).toMatchObject({ status: "ok", model: "tiny" });
    const models = await inject("GET", "/v1/models");
    expect(JSON.parse(models.body).data[0].id).toBe("tiny");
    const completion = await inject("POST", "/v1/completions", { prompt: "Hello", max_tokens: 4, temperature: 0, ignore_eos: true });
    expect(completion.status).toBe(200);
    expect(JSON.parse(completion.body).usage.completion_tokens).toBe(4);
    const bad = await inject("POST", "/v1/completions", { prompt: 5 });
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.body).error.param).toBe("prompt");
  });

  it("mounts inside another node server", async () => {
    const outer = createHttpServer((req, res) => {
      if (req.url === "/mine") res.end("own route");
      else app.handle(req, res);
    });
    await new Promise<void>((resolve) => outer.listen(0, "127.0.0.1", resolve));
    const { port } = outer.address() as { port: number };
    expect(await (await fetch(`http://127.0.0.1:${port}/mine`)).text()).toBe("own route");
    expect((await fetch(`http://127.0.0.1:${port}/health`)).status).toBe(200);
    await new Promise<void>((resolve) => outer.close(() => resolve()));
  });
});
