// The API's shapes the dashboard reads (see /openapi.json for the full document).

export interface Page<T> {
  data: T[];
  next_cursor: string | null;
}

export type Role = "platform_admin" | "tenant_admin" | "tenant_user";

export interface User {
  id: string;
  email: string;
  name: string;
  platform_admin: boolean;
  email_verified: boolean;
}

/** An invitation waiting for the signed-in person's answer. */
export interface PendingInvitation {
  id: string;
  tenant_id: string;
  tenant_name: string;
  role: Role;
  expires_at: string;
}

/** An open invitation as the tenant's admin sees it. */
export interface Invitation {
  id: string;
  tenant_id: string;
  email: string;
  role: Role;
  status: string;
  invited_at: string;
  expires_at: string;
}

export interface Me {
  user: User;
  memberships: { tenant_id: string; tenant_name: string; role: Role; tenant_status: string }[];
  current_tenant_id: string | null;
  role: Role | null;
  invitations: PendingInvitation[];
}

export interface Tenant {
  id: string;
  name: string;
  status: string;
  member_count: number;
  created_at: string;
  trial_available: boolean;
}

export interface Member {
  user_id: string;
  email: string;
  name: string;
  role: Role;
  joined_at: string;
}

export interface Limit {
  metric: string;
  limit: number | null;
  reset_period: string;
  enforcement: "hard" | "soft";
  warning_thresholds: number[];
}

export interface Plan {
  id: string;
  name: string;
  description: string;
  active: boolean;
  current_version: number;
  price: string;
  currency: string;
  billing_cycle: "monthly" | "yearly";
  trial_days: number;
  duration_cycles: number | null;
  limits: Limit[];
  limit_policy_ids?: string[];
  seats: SeatPrice | null;
  usage_charges: UsageCharge[];
  top_ups: TopUp[];
  features?: Record<string, unknown>;
  allowed_changes?: string[] | null;
  rate_limits?: RateLimit[];
  created_at: string;
  updated_at: string;
}

export interface RateLimit {
  bucket: string;
  limit: number;
  per: "second" | "minute" | "hour" | "day";
}

export interface RateWindow {
  limit: number;
  per: RateLimit["per"];
  remaining: number;
  reset_seconds: number;
}

export interface RateEntitlement {
  bucket: string;
  windows: RateWindow[];
}

export interface PlanVersion {
  plan_id: string;
  version: number;
  price: string;
  currency: string;
  billing_cycle: string;
  trial_days: number;
  duration_cycles: number | null;
  limits: Limit[];
  seats: SeatPrice | null;
  usage_charges: UsageCharge[];
  top_ups: TopUp[];
  features?: Record<string, unknown>;
  allowed_changes?: string[] | null;
  rate_limits?: RateLimit[];
  created_at: string;
}

export interface Policy extends Limit {
  id: string;
  description: string;
}

export interface Subscription {
  id: string;
  tenant_id: string;
  status: "incomplete" | "trialing" | "active" | "past_due" | "cancelled" | "expired";
  plan_id: string;
  plan_version: number;
  price: string;
  currency: string;
  billing_cycle: string;
  current_period_start: string;
  current_period_end: string;
  trial_end: string | null;
  cancel_at_period_end: boolean;
  scheduled_change: { plan_id: string; plan_version: number; effective_at: string } | null;
  latest_invoice_id: string | null;
  discount?: { coupon: string; percent_off: string | null; amount_off: string | null; invoices_left: number | null } | null;
  seats_billed?: number | null;
  seats_licensed?: number | null;
  created_at: string;
  ended_at: string | null;
}

export interface LineDetail {
  metric: string;
  quantity: number;
  included: number;
  billable: number;
  unit_price?: string;
  price?: UsagePrice;
}

export interface InvoiceLine {
  kind: string;
  description: string;
  amount: string;
  period_start?: string | null;
  period_end?: string | null;
  detail?: LineDetail;
}

export interface Tier {
  up_to: number | null;
  unit_price: string;
  flat_price?: string;
}

export type UsagePrice =
  | { model: "per_unit"; unit_price: string }
  | { model: "package"; package_size: number; package_price: string }
  | { model: "graduated"; tiers: Tier[] }
  | { model: "volume"; tiers: Tier[] };

export interface UsageCharge {
  metric: string;
  included: number;
  price: UsagePrice;
}

export interface SeatPrice {
  unit_price: string;
  included: number;
  /** `members`: the member count; `licensed`: the seats the tenant admin buys. */
  quantity?: "members" | "licensed";
}

export interface TopUp {
  metric: string;
  units: number;
  price: string;
}

export interface Grant {
  id: string;
  metric: string;
  units: number;
  granted_at: string;
  expires_at: string;
  reason: string;
  /** Set when the tenant bought it (a top-up). */
  invoice_id?: string;
}

export interface Credits {
  balance: string;
  currency: string;
  grants: Grant[];
}

export interface UpcomingInvoice {
  subscription_id: string;
  currency: string;
  issue_at: string;
  period_start: string;
  period_end: string;
  is_final: boolean;
  lines: InvoiceLine[];
  subtotal: string;
  credit_applied: string;
  total: string;
  amount_due: string;
}

export interface Invoice {
  id: string;
  number: number;
  status: string;
  currency: string;
  lines: InvoiceLine[];
  subtotal: string;
  credit_applied: string;
  total: string;
  amount_due: string;
  amount_paid: string;
  period_start: string;
  period_end: string;
  subscription_id: string;
  attempt_count: number;
  created_at: string;
  paid_at: string | null;
}

export interface SubscriptionResult {
  subscription: Subscription;
  invoice: Invoice | null;
}

export interface ChangePreview {
  subscription_id: string;
  plan_id: string;
  plan_version: number;
  upgrade: boolean;
  default_effective: "now" | "period_end";
  lines: InvoiceLine[];
  net: string;
  currency: string;
  restarts_period: boolean;
  /** Usage so far at the current prices, billed on its own invoice by a change now. */
  usage_to_date?: InvoiceLine[];
  usage_total?: string;
}

export interface Payment {
  id: string;
  kind: string;
  invoice_id: string;
  invoice_number: number;
  amount: string;
  currency: string;
  outcome: string;
  failure_code: string | null;
  created_at: string;
}

export interface PaymentMethod {
  id: string;
  brand: string;
  last4: string;
  exp_month: number;
  exp_year: number;
  is_default: boolean;
  created_at: string;
}

export interface MetricUsage {
  metric: string;
  used: number;
  limit: number | null;
  percent: number | null;
  enforcement: "hard" | "soft";
  reset_period: string;
  period_start: string;
  period_end: string | null;
}

export interface UsageSummary {
  plan_id: string;
  plan_version: number;
  data: MetricUsage[];
}

export interface History {
  metric: string;
  granularity: string;
  data: { bucket: string; total: number }[];
}

export interface Notification {
  id: string;
  kind: string;
  message: string;
  data: Record<string, unknown>;
  read: boolean;
  created_at: string;
}

export interface ApiKey {
  id: string;
  prefix: string;
  name: string;
  scopes: string[];
  created_at: string;
}

export interface CreatedApiKey extends ApiKey {
  secret: string;
}

export interface AuditEvent {
  id: string;
  at: string;
  actor_id: string;
  actor_role: string | null;
  action: string;
  resource_type: string;
  resource_id: string;
  tenant_id: string | null;
  before: unknown;
  after: unknown;
  reason: string | null;
}

export interface Overview {
  tenants: number;
  suspended_tenants: number;
  subscriptions: { trialing: number; active: number; past_due: number; none: number };
  plans: { plan_id: string; subscriptions: number }[];
  mrr: { amount: string; currency: string }[];
  as_of: string;
}

export interface AdminUsage {
  metric: string;
  month: string;
  total: number;
  tenants: number;
  top: { tenant_id: string; used: number }[];
}

export interface AuthResponse {
  user: User;
  tenant?: Tenant | null;
  tokens: import("./client").Tokens;
}

export interface Coupon {
  code: string;
  name: string;
  percent_off: string | null;
  amount_off: string | null;
  currency: string | null;
  duration: "once" | "repeating" | "forever";
  duration_cycles: number | null;
  max_redemptions: number | null;
  redemptions: number;
  expires_at: string | null;
  plan_ids: string[];
  active: boolean;
  created_at: string;
  updated_at: string;
}

export interface Feature {
  key: string;
  name: string;
  type: "boolean" | "number" | "string";
  description: string;
  created_at: string;
  updated_at: string;
}

export interface FeatureEntitlement {
  key: string;
  name: string;
  type: Feature["type"] | null;
  value: unknown;
  enabled: boolean;
}

export interface Entitlements {
  plan_id: string;
  plan_version: number;
  features: FeatureEntitlement[];
  metrics: MetricUsage[];
  rate_limits: RateEntitlement[];
  cache_for_seconds: number;
}

export interface WebhookEndpoint {
  id: string;
  url: string;
  description: string;
  event_types: string[];
  enabled: boolean;
  disabled_reason: string | null;
  failing_since: string | null;
  previous_secret_until: string | null;
  created_at: string;
  updated_at: string;
}

export interface EndpointWithSecret {
  endpoint: WebhookEndpoint;
  secret: string | null;
}

export interface WebhookAttempt {
  message_id: string;
  attempt: number;
  status_code: number | null;
  delivered: boolean;
  response: string;
  duration_ms: number;
  created_at: string;
}
