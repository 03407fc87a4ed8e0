// The conformance suite run on the reference backend (single-pass and split-KV attention): its whole-model checks
// are against the float64 oracle model; the comparisons with the reference itself are reported as skipped.
import { describe, it } from "vitest";
import { referenceBackend } from "../reference/reference-backend.js";
import { runConformance } from "./run-conformance.js";

runConformance(() => referenceBackend(), { describe, it }, { name: "reference", hasOps: true });
runConformance(() => referenceBackend({ splitKvTile: 4 }), { describe, it }, { name: "reference split-KV tile 4", hasOps: false });
