import { useState, type FormEvent } from "react";
import { useSession } from "../../session";
import { useAction, useGet } from "../../hooks";
import { idempotencyKey } from "../../api/client";
import type { Coupon, Page } from "../../api/types";
import { Card, Empty, ErrorNotice, Field, fieldError, StatusBadge, Success, unlessFieldError, WhenLoaded } from "../../components/ui";
import { formatDate, formatMoney } from "../../format";

const FIELDS = ["code", "name", "percent_off", "amount_off", "currency", "duration", "duration_cycles", "max_redemptions", "expires_at"];

/** What a coupon takes off and for how long, in words: "20% off 3 invoices". */
export function couponTerms(c: Coupon): string {
  const off = c.percent_off ? `${c.percent_off}% off` : `${formatMoney(c.amount_off, c.currency ?? "USD")} off`;
  const span =
    c.duration === "once"
      ? "the first invoice"
      : c.duration === "forever"
        ? "every invoice"
        : `${c.duration_cycles} invoice${c.duration_cycles === 1 ? "" : "s"}`;
  return `${off} ${span}`;
}

/** Coupons (platform admins): create, see redemptions, switch off. Every change is audited. */
export function CouponsAdmin() {
  const { api } = useSession();
  const coupons = useGet<Page<Coupon>>("/v1/coupons?limit=100");
  const blank = {
    code: "",
    name: "",
    kind: "percent",
    value: "",
    currency: "USD",
    duration: "once",
    duration_cycles: "3",
    max_redemptions: "",
    expires_on: "",
  };
  const [form, setForm] = useState(blank);
  const [done, setDone] = useState<string | null>(null);
  const create = useAction();
  const toggle = useAction();
  const set = (k: keyof typeof form) => (e: { target: { value: string } }) => setForm({ ...form, [k]: e.target.value });
  const err = (k: string) => fieldError(create.error, k);

  const submit = (e: FormEvent) => {
    e.preventDefault();
    const body: Record<string, unknown> = {
      code: form.code.trim(),
      duration: form.duration,
      ...(form.name.trim() ? { name: form.name.trim() } : {}),
      ...(form.kind === "percent"
        ? { percent_off: form.value.trim() }
        : { amount_off: form.value.trim(), currency: form.currency.trim().toUpperCase() }),
      ...(form.duration === "repeating" ? { duration_cycles: Number(form.duration_cycles) } : {}),
      ...(form.max_redemptions.trim() ? { max_redemptions: Number(form.max_redemptions) } : {}),
      ...(form.expires_on ? { expires_at: `${form.expires_on}T23:59:59Z` } : {}),
    };
    void create.run(async () => {
      setDone(null);
      const made = await api.post<Coupon>("/v1/coupons", body, { idempotencyKey: idempotencyKey() });
      setDone(`Coupon ${made.code} created: ${couponTerms(made)}.`);
      setForm(blank);
      coupons.reload();
    });
  };
  const setActive = (c: Coupon, active: boolean) =>
    toggle.run(async () => {
      setDone(null);
      await api.patch(`/v1/coupons/${c.code}`, { active });
      setDone(active ? `Coupon ${c.code} is on again.` : `Coupon ${c.code} is switched off; applied ones keep running.`);
      coupons.reload();
    });

  return (
    <div className="page">
      <h1>Coupons</h1>
      {done && <Success>{done}</Success>}
      <ErrorNotice error={toggle.error} />
      <Card title="Coupons">
        <WhenLoaded state={coupons}>
          {() =>
            coupons.data?.data.length ? (
              <div className="table-wrap">
                <table>
                  <thead>
                    <tr>
                      <th scope="col">Code</th>
                      <th scope="col">Terms</th>
                      <th scope="col" className="num">
                        Redeemed
                      </th>
                      <th scope="col">Expires</th>
                      <th scope="col">Status</th>
                      <th scope="col">
                        <span className="sr-only">Actions</span>
                      </th>
                    </tr>
                  </thead>
                  <tbody>
                    {coupons.data.data.map((c) => (
                      <tr key={c.code} data-coupon={c.code}>
                        <td>
                          <strong>{c.code}</strong>
                          {c.name && <span className="hint"> {c.name}</span>}
                        </td>
                        <td>{couponTerms(c)}</td>
                        <td className="num">
                          {c.redemptions}
                          {c.max_redemptions != null && ` / ${c.max_redemptions}`}
                        </td>
                        <td>{c.expires_at ? formatDate(c.expires_at) : "never"}</td>
                        <td>
                          <StatusBadge status={c.active ? "active" : "inactive"} />
                        </td>
                        <td>
                          <button type="button" className="link" disabled={toggle.busy} onClick={() => void setActive(c, !c.active)}>
                            {c.active ? `Switch off ${c.code}` : `Switch on ${c.code}`}
                          </button>
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            ) : (
              <Empty>No coupons yet.</Empty>
            )
          }
        </WhenLoaded>
      </Card>
      <Card title="New coupon">
        <form onSubmit={submit} noValidate aria-label="New coupon">
          <div className="row">
            <Field label="Code" error={err("code")} hint="3 to 32 letters, digits, - or _; what tenants type.">
              {(p) => <input {...p} value={form.code} autoComplete="off" onChange={set("code")} />}
            </Field>
            <Field label="Coupon name" error={err("name")}>
              {(p) => <input {...p} value={form.name} onChange={set("name")} />}
            </Field>
          </div>
          <div className="row">
            <Field label="Discount" error={null}>
              {(p) => (
                <select {...p} value={form.kind} onChange={set("kind")}>
                  <option value="percent">Percent off</option>
                  <option value="amount">Amount off</option>
                </select>
              )}
            </Field>
            <Field
              label={form.kind === "percent" ? "Percent" : "Amount"}
              error={err(form.kind === "percent" ? "percent_off" : "amount_off")}
              hint={form.kind === "percent" ? "More than 0, at most 100." : "Taken off once per invoice, never below zero."}
            >
              {(p) => <input {...p} inputMode="decimal" size={8} value={form.value} onChange={set("value")} />}
            </Field>
            {form.kind === "amount" && (
              <Field label="Coupon currency" error={err("currency")}>
                {(p) => <input {...p} size={4} value={form.currency} onChange={set("currency")} />}
              </Field>
            )}
          </div>
          <div className="row">
            <Field label="Duration" error={err("duration")}>
              {(p) => (
                <select {...p} value={form.duration} onChange={set("duration")}>
                  <option value="once">Once</option>
                  <option value="repeating">A number of invoices</option>
                  <option value="forever">Forever</option>
                </select>
              )}
            </Field>
            {form.duration === "repeating" && (
              <Field label="Invoices" error={err("duration_cycles")}>
                {(p) => <input {...p} inputMode="numeric" size={4} value={form.duration_cycles} onChange={set("duration_cycles")} />}
              </Field>
            )}
            <Field label="Max redemptions" error={err("max_redemptions")} hint="Empty: no limit.">
              {(p) => <input {...p} inputMode="numeric" size={8} value={form.max_redemptions} onChange={set("max_redemptions")} />}
            </Field>
            <Field label="Redeemable until" error={err("expires_at")} hint="Empty: no end.">
              {(p) => <input {...p} type="date" value={form.expires_on} onChange={set("expires_on")} />}
            </Field>
          </div>
          <button type="submit" className="primary" disabled={create.busy}>
            Create coupon
          </button>
          <ErrorNotice error={unlessFieldError(create.error, FIELDS)} />
        </form>
      </Card>
    </div>
  );
}
