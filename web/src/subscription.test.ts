import { describe, expect, it } from "vitest";
import { nextDate } from "./subscription";

describe("nextDate", () => {
  const base = { trial_end: "2026-12-15T00:00:00Z", current_period_end: "2027-01-15T00:00:00Z", cancel_at_period_end: false };

  it("leads with the trial's end while trialing", () => {
    expect(nextDate({ ...base, status: "trialing" })).toEqual({ label: "Trial ends", at: "2026-12-15T00:00:00Z" });
  });

  it("shows the renewal, not the past trial end, once the trial has become a paid period", () => {
    expect(nextDate({ ...base, status: "active" })).toEqual({ label: "Renews", at: "2027-01-15T00:00:00Z" });
    expect(nextDate({ ...base, status: "active", cancel_at_period_end: true })).toEqual({ label: "Ends", at: "2027-01-15T00:00:00Z" });
  });
});
