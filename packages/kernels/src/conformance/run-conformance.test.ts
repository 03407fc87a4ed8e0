// The conformance suite run against the reference backend itself (single-pass and split-KV attention).
import { describe, it } from "vitest";
import { referenceBackend } from "../reference/reference-backend.js";
import { runConformance } from "./run-conformance.js";

runConformance(() => referenceBackend(), { describe, it }, { name: "reference", hasOps: true });
runConformance(() => referenceBackend({ splitKvTile: 4 }), { describe, it }, { name: "reference split-KV tile 4", hasOps: false });
