import { useState, type FormEvent } from "react";
import { useGet } from "../hooks";
import type { Feature, Page, Plan, Policy } from "../api/types";
import { Field, fieldError } from "./ui";
import {
  chargeBody,
  chargeDraft,
  PriceComponents,
  seatBody,
  seatDraft,
  topUpBody,
  topUpDraft,
  type ChargeDraft,
  type SeatDraft,
  type TopUpDraft,
} from "./PriceComponents";
import { formatNumber, metricLabel } from "../format";
import { AllowedChanges, FeatureValues, featureBody, featureDraft, useFeatures } from "./Features";
import { RateLimitsEditor, rateBody, rateDraft, validateRates, type RateDraft } from "./RateLimits";

export interface PlanFormValues {
  name: string;
  description: string;
  price: string;
  currency: string;
  billing_cycle: "monthly" | "yearly";
  trial_days: string;
  duration_cycles: string;
  limit_policy_ids: string[] | null;
  seats: SeatDraft | null;
  usage_charges: ChargeDraft[];
  top_ups: TopUpDraft[];
  features: Record<string, string>;
  allowed_changes: string[] | null;
  rate_limits: RateDraft[];
}

export function planValues(plan?: Plan): PlanFormValues {
  return {
    name: plan?.name ?? "",
    description: plan?.description ?? "",
    price: plan?.price ?? "",
    currency: plan?.currency ?? "USD",
    billing_cycle: plan?.billing_cycle ?? "monthly",
    trial_days: String(plan?.trial_days ?? 0),
    duration_cycles: plan?.duration_cycles ? String(plan.duration_cycles) : "",
    limit_policy_ids: plan ? null : [],
    seats: seatDraft(plan?.seats),
    usage_charges: (plan?.usage_charges ?? []).map(chargeDraft),
    top_ups: (plan?.top_ups ?? []).map(topUpDraft),
    features: featureDraft(plan?.features),
    allowed_changes: plan?.allowed_changes ?? null,
    rate_limits: (plan?.rate_limits ?? []).map(rateDraft),
  };
}

/** Client-side checks that save a round trip; the API checks everything again. */
export function validatePlan(v: PlanFormValues): Record<string, string> {
  const e: Record<string, string> = {};
  if (!v.name.trim()) e.name = "Give the plan a name.";
  if (!/^\d+(\.\d{1,2})?$/.test(v.price.trim())) e.price = "A price like 29 or 29.00 (not negative).";
  if (!/^[A-Za-z]{3}$/.test(v.currency.trim())) e.currency = "A three-letter currency code, e.g. USD.";
  if (!/^\d+$/.test(v.trial_days) || Number(v.trial_days) > 365) e.trial_days = "Whole days, 0 to 365.";
  if (v.duration_cycles && !/^[1-9]\d*$/.test(v.duration_cycles)) e.duration_cycles = "Empty (no end) or a whole number of cycles.";
  return { ...e, ...validateRates(v.rate_limits) };
}

export function planBody(v: PlanFormValues, only?: Plan, catalog?: Feature[]) {
  const body: Record<string, unknown> = {
    name: v.name.trim(),
    description: v.description.trim(),
    price: v.price.trim(),
    currency: v.currency.trim().toUpperCase(),
    billing_cycle: v.billing_cycle,
    trial_days: Number(v.trial_days),
    duration_cycles: v.duration_cycles ? Number(v.duration_cycles) : null,
    seats: seatBody(v.seats),
    usage_charges: v.usage_charges.map(chargeBody),
    top_ups: v.top_ups.map(topUpBody),
    features: featureBody(v.features, catalog),
    allowed_changes: v.allowed_changes,
    rate_limits: v.rate_limits.map(rateBody),
  };
  if (v.limit_policy_ids) body.limit_policy_ids = v.limit_policy_ids;
  if (!only) return body;
  // An edit sends only what changed, so an untouched field never makes a new version.
  const before = planBody(planValues(only), undefined, catalog) as Record<string, unknown>;
  return Object.fromEntries(
    Object.entries(body).filter(([k, val]) => k === "limit_policy_ids" || JSON.stringify(before[k]) !== JSON.stringify(val)),
  );
}

export function PlanForm({
  initial,
  busy,
  error,
  submitLabel,
  onSubmit,
}: {
  initial?: Plan;
  busy: boolean;
  error: unknown;
  submitLabel: string;
  onSubmit: (values: PlanFormValues, catalog: Feature[] | undefined) => void;
}) {
  const [v, setV] = useState<PlanFormValues>(planValues(initial));
  const catalog = useFeatures();
  const plans = useGet<Page<Plan>>("/v1/plans?limit=100");
  const [local, setLocal] = useState<Record<string, string>>({});
  const policies = useGet<Page<Policy>>("/v1/limit-policies?limit=100");
  const err = (k: string) => local[k] ?? fieldError(error, k);
  const submit = (e: FormEvent) => {
    e.preventDefault();
    const problems = validatePlan(v);
    setLocal(problems);
    if (!Object.keys(problems).length) onSubmit(v, catalog.data?.data);
  };
  const set = (k: keyof PlanFormValues) => (e: { target: { value: string } }) => setV({ ...v, [k]: e.target.value });
  return (
    <form onSubmit={submit} noValidate className="plan-form" aria-label={submitLabel}>
      <Field label="Name" error={err("name")}>
        {(p) => <input {...p} name="name" value={v.name} onChange={set("name")} />}
      </Field>
      <Field label="Description" error={err("description")}>
        {(p) => <input {...p} name="description" value={v.description} onChange={set("description")} />}
      </Field>
      <div className="row">
        <Field label="Price" error={err("price")}>
          {(p) => <input {...p} name="price" inputMode="decimal" value={v.price} onChange={set("price")} />}
        </Field>
        <Field label="Currency" error={err("currency")}>
          {(p) => <input {...p} name="currency" size={4} maxLength={3} value={v.currency} onChange={set("currency")} />}
        </Field>
        <Field label="Cycle" error={err("billing_cycle")}>
          {(p) => (
            <select {...p} name="billing_cycle" value={v.billing_cycle} onChange={set("billing_cycle")}>
              <option value="monthly">Monthly</option>
              <option value="yearly">Yearly</option>
            </select>
          )}
        </Field>
        <Field label="Trial days" error={err("trial_days")}>
          {(p) => <input {...p} name="trial_days" inputMode="numeric" size={4} value={v.trial_days} onChange={set("trial_days")} />}
        </Field>
        <Field label="Duration (cycles)" error={err("duration_cycles")} hint="Empty: renews until cancelled.">
          {(p) => (
            <input {...p} name="duration_cycles" inputMode="numeric" size={4} value={v.duration_cycles} onChange={set("duration_cycles")} />
          )}
        </Field>
      </div>
      <PriceComponents
        seats={v.seats}
        charges={v.usage_charges}
        currency={v.currency.trim().toUpperCase() || "USD"}
        onSeats={(seats) => setV({ ...v, seats })}
        onCharges={(usage_charges) => setV({ ...v, usage_charges })}
        topUps={v.top_ups}
        onTopUps={(top_ups) => setV({ ...v, top_ups })}
        err={(k) => fieldError(error, k)}
      />
      <FeatureValues values={v.features} onChange={(features) => setV({ ...v, features })} err={(k) => fieldError(error, k)} />
      <AllowedChanges
        plans={plans.data?.data ?? []}
        own={initial?.id}
        value={v.allowed_changes}
        onChange={(allowed_changes) => setV({ ...v, allowed_changes })}
        err={(k) => fieldError(error, k)}
      />
      <RateLimitsEditor value={v.rate_limits} onChange={(rate_limits) => setV({ ...v, rate_limits })} err={err} />
      <fieldset>
        <legend>Limit policies</legend>
        {v.limit_policy_ids === null ? (
          <button type="button" className="link" onClick={() => setV({ ...v, limit_policy_ids: [] })}>
            Replace the limits…
          </button>
        ) : (
          <>
            {err("limit_policy_ids") && <small className="field-error">{err("limit_policy_ids")}</small>}
            {policies.data?.data.map((pol) => (
              <label key={pol.id} className="check">
                <input
                  type="checkbox"
                  checked={v.limit_policy_ids!.includes(pol.id)}
                  onChange={(e) =>
                    setV({
                      ...v,
                      limit_policy_ids: e.target.checked
                        ? [...v.limit_policy_ids!, pol.id]
                        : v.limit_policy_ids!.filter((x) => x !== pol.id),
                    })
                  }
                />{" "}
                {pol.description || metricLabel(pol.metric)} ({metricLabel(pol.metric)}: {formatNumber(pol.limit)}, {pol.enforcement})
              </label>
            ))}
          </>
        )}
      </fieldset>
      <button type="submit" className="primary" disabled={busy}>
        {submitLabel}
      </button>
    </form>
  );
}
