import { nextDate } from "../../subscription";
import { Link } from "react-router";
import { useGet } from "../../hooks";
import { ApiProblem } from "../../api/problem";
import type { Invoice, Notification, Page, Plan, Subscription, UsageSummary } from "../../api/types";
import { Card, Empty, ErrorNotice, Loading, Meter, Stat, StatusBadge } from "../../components/ui";
import { UsageHistory } from "../../components/UsageHistory";
import { EntitlementsPanel } from "../../components/Features";
import { formatDate, formatMoney, metricLabel, notificationText } from "../../format";

const missing = (e: unknown) => e instanceof ApiProblem && (e.status === 404 || e.status === 402);

/** The tenant's plan, its usage against the limits, history and warnings. */
export function TenantHome({ admin }: { admin: boolean }) {
  const sub = useGet<Subscription>("/v1/subscriptions/current");
  const plans = useGet<Page<Plan>>("/v1/plans?limit=100");
  const usage = useGet<UsageSummary>(sub.data ? "/v1/usage" : null);
  const notes = useGet<Page<Notification>>(admin ? "/v1/notifications?limit=5" : null);

  if (sub.loading && !sub.data) return <Loading />;
  if (sub.error && !missing(sub.error)) return <ErrorNotice error={sub.error} onRetry={sub.reload} />;
  const plan = plans.data?.data.find((p) => p.id === sub.data?.plan_id);
  const unread = notes.data?.data.filter((n) => !n.read) ?? [];

  return (
    <div className="page">
      <h1>Dashboard</h1>
      {unread.length > 0 && (
        <div className="notice notice-limit" role="status">
          <strong>{unread.every((n) => n.kind === "usage.threshold_reached") ? "Usage warnings:" : "Notifications:"}</strong>{" "}
          {unread.map(notificationText).join(" · ")} <Link to="/notifications">See all</Link>
        </div>
      )}
      {!sub.data ? (
        <Card title="No subscription">
          <Ended />
          <Empty>
            This workspace has no active plan. {admin ? <Link to="/plan">Choose a plan</Link> : "Ask your administrator to choose one."}
          </Empty>
        </Card>
      ) : (
        <>
          <Card
            title={
              <>
                {plan?.name ?? "Current plan"} <StatusBadge status={sub.data.status} />
              </>
            }
            actions={admin && <Link to="/plan">Change plan</Link>}
          >
            <div className="stats">
              <Stat
                label={`Per ${sub.data.billing_cycle === "yearly" ? "year" : "month"}`}
                value={formatMoney(sub.data.price, sub.data.currency)}
              />
              <Stat label={nextDate(sub.data).label} value={formatDate(nextDate(sub.data).at)} />
              <Stat label="Plan version" value={`v${sub.data.plan_version}`} />
            </div>
            {sub.data.cancel_at_period_end && (
              <p className="warn-text">Cancels at the end of the period ({formatDate(sub.data.current_period_end)}).</p>
            )}
            {sub.data.status === "past_due" && (
              <p className="warn-text">
                The last payment failed.{" "}
                {admin ? <Link to="/billing">Update the payment method</Link> : "Your administrator has been told."}
              </p>
            )}
            {sub.data.scheduled_change && (
              <p>
                Changes to {plans.data?.data.find((p) => p.id === sub.data?.scheduled_change?.plan_id)?.name ?? "another plan"} on{" "}
                {formatDate(sub.data.scheduled_change.effective_at)}.
              </p>
            )}
          </Card>
          <Card title="Usage this period">
            {usage.loading && !usage.data ? (
              <Loading what="Loading usage" />
            ) : usage.error ? (
              <ErrorNotice error={usage.error} onRetry={usage.reload} />
            ) : (
              <div className="meters">
                {usage.data?.data.map((u) => (
                  <Meter key={u.metric} usage={u} />
                ))}
              </div>
            )}
          </Card>
          {usage.data && (
            <Card title="Usage history">
              <UsageHistory
                usage={usage.data.data}
                fallbackStart={sub.data.current_period_start}
                fallbackEnd={sub.data.current_period_end}
              />
            </Card>
          )}
          {plan && (
            <Card title="What your plan includes">
              <ul className="limits">
                {plan.limits.map((l) => (
                  <li key={l.metric}>
                    {metricLabel(l.metric)}: {l.limit === null ? "unlimited" : l.limit.toLocaleString("en-US")}
                    {l.reset_period !== "none" && ` per ${l.reset_period.replace("_", " ")}`}
                    {l.enforcement === "soft" && " (overage allowed)"}
                  </li>
                ))}
              </ul>
              <h3>Features</h3>
              <EntitlementsPanel />
            </Card>
          )}
        </>
      )}
    </div>
  );
}

/** Why there is no subscription, when one ended: when, and the invoice left unpaid if dunning
 * gave up on it (with the way to settle it). */
function Ended() {
  const latest = useGet<Page<Subscription>>("/v1/subscriptions?limit=1");
  const invoices = useGet<Page<Invoice>>("/v1/invoices?limit=20");
  const ended = latest.data?.data[0];
  if (!ended?.ended_at || !["cancelled", "expired"].includes(ended.status)) return null;
  const unpaid = invoices.data?.data.find((i) => i.subscription_id === ended.id && i.status === "uncollectible");
  return (
    <p className="warn-text" data-testid="ended">
      Your subscription ended on {formatDate(ended.ended_at)}
      {unpaid ? (
        <>
          {" "}
          after its payment kept failing: <Link to={`/billing?invoice=${encodeURIComponent(unpaid.id)}`}>invoice #{unpaid.number}</Link> (
          {formatMoney(unpaid.amount_due, unpaid.currency)}) is unpaid.
        </>
      ) : (
        "."
      )}
    </p>
  );
}
