import { useGet } from "../hooks";
import type { Entitlements, Feature, Page, Plan } from "../api/types";
import { Empty, WhenLoaded } from "./ui";
import { RateList } from "./RateLimits";

/** A feature's value as people read it: ✓ / — for on/off, the number or the text. */
export function featureText(value: unknown): string {
  if (value === true) return "✓";
  if (value === false || value === undefined || value === null) return "—";
  if (typeof value === "number") return value.toLocaleString("en-US");
  return String(value);
}

/** The features catalog, for names (any signed-in caller may read it). */
export function useFeatures() {
  return useGet<Page<Feature>>("/v1/features?limit=100");
}

/** The plan editor's feature values: one control per catalog feature, unset by default. */
export function FeatureValues({
  values,
  onChange,
  err,
}: {
  values: Record<string, string>;
  onChange: (v: Record<string, string>) => void;
  err: (field: string) => string | null;
}) {
  const catalog = useFeatures();
  return (
    <fieldset>
      <legend>Features</legend>
      {err("features") && <small className="field-error">{err("features")}</small>}
      <WhenLoaded state={catalog}>
        {() =>
          catalog.data?.data.length ? (
            <div className="row">
              {catalog.data.data.map((f) => {
                const id = `feature-${f.key}`;
                const error = err(`features.${f.key}`);
                return (
                  <div className="field" key={f.key}>
                    <label htmlFor={id}>{f.name}</label>
                    {f.type === "boolean" ? (
                      <select id={id} value={values[f.key] ?? ""} onChange={(e) => onChange({ ...values, [f.key]: e.target.value })}>
                        <option value="">Not granted</option>
                        <option value="true">On</option>
                        <option value="false">Off</option>
                      </select>
                    ) : (
                      <input
                        id={id}
                        inputMode={f.type === "number" ? "decimal" : undefined}
                        size={10}
                        placeholder="Not granted"
                        value={values[f.key] ?? ""}
                        onChange={(e) => onChange({ ...values, [f.key]: e.target.value })}
                        aria-invalid={error ? true : undefined}
                      />
                    )}
                    {error && <small className="field-error">{error}</small>}
                  </div>
                );
              })}
            </div>
          ) : (
            <Empty>No features defined yet.</Empty>
          )
        }
      </WhenLoaded>
    </fieldset>
  );
}

/** Editor strings → the API's typed values (a number field that is not a number is sent as
 * text, so the API names the field). */
export function featureBody(values: Record<string, string>, catalog: Feature[] | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, raw] of Object.entries(values)) {
    const text = raw.trim();
    if (text === "") continue;
    const type = catalog?.find((f) => f.key === key)?.type;
    if (type === "boolean") out[key] = text === "true";
    else if (type === "number" && /^-?\d+(\.\d+)?$/.test(text)) out[key] = Number(text);
    else out[key] = text;
  }
  return out;
}

export function featureDraft(features: Record<string, unknown> | undefined): Record<string, string> {
  return Object.fromEntries(Object.entries(features ?? {}).map(([k, v]) => [k, String(v)]));
}

/** Which plans this one may change to: any, or a chosen few (none at all is allowed). */
export function AllowedChanges({
  plans,
  own,
  value,
  onChange,
  err,
}: {
  plans: Plan[];
  own?: string;
  value: string[] | null;
  onChange: (v: string[] | null) => void;
  err: (field: string) => string | null;
}) {
  const others = plans.filter((p) => p.id !== own);
  return (
    <fieldset>
      <legend>Allowed plan changes</legend>
      {err("allowed_changes") && <small className="field-error">{err("allowed_changes")}</small>}
      <label className="check">
        <input type="checkbox" checked={value === null} onChange={(e) => onChange(e.target.checked ? null : [])} /> Subscribers may change
        to any plan
      </label>
      {value !== null &&
        others.map((p, i) => (
          <label key={p.id} className="check">
            <input
              type="checkbox"
              checked={value.includes(p.id)}
              onChange={(e) => onChange(e.target.checked ? [...value, p.id] : value.filter((x) => x !== p.id))}
              aria-describedby={err(`allowed_changes[${i}]`) ? `allowed-${i}-error` : undefined}
            />{" "}
            May change to {p.name}
          </label>
        ))}
      {value !== null && value.length === 0 && (
        <p className="hint">No plan: subscribers stay on this one (a platform admin can still move them).</p>
      )}
    </fieldset>
  );
}

/** What the tenant's plan grants: its features with their values. */
export function EntitlementsPanel() {
  const ents = useGet<Entitlements>("/v1/entitlements");
  return (
    <WhenLoaded state={ents}>
      {() =>
        ents.data?.features.length || ents.data?.rate_limits?.length ? (
          <>
            <ul className="features" data-testid="features">
              {ents.data.features.map((f) => (
                <li key={f.key} data-feature={f.key} data-enabled={f.enabled}>
                  <span>{f.name}</span> <strong>{featureText(f.value)}</strong>
                </li>
              ))}
            </ul>
            <RateList rates={ents.data.rate_limits ?? []} />
          </>
        ) : (
          <Empty>This plan grants no features beyond its limits.</Empty>
        )
      }
    </WhenLoaded>
  );
}
