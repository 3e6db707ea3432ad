import { useState, type FormEvent } from "react";
import { Link, useParams } from "react-router";
import { useSession } from "../../session";
import { useAction, useGet } from "../../hooks";
import { idempotencyKey } from "../../api/client";
import type { Page, Plan, PlanVersion } from "../../api/types";
import { Card, ErrorNotice, Field, fieldError, Loading, StatusBadge, Success } from "../../components/ui";
import { PlanForm, planBody } from "../../components/PlanForm";
import { componentsSummary } from "../../components/PriceComponents";
import { formatDate, formatMoney, formatNumber, metricLabel } from "../../format";

/** A plan: edit (a new immutable version), its versions, (de)activate, migrate subscribers. */
export function PlanDetail() {
  const { id = "" } = useParams();
  const { api } = useSession();
  const plan = useGet<Plan>(`/v1/plans/${id}`);
  const versions = useGet<Page<PlanVersion>>(`/v1/plans/${id}/versions?limit=100`);
  const [done, setDone] = useState<string | null>(null);
  const [formKey, setFormKey] = useState(0);
  const edit = useAction();
  const act = useAction();
  const [migrate, setMigrate] = useState({ from_version: "1", to_version: "", effective: "period_end", reason: "" });

  if (plan.loading && !plan.data) return <Loading />;
  if (plan.error) return <ErrorNotice error={plan.error} onRetry={plan.reload} />;
  const p = plan.data!;
  const reload = () => {
    plan.reload();
    versions.reload();
  };
  const toggle = () =>
    act.run(async () => {
      await api.post(`/v1/plans/${id}/${p.active ? "deactivate" : "activate"}`, {}, { idempotencyKey: idempotencyKey() });
      setDone(p.active ? "Deactivated: no new subscriptions; existing ones continue." : "Activated: open to new subscriptions.");
      reload();
    });
  const submitMigrate = (e: FormEvent) => {
    e.preventDefault();
    void act.run(async () => {
      const result = await api.post<{ migrated: number; skipped: number }>(
        `/v1/plans/${id}/migrate`,
        {
          from_version: Number(migrate.from_version),
          to_version: Number(migrate.to_version || p.current_version),
          effective: migrate.effective,
          ...(migrate.reason.trim() ? { reason: migrate.reason.trim() } : {}),
        },
        { idempotencyKey: idempotencyKey() },
      );
      setDone(`Migrated ${result.migrated} subscription(s); ${result.skipped} skipped.`);
    });
  };

  return (
    <div className="page">
      <p>
        <Link to="/plans">← Plans</Link>
      </p>
      <h1>
        {p.name} <StatusBadge status={p.active ? "active" : "inactive"} />
      </h1>
      <p className="lede">
        {formatMoney(p.price, p.currency)} per {p.billing_cycle === "yearly" ? "year" : "month"} · current version{" "}
        <strong data-testid="current-version">v{p.current_version}</strong>
      </p>
      {done && <Success>{done}</Success>}
      <ErrorNotice error={act.error} />
      <div className="row">
        <button type="button" className={p.active ? "danger" : ""} disabled={act.busy} onClick={() => void toggle()}>
          {p.active ? "Deactivate" : "Activate"}
        </button>
      </div>
      <Card title="Edit">
        <p className="hint">Price, cycle, trial, duration or limits make a new version; subscribers stay on theirs until migrated.</p>
        <PlanForm
          // After a save the plan reloads: the form starts again from what was saved.
          key={`${formKey}-${p.current_version}-${p.updated_at}`}
          initial={p}
          submitLabel="Save changes"
          busy={edit.busy}
          error={edit.error}
          onSubmit={(v, catalog) =>
            void edit.run(async () => {
              const saved = await api.patch<Plan>(`/v1/plans/${id}`, planBody(v, p, catalog));
              setDone(saved.current_version !== p.current_version ? `Saved as version ${saved.current_version}.` : "Saved.");
              setFormKey((k) => k + 1);
              reload();
            })
          }
        />
        <ErrorNotice error={edit.error} />
      </Card>
      <Card title="Versions">
        {versions.error ? (
          <ErrorNotice error={versions.error} />
        ) : (
          <div className="table-wrap">
            <table>
              <thead>
                <tr>
                  <th scope="col">Version</th>
                  <th scope="col">Price</th>
                  <th scope="col">Seats and usage</th>
                  <th scope="col">Trial</th>
                  <th scope="col">Limits</th>
                  <th scope="col">Created</th>
                </tr>
              </thead>
              <tbody>
                {versions.data?.data.map((v) => (
                  <tr key={v.version} data-version={v.version}>
                    <td>v{v.version}</td>
                    <td>
                      {formatMoney(v.price, v.currency)}/{v.billing_cycle === "yearly" ? "yr" : "mo"}
                    </td>
                    <td>{componentsSummary(v)}</td>
                    <td>{v.trial_days} days</td>
                    <td>{v.limits.map((l) => `${metricLabel(l.metric)} ${formatNumber(l.limit)}`).join(", ") || "none"}</td>
                    <td>{formatDate(v.created_at)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </Card>
      <Card title="Migrate subscribers">
        <form onSubmit={submitMigrate} noValidate className="inline-form" aria-label="Migrate subscribers">
          <Field label="From version" error={fieldError(act.error, "from_version")}>
            {(f) => (
              <input
                {...f}
                inputMode="numeric"
                size={4}
                value={migrate.from_version}
                onChange={(e) => setMigrate({ ...migrate, from_version: e.target.value })}
              />
            )}
          </Field>
          <Field label="To version" error={fieldError(act.error, "to_version")} hint={`Default v${p.current_version}`}>
            {(f) => (
              <input
                {...f}
                inputMode="numeric"
                size={4}
                value={migrate.to_version}
                onChange={(e) => setMigrate({ ...migrate, to_version: e.target.value })}
              />
            )}
          </Field>
          <Field label="When">
            {(f) => (
              <select {...f} value={migrate.effective} onChange={(e) => setMigrate({ ...migrate, effective: e.target.value })}>
                <option value="period_end">At each period end</option>
                <option value="now">Now (no proration)</option>
              </select>
            )}
          </Field>
          <Field label="Reason" error={fieldError(act.error, "reason")}>
            {(f) => <input {...f} value={migrate.reason} onChange={(e) => setMigrate({ ...migrate, reason: e.target.value })} />}
          </Field>
          <button type="submit" disabled={act.busy}>
            Migrate
          </button>
        </form>
      </Card>
    </div>
  );
}
