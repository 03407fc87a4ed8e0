import { createServer as createHttpServer, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { connect } from "node:net";
import { describe, expect, it } from "vitest";
import { sendSseData, sendSseDone, setWriteTimeout, startSse, watchUnsentAnswer } from "./sse.js";

const RECORD = { text: "x".repeat(64 * 1024) };

/** A server whose one answer is an SSE stream of `records` 64 KiB records written as fast as the socket takes them. */
async function sseServer(records: number, writeTimeoutMs: number): Promise<{ port: number; closed: Promise<number>; stop(): void }> {
  let resolveClosed: (written: number) => void = () => {};
  const closed = new Promise<number>((resolve) => (resolveClosed = resolve));
  const server = createHttpServer((_req, res: ServerResponse) => {
    startSse(res);
    setWriteTimeout(res, writeTimeoutMs);
    let written = 0;
    res.on("close", () => resolveClosed(written));
    const pump = (): void => {
      if (written === records) {
        sendSseDone(res);
        return;
      }
      if (!sendSseData(res, RECORD)) return;
      written++;
      setImmediate(pump);
    };
    pump();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as AddressInfo).port,
    closed,
    stop: () => {
      server.closeAllConnections();
      server.close();
    },
  };
}

describe("SSE write timeout", () => {
  it("closes the stream of a client that never reads once writes stay buffered past the timeout", async () => {
    const { port, closed, stop } = await sseServer(100_000, 200);
    const socket = connect(port, "127.0.0.1");
    socket.write("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    socket.pause();
    const started = performance.now();
    const written = await Promise.race([closed, new Promise<number>((resolve) => setTimeout(() => resolve(-1), 10_000))]);
    socket.destroy();
    stop();
    expect(written).toBeGreaterThan(0);
    expect(written).toBeLessThan(100_000);
    expect(performance.now() - started).toBeLessThan(10_000);
  }, 15_000);

  it("leaves a client that reads alone, however much it is sent", async () => {
    const { port, closed, stop } = await sseServer(50, 200);
    const text = await new Promise<string>((resolve) => {
      const socket = connect(port, "127.0.0.1");
      let tail = "";
      socket.on("data", (chunk: Buffer) => (tail = (tail + chunk.toString("latin1")).slice(-64)));
      socket.on("close", () => resolve(tail));
      socket.write("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    });
    expect(await closed).toBe(50);
    stop();
    expect(text).toContain("data: [DONE]");
  }, 15_000);

  it("closes the connection of a client that does not take a large finished answer", async () => {
    let resolveClosed: (unsent: number) => void = () => {};
    const closed = new Promise<number>((resolve) => (resolveClosed = resolve));
    const server = createHttpServer((_req, res: ServerResponse) => {
      setWriteTimeout(res, 200);
      const socket = res.socket!;
      socket.on("close", () => resolveClosed(socket.writableLength));
      res.end(Buffer.alloc(48 << 20, 0x61));
      watchUnsentAnswer(res);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const socket = connect((server.address() as AddressInfo).port, "127.0.0.1");
    socket.write("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    socket.pause();
    const unsent = await Promise.race([closed, new Promise<string>((resolve) => setTimeout(() => resolve("still open"), 10_000))]);
    socket.destroy();
    server.closeAllConnections();
    server.close();
    expect(typeof unsent).toBe("number");
  }, 15_000);
});
