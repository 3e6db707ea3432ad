import { useState, type FormEvent } from "react";
import { Link, useParams } from "react-router";
import { useSession } from "../../session";
import { useAction, useGet, usePager } from "../../hooks";
import { idempotencyKey } from "../../api/client";
import { ApiProblem } from "../../api/problem";
import type { Invoice, Member, Page, Plan, Subscription, Tenant, UsageSummary } from "../../api/types";
import { Card, Empty, ErrorNotice, Field, fieldError, Loading, Meter, PagerFor, Stat, StatusBadge, Success } from "../../components/ui";
import { UpcomingInvoice } from "../../components/UpcomingInvoice";
import { AdjustCredit, CreditsPanel, GrantUnits } from "../../components/Credits";
import { InvoiceTable } from "../../components/InvoiceTable";
import { formatDate, formatMoney } from "../../format";

const absent = (e: unknown) => e instanceof ApiProblem && (e.status === 404 || e.status === 402);

/** One tenant as a platform admin sees it, with audited manual adjustments. */
export function TenantDetail() {
  const { id = "" } = useParams();
  const { api } = useSession();
  const tenant = useGet<Tenant>(`/v1/tenants/${id}`);
  const sub = useGet<Subscription>(`/v1/admin/tenants/${id}/subscription`);
  const usage = useGet<UsageSummary>(`/v1/admin/tenants/${id}/usage`);
  const members = useGet<Page<Member>>(`/v1/tenants/${id}/members?limit=50`);
  const invoicePager = usePager(`/v1/admin/tenants/${id}/invoices?limit=10`);
  const invoices = useGet<Page<Invoice>>(invoicePager.path);
  const plans = useGet<Page<Plan>>("/v1/plans?limit=100");
  const [adjust, setAdjust] = useState({ kind: "extend_days", extend_days: "7", plan_id: "", status: "active", reason: "" });
  const [reasonError, setReasonError] = useState<string | null>(null);
  const [done, setDone] = useState<string | null>(null);
  const act = useAction();
  const [creditsKey, setCreditsKey] = useState(0);

  if (tenant.loading && !tenant.data) return <Loading />;
  if (tenant.error) return <ErrorNotice error={tenant.error} onRetry={tenant.reload} />;
  const t = tenant.data!;
  const planName = (pid: string) => plans.data?.data.find((p) => p.id === pid)?.name ?? pid;

  const setStatus = (status: string) =>
    act.run(async () => {
      await api.patch(`/v1/tenants/${id}`, { status });
      setDone(status === "suspended" ? "Tenant suspended: its members cannot sign in." : "Tenant reactivated.");
      tenant.reload();
    });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (adjust.reason.trim().length < 3) {
      setReasonError("Say why (kept in the audit log).");
      return;
    }
    setReasonError(null);
    const body: Record<string, unknown> = { reason: adjust.reason.trim() };
    if (adjust.kind === "extend_days") body.extend_days = Number(adjust.extend_days);
    if (adjust.kind === "plan_id") body.plan_id = adjust.plan_id;
    if (adjust.kind === "status") body.status = adjust.status;
    void act.run(async () => {
      await api.patch(`/v1/admin/tenants/${id}/subscription`, body, { idempotencyKey: idempotencyKey() });
      setDone("Adjustment applied and audited.");
      setAdjust({ ...adjust, reason: "" });
      sub.reload();
      usage.reload();
    });
  };

  return (
    <div className="page">
      <p>
        <Link to="/tenants">← Tenants</Link>
      </p>
      <h1>
        {t.name} <StatusBadge status={t.status} />
      </h1>
      <p className="hint">
        {t.id} · created {formatDate(t.created_at)} · <Link to={`/audit?tenant_id=${t.id}`}>audit log</Link>
      </p>
      {done && <Success>{done}</Success>}
      <ErrorNotice error={act.error} />
      <div className="row">
        {t.status === "active" ? (
          <button
            type="button"
            className="danger"
            disabled={act.busy}
            onClick={() => window.confirm(`Suspend ${t.name}?`) && void setStatus("suspended")}
          >
            Suspend tenant
          </button>
        ) : (
          <button type="button" disabled={act.busy} onClick={() => void setStatus("active")}>
            Reactivate tenant
          </button>
        )}
      </div>
      <div className="grid2">
        <Card title="Subscription">
          {sub.loading && !sub.data ? (
            <Loading />
          ) : sub.error ? (
            absent(sub.error) ? (
              <Empty>No live subscription.</Empty>
            ) : (
              <ErrorNotice error={sub.error} onRetry={sub.reload} />
            )
          ) : (
            sub.data && (
              <>
                <p>
                  {planName(sub.data.plan_id)} v{sub.data.plan_version} <StatusBadge status={sub.data.status} />
                </p>
                <div className="stats">
                  <Stat
                    label={sub.data.billing_cycle === "yearly" ? "Per year" : "Per month"}
                    value={formatMoney(sub.data.price, sub.data.currency)}
                  />
                  <Stat label="Period ends" value={formatDate(sub.data.current_period_end)} />
                </div>
                {sub.data.cancel_at_period_end && <p className="warn-text">Cancels at period end.</p>}
              </>
            )
          )}
        </Card>
        <Card title="Usage">
          {usage.loading && !usage.data ? (
            <Loading />
          ) : usage.error ? (
            absent(usage.error) ? (
              <Empty>No usage: no subscription.</Empty>
            ) : (
              <ErrorNotice error={usage.error} />
            )
          ) : (
            <div className="meters">
              {usage.data?.data.map((u) => (
                <Meter key={u.metric} usage={u} />
              ))}
            </div>
          )}
        </Card>
      </div>
      {sub.data && (
        <Card title="Manual adjustment">
          <form onSubmit={submit} noValidate className="inline-form" aria-label="Manual adjustment">
            <Field label="Adjustment">
              {(p) => (
                <select {...p} value={adjust.kind} onChange={(e) => setAdjust({ ...adjust, kind: e.target.value })}>
                  <option value="extend_days">Extend the period</option>
                  <option value="plan_id">Change plan without charge</option>
                  <option value="status">Set status</option>
                </select>
              )}
            </Field>
            {adjust.kind === "extend_days" && (
              <Field label="Days (1–366)" error={fieldError(act.error, "extend_days")}>
                {(p) => (
                  <input
                    {...p}
                    inputMode="numeric"
                    size={4}
                    value={adjust.extend_days}
                    onChange={(e) => setAdjust({ ...adjust, extend_days: e.target.value })}
                  />
                )}
              </Field>
            )}
            {adjust.kind === "plan_id" && (
              <Field label="Plan" error={fieldError(act.error, "plan_id")}>
                {(p) => (
                  <select {...p} value={adjust.plan_id} onChange={(e) => setAdjust({ ...adjust, plan_id: e.target.value })}>
                    <option value="">Choose…</option>
                    {plans.data?.data.map((pl) => (
                      <option key={pl.id} value={pl.id}>
                        {pl.name}
                      </option>
                    ))}
                  </select>
                )}
              </Field>
            )}
            {adjust.kind === "status" && (
              <Field label="Status" error={fieldError(act.error, "status")}>
                {(p) => (
                  <select {...p} value={adjust.status} onChange={(e) => setAdjust({ ...adjust, status: e.target.value })}>
                    <option value="active">Active (recover past due)</option>
                    <option value="cancelled">Cancelled</option>
                    <option value="expired">Expired</option>
                  </select>
                )}
              </Field>
            )}
            <Field label="Reason (required, audited)" error={reasonError ?? fieldError(act.error, "reason")}>
              {(p) => (
                <input {...p} maxLength={500} value={adjust.reason} onChange={(e) => setAdjust({ ...adjust, reason: e.target.value })} />
              )}
            </Field>
            <button type="submit" className="primary" disabled={act.busy}>
              Apply
            </button>
          </form>
        </Card>
      )}
      <Card title={`Members (${t.member_count})`}>
        {members.error ? (
          <ErrorNotice error={members.error} />
        ) : (
          <ul className="plain">
            {members.data?.data.map((m) => (
              <li key={m.user_id}>
                {m.name} &lt;{m.email}&gt; · {m.role.replace("_", " ")}
              </li>
            ))}
          </ul>
        )}
      </Card>
      <Card title="Credits">
        <CreditsPanel key={creditsKey} path={`/v1/admin/tenants/${id}/credits`} />
        <AdjustCredit tenantId={id} onDone={() => setCreditsKey((k) => k + 1)} />
        {sub.data && usage.data && (
          <GrantUnits
            tenantId={id}
            metrics={usage.data.data.filter((u) => u.reset_period !== "none").map((u) => u.metric)}
            onDone={() => {
              setCreditsKey((k) => k + 1);
              usage.reload();
            }}
          />
        )}
      </Card>
      <Card title="Upcoming invoice">
        <UpcomingInvoice key={creditsKey} path={`/v1/admin/tenants/${id}/invoices/upcoming`} />
      </Card>
      <Card title="Invoices">
        {invoices.error ? <ErrorNotice error={invoices.error} /> : <InvoiceTable invoices={invoices.data?.data ?? []} />}
        <PagerFor pager={invoicePager} next={invoices.data?.next_cursor} />
      </Card>
    </div>
  );
}
