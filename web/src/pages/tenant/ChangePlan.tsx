import { useState } from "react";
import { useSession } from "../../session";
import { useAction, useGet } from "../../hooks";
import { idempotencyKey } from "../../api/client";
import { ApiProblem } from "../../api/problem";
import type { ChangePreview, Page, Plan, PlanVersion, Subscription, SubscriptionResult, Tenant } from "../../api/types";
import { Card, ErrorNotice, Loading, StatusBadge, Success } from "../../components/ui";
import { formatDate, formatMoney, metricLabel } from "../../format";
import { componentsSummary } from "../../components/PriceComponents";
import { featureText, useFeatures } from "../../components/Features";
import { ratesSummary } from "../../components/RateLimits";

/** Plan comparison, a proration preview before any change, subscribe, cancel and resume. */
export function ChangePlan() {
  const { api, me } = useSession();
  const sub = useGet<Subscription>("/v1/subscriptions/current");
  const tenant = useGet<Tenant>(me?.current_tenant_id ? `/v1/tenants/${me.current_tenant_id}` : null);
  const plans = useGet<Page<Plan>>("/v1/plans?limit=100");
  const [preview, setPreview] = useState<{ plan: Plan; preview: ChangePreview } | null>(null);
  const catalog = useFeatures();
  // The subscription's own version says where it may change to.
  const version = useGet<PlanVersion>(sub.data ? `/v1/plans/${sub.data.plan_id}/versions/${sub.data.plan_version}` : null);
  const [done, setDone] = useState<string | null>(null);
  const action = useAction();
  const noSub = sub.error instanceof ApiProblem && sub.error.status === 404;

  if ((sub.loading && !sub.data) || (plans.loading && !plans.data)) return <Loading />;
  if (sub.error && !noSub) return <ErrorNotice error={sub.error} onRetry={sub.reload} />;
  if (plans.error) return <ErrorNotice error={plans.error} onRetry={plans.reload} />;
  // Cheapest first, as plans are sold (a yearly price compared by its month); the API lists by name.
  const monthly = (p: Plan) => Number(p.price) / (p.billing_cycle === "yearly" ? 12 : 1);
  const all = [...(plans.data?.data ?? [])].sort((a, b) => monthly(a) - monthly(b) || a.name.localeCompare(b.name));

  const current = sub.data;
  // A trial is advertised only where subscribing would start one: with no subscription (a
  // change from one bills at once), while the tenant's one trial is unused.
  const offersTrial = (plan: Plan) => plan.trial_days > 0 && !current && tenant.data?.trial_available === true;
  const metrics = [...new Set(all.flatMap((p) => p.limits.map((l) => l.metric)))].sort();
  const featureKeys = [...new Set(all.flatMap((p) => Object.keys(p.features ?? {})))].sort();
  const featureName = (key: string) => catalog.data?.data.find((f) => f.key === key)?.name ?? key;
  const allowed = version.data?.allowed_changes ?? null;
  const mayChangeTo = (plan: Plan) => allowed === null || allowed.includes(plan.id);

  const refresh = () => {
    sub.reload();
    tenant.reload();
    setPreview(null);
  };
  const showPreview = (plan: Plan) =>
    action.run(async () => {
      setDone(null);
      const p = await api.get<ChangePreview>(`/v1/subscriptions/${current!.id}/change-preview?plan_id=${encodeURIComponent(plan.id)}`);
      setPreview({ plan, preview: p });
    });
  const confirm = () =>
    action.run(async () => {
      const result = await api.post<SubscriptionResult>(
        `/v1/subscriptions/${current!.id}/change`,
        { plan_id: preview!.plan.id },
        { idempotencyKey: idempotencyKey() },
      );
      setDone(
        result.subscription.scheduled_change
          ? `${preview!.plan.name} starts on ${formatDate(result.subscription.scheduled_change.effective_at)}.`
          : `You are now on ${preview!.plan.name}.${result.invoice ? ` Invoice #${result.invoice.number}: ${formatMoney(result.invoice.total, result.invoice.currency)}.` : ""}`,
      );
      refresh();
    });
  const subscribe = (plan: Plan) =>
    action.run(async () => {
      const result = await api.post<SubscriptionResult>("/v1/subscriptions", { plan_id: plan.id }, { idempotencyKey: idempotencyKey() });
      setDone(
        result.subscription.status === "incomplete"
          ? "The first payment was declined; update your card in Billing and pay the open invoice."
          : `Subscribed to ${plan.name}.`,
      );
      refresh();
    });
  const cancel = () =>
    action.run(async () => {
      if (!window.confirm("Cancel at the end of the current period?")) return;
      await api.post(`/v1/subscriptions/${current!.id}/cancel`, { at_period_end: true }, { idempotencyKey: idempotencyKey() });
      setDone("The subscription will end at the end of this period. You can resume until then.");
      refresh();
    });
  const resume = () =>
    action.run(async () => {
      await api.post(`/v1/subscriptions/${current!.id}/resume`, {}, { idempotencyKey: idempotencyKey() });
      setDone("The subscription continues.");
      refresh();
    });
  const dropScheduled = () =>
    action.run(async () => {
      await api.delete(`/v1/subscriptions/${current!.id}/scheduled-change`);
      setDone("The scheduled change is cancelled.");
      refresh();
    });

  return (
    <div className="page">
      <h1>Plan</h1>
      {done && <Success>{done}</Success>}
      <ErrorNotice error={action.error} />
      {current && (
        <Card title="Your subscription">
          <p>
            <StatusBadge status={current.status} /> {all.find((p) => p.id === current.plan_id)?.name} at{" "}
            {formatMoney(current.price, current.currency)} per {current.billing_cycle === "yearly" ? "year" : "month"}; period ends{" "}
            {formatDate(current.current_period_end)}.
          </p>
          <div className="row">
            {current.cancel_at_period_end ? (
              <button type="button" onClick={() => void resume()} disabled={action.busy}>
                Resume subscription
              </button>
            ) : (
              <button type="button" className="danger" onClick={() => void cancel()} disabled={action.busy}>
                Cancel at period end
              </button>
            )}
            {current.scheduled_change && (
              <button type="button" onClick={() => void dropScheduled()} disabled={action.busy}>
                Keep the current plan (drop the change on {formatDate(current.scheduled_change.effective_at)})
              </button>
            )}
          </div>
        </Card>
      )}
      <Card title="Compare plans">
        <div className="table-wrap">
          <table className="compare">
            <caption className="sr-only">Plans and their limits</caption>
            <thead>
              <tr>
                <th scope="col">Plan</th>
                <th scope="col">Price</th>
                {metrics.map((m) => (
                  <th scope="col" key={m}>
                    {metricLabel(m)}
                  </th>
                ))}
                {featureKeys.map((k) => (
                  <th scope="col" key={k}>
                    {featureName(k)}
                  </th>
                ))}
                <th scope="col">Rate limits</th>
                <th scope="col">
                  <span className="sr-only">Action</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {all.map((plan) => {
                const isCurrent = current?.plan_id === plan.id;
                return (
                  <tr key={plan.id} className={isCurrent ? "current" : ""} data-plan={plan.name}>
                    <th scope="row">
                      {plan.name}
                      {isCurrent && <span className="badge">current</span>}
                      <div className="hint">{plan.description}</div>
                    </th>
                    <td>
                      {formatMoney(plan.price, plan.currency)}/{plan.billing_cycle === "yearly" ? "yr" : "mo"}
                      {offersTrial(plan) && <div className="hint">{plan.trial_days}-day trial</div>}
                      {(plan.seats || plan.usage_charges.length > 0) && <div className="hint">+ {componentsSummary(plan)}</div>}
                    </td>
                    {metrics.map((m) => {
                      const l = plan.limits.find((x) => x.metric === m);
                      return <td key={m}>{!l ? "—" : l.limit === null ? "Unlimited" : l.limit.toLocaleString("en-US")}</td>;
                    })}
                    {featureKeys.map((k) => (
                      <td key={k} data-feature={k}>
                        {featureText(plan.features?.[k])}
                      </td>
                    ))}
                    <td data-testid="rates">{ratesSummary(plan.rate_limits)}</td>
                    <td>
                      {!current ? (
                        <button type="button" className="primary" onClick={() => void subscribe(plan)} disabled={action.busy}>
                          Subscribe
                        </button>
                      ) : (
                        !isCurrent &&
                        (mayChangeTo(plan) ? (
                          <button
                            type="button"
                            onClick={() => void showPreview(plan)}
                            disabled={action.busy}
                            aria-label={`Preview change to ${plan.name}`}
                          >
                            Preview change
                          </button>
                        ) : (
                          <span className="hint">Not available from your plan</span>
                        ))
                      )}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      </Card>
      {preview && (
        <Card title={`Change to ${preview.plan.name}`}>
          <div className="preview" aria-live="polite">
            <p>
              {preview.preview.upgrade ? "Upgrade" : "Downgrade"}, effective{" "}
              {preview.preview.default_effective === "now"
                ? "now"
                : `at the end of this period (${formatDate(current?.current_period_end)})`}
              .
            </p>
            {preview.preview.lines.length > 0 ? (
              <table>
                <tbody>
                  {preview.preview.lines.map((l, i) => (
                    <tr key={i}>
                      <td>{l.description}</td>
                      <td className="num">{formatMoney(l.amount, preview.preview.currency)}</td>
                    </tr>
                  ))}
                </tbody>
                <tfoot>
                  <tr>
                    <th scope="row">Due now</th>
                    <td className="num" data-testid="preview-net">
                      {formatMoney(preview.preview.net, preview.preview.currency)}
                    </td>
                  </tr>
                </tfoot>
              </table>
            ) : (
              <p>Nothing is charged now.</p>
            )}
            {preview.preview.usage_total && Number(preview.preview.usage_total) !== 0 && (
              <p data-testid="preview-usage">
                Also billed now, on an invoice of its own: your usage so far at your current plan&apos;s prices,{" "}
                <strong>{formatMoney(preview.preview.usage_total, preview.preview.currency)}</strong>.
              </p>
            )}
            <div className="row actions">
              <button type="button" className="primary" onClick={() => void confirm()} disabled={action.busy}>
                Confirm change
              </button>
              <button type="button" onClick={() => setPreview(null)}>
                Back
              </button>
            </div>
          </div>
        </Card>
      )}
    </div>
  );
}
