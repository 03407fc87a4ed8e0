// A loopback HTTP server that imitates the Hugging Face hub's file-list and resolve endpoints, with fault injection.
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { join, relative } from "node:path";

/** A repository the fake hub serves: files read from a directory. */
export interface FakeRepo {
  readonly dir: string;
  /** Files served in the list but with this content instead (a corrupted mirror). */
  readonly corrupt?: Readonly<Record<string, Uint8Array>>;
  /** Status for every request on this repo (401, 403, 500...). */
  readonly status?: number;
  /** Token required (401 without it, 403 with a wrong one). */
  readonly token?: string;
}

/** The fake hub and what it saw. */
export interface FakeHub {
  readonly endpoint: string;
  readonly requests: { url: string; range: string | undefined; auth: string | undefined }[];
  /** Cut the next response of this file after n bytes (the connection is destroyed). */
  cutNext(file: string, bytes: number): void;
  close(): Promise<void>;
}

function listFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const name of readdirSync(d)) {
      const full = join(d, name);
      if (statSync(full).isDirectory()) walk(full);
      else out.push(relative(dir, full).split("\\").join("/"));
    }
  };
  walk(dir);
  return out.sort();
}

/** Starts the fake hub on 127.0.0.1 with `repos` keyed by `owner/name`. */
export async function startFakeHub(repos: Readonly<Record<string, FakeRepo>>): Promise<FakeHub> {
  const requests: FakeHub["requests"] = [];
  const cuts = new Map<string, number>();
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? "/", "http://x");
    requests.push({ url: url.pathname, range: req.headers.range, auth: req.headers.authorization });
    const parts = url.pathname
      .split("/")
      .filter((p) => p !== "")
      .map(decodeURIComponent);
    const isApi = parts[0] === "api" && parts[1] === "models";
    const repoName = isApi ? `${parts[2]}/${parts[3]}` : `${parts[0]}/${parts[1]}`;
    const repo = repos[repoName];
    if (repo === undefined) {
      res.writeHead(404, { "content-type": "application/json" }).end(JSON.stringify({ error: "Repository not found" }));
      return;
    }
    if (repo.token !== undefined) {
      const auth = req.headers.authorization;
      if (auth === undefined) return void res.writeHead(401).end("unauthorized");
      if (auth !== `Bearer ${repo.token}`) return void res.writeHead(403).end("forbidden");
    }
    if (repo.status !== undefined) return void res.writeHead(repo.status).end("status");
    if (isApi) {
      if (parts[4] !== "revision" || parts[5] !== "main") return void res.writeHead(404).end("no revision");
      const siblings = listFiles(repo.dir).map((file) => {
        const bytes = readFileSync(join(repo.dir, file));
        const big = file.endsWith(".safetensors");
        return big
          ? { rfilename: file, size: bytes.length, lfs: { sha256: createHash("sha256").update(bytes).digest("hex"), size: bytes.length } }
          : { rfilename: file, size: bytes.length, blobId: createHash("sha1").update(`blob ${bytes.length}\0`).update(bytes).digest("hex") };
      });
      res
        .writeHead(200, { "content-type": "application/json" })
        .end(JSON.stringify({ id: repoName, sha: "0123456789abcdef0123456789abcdef01234567", siblings }));
      return;
    }
    if (parts[2] !== "resolve" || parts[3] !== "main") return void res.writeHead(404).end("no such path");
    const file = parts.slice(4).join("/");
    let bytes: Uint8Array;
    try {
      bytes = repo.corrupt?.[file] ?? readFileSync(join(repo.dir, file));
    } catch {
      return void res.writeHead(404).end("Entry not found");
    }
    let start = 0;
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? "");
    if (range !== null) {
      start = Number(range[1]);
      if (start >= bytes.length) return void res.writeHead(416).end();
    }
    const body = bytes.subarray(start);
    res.writeHead(range !== null ? 206 : 200, {
      "content-length": String(body.length),
      ...(range !== null ? { "content-range": `bytes ${start}-${bytes.length - 1}/${bytes.length}` } : {}),
    });
    const cut = cuts.get(file);
    if (cut !== undefined) {
      cuts.delete(file);
      res.write(body.subarray(0, cut), () => setTimeout(() => res.destroy(), 20));
      return;
    }
    res.end(body);
  };
  const server: Server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    requests,
    cutNext: (file, bytes) => void cuts.set(file, bytes),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
