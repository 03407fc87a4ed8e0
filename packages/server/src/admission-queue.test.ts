import { describe, expect, it } from "vitest";
import { AdmissionQueue } from "./admission-queue.js";

describe("AdmissionQueue", () => {
  it("admits up to maxActive, queues FIFO up to maxQueue, refuses the rest synchronously", async () => {
    const queue = new AdmissionQueue(2, 2);
    const signal = new AbortController().signal;
    const a = await queue.enter(signal);
    await queue.enter(signal);
    const order: string[] = [];
    const c = queue.enter(signal).then((release) => (order.push("c"), release));
    const d = queue.enter(signal).then((release) => (order.push("d"), release));
    expect([queue.activeCount, queue.waitingCount]).toEqual([2, 2]);
    expect(() => queue.enter(signal)).toThrow(expect.objectContaining({ code: "SERVER_QUEUE_FULL" }));
    a();
    a(); // idempotent
    const releaseC = await c;
    expect(order).toEqual(["c"]);
    expect([queue.activeCount, queue.waitingCount]).toEqual([2, 1]);
    releaseC();
    await d;
    expect(order).toEqual(["c", "d"]);
  });

  it("drops a waiter whose signal aborts, and rejects all waiters on shutdown", async () => {
    const queue = new AdmissionQueue(1, 3);
    await queue.enter(new AbortController().signal);
    const leaving = new AbortController();
    const left = queue.enter(leaving.signal);
    const stays = queue.enter(new AbortController().signal);
    leaving.abort(new Error("gone"));
    await expect(left).rejects.toThrow("gone");
    expect(queue.waitingCount).toBe(1);
    queue.rejectWaiting(new Error("shutdown"));
    await expect(stays).rejects.toThrow("shutdown");
    expect(queue.waitingCount).toBe(0);
  });
});
