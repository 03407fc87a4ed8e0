// One cache rule: the model cache and the verified-files records inside it agree on every setting.
import { afterEach, describe, expect, it } from "vitest";
import { defaultCacheDir } from "./verify-weights.js";
import { modelCacheDir, VERIFIED_DIR_NAME } from "./cache-dir.js";

const saved = { HALO_CACHE_DIR: process.env.HALO_CACHE_DIR, XDG_CACHE_HOME: process.env.XDG_CACHE_HOME, HOME: process.env.HOME };
afterEach(() => {
  for (const [key, value] of Object.entries(saved)) {
    if (value === undefined) delete process.env[key];
    else process.env[key] = value;
  }
});

describe("modelCacheDir and defaultCacheDir", () => {
  it("HALO_CACHE_DIR, else XDG_CACHE_HOME/halo/models, else ~/.cache/halo/models", () => {
    expect(modelCacheDir({ HALO_CACHE_DIR: "/data/models", XDG_CACHE_HOME: "/x" })).toBe("/data/models");
    expect(modelCacheDir({ XDG_CACHE_HOME: "/x", HOME: "/home/u" })).toBe("/x/halo/models");
    expect(modelCacheDir({ HOME: "/home/u" })).toBe("/home/u/.cache/halo/models");
    expect(modelCacheDir({ HALO_CACHE_DIR: "", HOME: "/home/u" })).toBe("/home/u/.cache/halo/models");
  });

  it("the verified-files cache is the model cache under every setting, its records in a dot-directory", () => {
    for (const env of [{ HALO_CACHE_DIR: "/data/models" }, { XDG_CACHE_HOME: "/x" }, { HOME: "/home/u" }]) {
      delete process.env.HALO_CACHE_DIR;
      delete process.env.XDG_CACHE_HOME;
      Object.assign(process.env, env);
      expect(defaultCacheDir()).toBe(modelCacheDir(process.env));
    }
    expect(VERIFIED_DIR_NAME.startsWith(".")).toBe(true);
  });
});
