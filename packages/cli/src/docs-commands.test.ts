// The command lists in the root README's packages table and docs/architecture.md match `halo --help`.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { mainHelp } from "./main.js";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");

/** The commands `halo --help` lists. */
function helpCommands(): string[] {
  return [...mainHelp().matchAll(/^ {2}([a-z]+) {2,}/gm)].map((m) => m[1]!).sort();
}

/** The commands a table row lists after "the `halo` command: ", up to " (" or " |". */
function rowCommands(file: string, rowStart: string): string[] {
  const row = readFileSync(join(root, file), "utf8")
    .split("\n")
    .find((line) => line.startsWith(rowStart));
  expect(row, `${file} has a row starting ${rowStart}`).toBeDefined();
  const list = /the `halo` command: ([a-z, ]+?)(?: \(| \|)/.exec(row!);
  expect(list, `${file}'s ${rowStart} row lists commands`).not.toBeNull();
  return list![1]!.split(", ").sort();
}

describe("command lists in the docs", () => {
  it("README.md's @halo/cli row and docs/architecture.md's cli row name every command of `halo --help`", () => {
    const commands = helpCommands();
    expect(commands.length).toBeGreaterThan(10);
    expect(rowCommands("README.md", "| [`@halo/cli`]")).toEqual(commands);
    expect(rowCommands("docs/architecture.md", "| `cli` |")).toEqual(commands);
  });
});
