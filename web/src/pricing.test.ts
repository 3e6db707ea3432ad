import { describe, expect, it } from "vitest";
import { chargeFor, parseDecimal, roundHalfEven } from "./pricing";
import type { UsageCharge } from "./api/types";

const tiers = [
  { up_to: 10000, unit_price: "0.01" },
  { up_to: 100000, unit_price: "0.008" },
  { up_to: null, unit_price: "0.005" },
];

describe("the plan editor's example prices", () => {
  it("agree with docs/billing.md's worked examples", () => {
    const graduated: UsageCharge = { metric: "api_calls", included: 0, price: { model: "graduated", tiers } };
    expect(chargeFor(graduated, 123456n)).toBe("937.28");
    const volume: UsageCharge = { metric: "api_calls", included: 0, price: { model: "volume", tiers } };
    expect(chargeFor(volume, 123456n)).toBe("617.28");
    const perUnit: UsageCharge = { metric: "api_calls", included: 1000, price: { model: "per_unit", unit_price: "0.002" } };
    expect(chargeFor(perUnit, 1500n)).toBe("1.00");
    expect(chargeFor(perUnit, 900n)).toBe("0.00");
    const packages: UsageCharge = { metric: "api_calls", included: 0, price: { model: "package", package_size: 1000, package_price: "5" } };
    expect(chargeFor(packages, 1001n)).toBe("10.00");
  });

  it("round half to even, once", () => {
    expect(roundHalfEven(parseDecimal("0.125")!, 2)).toBe("0.12");
    expect(roundHalfEven(parseDecimal("0.135")!, 2)).toBe("0.14");
    expect(roundHalfEven(parseDecimal("0.625")!, 2)).toBe("0.62");
    expect(roundHalfEven(parseDecimal("7")!, 0)).toBe("7");
  });

  it("refuse what is not a plain decimal", () => {
    expect(parseDecimal("-1")).toBeNull();
    expect(parseDecimal("1e3")).toBeNull();
    expect(parseDecimal("0.002")).toBe(2_000_000_000n);
  });
});
