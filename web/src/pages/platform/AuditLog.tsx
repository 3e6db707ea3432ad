import { Fragment, useState, type FormEvent } from "react";
import { useSearchParams } from "react-router";
import { useGet, usePager } from "../../hooks";
import type { AuditEvent, Page } from "../../api/types";
import { Card, Empty, PagerFor, WhenLoaded } from "../../components/ui";
import { formatDateTime } from "../../format";

const FILTERS = ["resource_type", "resource_id", "tenant_id", "from", "to"] as const;

/** Admin actions and plan changes, newest first, filtered by resource, tenant and time. */
export function AuditLog() {
  const [params, setParams] = useSearchParams();
  const [draft, setDraft] = useState<Record<string, string>>(() => Object.fromEntries(FILTERS.map((f) => [f, params.get(f) ?? ""])));
  const query = FILTERS.filter((f) => params.get(f))
    .map((f) => `&${f}=${encodeURIComponent(params.get(f)!)}`)
    .join("");
  const pager = usePager(`/v1/audit-log?limit=25${query}`);
  const events = useGet<Page<AuditEvent>>(pager.path);
  const [open, setOpen] = useState<string | null>(null);
  const [formError, setFormError] = useState<string | null>(null);

  const apply = (e: FormEvent) => {
    e.preventDefault();
    // The API answers three questions: one platform resource's history, one tenant's, or all.
    const byResource = Boolean(draft.resource_type.trim() || draft.resource_id.trim());
    if (byResource && !(draft.resource_type.trim() && draft.resource_id.trim())) {
      setFormError("Give both the resource type and its id.");
      return;
    }
    if (byResource && draft.tenant_id.trim()) {
      setFormError("Filter by a resource or by a tenant, not both.");
      return;
    }
    setFormError(null);
    const next = new URLSearchParams();
    for (const f of FILTERS) {
      let value = draft[f].trim();
      // A date picked in the form means that whole day, in UTC.
      if (value && (f === "from" || f === "to") && /^\d{4}-\d{2}-\d{2}$/.test(value)) value += f === "from" ? "T00:00:00Z" : "T23:59:59Z";
      if (value) next.set(f, value);
    }
    setParams(next);
  };

  return (
    <div className="page">
      <h1>Audit log</h1>
      <Card>
        <form onSubmit={apply} className="inline-form filters" aria-label="Filter the audit log">
          <label>
            Resource type
            <select value={draft.resource_type} onChange={(e) => setDraft({ ...draft, resource_type: e.target.value })}>
              <option value="">Any</option>
              {["plan", "limit_policy", "tenant"].map((t) => (
                <option key={t} value={t}>
                  {t}
                </option>
              ))}
            </select>
          </label>
          <label>
            Resource id
            <input value={draft.resource_id} onChange={(e) => setDraft({ ...draft, resource_id: e.target.value })} />
          </label>
          <label>
            Tenant id
            <input value={draft.tenant_id} onChange={(e) => setDraft({ ...draft, tenant_id: e.target.value })} />
          </label>
          <label>
            From
            <input type="date" value={draft.from.slice(0, 10)} onChange={(e) => setDraft({ ...draft, from: e.target.value })} />
          </label>
          <label>
            To
            <input type="date" value={draft.to.slice(0, 10)} onChange={(e) => setDraft({ ...draft, to: e.target.value })} />
          </label>
          <button type="submit">Apply</button>
        </form>
        {formError && (
          <p className="field-error" role="alert">
            {formError}
          </p>
        )}
        <WhenLoaded state={events} fresh>
          {() =>
            events.data?.data.length ? (
              <div className="table-wrap">
                <table className="audit">
                  <thead>
                    <tr>
                      <th scope="col">When</th>
                      <th scope="col">Action</th>
                      <th scope="col">Resource</th>
                      <th scope="col">Actor</th>
                      <th scope="col">Reason</th>
                    </tr>
                  </thead>
                  <tbody>
                    {events.data.data.map((ev) => (
                      <Fragment key={ev.id}>
                        <tr>
                          <td>{formatDateTime(ev.at)}</td>
                          <td>
                            <button
                              type="button"
                              className="link"
                              aria-expanded={open === ev.id}
                              onClick={() => setOpen(open === ev.id ? null : ev.id)}
                            >
                              {ev.action}
                            </button>
                          </td>
                          <td>
                            {ev.resource_type} <span className="hint">{ev.resource_id}</span>
                          </td>
                          <td>
                            {ev.actor_role?.replace("_", " ") ?? "system"} <span className="hint">{ev.actor_id}</span>
                          </td>
                          <td>{ev.reason ?? ""}</td>
                        </tr>
                        {open === ev.id && (
                          <tr className="lines">
                            <td colSpan={5}>
                              <div className="diff">
                                <div>
                                  <strong>Before</strong>
                                  <pre>{JSON.stringify(ev.before, null, 2)}</pre>
                                </div>
                                <div>
                                  <strong>After</strong>
                                  <pre>{JSON.stringify(ev.after, null, 2)}</pre>
                                </div>
                              </div>
                            </td>
                          </tr>
                        )}
                      </Fragment>
                    ))}
                  </tbody>
                </table>
              </div>
            ) : (
              <Empty>No audit events match.</Empty>
            )
          }
        </WhenLoaded>
        <PagerFor pager={pager} next={events.data?.next_cursor} />
      </Card>
    </div>
  );
}
