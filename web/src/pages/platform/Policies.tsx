import { useState, type FormEvent } from "react";
import { useSession } from "../../session";
import { useAction, useGet } from "../../hooks";
import { idempotencyKey } from "../../api/client";
import type { Page, Policy } from "../../api/types";
import { Card, ErrorNotice, Field, fieldError, Success, unlessFieldError, WhenLoaded } from "../../components/ui";
import { formatNumber, metricLabel } from "../../format";

/** Limit policies (any metric) that plans attach; editing one never changes existing versions. */
export function PoliciesAdmin() {
  const { api } = useSession();
  const policies = useGet<Page<Policy>>("/v1/limit-policies?limit=100");
  const blank = { metric: "", limit: "", reset_period: "month", enforcement: "hard", warning_thresholds: "80,100", description: "" };
  const [form, setForm] = useState(blank);
  /** The policy being edited; null while creating. */
  const [editing, setEditing] = useState<Policy | null>(null);
  const [local, setLocal] = useState<Record<string, string>>({});
  const [done, setDone] = useState<string | null>(null);
  const create = useAction();
  const err = (k: string) => local[k] ?? fieldError(create.error, k);
  const set = (k: keyof typeof form) => (e: { target: { value: string } }) => setForm({ ...form, [k]: e.target.value });

  const submit = (e: FormEvent) => {
    e.preventDefault();
    const problems: Record<string, string> = {};
    if (!/^[a-z][a-z0-9_]{0,63}$/.test(form.metric)) problems.metric = "Lowercase letters, digits and _, starting with a letter.";
    if (form.limit && !/^\d+$/.test(form.limit)) problems.limit = "A whole number, or empty for unlimited.";
    const thresholds = form.warning_thresholds
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean);
    if (thresholds.some((t) => !/^\d+$/.test(t))) problems.warning_thresholds = "Percentages separated by commas, e.g. 80,100.";
    setLocal(problems);
    if (Object.keys(problems).length) return;
    const body = {
      limit: form.limit ? Number(form.limit) : null,
      reset_period: form.reset_period,
      enforcement: form.enforcement,
      warning_thresholds: thresholds.map(Number),
      ...(form.description.trim() ? { description: form.description.trim() } : {}),
    };
    void create.run(async () => {
      if (editing) {
        await api.patch(`/v1/limit-policies/${editing.id}`, body);
        setDone(`Policy for ${editing.metric} saved. Plan versions that include it keep their copy until the plan is edited.`);
      } else {
        await api.post("/v1/limit-policies", { metric: form.metric, ...body }, { idempotencyKey: idempotencyKey() });
        setDone(`Policy for ${form.metric} created.`);
      }
      setEditing(null);
      setForm(blank);
      policies.reload();
    });
  };
  const edit = (p: Policy) => {
    setEditing(p);
    setDone(null);
    setLocal({});
    setForm({
      metric: p.metric,
      limit: p.limit === null ? "" : String(p.limit),
      reset_period: p.reset_period,
      enforcement: p.enforcement,
      warning_thresholds: p.warning_thresholds.join(","),
      description: p.description,
    });
  };

  return (
    <div className="page">
      <h1>Limit policies</h1>
      <Card title={editing ? `Edit: ${editing.description || editing.metric}` : "New policy"}>
        {done && <Success>{done}</Success>}
        <form onSubmit={submit} noValidate className="inline-form" aria-label={editing ? "Edit limit policy" : "New limit policy"}>
          <Field label="Metric" error={err("metric")}>
            {(p) => <input {...p} placeholder="api_calls" value={form.metric} disabled={editing !== null} onChange={set("metric")} />}
          </Field>
          <Field label="Limit" error={err("limit")} hint="Empty: unlimited">
            {(p) => <input {...p} inputMode="numeric" size={10} value={form.limit} onChange={set("limit")} />}
          </Field>
          <Field label="Resets" error={err("reset_period")}>
            {(p) => (
              <select {...p} value={form.reset_period} onChange={set("reset_period")}>
                <option value="none">Never (gauge)</option>
                <option value="day">Daily</option>
                <option value="month">Monthly</option>
                <option value="billing_period">Each billing period</option>
              </select>
            )}
          </Field>
          <Field label="Enforcement" error={err("enforcement")}>
            {(p) => (
              <select {...p} value={form.enforcement} onChange={set("enforcement")}>
                <option value="hard">Hard (refuse)</option>
                <option value="soft">Soft (count overage)</option>
              </select>
            )}
          </Field>
          <Field label="Warn at %" error={err("warning_thresholds")}>
            {(p) => <input {...p} size={8} value={form.warning_thresholds} onChange={set("warning_thresholds")} />}
          </Field>
          <Field label="Description" error={err("description")}>
            {(p) => <input {...p} value={form.description} onChange={set("description")} />}
          </Field>
          <button type="submit" className="primary" disabled={create.busy}>
            {editing ? "Save policy" : "Create"}
          </button>
          {editing && (
            <button
              type="button"
              onClick={() => {
                setEditing(null);
                setForm(blank);
              }}
            >
              Cancel edit
            </button>
          )}
        </form>
        <ErrorNotice
          error={unlessFieldError(create.error, ["metric", "limit", "reset_period", "enforcement", "warning_thresholds", "description"])}
        />
      </Card>
      <Card title="Policies">
        <WhenLoaded state={policies}>
          {() => (
            <div className="table-wrap">
              <table>
                <thead>
                  <tr>
                    <th scope="col">Description</th>
                    <th scope="col">Metric</th>
                    <th scope="col" className="num">
                      Limit
                    </th>
                    <th scope="col">Resets</th>
                    <th scope="col">Enforcement</th>
                    <th scope="col">Warnings</th>
                    <th scope="col">
                      <span className="sr-only">Actions</span>
                    </th>
                  </tr>
                </thead>
                <tbody>
                  {policies.data?.data.map((p) => (
                    <tr key={p.id}>
                      <td>{p.description}</td>
                      <td>{metricLabel(p.metric)}</td>
                      <td className="num">{formatNumber(p.limit)}</td>
                      <td>{p.reset_period.replace("_", " ")}</td>
                      <td>{p.enforcement}</td>
                      <td>{p.warning_thresholds.map((t) => `${t}%`).join(", ")}</td>
                      <td>
                        <button type="button" className="link" onClick={() => edit(p)} aria-label={`Edit ${p.description || p.metric}`}>
                          Edit
                        </button>
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
