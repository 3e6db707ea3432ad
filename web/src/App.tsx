import { HashRouter, NavLink, Navigate, Route, Routes, useLocation } from "react-router";
import { SessionProvider, useSession } from "./session";
import { useState } from "react";
import { Loading } from "./components/ui";
import { TestClockBanner } from "./components/TestClock";
import { SignIn } from "./pages/SignIn";
import { AcceptInvitation, InvitationsBanner, VerifyEmail } from "./pages/Links";
import { PlatformOverview } from "./pages/platform/Overview";
import { TenantsList } from "./pages/platform/Tenants";
import { TenantDetail } from "./pages/platform/TenantDetail";
import { PlansAdmin } from "./pages/platform/Plans";
import { PlanDetail } from "./pages/platform/PlanDetail";
import { PoliciesAdmin } from "./pages/platform/Policies";
import { CouponsAdmin } from "./pages/platform/Coupons";
import { AuditLog } from "./pages/platform/AuditLog";
import { TenantHome } from "./pages/tenant/Home";
import { ChangePlan } from "./pages/tenant/ChangePlan";
import { Members } from "./pages/tenant/Members";
import { Billing } from "./pages/tenant/Billing";
import { Notifications } from "./pages/tenant/Notifications";
import { ApiKeys } from "./pages/tenant/ApiKeys";
import { Webhooks } from "./pages/tenant/Webhooks";
import type { Role } from "./api/types";

const navs: Record<Role, [string, string][]> = {
  platform_admin: [
    ["/", "Overview"],
    ["/tenants", "Tenants"],
    ["/plans", "Plans"],
    ["/policies", "Limit policies"],
    ["/coupons", "Coupons"],
    ["/audit", "Audit log"],
  ],
  tenant_admin: [
    ["/", "Dashboard"],
    ["/plan", "Plan"],
    ["/members", "Members"],
    ["/billing", "Billing"],
    ["/notifications", "Notifications"],
    ["/api-keys", "API keys"],
    ["/webhooks", "Webhooks"],
  ],
  tenant_user: [["/", "Dashboard"]],
};

function Shell() {
  const { me, role, loading, signOut } = useSession();
  const { pathname } = useLocation();
  // Bumped when the test clock moves, so the page shown loads again at the new time.
  const [moved, setMoved] = useState(0);
  if (loading) return <Loading what="Starting" />;
  // Pages that mailed links open, signed in or not.
  if (pathname === "/invitation") return <AcceptInvitation />;
  // Confirming an address needs the account it was sent for: sign in first.
  if (pathname === "/verify-email") return me ? <VerifyEmail /> : <SignIn />;
  if (!me || !role) return <SignIn />;
  const tenant = me.memberships.find((m) => m.tenant_id === me.current_tenant_id);
  return (
    <div className="app">
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <span className="brand">Eshtarek</span>
        <nav aria-label="Main">
          {navs[role].map(([to, label]) => (
            <NavLink key={to} to={to} end={to === "/"}>
              {label}
            </NavLink>
          ))}
        </nav>
        <div className="who">
          <a href="/docs/" target="_blank" rel="noopener">
            API reference
          </a>
          <span className="identity" title={me.user.email}>
            {me.user.name}
            {tenant ? ` · ${tenant.tenant_name}` : ""} {/* The role, unless the name already says it ("Platform admin"). */}
            {me.user.name.toLowerCase() !== role.replace("_", " ") && <span className="role">{role.replace("_", " ")}</span>}
          </span>
          <button type="button" onClick={() => void signOut()}>
            Sign out
          </button>
        </div>
      </header>
      <TestClockBanner admin={role === "platform_admin"} onMoved={() => setMoved((m) => m + 1)} />
      <main id="main" tabIndex={-1} key={moved}>
        <InvitationsBanner />
        <Routes>
          {role === "platform_admin" && (
            <>
              <Route path="/" element={<PlatformOverview />} />
              <Route path="/tenants" element={<TenantsList />} />
              <Route path="/tenants/:id" element={<TenantDetail />} />
              <Route path="/plans" element={<PlansAdmin />} />
              <Route path="/plans/:id" element={<PlanDetail />} />
              <Route path="/policies" element={<PoliciesAdmin />} />
              <Route path="/coupons" element={<CouponsAdmin />} />
              <Route path="/audit" element={<AuditLog />} />
            </>
          )}
          {role === "tenant_admin" && (
            <>
              <Route path="/" element={<TenantHome admin />} />
              <Route path="/plan" element={<ChangePlan />} />
              <Route path="/members" element={<Members />} />
              <Route path="/billing" element={<Billing />} />
              <Route path="/notifications" element={<Notifications />} />
              <Route path="/api-keys" element={<ApiKeys />} />
              <Route path="/webhooks" element={<Webhooks />} />
            </>
          )}
          {role === "tenant_user" && <Route path="/" element={<TenantHome admin={false} />} />}
          <Route path="*" element={<Navigate to="/" replace />} />
        </Routes>
      </main>
    </div>
  );
}

export function App() {
  return (
    <SessionProvider>
      <HashRouter>
        <Shell />
      </HashRouter>
    </SessionProvider>
  );
}
