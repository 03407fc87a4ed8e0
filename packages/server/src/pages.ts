// The browser page (landing with live stats + streaming chat): plain files from the package's public/ folder.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

/** One static file: bytes and content type. */
export interface StaticAsset {
  readonly body: Buffer;
  readonly contentType: string;
}

const FILES: ReadonlyArray<readonly [route: string, file: string, contentType: string]> = [
  ["/", "index.html", "text/html; charset=utf-8"],
  ["/app.js", "app.js", "text/javascript; charset=utf-8"],
  ["/style.css", "style.css", "text/css; charset=utf-8"],
];

/**
 * Reads the page's files (`public/index.html`, `app.js`, `style.css`) once. The folder sits
 * beside `src/` and `dist/`, so the same relative path works from sources and from the build.
 * No build step, no external CDN: the page is these three files.
 *
 * @example
 * ```ts
 * const assets = loadStaticAssets();
 * assets.get("/")?.contentType; // "text/html; charset=utf-8"
 * ```
 */
export function loadStaticAssets(): ReadonlyMap<string, StaticAsset> {
  const out = new Map<string, StaticAsset>();
  for (const [route, file, contentType] of FILES) {
    const path = fileURLToPath(new URL(`../public/${file}`, import.meta.url));
    out.set(route, { body: readFileSync(path), contentType });
  }
  return out;
}
