import { useState, type FormEvent } from "react";
import { useSession } from "../../session";
import { useAction, useGet } from "../../hooks";
import { idempotencyKey } from "../../api/client";
import type { EndpointWithSecret, Page, WebhookAttempt, WebhookEndpoint } from "../../api/types";
import { Card, Empty, ErrorNotice, Field, fieldError, Success, WhenLoaded } from "../../components/ui";
import { formatDateTime } from "../../format";

/** The tenant's webhook endpoints: register (the signing secret shown once), switch on and
 * off, rotate the secret, send a test, read the delivery log. */
export function Webhooks() {
  const { api } = useSession();
  const endpoints = useGet<Page<WebhookEndpoint>>("/v1/webhooks/endpoints?limit=100");
  const types = useGet<{ data: string[] }>("/v1/webhooks/event-types");
  const [form, setForm] = useState({ url: "", description: "", types: [] as string[] });
  const [urlError, setUrlError] = useState<string | null>(null);
  const [secret, setSecret] = useState<{ what: string; secret: string } | null>(null);
  const [open, setOpen] = useState<string | null>(null);
  const create = useAction();
  const act = useAction();

  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (!/^https?:\/\/\S+$/.test(form.url.trim())) {
      setUrlError("Enter the URL your system receives webhooks at, like https://example.com/webhooks.");
      return;
    }
    setUrlError(null);
    void create.run(async () => {
      const created = await api.post<EndpointWithSecret>(
        "/v1/webhooks/endpoints",
        { url: form.url.trim(), description: form.description.trim(), event_types: form.types },
        { idempotencyKey: idempotencyKey() },
      );
      if (created.secret) setSecret({ what: created.endpoint.url, secret: created.secret });
      setForm({ url: "", description: "", types: [] });
      endpoints.reload();
    });
  };
  const run = (work: () => Promise<void>) =>
    void act.run(async () => {
      await work();
      endpoints.reload();
    });

  return (
    <div className="page">
      <h1>Webhooks</h1>
      <p className="lede">
        Your systems are told when a subscription changes, an invoice is paid or fails, or usage reaches a warning threshold: a signed POST
        in the <a href="https://www.standardwebhooks.com/">Standard Webhooks</a> format, retried for about three days.
      </p>
      <Card title="Add an endpoint">
        <form onSubmit={submit} noValidate className="inline-form" aria-label="Add a webhook endpoint">
          <Field label="URL" error={urlError ?? fieldError(create.error, "url")}>
            {(p) => <input {...p} type="url" size={40} value={form.url} onChange={(e) => setForm({ ...form, url: e.target.value })} />}
          </Field>
          <Field label="Description" error={fieldError(create.error, "description")}>
            {(p) => <input {...p} value={form.description} onChange={(e) => setForm({ ...form, description: e.target.value })} />}
          </Field>
          <button type="submit" className="primary" disabled={create.busy}>
            Add endpoint
          </button>
        </form>
        <fieldset className="scopes">
          <legend>Event types (none chosen: all)</legend>
          {(types.data?.data ?? []).map((t) => (
            <label key={t} className="check">
              <input
                type="checkbox"
                checked={form.types.includes(t)}
                onChange={(e) => setForm({ ...form, types: e.target.checked ? [...form.types, t] : form.types.filter((x) => x !== t) })}
              />{" "}
              {t}
            </label>
          ))}
        </fieldset>
        <ErrorNotice error={fieldError(create.error, "url") || fieldError(create.error, "description") ? null : create.error} />
        {secret && (
          <Success>
            Copy the signing secret of {secret.what} now; it is not shown again:{" "}
            <code className="secret" data-testid="webhook-secret">
              {secret.secret}
            </code>
          </Success>
        )}
      </Card>
      <Card title="Endpoints">
        <ErrorNotice error={act.error} />
        <WhenLoaded state={endpoints}>
          {() =>
            endpoints.data?.data.length ? (
              <ul className="endpoints">
                {endpoints.data.data.map((ep) => (
                  <li key={ep.id} data-endpoint={ep.url}>
                    <div className="endpoint-head">
                      <div>
                        <code>{ep.url}</code> {ep.description && <span className="hint">{ep.description}</span>}
                        <div className="hint">
                          {ep.event_types.length ? ep.event_types.join(", ") : "all event types"}
                          {ep.enabled ? "" : ep.disabled_reason ? ` · disabled: ${disabledWhy(ep.disabled_reason)}` : " · off"}
                          {ep.failing_since && ` · failing since ${formatDateTime(ep.failing_since)}`}
                        </div>
                      </div>
                      <div className="row">
                        <button
                          type="button"
                          disabled={act.busy}
                          onClick={() => run(() => api.post(`/v1/webhooks/endpoints/${ep.id}/test`, {}))}
                        >
                          Send test
                        </button>
                        <button
                          type="button"
                          disabled={act.busy}
                          onClick={() => run(() => api.patch(`/v1/webhooks/endpoints/${ep.id}`, { enabled: !ep.enabled }))}
                        >
                          {ep.enabled ? "Disable" : "Enable"}
                        </button>
                        <button
                          type="button"
                          disabled={act.busy}
                          onClick={() =>
                            run(async () => {
                              const rotated = await api.post<EndpointWithSecret>(
                                `/v1/webhooks/endpoints/${ep.id}/rotate-secret`,
                                { overlap_hours: 24 },
                                { idempotencyKey: idempotencyKey() },
                              );
                              if (rotated.secret) setSecret({ what: ep.url, secret: rotated.secret });
                            })
                          }
                        >
                          Rotate secret
                        </button>
                        <button
                          type="button"
                          className="link"
                          aria-expanded={open === ep.id}
                          onClick={() => setOpen(open === ep.id ? null : ep.id)}
                        >
                          Deliveries
                        </button>
                        <button
                          type="button"
                          className="danger"
                          disabled={act.busy}
                          onClick={() =>
                            window.confirm(`Delete the endpoint ${ep.url}? Nothing more is sent to it.`) &&
                            run(() => api.delete(`/v1/webhooks/endpoints/${ep.id}`))
                          }
                        >
                          Delete
                        </button>
                      </div>
                    </div>
                    {open === ep.id && <Attempts endpoint={ep.id} />}
                  </li>
                ))}
              </ul>
            ) : (
              <Empty>No endpoints yet.</Empty>
            )
          }
        </WhenLoaded>
      </Card>
    </div>
  );
}

function disabledWhy(reason: string): string {
  return reason === "gone" ? "it answered 410 Gone" : reason === "failing" ? "five days of failures" : reason;
}

/** An endpoint's latest delivery attempts. */
function Attempts({ endpoint }: { endpoint: string }) {
  const attempts = useGet<Page<WebhookAttempt>>(`/v1/webhooks/endpoints/${endpoint}/attempts?limit=20`);
  return (
    <div className="attempts" data-testid="attempts">
      <button type="button" className="link" onClick={attempts.reload}>
        Refresh
      </button>
      <WhenLoaded state={attempts}>
        {() =>
          attempts.data?.data.length ? (
            <div className="table-wrap">
              <table>
                <thead>
                  <tr>
                    <th scope="col">When</th>
                    <th scope="col">Message</th>
                    <th scope="col">Attempt</th>
                    <th scope="col">Answer</th>
                    <th scope="col" className="num">
                      Time
                    </th>
                  </tr>
                </thead>
                <tbody>
                  {attempts.data.data.map((a) => (
                    <tr key={`${a.message_id}-${a.attempt}-${a.created_at}`}>
                      <td>{formatDateTime(a.created_at)}</td>
                      <td>
                        <code>{a.message_id}</code>
                      </td>
                      <td>{a.attempt}</td>
                      <td>
                        <span className={`badge badge-${a.delivered ? "paid" : "failed"}`}>{a.status_code ?? "no answer"}</span>{" "}
                        <span className="hint">{a.response.slice(0, 80)}</span>
                      </td>
                      <td className="num">{a.duration_ms} ms</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          ) : (
            <Empty>No deliveries yet. Messages go out within seconds.</Empty>
          )
        }
      </WhenLoaded>
    </div>
  );
}
