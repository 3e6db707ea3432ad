import type { Tier, UsageCharge, UsagePrice } from "./api/types";

/** Exact decimal arithmetic for the plan editor's live example (never floats for money): amounts
 * are BigInts in units of 10^-12. The server prices invoices; this mirrors its rules
 * (shared/src/billing/pricing.rs) so an editor sees what a quantity would cost. */
const DIGITS = 12;
const SCALE = 10n ** BigInt(DIGITS);

/** A decimal string as scaled units; `null` when it is not a plain non-negative decimal. */
export function parseDecimal(text: string): bigint | null {
  const m = /^(\d+)(?:\.(\d{1,12}))?$/.exec(text.trim());
  if (!m) return null;
  return BigInt(m[1]) * SCALE + BigInt((m[2] ?? "").padEnd(DIGITS, "0"));
}

function graduated(tiers: Tier[], units: bigint): bigint {
  let total = 0n;
  let below = 0n;
  for (const tier of tiers) {
    if (units <= below) break;
    const top = tier.up_to === null ? units : BigInt(tier.up_to) < units ? BigInt(tier.up_to) : units;
    total += price(tier.unit_price) * (top - below) + price(tier.flat_price ?? "0");
    below = top;
    if (tier.up_to === null) break;
  }
  return total;
}

function volume(tiers: Tier[], units: bigint): bigint {
  if (units === 0n) return 0n;
  const tier = tiers.find((t) => t.up_to === null || units <= BigInt(t.up_to)) ?? tiers[tiers.length - 1];
  return tier ? price(tier.unit_price) * units + price(tier.flat_price ?? "0") : 0n;
}

function price(text: string): bigint {
  return parseDecimal(text) ?? 0n;
}

/** The exact price of `units` billable units. */
export function priceOf(model: UsagePrice, units: bigint): bigint {
  switch (model.model) {
    case "per_unit":
      return price(model.unit_price) * units;
    case "package": {
      const size = BigInt(Math.max(1, model.package_size));
      return price(model.package_price) * ((units + size - 1n) / size);
    }
    case "graduated":
      return graduated(model.tiers, units);
    case "volume":
      return volume(model.tiers, units);
  }
}

/** What `used` units cost under `charge`, after its allowance, rounded once to `minor` digits
 * half to even (the invoice's rule), as a decimal string. */
export function chargeFor(charge: UsageCharge, used: bigint, minor = 2): string {
  const included = BigInt(charge.included);
  const billable = used > included ? used - included : 0n;
  return roundHalfEven(priceOf(charge.price, billable), minor);
}

/** Scaled units rounded to `minor` decimal places, half to even. */
export function roundHalfEven(scaled: bigint, minor: number): string {
  const step = 10n ** BigInt(DIGITS - minor);
  let whole = scaled / step;
  const rest = scaled % step;
  if (rest * 2n > step || (rest * 2n === step && whole % 2n === 1n)) whole += 1n;
  const text = whole.toString().padStart(minor + 1, "0");
  return minor ? `${text.slice(0, -minor)}.${text.slice(-minor)}` : text;
}
