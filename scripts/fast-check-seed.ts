// Vitest setup for every package: property tests run with one fixed fast-check seed, so CI is
// reproducible. Explore other seeds locally with HALO_FC_SEED=<n> (a failure prints its seed).
import fc from "fast-check";

fc.configureGlobal({ seed: Number(process.env["HALO_FC_SEED"] ?? 20261123) });
