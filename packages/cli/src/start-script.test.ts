// scripts/start.mjs (`pnpm start`) on the built CLI: one Ctrl-C to its process group is one signal for `halo serve`.
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");

/** `[pid, ppid, pgid]` of every process, from /proc (Linux). */
function processes(): Array<[number, number, number]> {
  const rows: Array<[number, number, number]> = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      // pid (comm) state ppid pgrp …; comm may hold spaces, so split after its closing parenthesis.
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      const [, ppid, pgid] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      rows.push([Number(name), Number(ppid), Number(pgid)]);
    } catch {
      // ended meanwhile
    }
  }
  return rows;
}

/** Starts `node scripts/start.mjs --demo --port 0` as the leader of a new process group (as a terminal's foreground job) and waits for "ready". */
async function startDemo(): Promise<{
  child: ChildProcessWithoutNullStreams;
  url: string;
  output: () => string;
  closed: Promise<{ code: number | null }>;
  exited: Promise<void>;
}> {
  const child = spawn(process.execPath, ["scripts/start.mjs", "--demo", "--port", "0"], { cwd: root, detached: true, stdio: "pipe" });
  let output = "";
  child.stdout.setEncoding("utf8").on("data", (t: string) => (output += t));
  child.stderr.setEncoding("utf8").on("data", (t: string) => (output += t));
  const closed = new Promise<{ code: number | null }>((done) => child.on("close", (code) => done({ code })));
  const exited = new Promise<void>((done) => child.on("exit", () => done()));
  const url = await new Promise<string>((done, fail) => {
    const timer = setInterval(() => {
      const ready = /ready on (http:\/\/\S+?) /.exec(output);
      if (ready !== null) {
        clearInterval(timer);
        done(ready[1]!);
      } else if (child.exitCode !== null) {
        clearInterval(timer);
        fail(new Error(`start.mjs ended before ready:\n${output}`));
      }
    }, 50);
  });
  return { child, url, output: () => output, closed, exited };
}

function killGroups(...pids: Array<number | undefined>): void {
  for (const pid of pids) {
    try {
      if (pid !== undefined) process.kill(-pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
}

describe.skipIf(process.platform !== "linux")("scripts/start.mjs (Linux: reads /proc)", () => {
  it("a single Ctrl-C to the terminal's process group reaches halo serve once: a running stream finishes normally, and everything ends", async () => {
    const { child, url, output, closed } = await startDemo();
    const server = processes().find(([, ppid]) => ppid === child.pid);
    try {
      // The server is in a group of its own, so the group's Ctrl-C reaches it only through start.mjs, once.
      expect(server).toBeDefined();
      expect(server![2]).not.toBe(child.pid);
      const response = await fetch(`${url}/v1/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ prompt: "Go", max_tokens: 400, temperature: 0, ignore_eos: true, stream: true }),
      });
      expect(response.status).toBe(200);
      const reader = response.body!.getReader();
      const decoder = new TextDecoder();
      let body = "";
      let signalled = false;
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        body += decoder.decode(value, { stream: true });
        if (!signalled) {
          signalled = true;
          process.kill(-child.pid!, "SIGINT");
        }
      }
      const { code } = await closed;
      expect(output()).not.toMatch(/second signal/);
      expect(body).not.toMatch(/"error"/);
      expect(body).toMatch(/"finish_reason":"length"/);
      expect(body.trimEnd().endsWith("data: [DONE]")).toBe(true);
      expect(output()).toMatch(/halo serve: stopped/);
      expect(code).toBe(0);
    } finally {
      killGroups(child.pid, server?.[2]);
    }
  }, 60_000);

  it("halo serve does not outlive start.mjs when start.mjs ends for another reason (SIGHUP: the terminal closed)", async () => {
    const { child, exited } = await startDemo();
    const server = processes().find(([, ppid]) => ppid === child.pid);
    try {
      expect(server).toBeDefined();
      process.kill(child.pid!, "SIGHUP");
      await exited;
      // Give the server a moment to go, then look for it.
      const deadline = Date.now() + 15_000;
      while (Date.now() < deadline && processes().some(([pid]) => pid === server![0])) await new Promise((r) => setTimeout(r, 100));
      expect(processes().some(([pid]) => pid === server![0])).toBe(false);
    } finally {
      killGroups(child.pid, server?.[2]);
    }
  }, 60_000);
});
