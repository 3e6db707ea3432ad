/**
 * Formatting of the API's values for people. Money arrives as a decimal string with its
 * currency and stays a string: `Intl.NumberFormat` formats decimal strings exactly (no float
 * on the way), so "0.10" + "0.20" is never shown as 0.30000000000000004.
 */

const moneyFormats = new Map<string, Intl.NumberFormat>();

export function formatMoney(amount: string | null | undefined, currency: string, locale = "en-US"): string {
  if (amount === null || amount === undefined || amount === "") return "—";
  if (!/^-?\d+(\.\d+)?$/.test(amount)) return `${amount} ${currency}`;
  const key = `${locale}|${currency}`;
  let format = moneyFormats.get(key);
  if (!format) {
    try {
      format = new Intl.NumberFormat(locale, { style: "currency", currency });
    } catch {
      return `${amount} ${currency}`;
    }
    moneyFormats.set(key, format);
  }
  // A decimal string is formatted exactly (Intl.NumberFormat v3); the cast satisfies older
  // lib typings that only declare number | bigint.
  return format.format(amount as unknown as number);
}

const months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const pad = (n: number) => String(n).padStart(2, "0");

/** `2026-11-25T21:19:24.494Z` → `25 Nov 2026` (UTC, like every time the API sends). */
export function formatDate(iso: string | null | undefined): string {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return `${d.getUTCDate()} ${months[d.getUTCMonth()]} ${d.getUTCFullYear()}`;
}

/** `2026-12` → `December 2026` (a month as the API names one); anything else as it is. */
export function formatMonth(month: string): string {
  const m = /^(\d{4})-(\d{2})$/.exec(month);
  if (!m || Number(m[2]) < 1 || Number(m[2]) > 12) return month;
  const names = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];
  return `${names[Number(m[2]) - 1]} ${m[1]}`;
}

/** `2026-11-25T21:19:24.494Z` → `25 Nov 2026, 21:19 UTC`. */
export function formatDateTime(iso: string | null | undefined): string {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return `${formatDate(iso)}, ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())} UTC`;
}

/** A history bucket (`2027-04-01T13`, `2027-04-01`, `2027-04`) as a short axis label. */
export function formatBucket(bucket: string): string {
  const hour = /^(\d{4})-(\d{2})-(\d{2})T(\d{2})$/.exec(bucket);
  if (hour) return `${Number(hour[3])} ${months[Number(hour[2]) - 1]} ${hour[4]}:00`;
  const day = /^(\d{4})-(\d{2})-(\d{2})$/.exec(bucket);
  if (day) return `${Number(day[3])} ${months[Number(day[2]) - 1]}`;
  const month = /^(\d{4})-(\d{2})$/.exec(bucket);
  if (month) return `${months[Number(month[2]) - 1]} ${month[1]}`;
  return bucket;
}

export function formatNumber(n: number | null | undefined): string {
  if (n === null || n === undefined) return "∞";
  return new Intl.NumberFormat("en-US").format(n);
}

/** `api_calls` → `API calls`; `max_users` → `Seats`; others humanised. */
export function metricLabel(metric: string): string {
  const known: Record<string, string> = { api_calls: "API calls", max_users: "Seats", storage_mb: "Storage (MB)" };
  if (known[metric]) return known[metric];
  const words = metric.replace(/_/g, " ");
  return words.charAt(0).toUpperCase() + words.slice(1);
}

/** `past_due` → `Past due`. */
export function statusLabel(status: string): string {
  const words = status.replace(/_/g, " ");
  return words.charAt(0).toUpperCase() + words.slice(1);
}

/** Where a meter stands: below the first warning, warned, or at/over the limit. */
export function meterLevel(percent: number | null | undefined): "ok" | "warn" | "full" {
  if (percent === null || percent === undefined) return "ok";
  if (percent >= 100) return "full";
  if (percent >= 80) return "warn";
  return "ok";
}

/** A notification in words: limit warnings with the metric's display name and grouped numbers
 * (the API's `message` uses the metric's key), unpaid endings with the amount in its currency;
 * any other kind as the API words it. */
export function notificationText(n: { kind: string; message: string; data: Record<string, unknown> }): string {
  const d = n.data ?? {};
  if (n.kind === "usage.threshold_reached" && typeof d.metric === "string") {
    return `${metricLabel(d.metric)} reached ${String(d.threshold)}% of the plan's limit (${formatNumber(Number(d.used))} of ${formatNumber(Number(d.limit))})`;
  }
  if (
    n.kind === "subscription.ended_unpaid" &&
    typeof d.invoice_number === "number" &&
    typeof d.amount_due === "string" &&
    typeof d.currency === "string"
  ) {
    const ended = d.status === "expired" ? "expired" : "was cancelled";
    return `Your subscription ${ended} after its payment kept failing: invoice #${d.invoice_number} (${formatMoney(d.amount_due, d.currency)}) is unpaid.`;
  }
  return n.message;
}
