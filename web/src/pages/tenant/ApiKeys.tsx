import { useState, type FormEvent } from "react";
import { useSession } from "../../session";
import { useAction, useGet } from "../../hooks";
import { idempotencyKey } from "../../api/client";
import type { ApiKey, CreatedApiKey } from "../../api/types";
import { Card, Empty, ErrorNotice, Field, fieldError, Success, WhenLoaded } from "../../components/ui";
import { formatDate } from "../../format";

const SCOPES = ["usage:write", "usage:read"];

/** API keys for the tenant's own backend: create (the secret is shown once), revoke. */
export function ApiKeys() {
  const { api } = useSession();
  const keys = useGet<{ data: ApiKey[] }>("/v1/api-keys");
  const [name, setName] = useState("");
  const [scopes, setScopes] = useState<string[]>(SCOPES);
  const [nameError, setNameError] = useState<string | null>(null);
  const [created, setCreated] = useState<CreatedApiKey | null>(null);
  const create = useAction();
  const revoke = useAction();

  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (!name.trim()) {
      setNameError("Name the key after what uses it, e.g. “billing worker”.");
      return;
    }
    if (!scopes.length) {
      setNameError("Choose at least one scope.");
      return;
    }
    setNameError(null);
    void create.run(async () => {
      setCreated(await api.post<CreatedApiKey>("/v1/api-keys", { name: name.trim(), scopes }, { idempotencyKey: idempotencyKey() }));
      setName("");
      keys.reload();
    });
  };

  return (
    <div className="page">
      <h1>API keys</h1>
      <p className="lede">
        Your backend sends usage with <code>Authorization: Bearer &lt;key&gt;</code> to <code>POST /v1/usage/events</code>.
      </p>
      <Card title="Create a key">
        <form onSubmit={submit} noValidate className="inline-form">
          <Field label="Name" error={nameError ?? fieldError(create.error, "name")}>
            {(p) => <input {...p} value={name} onChange={(e) => setName(e.target.value)} />}
          </Field>
          <fieldset className="scopes">
            <legend>Scopes</legend>
            {SCOPES.map((s) => (
              <label key={s} className="check">
                <input
                  type="checkbox"
                  checked={scopes.includes(s)}
                  onChange={(e) => setScopes(e.target.checked ? [...scopes, s] : scopes.filter((x) => x !== s))}
                />{" "}
                {s}
              </label>
            ))}
          </fieldset>
          <button type="submit" className="primary" disabled={create.busy}>
            Create key
          </button>
        </form>
        <ErrorNotice error={fieldError(create.error, "name") ? null : create.error} />
        {created && (
          <Success>
            Copy the secret of “{created.name}” now; it is not shown again:{" "}
            <code className="secret" data-testid="api-key-secret">
              {created.secret}
            </code>{" "}
            <button type="button" className="link" onClick={() => void navigator.clipboard?.writeText(created.secret)}>
              Copy
            </button>
          </Success>
        )}
      </Card>
      <Card title="Keys">
        <ErrorNotice error={revoke.error} />
        <WhenLoaded state={keys}>
          {() =>
            keys.data?.data.length ? (
              <div className="table-wrap">
                <table>
                  <thead>
                    <tr>
                      <th scope="col">Name</th>
                      <th scope="col">Key</th>
                      <th scope="col">Scopes</th>
                      <th scope="col">Created</th>
                      <th scope="col">
                        <span className="sr-only">Actions</span>
                      </th>
                    </tr>
                  </thead>
                  <tbody>
                    {keys.data.data.map((k) => (
                      <tr key={k.id}>
                        <td>{k.name}</td>
                        <td>
                          <code>{k.prefix}…</code>
                        </td>
                        <td>{k.scopes.join(", ")}</td>
                        <td>{formatDate(k.created_at)}</td>
                        <td>
                          <button
                            type="button"
                            className="danger"
                            disabled={revoke.busy}
                            onClick={() =>
                              window.confirm(`Revoke “${k.name}”? It stops working at once.`) &&
                              void revoke.run(async () => {
                                await api.delete(`/v1/api-keys/${k.id}`);
                                keys.reload();
                              })
                            }
                          >
                            Revoke
                          </button>
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            ) : (
              <Empty>No keys yet.</Empty>
            )
          }
        </WhenLoaded>
      </Card>
    </div>
  );
}
