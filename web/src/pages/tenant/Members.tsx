import { useState, type FormEvent } from "react";
import { useSession } from "../../session";
import { useAction, useGet, usePager } from "../../hooks";
import { idempotencyKey } from "../../api/client";
import type { Invitation, Member, Page, UsageSummary } from "../../api/types";
import { Card, ErrorNotice, Field, fieldError, PagerFor, Success, WhenLoaded } from "../../components/ui";
import { formatDate, formatNumber } from "../../format";

/** Members: invite, change role, remove; the seat limit in view. */
export function Members() {
  const { api, me } = useSession();
  const tenant = me!.current_tenant_id!;
  const pager = usePager(`/v1/tenants/${tenant}/members?limit=20`);
  const members = useGet<Page<Member>>(pager.path);
  const usage = useGet<UsageSummary>("/v1/usage");
  const invitations = useGet<Page<Invitation>>(`/v1/tenants/${tenant}/invitations?limit=100`);
  const seats = usage.data?.data.find((u) => u.metric === "max_users");
  const [form, setForm] = useState({ email: "", role: "tenant_user", name: "" });
  const [emailError, setEmailError] = useState<string | null>(null);
  const [invited, setInvited] = useState<string | null>(null);
  const invite = useAction();
  const change = useAction();

  const reload = () => {
    members.reload();
    usage.reload();
    invitations.reload();
  };
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (!/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(form.email)) {
      setEmailError("Enter an email address like name@example.com.");
      return;
    }
    setEmailError(null);
    void invite.run(async () => {
      const answer = await api.post<{ invitation: Invitation }>(
        `/v1/tenants/${tenant}/members`,
        { email: form.email, role: form.role, ...(form.name.trim() ? { name: form.name.trim() } : {}) },
        { idempotencyKey: idempotencyKey() },
      );
      setInvited(answer.invitation.email);
      setForm({ email: "", role: "tenant_user", name: "" });
      reload();
    });
  };

  return (
    <div className="page">
      <h1>Members</h1>
      {seats && (
        <p className="lede" data-testid="seats">
          {formatNumber(seats.used)} of {formatNumber(seats.limit)} seats used.
        </p>
      )}
      <Card title="Invite a member">
        <form onSubmit={submit} noValidate className="inline-form">
          <Field label="Email" error={emailError ?? fieldError(invite.error, "email")}>
            {(p) => <input {...p} type="email" value={form.email} onChange={(e) => setForm({ ...form, email: e.target.value })} />}
          </Field>
          <Field label="Name (optional)" error={fieldError(invite.error, "name")}>
            {(p) => <input {...p} value={form.name} onChange={(e) => setForm({ ...form, name: e.target.value })} />}
          </Field>
          <Field label="Role">
            {(p) => (
              <select {...p} value={form.role} onChange={(e) => setForm({ ...form, role: e.target.value })}>
                <option value="tenant_user">Member (read-only)</option>
                <option value="tenant_admin">Admin</option>
              </select>
            )}
          </Field>
          <button type="submit" className="primary" disabled={invite.busy}>
            Invite
          </button>
        </form>
        <ErrorNotice error={fieldError(invite.error, "email") ? null : invite.error} />
        {invited && <Success>An invitation was mailed to {invited}. They join once they accept it.</Success>}
      </Card>
      {!!invitations.data?.data.length && (
        <Card title="Open invitations">
          <ul className="plain" data-testid="invitations">
            {invitations.data.data.map((inv) => (
              <li key={inv.id}>
                {inv.email} as {inv.role.replace("_", " ")}, until {formatDate(inv.expires_at)}{" "}
                <button
                  type="button"
                  className="danger"
                  disabled={change.busy}
                  onClick={() =>
                    void change.run(async () => {
                      await api.delete(`/v1/tenants/${tenant}/invitations/${inv.id}`);
                      reload();
                    })
                  }
                >
                  Withdraw
                </button>
              </li>
            ))}
          </ul>
        </Card>
      )}
      <Card title="People">
        <ErrorNotice error={change.error} />
        <WhenLoaded state={members}>
          {() => (
            <div className="table-wrap">
              <table>
                <thead>
                  <tr>
                    <th scope="col">Name</th>
                    <th scope="col">Email</th>
                    <th scope="col">Role</th>
                    <th scope="col">Joined</th>
                    <th scope="col">
                      <span className="sr-only">Actions</span>
                    </th>
                  </tr>
                </thead>
                <tbody>
                  {members.data?.data.map((m) => (
                    <tr key={m.user_id}>
                      <td>{m.name}</td>
                      <td>{m.email}</td>
                      <td>
                        <select
                          aria-label={`Role of ${m.email}`}
                          value={m.role}
                          disabled={change.busy || m.user_id === me!.user.id}
                          onChange={(e) =>
                            void change.run(async () => {
                              await api.patch(`/v1/tenants/${tenant}/members/${m.user_id}`, { role: e.target.value });
                              reload();
                            })
                          }
                        >
                          <option value="tenant_user">Member</option>
                          <option value="tenant_admin">Admin</option>
                        </select>
                      </td>
                      <td>{formatDate(m.joined_at)}</td>
                      <td>
                        {m.user_id !== me!.user.id && (
                          <button
                            type="button"
                            className="danger"
                            disabled={change.busy}
                            onClick={() =>
                              window.confirm(`Remove ${m.email}? Their sessions end at once.`) &&
                              void change.run(async () => {
                                await api.delete(`/v1/tenants/${tenant}/members/${m.user_id}`);
                                reload();
                              })
                            }
                          >
                            Remove
                          </button>
                        )}
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
        </WhenLoaded>
        <PagerFor pager={pager} next={members.data?.next_cursor} />
      </Card>
    </div>
  );
}
