import { describe, expect, it } from "vitest";
import {
  formatBucket,
  formatDate,
  formatMonth,
  formatDateTime,
  formatMoney,
  formatNumber,
  metricLabel,
  notificationText,
  meterLevel,
  statusLabel,
} from "./format";

describe("formatMoney", () => {
  it("formats decimal strings exactly, with the currency's symbol and digits", () => {
    expect(formatMoney("30.00", "USD")).toBe("$30.00");
    expect(formatMoney("1234567.89", "USD")).toBe("$1,234,567.89");
    expect(formatMoney("-12.50", "USD")).toBe("-$12.50");
    expect(formatMoney("500", "JPY")).toBe("¥500");
    expect(formatMoney("0.10", "EUR", "de-DE")).toBe("0,10\u00a0€");
  });

  it("keeps digits a float would lose", () => {
    // 2^53 + 1 cents: as a float this would print ...992.
    expect(formatMoney("90071992547409.93", "USD")).toBe("$90,071,992,547,409.93");
  });

  it("shows missing or unparseable amounts plainly, never NaN", () => {
    expect(formatMoney(null, "USD")).toBe("—");
    expect(formatMoney("abc", "USD")).toBe("abc USD");
    expect(formatMoney("1.00", "XYZ1")).toBe("1.00 XYZ1");
  });
});

describe("dates", () => {
  it("shows times in UTC, as the API sends them", () => {
    expect(formatDate("2026-11-25T23:59:59.999Z")).toBe("25 Nov 2026");
    expect(formatMonth("2026-12")).toBe("December 2026");
    expect(formatMonth("2026-13")).toBe("2026-13");
    expect(formatDateTime("2026-01-02T03:04:05Z")).toBe("2 Jan 2026, 03:04 UTC");
    expect(formatDate(null)).toBe("—");
    expect(formatDate("not a date")).toBe("not a date");
  });

  it("labels history buckets of each granularity", () => {
    expect(formatBucket("2027-04-01T13")).toBe("1 Apr 13:00");
    expect(formatBucket("2027-04-09")).toBe("9 Apr");
    expect(formatBucket("2027-12")).toBe("Dec 2027");
  });
});

describe("labels", () => {
  it("names metrics, statuses, numbers and meter levels", () => {
    expect(metricLabel("api_calls")).toBe("API calls");
    expect(metricLabel("max_users")).toBe("Seats");
    expect(metricLabel("gpu_minutes")).toBe("Gpu minutes");
    expect(statusLabel("past_due")).toBe("Past due");
    expect(formatNumber(1000000)).toBe("1,000,000");
    expect(formatNumber(null)).toBe("∞");
    expect(meterLevel(79)).toBe("ok");
    expect(meterLevel(80)).toBe("warn");
    expect(meterLevel(100)).toBe("full");
    expect(meterLevel(null)).toBe("ok");
  });
});

describe("notificationText", () => {
  it("words a limit warning with the metric's name and grouped numbers", () => {
    const n = {
      kind: "usage.threshold_reached",
      message: "api_calls reached 80% of the plan's limit (850,000 of 1,000,000)",
      data: { metric: "api_calls", threshold: 80, used: 850000, limit: 1000000 },
    };
    expect(notificationText(n)).toBe("API calls reached 80% of the plan's limit (850,000 of 1,000,000)");
  });
  it("names the unpaid invoice and its amount when dunning ended a subscription", () => {
    const n = {
      kind: "subscription.ended_unpaid",
      message: "…",
      data: { status: "cancelled", invoice_number: 4, amount_due: "49.00", currency: "USD" },
    };
    expect(notificationText(n)).toBe("Your subscription was cancelled after its payment kept failing: invoice #4 ($49.00) is unpaid.");
  });
  it("falls back to the API's words for other kinds or missing data", () => {
    expect(notificationText({ kind: "later.kind", message: "As said", data: {} })).toBe("As said");
    expect(notificationText({ kind: "usage.threshold_reached", message: "As said", data: {} })).toBe("As said");
  });
});
