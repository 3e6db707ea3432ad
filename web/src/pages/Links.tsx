import { useEffect, useState, type FormEvent } from "react";
import { useLocation } from "react-router";
import { useSession } from "../session";
import { useAction } from "../hooks";
import type { AuthResponse } from "../api/types";
import { Card, ErrorNotice, Field, fieldError, Success } from "../components/ui";

function tokenFromLink(search: string): string {
  return new URLSearchParams(search).get("token") ?? "";
}

/** The page an invitation mail links to: choose a name and password, join, and land signed in. */
export function AcceptInvitation() {
  const { api, adopt } = useSession();
  const token = tokenFromLink(useLocation().search);
  const [form, setForm] = useState({ name: "", password: "" });
  const [local, setLocal] = useState<string | null>(null);
  const action = useAction();
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (form.password.length < 10) {
      setLocal("Use at least 10 characters.");
      return;
    }
    setLocal(null);
    void action.run(async () => {
      const answer = await api.post<AuthResponse>(
        "/v1/auth/invitations/accept",
        { token, password: form.password, ...(form.name.trim() ? { name: form.name.trim() } : {}) },
        { anonymous: true },
      );
      window.location.hash = "#/";
      await adopt(answer);
    });
  };
  return (
    <main className="signin" id="main">
      <h1>Eshtarek</h1>
      <form onSubmit={submit} noValidate aria-label="Accept the invitation">
        <h2>Accept your invitation</h2>
        <p>Choose your name and a password to join.</p>
        <Field label="Your name" error={fieldError(action.error, "name")}>
          {(p) => (
            <input {...p} name="name" autoComplete="name" value={form.name} onChange={(e) => setForm({ ...form, name: e.target.value })} />
          )}
        </Field>
        <Field label="Password" error={local ?? fieldError(action.error, "password")} hint="At least 10 characters.">
          {(p) => (
            <input
              {...p}
              name="password"
              type="password"
              autoComplete="new-password"
              value={form.password}
              onChange={(e) => setForm({ ...form, password: e.target.value })}
            />
          )}
        </Field>
        <ErrorNotice error={fieldError(action.error, "password") || fieldError(action.error, "name") ? null : action.error} />
        <button type="submit" className="primary" disabled={action.busy}>
          {action.busy ? "Please wait…" : "Join"}
        </button>
        <p>
          Have an account already? <a href="#/">Sign in</a> and accept the invitation there.
        </p>
      </form>
    </main>
  );
}

/** The page a verification mail links to. */
export function VerifyEmail() {
  const { api, reload } = useSession();
  const token = tokenFromLink(useLocation().search);
  const action = useAction();
  const [done, setDone] = useState(false);
  useEffect(() => {
    void action.run(async () => {
      await api.post("/v1/auth/verify-email", { token });
      setDone(true);
      await reload();
    });
    // Once per link.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [token]);
  return (
    <main className="signin" id="main">
      <h1>Eshtarek</h1>
      <Card title="Confirm your email">
        {done && <Success>Your email address is confirmed.</Success>}
        <ErrorNotice error={action.error} />
        <p>
          <a href="#/">Continue</a>
        </p>
      </Card>
    </main>
  );
}

/** Above every page: invitations waiting for an answer, or a reminder to confirm the email. */
export function InvitationsBanner() {
  const { api, me, reload } = useSession();
  const action = useAction();
  const [sent, setSent] = useState(false);
  if (!me) return null;
  if (!me.user.email_verified) {
    return (
      <div className="notice" role="status">
        Confirm your email address with the link we mailed you, to accept invitations.{" "}
        <button
          type="button"
          className="link"
          disabled={action.busy || sent}
          onClick={() =>
            void action.run(async () => {
              await api.post("/v1/auth/verify-email/resend");
              setSent(true);
            })
          }
        >
          {sent ? "Sent" : "Send the link again"}
        </button>
        <ErrorNotice error={action.error} />
      </div>
    );
  }
  if (!me.invitations.length) return null;
  return (
    <Card title="Invitations">
      <ErrorNotice error={action.error} />
      <ul className="plain">
        {me.invitations.map((inv) => (
          <li key={inv.id}>
            {inv.tenant_name} invites you as {inv.role.replace("_", " ")}.{" "}
            <button
              type="button"
              className="primary"
              disabled={action.busy}
              onClick={() =>
                void action.run(async () => {
                  await api.post(`/v1/auth/invitations/${inv.id}/accept`);
                  await reload();
                })
              }
            >
              Accept
            </button>{" "}
            <button
              type="button"
              disabled={action.busy}
              onClick={() =>
                void action.run(async () => {
                  await api.post(`/v1/auth/invitations/${inv.id}/decline`);
                  await reload();
                })
              }
            >
              Decline
            </button>
          </li>
        ))}
      </ul>
    </Card>
  );
}
