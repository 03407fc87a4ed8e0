// Vitest reporter for every package (each vitest.config.ts lists it after "default"): where HALO_TEST_REPORT_DIR is
// set (scripts/test-ci.mjs sets it), it writes <dir>/<package>-<pid>.json with the counts of passed, failed and skipped
// tests and every skipped test with its reason, which test:ci prints at the end of the run and checks (a skip that is
// not a hardware or not-applicable skip fails test:ci). Elsewhere it writes nothing.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import type { Reporter, TestCase, TestModule, TestSuite } from "vitest/node";

/** One skipped test as test:ci reads it: its file (relative to the package), full name and why it did not run. */
export interface SkippedTest {
  readonly file: string;
  readonly name: string;
  readonly reason: string;
}

/** The file the reporter writes: one vitest run of one package. */
export interface TestReport {
  readonly package: string;
  readonly passed: number;
  readonly failed: number;
  readonly skipped: readonly SkippedTest[];
  /** "file > test" of each failed test, and "file: <error>" of each file that could not be collected. */
  readonly failures: readonly string[];
}

/** A console line that explains a skip ("… skipped: <why>", "skipping …"), as the tests print them when collected. */
const SKIP_LINE = /skip/i;

export default class TestReportReporter implements Reporter {
  /** Console lines per task id (a module's id for lines printed while it is collected). */
  private readonly logs = new Map<string, string[]>();

  onUserConsoleLog(log: { content: string; taskId?: string }): void {
    if (log.taskId === undefined || !SKIP_LINE.test(log.content)) return;
    const lines = this.logs.get(log.taskId) ?? [];
    lines.push(log.content.trim());
    this.logs.set(log.taskId, lines);
  }

  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    const dir = process.env["HALO_TEST_REPORT_DIR"];
    if (dir === undefined || dir === "" || testModules.length === 0) return;
    const root = testModules[0]!.project.config.root;
    const name = (JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { name: string }).name;
    let passed = 0;
    let failed = 0;
    const skipped: SkippedTest[] = [];
    const failures: string[] = [];
    for (const module of testModules) {
      const file = relative(root, module.moduleId);
      for (const error of module.errors()) failures.push(`${file}: ${error.message}`);
      for (const test of module.children.allTests()) {
        const result = test.result();
        if (result.state === "passed") passed++;
        else if (result.state === "failed") {
          failed++;
          failures.push(`${file} > ${test.fullName}`);
        } else skipped.push({ file, name: test.fullName, reason: this.reason(test, result.state === "skipped" ? result.note : undefined) });
      }
    }
    const report: TestReport = { package: name, passed, failed, skipped, failures };
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, `${name.replace(/[^\w.-]+/g, "_")}-${process.pid}.json`), `${JSON.stringify(report, null, 2)}\n`);
  }

  /** The note passed to `context.skip(note)`, else the skip lines printed by the test, its suites or its file. */
  private reason(test: TestCase, note: string | undefined): string {
    if (note !== undefined && note !== "") return note;
    if (test.options.mode === "todo") return "todo";
    const lines: string[] = [];
    for (let task: TestCase | TestSuite | TestModule = test; ; task = task.parent) {
      lines.push(...(this.logs.get(task.id) ?? []));
      if (task.type === "module") break;
    }
    if (lines.length > 0) return [...new Set(lines)].join(" | ");
    const mode = test.options.mode;
    return `${mode === "skip" ? "skipped" : `not run (${mode})`}, no reason given: name it in context.skip(reason), the describe title or a console line`;
  }
}
