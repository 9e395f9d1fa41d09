import { describe, expect, it } from "vitest";
import {
  formatDuration, isoToUtcInput, utcInputToIso, parseSeconds, relativeTime, sameItems, shortDate, splitList,
} from "./format";

describe("relativeTime", () => {
  const now = new Date("2026-11-25T12:00:00Z");
  it("says how long ago", () => {
    expect(relativeTime(null, now)).toBe("never");
    expect(relativeTime("garbage", now)).toBe("—");
    expect(relativeTime("2026-11-25T11:59:50Z", now)).toBe("just now");
    expect(relativeTime("2026-11-25T11:55:00Z", now)).toBe("5 min ago");
    expect(relativeTime("2026-11-25T09:00:00Z", now)).toBe("3 h ago");
    expect(relativeTime("2026-11-23T12:00:00Z", now)).toBe("2 d ago");
  });
  it("says how long until", () => {
    expect(relativeTime("2026-11-25T12:00:20Z", now)).toBe("in a moment");
    expect(relativeTime("2026-11-25T12:05:00Z", now)).toBe("in 5 min");
    expect(relativeTime("2026-12-05T12:00:00Z", now)).toBe("in 10 d");
  });
});

describe("scope and address lists", () => {
  it("splits on commas, spaces and new lines", () => {
    expect(splitList(" a:read, b:*\nc:write  ")).toEqual(["a:read", "b:*", "c:write"]);
    expect(splitList("a:read,b:write")).toEqual(["a:read", "b:write"]);
    expect(splitList("10.0.0.0/8 , 192.168.1.1")).toEqual(["10.0.0.0/8", "192.168.1.1"]);
    expect(splitList("")).toEqual([]);
    expect(splitList(" ,, \n ")).toEqual([]);
  });
  it("keeps what the user typed, even invalid, for the backend to judge", () => {
    expect(splitList("nope BADGES:READ")).toEqual(["nope", "BADGES:READ"]);
  });
  it("compares lists without regard to order", () => {
    expect(sameItems(["b", "a"], ["a", "b"])).toBe(true);
    expect(sameItems(["a"], ["a", "b"])).toBe(false);
    expect(sameItems(["a", "a"], ["a", "b"])).toBe(false);
  });
});

describe("times and durations", () => {
  it("reads and writes times as UTC ISO text", () => {
    expect(utcInputToIso("")).toBeNull();
    expect(utcInputToIso("not a date")).toBeUndefined();
    expect(utcInputToIso("2027-02-30 10:00")).toBeUndefined();
    expect(utcInputToIso("2027-01-31 24:00")).toBeUndefined();
    expect(utcInputToIso("2026-11-25 10:30")).toBe("2026-11-25T10:30:00.000Z");
    expect(utcInputToIso("2026-11-25T10:30")).toBe("2026-11-25T10:30:00.000Z");
    expect(utcInputToIso("2026-11-25")).toBe("2026-11-25T00:00:00.000Z");
    expect(utcInputToIso(" 2026-11-25 10:30 UTC ")).toBe("2026-11-25T10:30:00.000Z");
    expect(isoToUtcInput("2026-11-25T10:30:00Z")).toBe("2026-11-25 10:30");
    expect(isoToUtcInput(null)).toBe("");
  });
  it("reads grace periods as whole seconds", () => {
    expect(parseSeconds("0")).toBe(0);
    expect(parseSeconds(" 3600 ")).toBe(3600);
    expect(parseSeconds("-5")).toBeNull();
    expect(parseSeconds("1.5")).toBeNull();
    expect(parseSeconds("")).toBeNull();
    expect(parseSeconds("1h")).toBeNull();
    expect(parseSeconds("99999999999")).toBeNull();
  });
  it("describes durations", () => {
    expect(formatDuration(0)).toBe("immediately");
    expect(formatDuration(90)).toBe("1 min 30 s");
    expect(formatDuration(3600)).toBe("1 h");
    expect(formatDuration(86400 * 7)).toBe("7 d");
    expect(formatDuration(5400)).toBe("1 h 30 min");
  });
});
