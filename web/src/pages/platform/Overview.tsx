import { useState } from "react";
import { Link } from "react-router";
import { Bar, BarChart, CartesianGrid, Cell, LabelList, Legend, Pie, PieChart, ResponsiveContainer, Tooltip, XAxis, YAxis } from "recharts";
import { useGet } from "../../hooks";
import type { AdminUsage, Overview, Page, Plan, Policy, Tenant } from "../../api/types";
import { Card, Empty, ErrorNotice, Loading, Stat } from "../../components/ui";
import { formatDateTime, formatMoney, formatMonth, formatNumber, metricLabel, statusLabel } from "../../format";

const STATUS_COLOURS: Record<string, string> = { active: "#1f9d55", trialing: "#3346d3", past_due: "#d97706", none: "#9aa3b2" };

/** The platform at a glance: tenants by status, MRR, subscriptions per plan, usage across tenants. */
export function PlatformOverview() {
  const overview = useGet<Overview>("/v1/admin/overview");
  const plans = useGet<Page<Plan>>("/v1/plans?limit=100");
  const policies = useGet<Page<Policy>>("/v1/limit-policies?limit=100");
  const tenants = useGet<Page<Tenant>>("/v1/tenants?limit=100");
  const metrics = [...new Set((policies.data?.data ?? []).map((p) => p.metric))].filter((m) => m !== "max_users").sort();
  const [metric, setMetric] = useState("api_calls");
  const usage = useGet<AdminUsage>(`/v1/admin/usage?metric=${encodeURIComponent(metric)}&top=10`);

  if (overview.loading && !overview.data) return <Loading />;
  if (overview.error) return <ErrorNotice error={overview.error} onRetry={overview.reload} />;
  const o = overview.data!;
  const planName = (id: string) => plans.data?.data.find((p) => p.id === id)?.name ?? id;
  const tenantName = (id: string) => tenants.data?.data.find((t) => t.id === id)?.name ?? id;
  const byStatus = (["active", "trialing", "past_due", "none"] as const)
    .map((s) => ({ name: s === "none" ? "No subscription" : statusLabel(s), key: s, value: o.subscriptions[s] }))
    .filter((d) => d.value > 0);
  const perPlan = o.plans.map((p) => ({ name: planName(p.plan_id), subscriptions: p.subscriptions }));
  const top = (usage.data?.top ?? []).map((t) => ({ name: tenantName(t.tenant_id), used: t.used }));

  return (
    <div className="page">
      <h1>Platform overview</h1>
      <p className="hint">As of {formatDateTime(o.as_of)}</p>
      <div className="stats">
        <Stat
          label="MRR"
          value={o.mrr.length ? o.mrr.map((m) => formatMoney(m.amount, m.currency)).join(" + ") : formatMoney("0", "USD")}
          tone="money"
        />
        <Stat label="Tenants" value={formatNumber(o.tenants)} />
        <Stat label="Active" value={formatNumber(o.subscriptions.active)} tone="active" />
        <Stat label="Trialing" value={formatNumber(o.subscriptions.trialing)} tone="trialing" />
        {/* Orange only when something is past due. */}
        <Stat
          label="Past due"
          value={formatNumber(o.subscriptions.past_due)}
          tone={o.subscriptions.past_due > 0 ? "past_due" : undefined}
        />
        <Stat label="Suspended" value={formatNumber(o.suspended_tenants)} />
      </div>
      <div className="grid2">
        <Card title="Tenants by subscription status">
          {byStatus.length ? (
            <div className="chart" role="img" aria-label="Tenants by subscription status">
              <ResponsiveContainer width="100%" height={240}>
                <PieChart>
                  <Pie
                    data={byStatus}
                    dataKey="value"
                    nameKey="name"
                    innerRadius={50}
                    outerRadius={90}
                    isAnimationActive={false}
                    // One slice is a whole ring: no seam where it would meet itself.
                    stroke={byStatus.length > 1 ? "#fff" : "none"}
                  >
                    {byStatus.map((d) => (
                      <Cell key={d.key} fill={STATUS_COLOURS[d.key]} />
                    ))}
                  </Pie>
                  <Tooltip />
                  <Legend />
                </PieChart>
              </ResponsiveContainer>
            </div>
          ) : (
            <Empty>No tenants yet.</Empty>
          )}
        </Card>
        <Card title="Live subscriptions per plan">
          {perPlan.length ? (
            <div className="chart" role="img" aria-label="Live subscriptions per plan">
              <ResponsiveContainer width="100%" height={240}>
                <BarChart data={perPlan}>
                  <CartesianGrid strokeDasharray="3 3" vertical={false} />
                  <XAxis dataKey="name" fontSize={12} />
                  {/* Whole counts up to the largest: one subscription is not drawn on 0–4. */}
                  <YAxis
                    allowDecimals={false}
                    fontSize={12}
                    domain={[0, Math.max(1, ...perPlan.map((p) => p.subscriptions))]}
                    tickCount={Math.min(5, Math.max(1, ...perPlan.map((p) => p.subscriptions)) + 1)}
                  />
                  <Tooltip />
                  <Bar dataKey="subscriptions" fill="#3346d3" isAnimationActive={false} />
                </BarChart>
              </ResponsiveContainer>
            </div>
          ) : (
            <Empty>No live subscriptions.</Empty>
          )}
        </Card>
      </div>
      <Card
        title={`Usage across tenants: ${metricLabel(metric)}`}
        actions={
          <label>
            Metric{" "}
            <select value={metric} onChange={(e) => setMetric(e.target.value)}>
              {(metrics.length ? metrics : ["api_calls"]).map((m) => (
                <option key={m} value={m}>
                  {metricLabel(m)}
                </option>
              ))}
            </select>
          </label>
        }
      >
        {usage.error ? (
          <ErrorNotice error={usage.error} onRetry={usage.reload} />
        ) : usage.data ? (
          <>
            <p>
              {formatNumber(usage.data.total)} in {formatMonth(usage.data.month)} across {formatNumber(usage.data.tenants)}{" "}
              {usage.data.tenants === 1 ? "tenant" : "tenants"}.
            </p>
            {top.length ? (
              <div className="chart" role="img" aria-label={`Top tenants by ${metricLabel(metric)}`}>
                <ResponsiveContainer width="100%" height={Math.max(120, top.length * 36)}>
                  <BarChart data={top} layout="vertical" margin={{ left: 16, right: 48 }}>
                    <CartesianGrid strokeDasharray="3 3" horizontal={false} />
                    <XAxis type="number" fontSize={12} tickFormatter={(v: number) => formatNumber(v)} />
                    <YAxis type="category" dataKey="name" width={120} fontSize={12} />
                    <Tooltip formatter={(v) => formatNumber(Number(v))} />
                    {/* Each bar says its figure: a tenant far below the largest is still read. */}
                    <Bar dataKey="used" fill="#1f9d55" isAnimationActive={false} minPointSize={2}>
                      <LabelList dataKey="used" position="right" fontSize={12} formatter={(v: unknown) => formatNumber(Number(v))} />
                    </Bar>
                  </BarChart>
                </ResponsiveContainer>
              </div>
            ) : (
              <Empty>No usage this month.</Empty>
            )}
          </>
        ) : (
          <Loading what="Loading usage" />
        )}
      </Card>
      <p>
        <Link to="/tenants">All tenants →</Link>
      </p>
    </div>
  );
}
