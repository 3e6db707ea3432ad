import { useEffect, useState, type FormEvent } from "react";
import { useSession } from "../session";
import { useAction } from "../hooks";
import { ErrorNotice, Field, fieldError } from "../components/ui";

/** Sign in, or sign up a new business (its first admin and its tenant). */
export function SignIn() {
  const { signIn, signUp, endedBecause } = useSession();
  const [mode, setMode] = useState<"in" | "up">("in");
  const [form, setForm] = useState({ email: "", password: "", name: "", tenant_name: "" });
  const [local, setLocal] = useState<Record<string, string>>({});
  const action = useAction();
  // A seeded local run (`scripts/run`) says where its demo accounts are listed; elsewhere
  // there is no /demo.json and nothing is shown.
  const [demoFile, setDemoFile] = useState<string | null>(null);
  useEffect(() => {
    let live = true;
    fetch("/demo.json")
      .then((r) => (r.ok ? r.json() : null))
      .then((d: { credentials_file?: string } | null) => live && setDemoFile(d?.credentials_file ?? null))
      .catch(() => undefined);
    return () => {
      live = false;
    };
  }, []);
  const set = (k: keyof typeof form) => (e: { target: { value: string } }) => setForm({ ...form, [k]: e.target.value });

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const problems: Record<string, string> = {};
    if (!/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(form.email)) problems.email = "Enter an email address like name@example.com.";
    if (mode === "in" && !form.password) problems.password = "Enter your password.";
    if (mode === "up") {
      if (form.password.length < 10) problems.password = "Use at least 10 characters.";
      if (!form.name.trim()) problems.name = "Enter your name.";
      if (!form.tenant_name.trim()) problems.tenant_name = "Enter your company's name.";
    }
    setLocal(problems);
    if (Object.keys(problems).length) return;
    await action.run(() => (mode === "in" ? signIn(form.email, form.password) : signUp(form)));
  };
  const err = (k: string) => local[k] ?? fieldError(action.error, k);

  return (
    <main className="signin" id="main">
      <h1>Eshtarek</h1>
      <p className="lede">Subscriptions, usage and billing for your business.</p>
      {endedBecause && (
        <div className="notice notice-limit" role="alert">
          {endedBecause}
        </div>
      )}
      <form onSubmit={submit} noValidate aria-label={mode === "in" ? "Sign in" : "Sign up"}>
        <h2>{mode === "in" ? "Sign in" : "Create your account"}</h2>
        {mode === "up" && (
          <>
            <Field label="Your name" error={err("name")}>
              {(p) => <input {...p} name="name" autoComplete="name" value={form.name} onChange={set("name")} />}
            </Field>
            <Field label="Company" error={err("tenant_name")}>
              {(p) => (
                <input {...p} name="tenant_name" autoComplete="organization" value={form.tenant_name} onChange={set("tenant_name")} />
              )}
            </Field>
          </>
        )}
        <Field label="Email" error={err("email")}>
          {(p) => <input {...p} name="email" type="email" autoComplete="email" value={form.email} onChange={set("email")} />}
        </Field>
        <Field label="Password" error={err("password")} hint={mode === "up" ? "At least 10 characters." : undefined}>
          {(p) => (
            <input
              {...p}
              name="password"
              type="password"
              autoComplete={mode === "in" ? "current-password" : "new-password"}
              value={form.password}
              onChange={set("password")}
            />
          )}
        </Field>
        <ErrorNotice error={fieldError(action.error, "email") || fieldError(action.error, "password") ? null : action.error} />
        <button type="submit" className="primary" disabled={action.busy}>
          {action.busy ? "Please wait…" : mode === "in" ? "Sign in" : "Sign up"}
        </button>
        <p>
          {mode === "in" ? "New here? " : "Have an account? "}
          <button
            type="button"
            className="link"
            onClick={() => {
              setMode(mode === "in" ? "up" : "in");
              action.clear();
              setLocal({});
            }}
          >
            {mode === "in" ? "Create an account" : "Sign in"}
          </button>
        </p>
      </form>
      {demoFile && mode === "in" && (
        <p className="hint demo-accounts" data-testid="demo-accounts">
          Demo accounts (a platform admin, tenant admins and a tenant user) and their passwords are listed in <code>{demoFile}</code>,
          written by the server's first start.
        </p>
      )}
    </main>
  );
}
