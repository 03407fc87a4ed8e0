// The page routes: GET / and its files (app.js, style.css), open to anyone, matched before the API routes.
import type { RouteCall } from "./route.js";
import { loadStaticAssets } from "../pages.js";

/**
 * A function that answers `GET`/`HEAD` of a page file and returns its status, or null when the
 * request is for no page file. The files are read once, here.
 * @internal
 */
export function pageRoutes(): (call: RouteCall) => number | null {
  const assets = loadStaticAssets();
  return ({ req, res, path, headers }) => {
    const asset = req.method === "GET" || req.method === "HEAD" ? assets.get(path) : undefined;
    if (asset === undefined) return null;
    res.writeHead(200, { ...headers, "content-type": asset.contentType, "content-length": String(asset.body.length), "cache-control": "no-cache" });
    res.end(req.method === "HEAD" ? undefined : asset.body);
    return 200;
  };
}
