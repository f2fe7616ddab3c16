import { describe, expect, it } from "vitest";
import { backoffDelay } from "../src/api/stream";
import { en } from "../src/i18n/en";
import { zhCN } from "../src/i18n/zh-CN";
import { match, parseHash } from "../src/router";

describe("router", () => {
  it("matches patterns with parameters and parses the query", () => {
    expect(match("/tasks/42")?.params).toEqual({ id: "42" });
    expect(match("/tasks")?.route.pattern).toBe("/tasks");
    expect(match("/nope")).toBeNull();
    const loc = parseHash("#/compare?ids=1,2");
    expect(loc.path).toBe("/compare");
    expect(loc.query.get("ids")).toBe("1,2");
    expect(parseHash("").path).toBe("/tasks");
  });
});

describe("stream back-off", () => {
  it("grows exponentially with jitter up to a cap", () => {
    expect(backoffDelay(0, () => 0)).toBe(250);
    expect(backoffDelay(0, () => 1)).toBe(500);
    expect(backoffDelay(3, () => 0)).toBe(2000);
    expect(backoffDelay(20, () => 1)).toBe(15000);
  });
});

describe("messages", () => {
  it("both languages have every key, with the same placeholders", () => {
    expect(Object.keys(zhCN).sort()).toEqual(Object.keys(en).sort());
    for (const [key, text] of Object.entries(en)) {
      const vars = (s: string) => (s.match(/\{\w+\}/g) ?? []).sort();
      expect([key, vars(zhCN[key as keyof typeof en])]).toEqual([key, vars(text)]);
    }
  });
});
