import { useState } from "react";
import type { SeatPrice, TopUp, UsageCharge, UsagePrice } from "../api/types";
import { chargeFor } from "../pricing";
import { formatMoney } from "../format";
import { Field } from "./ui";

/** A usage charge as the editor holds it: every number a string, as typed. */
export interface ChargeDraft {
  metric: string;
  included: string;
  model: UsagePrice["model"];
  unit_price: string;
  package_size: string;
  package_price: string;
  tiers: { up_to: string; unit_price: string; flat_price: string }[];
}

export interface SeatDraft {
  unit_price: string;
  included: string;
  quantity: "members" | "licensed";
}

/** A top-up pack as the editor holds it. */
export interface TopUpDraft {
  metric: string;
  units: string;
  price: string;
}

export function topUpDraft(t: TopUp): TopUpDraft {
  return { metric: t.metric, units: String(t.units), price: t.price };
}

export function topUpBody(d: TopUpDraft): TopUp {
  return { metric: d.metric.trim(), units: Number(d.units || 0), price: d.price.trim() };
}

const MODELS: [UsagePrice["model"], string][] = [
  ["per_unit", "Per unit"],
  ["package", "Per package started"],
  ["graduated", "Graduated tiers"],
  ["volume", "Volume tiers"],
];

export function seatDraft(seats: SeatPrice | null | undefined): SeatDraft | null {
  return seats ? { unit_price: seats.unit_price, included: String(seats.included), quantity: seats.quantity ?? "members" } : null;
}

export function seatBody(d: SeatDraft | null): SeatPrice | null {
  return d ? { unit_price: d.unit_price.trim(), included: Number(d.included || 0), quantity: d.quantity } : null;
}

export function chargeDraft(c: UsageCharge): ChargeDraft {
  const draft: ChargeDraft = {
    metric: c.metric,
    included: String(c.included),
    model: c.price.model,
    unit_price: "",
    package_size: "1000",
    package_price: "",
    tiers: [],
  };
  if (c.price.model === "per_unit") draft.unit_price = c.price.unit_price;
  if (c.price.model === "package") {
    draft.package_size = String(c.price.package_size);
    draft.package_price = c.price.package_price;
  }
  if (c.price.model === "graduated" || c.price.model === "volume") {
    draft.tiers = c.price.tiers.map((t) => ({
      up_to: t.up_to === null ? "" : String(t.up_to),
      unit_price: t.unit_price,
      flat_price: t.flat_price ?? "0",
    }));
  }
  return draft;
}

export function chargeBody(d: ChargeDraft): UsageCharge {
  const price = ((): UsagePrice => {
    switch (d.model) {
      case "per_unit":
        return { model: "per_unit", unit_price: d.unit_price.trim() };
      case "package":
        return { model: "package", package_size: Number(d.package_size), package_price: d.package_price.trim() };
      default:
        return {
          model: d.model,
          tiers: d.tiers.map((t, i) => ({
            up_to: i === d.tiers.length - 1 || t.up_to.trim() === "" ? null : Number(t.up_to),
            unit_price: t.unit_price.trim(),
            flat_price: t.flat_price.trim() || "0",
          })),
        };
    }
  })();
  return { metric: d.metric.trim(), included: Number(d.included || 0), price };
}

/** The currency's minor unit (2 for USD, 0 for JPY), as the browser knows it. */
function minorDigits(currency: string): number {
  try {
    return new Intl.NumberFormat("en-US", { style: "currency", currency }).resolvedOptions().maximumFractionDigits ?? 2;
  } catch {
    return 2;
  }
}

function newCharge(): ChargeDraft {
  return {
    metric: "",
    included: "0",
    model: "per_unit",
    unit_price: "",
    package_size: "1000",
    package_price: "",
    tiers: [
      { up_to: "10000", unit_price: "", flat_price: "0" },
      { up_to: "", unit_price: "", flat_price: "0" },
    ],
  };
}

/** The per-seat price and the usage charges of a plan version, with a live example of what a
 * quantity would cost. `err(field)` gives the API's 422 for a request field like
 * `usage_charges[0].price.tiers[1].up_to`. */
export function PriceComponents({
  seats,
  charges,
  topUps,
  currency,
  onSeats,
  onCharges,
  onTopUps,
  err,
}: {
  seats: SeatDraft | null;
  charges: ChargeDraft[];
  topUps: TopUpDraft[];
  currency: string;
  onSeats: (s: SeatDraft | null) => void;
  onCharges: (c: ChargeDraft[]) => void;
  onTopUps: (t: TopUpDraft[]) => void;
  err: (field: string) => string | null;
}) {
  const setTopUp = (i: number, patch: Partial<TopUpDraft>) => onTopUps(topUps.map((t, j) => (i === j ? { ...t, ...patch } : t)));
  const setCharge = (i: number, patch: Partial<ChargeDraft>) => onCharges(charges.map((c, j) => (i === j ? { ...c, ...patch } : c)));
  return (
    <>
      <fieldset>
        <legend>Per-seat price</legend>
        <label className="check">
          <input
            type="checkbox"
            checked={seats !== null}
            onChange={(e) => onSeats(e.target.checked ? { unit_price: "", included: "0", quantity: "members" } : null)}
          />{" "}
          Charge per member, on top of the price
        </label>
        {seats && (
          <div className="row">
            <Field label="Seat price" error={err("seats.unit_price")} hint="Per member and cycle.">
              {(p) => (
                <input
                  {...p}
                  inputMode="decimal"
                  value={seats.unit_price}
                  onChange={(e) => onSeats({ ...seats, unit_price: e.target.value })}
                />
              )}
            </Field>
            <Field label="Included seats" error={err("seats.included")}>
              {(p) => (
                <input
                  {...p}
                  inputMode="numeric"
                  size={5}
                  value={seats.included}
                  onChange={(e) => onSeats({ ...seats, included: e.target.value })}
                />
              )}
            </Field>
            <Field label="Seats counted" error={err("seats.quantity")}>
              {(p) => (
                <select
                  {...p}
                  value={seats.quantity}
                  onChange={(e) => onSeats({ ...seats, quantity: e.target.value as SeatDraft["quantity"] })}
                >
                  <option value="members">Members: each member is a seat</option>
                  <option value="licensed">Bought: the tenant admin buys seats</option>
                </select>
              )}
            </Field>
          </div>
        )}
      </fieldset>
      <fieldset>
        <legend>Usage charges</legend>
        {err("usage_charges") && <small className="field-error">{err("usage_charges")}</small>}
        {charges.map((c, i) => (
          <ChargeEditor
            key={i}
            index={i}
            charge={c}
            currency={currency}
            onChange={(patch) => setCharge(i, patch)}
            onRemove={() => onCharges(charges.filter((_, j) => j !== i))}
            err={(field) => err(`usage_charges[${i}]${field}`)}
          />
        ))}
        <button type="button" onClick={() => onCharges([...charges, newCharge()])}>
          Add usage charge
        </button>
      </fieldset>
      <fieldset>
        <legend>Top-ups</legend>
        <p className="hint">Packs of units a tenant admin may buy on top of the plan, charged at once, good until the period ends.</p>
        {err("top_ups") && <small className="field-error">{err("top_ups")}</small>}
        {topUps.map((t, i) => (
          <div className="row" key={i} data-top-up={i}>
            <Field label={`Top-up ${i + 1}: metric`} error={err(`top_ups[${i}].metric`)}>
              {(p) => <input {...p} value={t.metric} placeholder="api_calls" onChange={(e) => setTopUp(i, { metric: e.target.value })} />}
            </Field>
            <Field label={`Top-up ${i + 1}: units per pack`} error={err(`top_ups[${i}].units`)}>
              {(p) => (
                <input {...p} inputMode="numeric" size={10} value={t.units} onChange={(e) => setTopUp(i, { units: e.target.value })} />
              )}
            </Field>
            <Field label={`Top-up ${i + 1}: price per pack`} error={err(`top_ups[${i}].price`)}>
              {(p) => (
                <input {...p} inputMode="decimal" size={10} value={t.price} onChange={(e) => setTopUp(i, { price: e.target.value })} />
              )}
            </Field>
            <button type="button" className="link" onClick={() => onTopUps(topUps.filter((_, j) => j !== i))}>
              Remove top-up {i + 1}
            </button>
          </div>
        ))}
        <button type="button" onClick={() => onTopUps([...topUps, { metric: "", units: "1000", price: "" }])}>
          Add top-up
        </button>
      </fieldset>
    </>
  );
}

function ChargeEditor({
  index,
  charge,
  currency,
  onChange,
  onRemove,
  err,
}: {
  index: number;
  charge: ChargeDraft;
  currency: string;
  onChange: (patch: Partial<ChargeDraft>) => void;
  onRemove: () => void;
  err: (field: string) => string | null;
}) {
  const [example, setExample] = useState("123456");
  const n = index + 1;
  const tiered = charge.model === "graduated" || charge.model === "volume";
  const setTier = (t: number, patch: Partial<ChargeDraft["tiers"][number]>) =>
    onChange({ tiers: charge.tiers.map((x, j) => (t === j ? { ...x, ...patch } : x)) });
  const exampleUnits = /^\d{1,15}$/.test(example.trim()) ? BigInt(example.trim()) : null;
  let exampleCost: string | null = null;
  try {
    if (exampleUnits !== null) exampleCost = chargeFor(chargeBody(charge), exampleUnits, minorDigits(currency));
  } catch {
    exampleCost = null;
  }
  return (
    <div className="usage-charge" data-charge={index}>
      <div className="row">
        <Field label={`Charge ${n}: metric`} error={err(".metric")}>
          {(p) => <input {...p} value={charge.metric} placeholder="api_calls" onChange={(e) => onChange({ metric: e.target.value })} />}
        </Field>
        <Field label={`Charge ${n}: included units`} error={err(".included")} hint="Free each period.">
          {(p) => (
            <input {...p} inputMode="numeric" size={10} value={charge.included} onChange={(e) => onChange({ included: e.target.value })} />
          )}
        </Field>
        <Field label={`Charge ${n}: pricing`} error={err(".price")}>
          {(p) => (
            <select {...p} value={charge.model} onChange={(e) => onChange({ model: e.target.value as ChargeDraft["model"] })}>
              {MODELS.map(([value, label]) => (
                <option key={value} value={value}>
                  {label}
                </option>
              ))}
            </select>
          )}
        </Field>
        <button type="button" className="link" onClick={onRemove}>
          Remove charge {n}
        </button>
      </div>
      {charge.model === "per_unit" && (
        <Field label={`Charge ${n}: price per unit`} error={err(".price.unit_price")}>
          {(p) => <input {...p} inputMode="decimal" value={charge.unit_price} onChange={(e) => onChange({ unit_price: e.target.value })} />}
        </Field>
      )}
      {charge.model === "package" && (
        <div className="row">
          <Field label={`Charge ${n}: units per package`} error={err(".price.package_size")}>
            {(p) => (
              <input {...p} inputMode="numeric" value={charge.package_size} onChange={(e) => onChange({ package_size: e.target.value })} />
            )}
          </Field>
          <Field label={`Charge ${n}: price per package`} error={err(".price.package_price")}>
            {(p) => (
              <input
                {...p}
                inputMode="decimal"
                value={charge.package_price}
                onChange={(e) => onChange({ package_price: e.target.value })}
              />
            )}
          </Field>
        </div>
      )}
      {tiered && (
        <div className="tiers">
          {charge.tiers.map((t, j) => {
            const last = j === charge.tiers.length - 1;
            const at = `.price.tiers[${j}]`;
            return (
              <div className="row" key={j} data-tier={j}>
                <Field
                  label={`Charge ${n}, tier ${j + 1}: up to`}
                  error={err(`${at}.up_to`)}
                  hint={last ? "The last tier has no end." : undefined}
                >
                  {(p) => (
                    <input
                      {...p}
                      inputMode="numeric"
                      size={10}
                      disabled={last}
                      value={last ? "" : t.up_to}
                      placeholder={last ? "∞" : ""}
                      onChange={(e) => setTier(j, { up_to: e.target.value })}
                    />
                  )}
                </Field>
                <Field label={`Charge ${n}, tier ${j + 1}: unit price`} error={err(`${at}.unit_price`)}>
                  {(p) => (
                    <input
                      {...p}
                      inputMode="decimal"
                      size={10}
                      value={t.unit_price}
                      onChange={(e) => setTier(j, { unit_price: e.target.value })}
                    />
                  )}
                </Field>
                <Field label={`Charge ${n}, tier ${j + 1}: flat price`} error={err(`${at}.flat_price`)}>
                  {(p) => (
                    <input
                      {...p}
                      inputMode="decimal"
                      size={8}
                      value={t.flat_price}
                      onChange={(e) => setTier(j, { flat_price: e.target.value })}
                    />
                  )}
                </Field>
                {charge.tiers.length > 1 && (
                  <button type="button" className="link" onClick={() => onChange({ tiers: charge.tiers.filter((_, k) => k !== j) })}>
                    Remove tier {j + 1}
                  </button>
                )}
              </div>
            );
          })}
          <button
            type="button"
            className="link"
            onClick={() => onChange({ tiers: [...charge.tiers, { up_to: "", unit_price: "", flat_price: "0" }] })}
          >
            Add tier
          </button>
        </div>
      )}
      <div className="row example">
        <Field label={`Charge ${n}: example quantity`}>
          {(p) => <input {...p} inputMode="numeric" size={12} value={example} onChange={(e) => setExample(e.target.value)} />}
        </Field>
        <p className="hint" data-testid={`charge-${index}-example`} aria-live="polite">
          {exampleUnits === null || exampleCost === null
            ? "Give a whole number of units."
            : `${exampleUnits.toLocaleString("en-US")} ${charge.metric || "units"} would cost ${formatMoney(exampleCost, currency)}.`}
        </p>
      </div>
    </div>
  );
}

const MODEL_NAMES: Record<UsagePrice["model"], string> = {
  per_unit: "per unit",
  package: "per package",
  graduated: "graduated",
  volume: "volume",
};

/** One line on what a version charges beyond its price: "$12.00 per seat (1 included); exports
 * graduated". */
export function componentsSummary(v: {
  seats: SeatPrice | null;
  usage_charges: UsageCharge[];
  top_ups?: TopUp[];
  currency: string;
}): string {
  const parts: string[] = [];
  if (v.seats)
    parts.push(
      `${formatMoney(v.seats.unit_price, v.currency)} per ${v.seats.quantity === "licensed" ? "seat bought" : "seat"}${
        v.seats.included ? ` (${v.seats.included} included)` : ""
      }`,
    );
  for (const c of v.usage_charges)
    parts.push(`${c.metric} ${MODEL_NAMES[c.price.model]}${c.included ? ` past ${c.included.toLocaleString("en-US")}` : ""}`);
  for (const t of v.top_ups ?? [])
    parts.push(`top-up ${t.units.toLocaleString("en-US")} ${t.metric} for ${formatMoney(t.price, v.currency)}`);
  return parts.join("; ") || "none";
}
