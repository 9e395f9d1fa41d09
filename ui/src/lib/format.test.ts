import { describe, expect, it } from "vitest";
import { localInputToIso, relativeTime, shortDate, splitList } from "./format";

describe("format", () => {
  const now = new Date("2026-11-25T12:00:00Z");
  it("says how long ago", () => {
    expect(relativeTime(null, now)).toBe("never");
    expect(relativeTime("2026-11-25T11:59:50Z", now)).toBe("just now");
    expect(relativeTime("2026-11-25T11:55:00Z", now)).toBe("5 min ago");
    expect(relativeTime("2026-11-25T09:00:00Z", now)).toBe("3 h ago");
    expect(relativeTime("2026-11-23T12:00:00Z", now)).toBe("2 d ago");
    expect(relativeTime("2026-11-25T12:05:00Z", now)).toBe("in 5 min");
  });
  it("splits scope and address lists", () => {
    expect(splitList(" a:read, b:*\nc:write  ")).toEqual(["a:read", "b:*", "c:write"]);
    expect(splitList("")).toEqual([]);
  });
  it("converts times", () => {
    expect(localInputToIso("")).toBeNull();
    expect(localInputToIso("not a date")).toBeNull();
    expect(shortDate("2026-11-25T10:30:00Z")).toBe("2026-11-25 10:30 UTC");
  });
});
