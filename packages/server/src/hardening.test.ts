import { once } from "node:events";
import { connect } from "node:net";
import { Worker } from "node:worker_threads";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { postJson, readSseRecords, startTinyServer, type TinyServer } from "../test/tiny-server.js";

let tiny: TinyServer;
let port: number;

beforeAll(async () => {
  tiny = await startTinyServer({ allowedHosts: ["halo.example.com"] });
  port = Number(new URL(tiny.url).port);
});
afterAll(async () => {
  await tiny.close();
});

/** Writes `bytes` on a fresh loopback socket and returns what came back before the server closed it or `ms` passed. */
function raw(bytes: string | Buffer, ms = 2000, to = port): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(to, "127.0.0.1");
    const chunks: Buffer[] = [];
    const done = (): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(Buffer.concat(chunks).toString("latin1"));
    };
    const timer = setTimeout(done, ms);
    socket.on("data", (chunk: Buffer) => chunks.push(chunk));
    socket.on("end", done);
    socket.on("error", done);
    socket.write(bytes);
  });
}

function statusOf(answer: string): number {
  return Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1] ?? 0);
}

const get = (target: string, headers = ""): string =>
  `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1:${0}\r\n${headers}Connection: close\r\n\r\n`.replace(":0", `:${port}`);

describe("request line and path", () => {
  it("request targets that WHATWG URL cannot parse are answered, not thrown (//[, http://a:99999/, http://[/)", async () => {
    for (const target of ["//[", "http://a:99999/", "http://[/", "//[::1", "http://%zz/health"]) {
      const answer = await raw(get(target));
      expect(statusOf(answer), target).toBeGreaterThanOrEqual(200);
      expect(statusOf(answer), target).toBeLessThan(500);
    }
    expect((await fetch(`${tiny.url}/health`)).status).toBe(200);
  });

  it("paths are routed as sent: //x/metrics is not /metrics and //health is not the page", async () => {
    expect(statusOf(await raw(get("//x/metrics")))).toBe(404);
    expect(statusOf(await raw(get("//health")))).toBe(404);
    expect(statusOf(await raw(get("/metrics")))).toBe(200);
    expect(statusOf(await raw(get("/health?probe=1")))).toBe(200);
    expect(statusOf(await raw(get("http://127.0.0.1/health")))).toBe(200);
  });

  it("a malformed percent-escape in /v1/models/{id} is 400, not 500", async () => {
    const response = await fetch(`${tiny.url}/v1/models/%E0`);
    expect(response.status).toBe(400);
    expect(((await response.json()) as { error: { param: string; halo_code: string } }).error).toMatchObject({
      param: "model",
      halo_code: "SERVER_BAD_REQUEST",
    });
  });

  it("HEAD on GET routes answers like GET without a body; HEAD on POST routes is 405", async () => {
    for (const path of ["/health", "/v1/models", "/v1/models/tiny", "/metrics", "/_live/stats", "/"]) {
      const answer = await raw(`HEAD ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
      expect(statusOf(answer), path).toBe(200);
      expect(answer.split("\r\n\r\n")[1], path).toBe("");
    }
    const post = await fetch(`${tiny.url}/v1/chat/completions`, { method: "HEAD" });
    expect(post.status).toBe(405);
    expect(post.headers.get("allow")).toBe("POST");
    const put = await fetch(`${tiny.url}/health`, { method: "PUT" });
    expect([put.status, put.headers.get("allow")]).toEqual([405, "GET, HEAD"]);
  });

  it("a 3 MB model name is not echoed back", async () => {
    const name = "m".repeat(3_000_000);
    const response = await postJson(`${tiny.url}/v1/chat/completions`, { model: name, messages: [{ role: "user", content: "hi" }] });
    expect(response.status).toBe(404);
    expect((await response.text()).length).toBeLessThan(2000);
  });

  it("a client that aborts mid-body is logged 499, not counted as a server error", async () => {
    const before = tiny.logs.length;
    const body = JSON.stringify({ messages: [{ role: "user", content: "x".repeat(1000) }] });
    await raw(
      `POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, 100)}`,
      150,
    );
    const end = performance.now() + 2000;
    while (!tiny.logs.slice(before).some((l) => l["msg"] === "request" && l["path"] === "/v1/chat/completions") && performance.now() < end) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const entry = tiny.logs.slice(before).find((l) => l["msg"] === "request" && l["path"] === "/v1/chat/completions");
    expect(entry?.["status"]).toBe(499);
    const metrics = await (await fetch(`${tiny.url}/metrics`)).text();
    expect(metrics).not.toMatch(/halo_requests_total\{[^}]*status="5\d\d"/);
  });

  it("thousands of random request lines and headers over raw sockets never end the process; /health keeps answering", async () => {
    // The server runs in its own thread, as in production: an uncaught exception there ends the thread.
    const worker = new Worker(new URL("../test/load-server-worker.mjs", import.meta.url), { workerData: { parallel: 2, maxQueue: 8 } });
    const exited: { code: number | null; error: unknown } = { code: null, error: null };
    worker.on("error", (error) => (exited.error = error));
    worker.on("exit", (code) => (exited.code = code));
    const [ready] = (await once(worker, "message")) as [{ url: string }];
    const target = Number(new URL(ready.url).port);
    let seed = 20261207;
    const random = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const alphabet = "/[]:%@?#.\\-_~!$&'()*+,;=aAzZ09 \t\u0000\u007f\u00e9\u4e2d";
    const pick = <T>(list: readonly T[]): T => list[random(list.length)]!;
    const noise = (max: number): string => Array.from({ length: random(max) }, () => alphabet[random(alphabet.length)]).join("");
    const methods = ["GET", "POST", "HEAD", "OPTIONS", "PUT", "DELETE", "PATCH", "CONNECT", "TRACE", "G\u0000T", ""];
    const urlish = "[]:@%/?#.0123456789abcdefxyz-_~";
    const broken = (max: number): string => Array.from({ length: 1 + random(max) }, () => urlish[random(urlish.length)]).join("");
    const targets = (): string =>
      pick([
        `//${broken(12)}`,
        `http://${broken(12)}`,
        `/${broken(16)}`,
        `/${noise(24)}`,
        `//${noise(12)}`,
        `http://${noise(10)}/${noise(10)}`,
        `/v1/models/${noise(16)}`,
        `/v1/models/%${noise(3)}`,
        pick(["/health", "/metrics", "/v1/models", "/v1/chat/completions", "/tokenize", "*", "//[", "http://[/"]),
        noise(20),
      ]);
    const headers = (): string =>
      Array.from({ length: random(5) }, () =>
        pick([
          `Host: ${pick(["127.0.0.1", "localhost", "[::1]", "[", "a:99999", noise(12), "halo.example.com", ""])}`,
          `Origin: ${pick(["http://localhost", "null", noise(16), "http://[", "https://evil.example"])}`,
          `Content-Length: ${pick(["0", "5", "-1", "99999999999", noise(4)])}`,
          `Transfer-Encoding: ${pick(["chunked", "gzip", noise(6)])}`,
          `X-Request-Id: ${noise(40)}`,
          `Authorization: ${noise(20)}`,
          `Content-Type: application/json`,
          `${noise(10)}: ${noise(20)}`,
          noise(30),
        ]),
      ).join("\r\n");
    const bodies = ["", "{", '{"messages":[{"role":"user","content":"hi"}],"max_tokens":1}', '{"content":"hi"}', noise(40)];
    // Request-shaped JSON with random values where the server reads fields, sent with a matching Content-Length.
    const values = (): unknown =>
      pick<unknown>([
        null,
        true,
        -1,
        0,
        1.5,
        1e308,
        "",
        noise(12),
        "%E0",
        [],
        [1, -2],
        [noise(4)],
        {},
        { [noise(5)]: noise(5) },
        [{ role: "user", content: noise(8) }],
      ]);
    const json = (): string => {
      const body: Record<string, unknown> = { max_tokens: 1 };
      for (let i = random(6); i > 0; i--) {
        body[
          pick(["messages", "prompt", "model", "stream", "stop", "logit_bias", "temperature", "n", "tools", "content", "tokens", "stream_options", noise(6)])
        ] = values();
      }
      return JSON.stringify(body);
    };
    const deadline = performance.now() + 25_000;
    let sent = 0;
    const serverErrors: string[] = [];
    while (sent < 2000 && performance.now() < deadline) {
      const batch = Array.from({ length: 50 }, () => {
        // Mostly requests node's parser lets through to the handler (valid method, version and Host), some garbage.
        const wellFormed = random(5) > 0;
        const line = wellFormed
          ? `${pick(["GET", "POST", "HEAD", "OPTIONS", "PUT"])} ${targets()} ${pick(["HTTP/1.1", "HTTP/1.0"])}\r\nHost: 127.0.0.1:${target}`
          : `${pick(methods)} ${targets()} ${pick(["HTTP/1.1", "HTTP/9.9", noise(8)])}`;
        if (wellFormed && random(3) === 0) {
          const body = json();
          const path = pick(["/v1/chat/completions", "/v1/completions", "/tokenize", "/detokenize", "/v1/models"]);
          return raw(
            `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1:${target}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
            300,
            target,
          );
        }
        const extra = wellFormed && random(2) === 0 ? "" : `\r\n${headers()}`;
        return raw(`${line}${extra}\r\n\r\n${pick(bodies)}`, 300, target);
      });
      for (const answer of await Promise.all(batch)) {
        const status = statusOf(answer);
        if (status >= 500 && status !== 503) serverErrors.push(answer.slice(0, 300));
      }
      sent += batch.length;
      if (exited.code !== null) break;
    }
    try {
      expect(exited).toEqual({ code: null, error: null });
      expect(serverErrors).toEqual([]);
      expect(sent).toBeGreaterThanOrEqual(500);
      const health = await fetch(`${ready.url}/health`);
      expect(health.status).toBe(200);
    } finally {
      worker.postMessage({ type: "close" });
      await Promise.race([once(worker, "message"), new Promise((resolve) => setTimeout(resolve, 3000))]);
      await worker.terminate();
    }
  }, 40_000);
});

describe("Host allow-list (no API key)", () => {
  const withHost = (path: string, host: string, origin?: string): Promise<string> =>
    raw(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\n${origin !== undefined ? `Origin: ${origin}\r\n` : ""}Connection: close\r\n\r\n`);

  it("a DNS-rebinding page (Host and Origin both the attacker's name) is refused 403, page and API alike", async () => {
    for (const path of ["/v1/models", "/health", "/", "/metrics"]) {
      const answer = await withHost(path, `attacker.example:${port}`, `http://attacker.example:${port}`);
      expect(statusOf(answer), path).toBe(403);
      expect(answer).toContain("host_not_allowed");
    }
    expect(statusOf(await withHost("/v1/models", `attacker.example:${port}`))).toBe(403);
    const post = await raw(
      `POST /v1/chat/completions HTTP/1.1\r\nHost: attacker.example:${port}\r\nOrigin: http://attacker.example:${port}\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}`,
    );
    expect(statusOf(post)).toBe(403);
  });

  it("loopback names and the bound address pass", async () => {
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, "localhost", `app.localhost:${port}`, "127.0.0.1", `LOCALHOST.:${port}`]) {
      expect(statusOf(await withHost("/v1/models", host)), host).toBe(200);
    }
  });

  it("a reverse proxy's public name passes once added (allowedHosts), with its own origin", async () => {
    expect(statusOf(await withHost("/v1/models", "halo.example.com"))).toBe(200);
    expect(statusOf(await withHost("/v1/models", "halo.example.com", "https://halo.example.com"))).toBe(200);
    expect(statusOf(await withHost("/v1/models", "HALO.example.com:8443", "https://halo.example.com:8443"))).toBe(200);
    expect(statusOf(await withHost("/v1/models", "other.example.com"))).toBe(403);
  });

  it("with API keys the key is the guard: a foreign Host with a valid key passes, without one it is 401", async () => {
    const keyed = await startTinyServer({ apiKeys: ["sk-host"] });
    try {
      const keyedPort = new URL(keyed.url).port;
      const ask = (auth: string): Promise<string> =>
        new Promise((resolve) => {
          const socket = connect(Number(keyedPort), "127.0.0.1");
          let text = "";
          socket.on("data", (c: Buffer) => (text += c.toString()));
          socket.on("close", () => resolve(text));
          socket.write(`GET /v1/models HTTP/1.1\r\nHost: proxy.example\r\n${auth}Connection: close\r\n\r\n`);
        });
      expect(statusOf(await ask("Authorization: Bearer sk-host\r\n"))).toBe(200);
      expect(statusOf(await ask(""))).toBe(401);
    } finally {
      await keyed.close();
    }
  });
});

describe("errors in request terms", () => {
  it("max_tokens out of range names max_tokens and its bounds, not the engine's maxTokens", async () => {
    const response = await postJson(`${tiny.url}/v1/chat/completions`, { messages: [{ role: "user", content: "hi" }], max_tokens: 20_000_000 });
    expect(response.status).toBe(400);
    const { error } = (await response.json()) as { error: { message: string; param: string } };
    expect(error.param).toBe("max_tokens");
    expect(error.message).toContain("max_tokens");
    expect(error.message).not.toContain("maxTokens");
    expect(error.message).toContain("16777216");
  });
});

describe("admission before work", () => {
  it("a prompt far over the context is refused from its byte size, and 20 of them at once do not starve /health", async () => {
    const huge = "lorem ipsum dolor sit amet ".repeat(140_000); // 3.8 MB
    const body = JSON.stringify({ messages: [{ role: "user", content: huge }] });
    const started = performance.now();
    const answers = Array.from({ length: 20 }, () =>
      fetch(`${tiny.url}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body }).then(async (r) => ({
        status: r.status,
        body: (await r.json()) as { error: { code: string; message: string } },
      })),
    );
    await new Promise((resolve) => setTimeout(resolve, 100));
    const healthStarted = performance.now();
    expect((await fetch(`${tiny.url}/health`)).status).toBe(200);
    const healthMs = performance.now() - healthStarted;
    for (const answer of await Promise.all(answers)) {
      expect(answer.status).toBe(400);
      expect(answer.body.error.code).toBe("context_length_exceeded");
      expect(answer.body.error.message).toContain("bytes");
    }
    // Before prompts were refused from their size, /health waited 7–10 s behind their tokenizing.
    expect(healthMs).toBeLessThan(3000);
    expect(performance.now() - started).toBeLessThan(25_000);
  }, 40_000);

  it("a completion prompt over the byte bound is refused the same way", async () => {
    const response = await postJson(`${tiny.url}/v1/completions`, { prompt: "x".repeat(1_000_000) });
    expect(response.status).toBe(400);
    const { error } = (await response.json()) as { error: { param: string; code: string; message: string } };
    expect(error).toMatchObject({ param: "prompt", code: "context_length_exceeded" });
    expect(error.message).toContain("1000000 bytes");
  });
});

describe("shutdown", () => {
  it("a second close with a shorter grace cancels running streams at once, still ending them with an error record and [DONE]", async () => {
    const own = await startTinyServer({ parallel: 1, contextLength: 512 });
    const response = await postJson(`${own.url}/v1/completions`, { prompt: "Go", max_tokens: 500, temperature: 0, ignore_eos: true, stream: true });
    const records = readSseRecords(response);
    await new Promise((resolve) => setTimeout(resolve, 200));
    const closing = own.app.close({ graceMs: 60_000 });
    await new Promise((resolve) => setTimeout(resolve, 100));
    const started = performance.now();
    void own.app.close({ graceMs: 0 });
    const got = await records;
    expect(performance.now() - started).toBeLessThan(5000);
    expect(got.at(-1)).toBe("[DONE]");
    expect(JSON.parse(got.at(-2)!)).toMatchObject({ error: { code: "shutting_down" } });
    await closing;
    own.engine.dispose();
  }, 30_000);
});
