import type { RateEntitlement, RateLimit } from "../api/types";
import { formatNumber } from "../format";

/** A rate limit as the form edits it: text while typed, checked when sent. */
export interface RateDraft {
  bucket: string;
  limit: string;
  per: RateLimit["per"];
}

export const API_BUCKET = "eshtarek_api";
const PERIODS: RateLimit["per"][] = ["second", "minute", "hour", "day"];

export const rateDraft = (r: RateLimit): RateDraft => ({ bucket: r.bucket, limit: String(r.limit), per: r.per });

export const rateBody = (d: RateDraft): RateLimit => ({
  bucket: d.bucket.trim(),
  limit: Number(d.limit.trim()),
  per: d.per,
});

/** "60 a minute", "1,000 an hour" */
export function rateText(limit: number, per: RateLimit["per"]): string {
  return `${formatNumber(limit)} ${per === "hour" ? "an" : "a"} ${per}`;
}

/** A plan's rate limits in one line: "requests: 60 a minute, 1,000 an hour". */
export function ratesSummary(rates: RateLimit[] | undefined): string {
  if (!rates?.length) return "—";
  const buckets = [...new Set(rates.map((r) => r.bucket))];
  return buckets
    .map((b) => {
      const name = b === API_BUCKET ? "API calls" : b;
      return `${name}: ${rates
        .filter((r) => r.bucket === b)
        .map((r) => rateText(r.limit, r.per))
        .join(", ")}`;
    })
    .join("; ");
}

/** Client-side checks that save a round trip (the API checks again and names the field). */
export function validateRates(drafts: RateDraft[]): Record<string, string> {
  const e: Record<string, string> = {};
  drafts.forEach((d, i) => {
    if (!/^[a-z][a-z0-9_]{0,63}$/.test(d.bucket.trim()))
      e[`rate_limits[${i}].bucket`] = "Lowercase letters, digits and _, starting with a letter.";
    const n = Number(d.limit.trim());
    if (!/^\d+$/.test(d.limit.trim()) || n < 1 || n > 100_000_000) e[`rate_limits[${i}].limit`] = "A whole number from 1 to 100,000,000.";
    if (drafts.slice(0, i).some((o) => o.bucket.trim() === d.bucket.trim() && o.per === d.per))
      e[`rate_limits[${i}].per`] = "One limit per bucket and period.";
  });
  return e;
}

/** The plan editor's rate limits: named buckets, each with windows. */
export function RateLimitsEditor({
  value,
  onChange,
  err,
}: {
  value: RateDraft[];
  onChange: (v: RateDraft[]) => void;
  err: (field: string) => string | null;
}) {
  const set = (i: number, patch: Partial<RateDraft>) => onChange(value.map((d, j) => (j === i ? { ...d, ...patch } : d)));
  return (
    <fieldset data-testid="rate-limits">
      <legend>Rate limits</legend>
      <p className="hint">
        Requests per period, per bucket: a burst of the limit, then one every period ÷ limit. Tenants check their own buckets with{" "}
        <code>POST /v1/entitlements/check</code>; the bucket <code>{API_BUCKET}</code> limits their calls to this API.
      </p>
      {err("rate_limits") && <small className="field-error">{err("rate_limits")}</small>}
      {value.map((d, i) => (
        <div className="row" key={i}>
          <label>
            Rate {i + 1}: bucket
            <input
              name={`rate-bucket-${i}`}
              value={d.bucket}
              onChange={(e) => set(i, { bucket: e.target.value })}
              aria-invalid={!!err(`rate_limits[${i}].bucket`)}
            />
            {err(`rate_limits[${i}].bucket`) && <small className="field-error">{err(`rate_limits[${i}].bucket`)}</small>}
          </label>
          <label>
            Rate {i + 1}: limit
            <input
              name={`rate-limit-${i}`}
              inputMode="numeric"
              size={8}
              value={d.limit}
              onChange={(e) => set(i, { limit: e.target.value })}
              aria-invalid={!!err(`rate_limits[${i}].limit`)}
            />
            {err(`rate_limits[${i}].limit`) && <small className="field-error">{err(`rate_limits[${i}].limit`)}</small>}
          </label>
          <label>
            Rate {i + 1}: per
            <select name={`rate-per-${i}`} value={d.per} onChange={(e) => set(i, { per: e.target.value as RateLimit["per"] })}>
              {PERIODS.map((p) => (
                <option key={p} value={p}>
                  {p}
                </option>
              ))}
            </select>
            {err(`rate_limits[${i}].per`) && <small className="field-error">{err(`rate_limits[${i}].per`)}</small>}
          </label>
          <button type="button" className="link" onClick={() => onChange(value.filter((_, j) => j !== i))}>
            Remove
          </button>
        </div>
      ))}
      <button
        type="button"
        className="link"
        onClick={() => onChange([...value, { bucket: value[0]?.bucket ?? "requests", limit: "60", per: "minute" }])}
      >
        Add a rate limit
      </button>
    </fieldset>
  );
}

/** The tenant's rate buckets now: each window with what is left. */
export function RateList({ rates }: { rates: RateEntitlement[] }) {
  if (!rates.length) return null;
  return (
    <ul className="features" data-testid="rate-list">
      {rates.flatMap((r) =>
        r.windows.map((w) => (
          <li key={`${r.bucket}-${w.per}`} data-bucket={r.bucket}>
            <span>{r.bucket === API_BUCKET ? "Calls to this API" : r.bucket}</span>{" "}
            <span className="rate">
              <strong>{rateText(w.limit, w.per)}</strong> <span className="hint">({formatNumber(w.remaining)} left now)</span>
            </span>
          </li>
        )),
      )}
    </ul>
  );
}
