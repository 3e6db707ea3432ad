import { useState, type FormEvent } from "react";
import { useSession } from "../session";
import { useAction, useGet } from "../hooks";
import { idempotencyKey } from "../api/client";
import type { Credits, Invoice, PlanVersion, Subscription } from "../api/types";
import { formatDate, formatMoney, metricLabel } from "../format";
import { Empty, ErrorNotice, Field, fieldError, Success, WhenLoaded } from "./ui";

/** The credit balance invoices take first, and the units held on top of the plan (grants and
 * bought top-ups). `path` is the tenant's or an admin's view. */
export function CreditsPanel({ path }: { path: string }) {
  const credits = useGet<Credits>(path);
  return (
    <WhenLoaded state={credits}>
      {() => {
        const c = credits.data;
        if (!c) return null;
        return (
          <div data-testid="credits">
            <p>
              Credit balance: <strong data-testid="credit-balance">{formatMoney(c.balance, c.currency)}</strong>
              <span className="hint"> (taken from the next invoices before any card is charged)</span>
            </p>
            {c.grants.length ? (
              <div className="table-wrap">
                <table>
                  <thead>
                    <tr>
                      <th scope="col">Units</th>
                      <th scope="col">From</th>
                      <th scope="col">Until</th>
                      <th scope="col">Why</th>
                    </tr>
                  </thead>
                  <tbody>
                    {c.grants.map((g) => (
                      <tr key={g.id} data-grant={g.invoice_id ? "top_up" : "grant"}>
                        <td>
                          {g.units.toLocaleString("en-US")} {metricLabel(g.metric)}
                        </td>
                        <td>{formatDate(g.granted_at)}</td>
                        <td>{formatDate(g.expires_at)}</td>
                        <td>{g.invoice_id ? "Bought (top-up)" : g.reason}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            ) : (
              <Empty>No extra units this period.</Empty>
            )}
          </div>
        );
      }}
    </WhenLoaded>
  );
}

/** Seats on a plan with a seat price: what this period paid for, and on licensed seats a
 * form to buy more (charged at once) or fewer (from the next renewal). */
export function SeatsPanel({ sub, version, onChanged }: { sub: Subscription; version: PlanVersion; onChanged: () => void }) {
  const { api } = useSession();
  const seats = version.seats;
  const [quantity, setQuantity] = useState(String(sub.seats_licensed ?? sub.seats_billed ?? 1));
  const [done, setDone] = useState<string | null>(null);
  const save = useAction();
  if (!seats) return null;
  const licensed = seats.quantity === "licensed";
  const submit = (e: FormEvent) => {
    e.preventDefault();
    void save.run(async () => {
      setDone(null);
      const after = await api.post<Subscription>(
        `/v1/subscriptions/${sub.id}/seats`,
        { quantity: Number(quantity) },
        { idempotencyKey: idempotencyKey() },
      );
      setDone(
        (after.seats_licensed ?? 0) > (sub.seats_billed ?? 0)
          ? `${after.seats_licensed} seats: the added ones are charged now for the rest of the period.`
          : `${after.seats_licensed} seats from the next renewal.`,
      );
      onChanged();
    });
  };
  return (
    <div data-testid="seat-billing">
      {done && <Success>{done}</Success>}
      <p>
        {formatMoney(seats.unit_price, version.currency)} per seat and cycle
        {seats.included ? `, ${seats.included} included` : ""}. Paid this period:{" "}
        <strong data-testid="seats-billed">{sub.seats_billed ?? "—"}</strong>
        {licensed && sub.seats_licensed != null && sub.seats_licensed !== sub.seats_billed && (
          <span className="hint"> ({sub.seats_licensed} from the next renewal)</span>
        )}
        . {licensed ? "You buy seats; members fill them." : "Each member is a seat: a new member is charged for the rest of the period."}
      </p>
      {licensed && (
        <form onSubmit={submit} noValidate className="inline-form" aria-label="Set seats">
          <Field label="Seats" error={fieldError(save.error, "quantity")} hint="More are charged now; fewer apply at renewal, no refund.">
            {(p) => <input {...p} inputMode="numeric" size={6} value={quantity} onChange={(e) => setQuantity(e.target.value)} />}
          </Field>
          <button type="submit" disabled={save.busy || !/^\d+$/.test(quantity.trim())}>
            Update seats
          </button>
        </form>
      )}
      <ErrorNotice error={fieldError(save.error, "quantity") ? null : save.error} />
    </div>
  );
}

/** The top-ups a plan sells: packs of units bought now, charged at once. */
export function TopUpsPanel({ sub, version, onBought }: { sub: Subscription; version: PlanVersion; onBought: () => void }) {
  const { api } = useSession();
  const [packs, setPacks] = useState<Record<string, string>>({});
  const [done, setDone] = useState<string | null>(null);
  const buy = useAction();
  if (!version.top_ups?.length) return <Empty>This plan sells no top-ups.</Empty>;
  const paid = sub.status === "active";
  return (
    <div data-testid="top-ups">
      {done && <Success>{done}</Success>}
      {!paid && <p className="hint">Top-ups are bought on an active, paid subscription.</p>}
      {version.top_ups.map((t) => {
        const n = packs[t.metric] ?? "1";
        const submit = (e: FormEvent) => {
          e.preventDefault();
          void buy.run(async () => {
            setDone(null);
            const bought = await api.post<{ invoice: Invoice }>(
              `/v1/subscriptions/${sub.id}/top-ups`,
              { metric: t.metric, packs: Number(n) },
              { idempotencyKey: idempotencyKey() },
            );
            setDone(
              `Bought ${(t.units * Number(n)).toLocaleString("en-US")} ${metricLabel(t.metric)} until ${formatDate(
                sub.current_period_end,
              )}; invoice #${bought.invoice.number} is ${bought.invoice.status}.`,
            );
            onBought();
          });
        };
        return (
          <form key={t.metric} onSubmit={submit} noValidate className="inline-form" aria-label={`Buy ${t.metric}`}>
            <span>
              {t.units.toLocaleString("en-US")} {metricLabel(t.metric)} for {formatMoney(t.price, version.currency)}
            </span>
            <Field label={`Packs of ${metricLabel(t.metric)}`} error={fieldError(buy.error, "packs")}>
              {(p) => (
                <input {...p} inputMode="numeric" size={4} value={n} onChange={(e) => setPacks({ ...packs, [t.metric]: e.target.value })} />
              )}
            </Field>
            <button type="submit" disabled={buy.busy || !paid || !/^\d+$/.test(n.trim())}>
              Buy
            </button>
          </form>
        );
      })}
      <ErrorNotice error={fieldError(buy.error, "packs") ? null : buy.error} />
    </div>
  );
}

/** A platform admin adds to or takes back from a tenant's credit balance, with a reason. */
export function AdjustCredit({ tenantId, onDone }: { tenantId: string; onDone: () => void }) {
  const { api } = useSession();
  const [amount, setAmount] = useState("");
  const [reason, setReason] = useState("");
  const [done, setDone] = useState<string | null>(null);
  const save = useAction();
  const submit = (e: FormEvent) => {
    e.preventDefault();
    void save.run(async () => {
      setDone(null);
      const after = await api.post<Credits>(
        `/v1/admin/tenants/${tenantId}/credits`,
        { amount: amount.trim(), reason: reason.trim() },
        { idempotencyKey: idempotencyKey() },
      );
      setDone(`Balance now ${formatMoney(after.balance, after.currency)}.`);
      setAmount("");
      setReason("");
      onDone();
    });
  };
  return (
    <form onSubmit={submit} noValidate className="inline-form" aria-label="Adjust the credit balance">
      {done && <Success>{done}</Success>}
      <Field label="Credit amount" error={fieldError(save.error, "amount")} hint="Negative takes credit back.">
        {(p) => <input {...p} inputMode="decimal" size={10} value={amount} onChange={(e) => setAmount(e.target.value)} />}
      </Field>
      <Field label="Reason for the credit" error={fieldError(save.error, "reason")}>
        {(p) => <input {...p} value={reason} onChange={(e) => setReason(e.target.value)} />}
      </Field>
      <button type="submit" disabled={save.busy || !amount.trim() || !reason.trim()}>
        Adjust balance
      </button>
      <ErrorNotice error={fieldError(save.error, "amount") || fieldError(save.error, "reason") ? null : save.error} />
    </form>
  );
}

/** A platform admin grants a tenant units of a metric on top of its plan (a goodwill
 * gesture), until the period ends or a date, with a reason. */
export function GrantUnits({ tenantId, metrics, onDone }: { tenantId: string; metrics: string[]; onDone: () => void }) {
  const { api } = useSession();
  const [form, setForm] = useState({ metric: metrics[0] ?? "", units: "", reason: "", until: "" });
  const [done, setDone] = useState<string | null>(null);
  const save = useAction();
  const set = (k: keyof typeof form) => (e: { target: { value: string } }) => setForm({ ...form, [k]: e.target.value });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    void save.run(async () => {
      setDone(null);
      const grant = await api.post<{ units: number; metric: string; expires_at: string }>(
        `/v1/admin/tenants/${tenantId}/grants`,
        {
          metric: form.metric.trim(),
          units: Number(form.units),
          reason: form.reason.trim(),
          ...(form.until ? { expires_at: `${form.until}T00:00:00Z` } : {}),
        },
        { idempotencyKey: idempotencyKey() },
      );
      setDone(`Granted ${grant.units.toLocaleString("en-US")} ${metricLabel(grant.metric)} until ${formatDate(grant.expires_at)}.`);
      setForm({ ...form, units: "", reason: "", until: "" });
      onDone();
    });
  };
  const fields = ["metric", "units", "reason", "expires_at"];
  return (
    <form onSubmit={submit} noValidate className="inline-form" aria-label="Grant units">
      {done && <Success>{done}</Success>}
      <Field label="Metric to grant" error={fieldError(save.error, "metric")}>
        {(p) => (
          <select {...p} value={form.metric} onChange={set("metric")}>
            {metrics.map((m) => (
              <option key={m} value={m}>
                {metricLabel(m)}
              </option>
            ))}
          </select>
        )}
      </Field>
      <Field label="Units to grant" error={fieldError(save.error, "units")}>
        {(p) => <input {...p} inputMode="numeric" size={10} value={form.units} onChange={set("units")} />}
      </Field>
      <Field label="Granted until" error={fieldError(save.error, "expires_at")} hint="Empty: the end of the period.">
        {(p) => <input {...p} type="date" value={form.until} onChange={set("until")} />}
      </Field>
      <Field label="Reason for the grant" error={fieldError(save.error, "reason")}>
        {(p) => <input {...p} value={form.reason} onChange={set("reason")} />}
      </Field>
      <button type="submit" disabled={save.busy || !form.metric || !/^\d+$/.test(form.units.trim()) || !form.reason.trim()}>
        Grant units
      </button>
      <ErrorNotice error={fields.some((f) => fieldError(save.error, f)) ? null : save.error} />
    </form>
  );
}
