import { useState } from "react";
import { Link, useNavigate } from "react-router";
import { useSession } from "../../session";
import { useAction, useGet } from "../../hooks";
import { idempotencyKey } from "../../api/client";
import type { Page, Plan } from "../../api/types";
import { Card, ErrorNotice, StatusBadge, WhenLoaded } from "../../components/ui";
import { PlanForm, planBody } from "../../components/PlanForm";
import { formatMoney, formatNumber, metricLabel } from "../../format";

/** Every plan (inactive ones too) and the form for a new one. */
export function PlansAdmin() {
  const { api } = useSession();
  const navigate = useNavigate();
  const plans = useGet<Page<Plan>>("/v1/plans?limit=100");
  const [creating, setCreating] = useState(false);
  const create = useAction();
  return (
    <div className="page">
      <h1>Plans</h1>
      <Card
        title="All plans"
        actions={
          <button type="button" className="primary" onClick={() => setCreating(!creating)} aria-expanded={creating}>
            New plan
          </button>
        }
      >
        {creating && (
          <div className="subform">
            <PlanForm
              submitLabel="Create plan"
              busy={create.busy}
              error={create.error}
              onSubmit={(v, catalog) =>
                void create.run(async () => {
                  const plan = await api.post<Plan>("/v1/plans", planBody(v, undefined, catalog), { idempotencyKey: idempotencyKey() });
                  navigate(`/plans/${plan.id}`);
                })
              }
            />
            <ErrorNotice error={create.error} />
          </div>
        )}
        <WhenLoaded state={plans}>
          {() => (
            <div className="table-wrap">
              <table>
                <thead>
                  <tr>
                    <th scope="col">Plan</th>
                    <th scope="col">Price</th>
                    <th scope="col">Version</th>
                    <th scope="col">Limits</th>
                    <th scope="col">Status</th>
                  </tr>
                </thead>
                <tbody>
                  {plans.data?.data.map((p) => (
                    <tr key={p.id} data-plan={p.name}>
                      <td>
                        <Link to={`/plans/${p.id}`}>{p.name}</Link>
                        <div className="hint">{p.description}</div>
                      </td>
                      <td>
                        {formatMoney(p.price, p.currency)}/{p.billing_cycle === "yearly" ? "yr" : "mo"}
                      </td>
                      <td>v{p.current_version}</td>
                      <td>{p.limits.map((l) => `${metricLabel(l.metric)} ${formatNumber(l.limit)}`).join(", ") || "none"}</td>
                      <td>
                        <StatusBadge status={p.active ? "active" : "inactive"} />
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
        </WhenLoaded>
      </Card>
    </div>
  );
}
