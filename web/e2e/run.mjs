// End-to-end tests of the dashboards in headless Chromium (Debian's, driven by playwright-core;
// no browser download), against a running `eshtarek serve --test-clock` seeded with demo data.
//
//   node e2e/run.mjs <base url> <demo-credentials.txt> <screenshot dir>
//
// Every step asserts what a person would see; a screenshot of each main page is saved.

import assert from "node:assert/strict";
import { mkdirSync, readdirSync, readFileSync } from "node:fs";
import { createServer } from "node:http";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { chromium } from "playwright-core";

const [base, credentialsFile, shots] = process.argv.slice(2);
if (!base || !credentialsFile || !shots) {
  console.error("usage: node e2e/run.mjs <base url> <demo-credentials.txt> <screenshot dir>");
  process.exit(2);
}
mkdirSync(shots, { recursive: true });
const mailbox = join(dirname(credentialsFile), "mailbox");

/** The newest message of `kind` the server's local mailbox holds for `to`. */
function mailTo(to, kind) {
  const mail = readdirSync(mailbox)
    .filter((f) => f.endsWith(`-${kind}.json`))
    .sort()
    .reverse()
    .map((f) => JSON.parse(readFileSync(join(mailbox, f), "utf8")))
    .find((m) => m.to === to);
  assert.ok(mail, `a ${kind} message for ${to} in the local mailbox`);
  return mail;
}
const credentials = Object.fromEntries(
  readFileSync(credentialsFile, "utf8")
    .trim()
    .split("\n")
    .map((line) => line.trim().split(/\s+/))
    .map(([, email, password]) => [email, password]),
);
const PASSWORD = "correct horse battery staple";
const TIMEOUT = 15_000;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  headless: true,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
  ],
});

const results = [];
async function step(name, body) {
  const started = Date.now();
  try {
    await body();
    results.push([name, "ok", Date.now() - started]);
    console.log(`  ok   ${name} (${Date.now() - started} ms)`);
  } catch (error) {
    results.push([name, "FAILED", Date.now() - started]);
    console.log(`  FAIL ${name}\n${error?.stack ?? error}`);
    throw error;
  }
}

async function api(method, path, token, body) {
  const response = await fetch(base + path, {
    method,
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

/** A fresh browser context (no shared storage) with a page that fails on console errors. */
async function newPage(viewport = { width: 1280, height: 900 }) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => {
    // A 4xx the page handles is logged by Chromium as a failed resource; that is expected.
    if (m.type() === "error" && !/Failed to load resource/.test(m.text())) errors.push(m.text());
  });
  page.errors = errors;
  return page;
}

async function signIn(page, email, password) {
  await page.goto(base + "/");
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(password);
  await page.getByLabel("Password").press("Enter"); // keyboard only
  await page.getByRole("button", { name: "Sign out" }).waitFor();
}

const axeSource = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");
const accessibility = [];

/** Screenshots every main page as it is and on a phone (`<name>-390.png`), and checks it with
 * axe-core (WCAG 2 A/AA rules). */
async function shot(page, name, { audit = true } = {}) {
  await page.waitForLoadState("networkidle");
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
  const size = page.viewportSize();
  if (size.width !== 390) {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.waitForTimeout(150); // charts re-measure on resize
    await page.screenshot({ path: join(shots, `${name}-390.png`), fullPage: true });
    await page.setViewportSize(size);
  }
  if (!audit) return;
  await page.evaluate(axeSource);
  const violations = await page.evaluate(async () => {
    const result = await window.axe.run(document, { runOnly: ["wcag2a", "wcag2aa"] });
    return result.violations.map(
      (v) => `${v.impact} ${v.id}: ${v.help} (${v.nodes.length}× e.g. ${v.nodes[0].target}: ${v.nodes[0].any[0]?.message ?? ""})`,
    );
  });
  accessibility.push([name, violations]);
}

const go = (page, hash) => page.goto(`${base}/#${hash}`);

let failed = false;
try {
  // ---------------------------------------------------------------- platform admin
  const admin = await newPage();
  let teamPlanId;
  await step("platform admin signs in and sees the overview with MRR and charts", async () => {
    // A wrong password is said to be wrong (not "your session has expired").
    await admin.goto(base + "/");
    // A seeded local run says where its demo accounts are listed.
    const demo = (await admin.getByTestId("demo-accounts").textContent()).trim();
    assert.match(demo, /demo-credentials\.txt, written by the server's first start\.$/);
    await admin.getByLabel("Email").fill("admin@eshtarek.local");
    await admin.getByLabel("Password").fill("not the password");
    await admin.getByLabel("Password").press("Enter");
    await admin.getByText("wrong email or password").waitFor();
    assert.equal(await admin.getByText(/session has expired/).count(), 0);
    await signIn(admin, "admin@eshtarek.local", credentials["admin@eshtarek.local"]);
    await admin.getByRole("heading", { name: "Platform overview" }).waitFor();
    await admin.getByText("$99.00").first().waitFor(); // Globex pays for Business
    await admin.getByRole("img", { name: "Tenants by subscription status" }).waitFor();
    await admin.getByRole("img", { name: "Top tenants by API calls" }).waitFor();
    await shot(admin, "platform-overview");
    // The header names the person once: no "Platform admin [platform admin]".
    assert.equal(await admin.locator(".who .role").count(), 0);
  });
  await step("the API reference at /docs renders the server's OpenAPI document", async () => {
    const docs = await newPage({ width: 1280, height: 900 });
    const blocked = [];
    docs.on("console", (m) => m.type() === "error" && blocked.push(m.text()));
    await docs.goto(base + "/docs/");
    await docs.getByText("Eshtarek API").first().waitFor();
    await docs.getByText("/v1/entitlements/check").first().waitFor();
    await docs.getByText("/v1/usage/events").first().waitFor();
    assert.deepEqual(blocked, [], "no CSP violation or script error");
    // Swagger UI's own markup is not ours to fix: a screenshot, no accessibility audit.
    await shot(docs, "api-reference", { audit: false });
    await docs.close();
  });
  await step("platform admin searches tenants and opens one", async () => {
    await admin.getByRole("link", { name: "Tenants", exact: true }).click();
    await admin.getByLabel("Search").fill("glob");
    await admin.waitForFunction(() => {
      const rows = [...document.querySelectorAll("tbody tr")];
      return rows.length === 1 && rows[0].textContent.includes("Globex");
    });
    await shot(admin, "platform-tenants");
    await admin.getByRole("link", { name: "Globex" }).click();
    await admin.getByRole("heading", { name: /Globex/ }).waitFor();
    await admin.getByText("Business v1").waitFor();
    await admin.locator('.meter[data-metric="api_calls"]').waitFor();
    // What Globex's next invoice would be now: Business in advance.
    await admin.getByTestId("upcoming-invoice").locator('tr[data-kind="plan_charge"]').getByText("$99.00").waitFor();
    await shot(admin, "platform-tenant-detail");
  });
  await step("platform admin credits a tenant's balance with a reason; the next invoice takes it first", async () => {
    const credits = admin.getByTestId("credits");
    await credits.getByText("$0.00").waitFor();
    await admin.getByLabel("Credit amount").fill("5.00");
    await admin.getByLabel("Reason for the credit").fill("Sorry for the slow support reply");
    await admin.getByRole("button", { name: "Adjust balance" }).click();
    await admin.getByText("Balance now $5.00.").waitFor();
    await admin.getByTestId("credit-balance").getByText("$5.00").waitFor();
    await admin.getByTestId("upcoming-invoice").locator('tr[data-kind="credit_balance_applied"]').getByText("-$5.00").waitFor();
    // A goodwill grant of calls for the rest of the period, with its reason.
    await admin.getByLabel("Metric to grant").selectOption("api_calls");
    await admin.getByLabel("Units to grant").fill("5000");
    await admin.getByLabel("Reason for the grant").fill("Outage on 3 Dec");
    await admin.getByRole("button", { name: "Grant units" }).click();
    await admin.getByText(/Granted 5,000 API calls until /).waitFor();
    await credits.locator('tr[data-grant="grant"]').getByText("Outage on 3 Dec").waitFor();
  });
  await step("a manual adjustment needs a reason, then is applied and audited", async () => {
    await admin.getByRole("button", { name: "Apply" }).click();
    await admin.getByText("Say why (kept in the audit log).").waitFor();
    await admin.getByLabel("Reason (required, audited)").fill("Goodwill: outage on 20 Nov");
    await admin.getByRole("button", { name: "Apply" }).click();
    await admin.getByText("Adjustment applied and audited.").waitFor();
  });
  await step("platform admin creates a plan, edits it, and sees a new version", async () => {
    await go(admin, "/plans");
    await admin.getByRole("button", { name: "New plan" }).click();
    await admin.getByRole("button", { name: "Create plan" }).click();
    await admin.getByText("Give the plan a name.").waitFor(); // validated before sending
    await admin.getByLabel("Name").fill("Team");
    await admin.getByLabel("Description").fill("For small teams");
    await admin.getByLabel("Price", { exact: true }).fill("49.00");
    await admin.getByLabel("Free: 1,000 API calls a month").check();
    await admin.getByLabel("Pro: 10 seats").check();
    // A usage charge on graduated tiers, with the live example of docs/billing.md.
    await admin.getByRole("button", { name: "Add usage charge" }).click();
    await admin.getByLabel("Charge 1: metric").fill("exports");
    await admin.getByLabel("Charge 1: pricing").selectOption("graduated");
    await admin.getByRole("button", { name: "Add tier" }).click();
    await admin.getByLabel("Charge 1, tier 1: up to").fill("10000");
    await admin.getByLabel("Charge 1, tier 1: unit price").fill("0.01");
    await admin.getByLabel("Charge 1, tier 2: up to").fill("100000");
    await admin.getByLabel("Charge 1, tier 2: unit price").fill("0.008");
    await admin.getByLabel("Charge 1, tier 3: unit price").fill("0.005");
    await admin.getByTestId("charge-0-example").getByText("123,456 exports would cost $937.28.").waitFor();
    // Features from the catalog, each of its type.
    await admin.getByLabel("Priority support").selectOption("true");
    await admin.getByLabel("Projects").fill("50");
    // A request rate for the tenant's backend: 600 a minute; a bad bucket is refused first.
    await admin.getByRole("button", { name: "Add a rate limit" }).click();
    await admin.getByLabel("Rate 1: bucket").fill("Requests!");
    await admin.getByRole("button", { name: "Create plan" }).click();
    await admin.getByText("Lowercase letters, digits and _, starting with a letter.").waitFor();
    await admin.getByLabel("Rate 1: bucket").fill("requests");
    await admin.getByLabel("Rate 1: limit").fill("600");
    await admin.getByRole("button", { name: "Create plan" }).click();
    await admin.getByRole("heading", { name: /^Team/ }).waitFor();
    teamPlanId = admin.url().split("/plans/")[1];
    assert.equal(await admin.getByTestId("current-version").textContent(), "v1");
    await admin.getByLabel("Price", { exact: true }).fill("59.00");
    await admin.getByRole("button", { name: "Save changes" }).click();
    await admin.getByText("Saved as version 2.").waitFor();
    // The page reloads the plan after saying so: wait for it rather than read at once.
    await admin.getByTestId("current-version").filter({ hasText: "v2" }).waitFor();
    await admin.locator('tr[data-version="1"]').getByText("$49.00/mo").waitFor();
    await admin.locator('tr[data-version="2"]').getByText("$59.00/mo").waitFor();
    await admin.locator('tr[data-version="2"]').getByText("exports graduated").waitFor();
    assert.equal(await admin.getByLabel("Price", { exact: true }).inputValue(), "59.00", "the form shows what was saved");
    // Version 2 kept the usage charge (only the price changed).
    await admin.getByLabel("Charge 1: metric").and(admin.locator('[value="exports"]')).waitFor();
    await shot(admin, "platform-plan-detail");
    await go(admin, "/plans");
    await admin.locator('tr[data-plan="Team"]').waitFor();
    await shot(admin, "platform-plans");
  });
  await step("platform admin edits a limit policy", async () => {
    await go(admin, "/policies");
    await admin.getByRole("button", { name: "Edit Pro: 10 seats" }).click();
    await admin.getByRole("textbox", { name: "Limit", exact: true }).fill("12");
    await admin.getByRole("button", { name: "Save policy" }).click();
    await admin.getByText(/Policy for max_users saved/).waitFor();
    await admin.getByRole("cell", { name: "12", exact: true }).waitFor();
    await shot(admin, "platform-limit-policies");
  });
  await step("platform admin creates a coupon, sees redemptions, and switches it off", async () => {
    await go(admin, "/coupons");
    const welcome = admin.locator('tr[data-coupon="WELCOME20"]');
    await welcome.getByText("20% off 3 invoices").waitFor();
    await welcome.getByText("0 / 100").waitFor();
    // A bad code is refused at its field; then $10 off once, for five tenants.
    await admin.getByLabel("Code").fill("x");
    await admin.getByRole("button", { name: "Create coupon" }).click();
    await admin
      .locator("#main")
      .getByText(/3 to 32/)
      .first()
      .waitFor();
    await admin.getByLabel("Code").fill("spring10");
    await admin.getByLabel("Discount").selectOption("amount");
    await admin.getByLabel("Amount", { exact: true }).fill("10");
    await admin.getByLabel("Max redemptions").fill("5");
    await admin.getByRole("button", { name: "Create coupon" }).click();
    await admin.getByText("Coupon SPRING10 created: $10.00 off the first invoice.").waitFor();
    await admin.getByRole("button", { name: "Switch off SPRING10" }).click();
    await admin.getByRole("button", { name: "Switch on SPRING10" }).waitFor();
    await shot(admin, "platform-coupons");
  });
  await step("the audit log shows the plan change and the adjustment with its reason", async () => {
    await go(admin, "/audit");
    await admin.getByText("Goodwill: outage on 20 Nov").waitFor();
    await admin.getByRole("combobox", { name: "Resource type" }).selectOption("plan");
    await admin.getByRole("button", { name: "Apply" }).click();
    await admin.getByText("Give both the resource type and its id.").waitFor();
    await admin.getByRole("textbox", { name: "Resource id" }).fill(teamPlanId);
    await admin.getByRole("button", { name: "Apply" }).click();
    await admin.waitForFunction(() => {
      const actions = [...document.querySelectorAll("table.audit tbody tr td:nth-child(2)")].map((td) => td.textContent);
      return actions.length === 2 && actions[0] === "plan.version_created" && actions[1] === "plan.created";
    });
    await shot(admin, "platform-audit-log");
  });
  await step("platform admin signs out and the session is over", async () => {
    const tokens = await admin.evaluate(() => sessionStorage.getItem("eshtarek.tokens"));
    await admin.getByRole("button", { name: "Sign out" }).click();
    await admin.getByRole("heading", { name: "Sign in" }).waitFor();
    assert.equal(await admin.evaluate(() => sessionStorage.getItem("eshtarek.tokens")), null);
    const old = JSON.parse(tokens);
    assert.equal((await api("GET", "/v1/auth/me", old.access_token)).status, 401);
    assert.equal((await api("POST", "/v1/auth/refresh", null, { refresh_token: old.refresh_token })).status, 401);
  });

  // ---------------------------------------------------------------- tenant admin
  const owner = await newPage();
  const ownerEmail = `owner-${Date.now()}@initech.example`;
  let ownerToken;
  await step("a tenant admin signs up (form validated) and has no subscription yet", async () => {
    await owner.goto(base + "/");
    await owner.getByRole("button", { name: "Create an account" }).click();
    await owner.getByRole("button", { name: "Sign up" }).click();
    await owner.getByText("Enter your name.").waitFor();
    await owner.getByLabel("Your name").fill("Ines Owner");
    await owner.getByLabel("Company").fill("Initech");
    await owner.getByLabel("Email").fill(ownerEmail);
    await owner.getByLabel("Password").fill(PASSWORD);
    await owner.getByRole("button", { name: "Sign up" }).click();
    await owner.getByText("This workspace has no active plan.").waitFor();
    ownerToken = JSON.parse(await owner.evaluate(() => sessionStorage.getItem("eshtarek.tokens"))).access_token;
    // Unconfirmed: the dashboard says so. The owner follows the mailed link, signed in.
    await owner.getByText(/Confirm your email address/).waitFor();
    const mail = mailTo(ownerEmail, "verify_email");
    await owner.goto(mail.link.replace(/^https?:\/\/[^/]+/, base));
    await owner.getByText("Your email address is confirmed.").waitFor();
    await owner.getByRole("link", { name: "Continue" }).click();
    await owner.getByText("This workspace has no active plan.").waitFor();
  });
  await step("a declined card fails the first charge with a clear message; paying with a good card recovers", async () => {
    await go(owner, "/billing");
    await owner.getByLabel("Card number (test cards only)").fill("4000000000000002");
    await owner.getByRole("button", { name: "Add card" }).click();
    await owner.getByText("VISA •••• 0002").waitFor();
    await go(owner, "/plan");
    // Not yet subscribed and its trial unused: trials are offered.
    await owner.locator('tr[data-plan="Teams"]').getByText("14-day trial").waitFor();
    await owner.locator('tr[data-plan="Team"]').getByRole("button", { name: "Subscribe" }).click();
    await owner.getByText(/first payment was declined/).waitFor();
    await shot(owner, "tenant-payment-declined");
    await go(owner, "/billing");
    await owner.getByLabel("Card number (test cards only)").fill("4242 4242 4242 4242");
    await owner.getByRole("button", { name: "Add card" }).click();
    await owner.getByText("VISA •••• 4242").waitFor();
    await owner.locator('tr[data-invoice="1"]').getByRole("button", { name: "Pay now" }).click();
    await owner.getByText("Invoice #1 is paid.").waitFor();
    await owner.getByRole("cell", { name: "$59.00" }).first().waitFor();
    await go(owner, "/");
    await owner.getByRole("heading", { name: /Team/ }).waitFor();
    await owner.locator(".badge-active").first().waitFor();
    // What the plan grants besides limits: its features.
    const features = owner.getByTestId("features");
    await features.locator('li[data-feature="priority_support"]').getByText("✓").waitFor();
    await features.locator('li[data-feature="max_projects"]').getByText("50").waitFor();
    await owner.getByTestId("rate-list").locator('li[data-bucket="requests"]').getByText("600 a minute").waitFor();
  });
  let secret;
  await step("the tenant admin creates an API key; its secret is shown once", async () => {
    await go(owner, "/api-keys");
    await owner.getByRole("button", { name: "Create key" }).click();
    await owner.getByText(/Name the key/).waitFor();
    await owner.getByLabel("Name").fill("backend");
    await owner.getByRole("button", { name: "Create key" }).click();
    secret = (await owner.getByTestId("api-key-secret").textContent()).trim();
    assert.ok(secret.length > 20);
    await shot(owner, "tenant-api-keys");
    await owner.reload();
    await owner.getByRole("cell", { name: "backend" }).waitFor();
    assert.equal(await owner.getByTestId("api-key-secret").count(), 0, "the secret is not shown again");
  });
  await step("usage sent through the API shows on the meters; the limit is refused with a 402", async () => {
    for (const [i, quantity] of [300, 250, 300].entries()) {
      const r = await api("POST", "/v1/usage/events", secret, { metric: "api_calls", quantity, idempotency_key: `e2e-${i}` });
      assert.equal(r.status, 200, JSON.stringify(r.body));
    }
    const refused = await api("POST", "/v1/usage/events", secret, { metric: "api_calls", quantity: 200, idempotency_key: "e2e-over" });
    assert.equal(refused.status, 402);
    await go(owner, "/");
    const meter = owner.locator('.meter[data-metric="api_calls"]');
    await meter.getByText("850 / 1,000 (85%)").waitFor();
    await meter.getByText("Nearing the limit.").waitFor();
    await owner.getByRole("img", { name: /API calls per/ }).waitFor();
    await owner.getByText(/Usage warnings:/).waitFor();
    await shot(owner, "tenant-dashboard");
  });
  await step("the tenant admin previews the upgrade's proration, confirms, and sees the invoice", async () => {
    await go(owner, "/plan");
    // The comparison shows features side by side with the limits.
    await owner.getByRole("columnheader", { name: "Priority support" }).waitFor();
    await owner.locator('tr[data-plan="Business"] td[data-feature="max_projects"]').getByText("1,000").waitFor();
    await owner.locator('tr[data-plan="Business"] td[data-testid="rates"]').getByText("requests: 6,000 a minute").waitFor();
    // Cheapest first; the plan held advertises no trial.
    const prices = (await owner.locator("tr[data-plan] > td:nth-of-type(1)").allTextContents()).map((t) =>
      Number(/\$([\d,.]+)\/mo/.exec(t)[1].replace(/,/g, "")),
    );
    assert.deepEqual(
      prices,
      [...prices].sort((a, b) => a - b),
      `plans by price: ${prices}`,
    );
    // A subscribed tenant's change bills at once: no plan advertises a trial.
    assert.equal(await owner.getByText(/-day trial/).count(), 0);
    await owner.getByRole("button", { name: "Preview change to Business" }).click();
    await owner.getByText("Upgrade, effective now.").waitFor();
    const net = await owner.getByTestId("preview-net").textContent();
    assert.match(net, /^\$\d+\.\d\d$/);
    await shot(owner, "tenant-plan-preview");
    await owner.getByRole("button", { name: "Confirm change" }).click();
    await owner.getByText(/You are now on Business\. Invoice #2: /).waitFor();
    await go(owner, "/billing");
    await owner.getByTestId("upcoming-invoice").getByText("Next invoice").waitFor();
    await owner.getByTestId("upcoming-invoice").locator('tr[data-kind="plan_charge"]').getByText("$99.00").waitFor();
    // A coupon: an unknown code is refused at its field; the demo's WELCOME20 takes 20% off.
    await owner.getByLabel("Coupon code").fill("nosuch");
    await owner.getByRole("button", { name: "Apply" }).click();
    await owner.getByText("no such coupon").waitFor();
    await owner.getByLabel("Coupon code").fill("welcome20");
    await owner.getByRole("button", { name: "Apply" }).click();
    await owner.getByText("Coupon WELCOME20 applied.").waitFor();
    await owner.getByTestId("discount").getByText("20% off the next 3 invoices").waitFor();
    await owner.getByTestId("upcoming-invoice").locator('tr[data-kind="discount"]').getByText("-$19.80").waitFor();
    const invoice = owner.locator('tr[data-invoice="2"]');
    await invoice.getByText("Paid").waitFor();
    assert.equal((await invoice.locator("td.num").textContent()).trim(), net.trim(), "the invoice bills what the preview showed");
    await invoice.getByRole("button", { name: "#2" }).click();
    await owner
      .getByText(/Unused time on Team|Remaining time on Business|Proration/i)
      .first()
      .waitFor();
    await shot(owner, "tenant-billing");
  });
  await step("the tenant admin buys a top-up, charged at once, and sees the units among its credits", async () => {
    const topUps = owner.getByTestId("top-ups");
    await topUps.getByText("10,000 API calls for $20.00").waitFor();
    await topUps.getByLabel("Packs of API calls").fill("2");
    await topUps.getByRole("button", { name: "Buy" }).click();
    await owner.getByText(/Bought 20,000 API calls until .*; invoice #3 is paid\./).waitFor();
    await owner.getByTestId("credits").locator('tr[data-grant="top_up"]').getByText("20,000 API calls").waitFor();
    await owner.locator('tr[data-invoice="3"]').getByText("Paid").waitFor();
  });
  let workerEmail;
  await step("the tenant admin invites a read-only member", async () => {
    await go(owner, "/members");
    await owner
      .getByTestId("seats")
      .getByText(/1 of 50 seats used/)
      .waitFor();
    workerEmail = `worker-${Date.now()}@initech.example`;
    await owner.getByLabel("Email").fill(workerEmail);
    await owner.getByRole("button", { name: "Invite" }).click();
    await owner.getByText(`An invitation was mailed to ${workerEmail}`).waitFor();
    await owner.getByTestId("invitations").getByText(workerEmail).waitFor();
    // The invitee follows the mailed link (the local mailbox beside the demo credentials) in a
    // browser of their own, and lands signed in to the tenant.
    const mail = mailTo(workerEmail, "invitation");
    const invitee = await newPage();
    await invitee.goto(mail.link.replace(/^https?:\/\/[^/]+/, base));
    await invitee.getByLabel("Your name").fill("Worker");
    await invitee.getByLabel("Password").fill(PASSWORD);
    await invitee.getByRole("button", { name: "Join" }).click();
    await invitee.getByText("tenant user").waitFor();
    await invitee.close();
    await go(owner, "/");
    await go(owner, "/members");
    await owner.getByRole("cell", { name: workerEmail }).waitFor();
    await owner
      .getByTestId("seats")
      .getByText(/2 of 50 seats used/)
      .waitFor();
    await shot(owner, "tenant-members");
    await go(owner, "/notifications");
    await owner
      .getByText(/api_calls|API calls/)
      .first()
      .waitFor();
    await shot(owner, "tenant-notifications");
  });

  // ---------------------------------------------------------------- the test clock
  const adminLogin = await api("POST", "/v1/auth/login", null, {
    email: "admin@eshtarek.local",
    password: credentials["admin@eshtarek.local"],
  });
  const advance = async (duration) => {
    // Access tokens are checked against the test clock, so sign in again for every move.
    const login = await api("POST", "/v1/auth/login", null, {
      email: "admin@eshtarek.local",
      password: credentials["admin@eshtarek.local"],
    });
    const moved = await api("POST", "/v1/admin/clock/advance", login.body.tokens.access_token, { duration });
    assert.equal(moved.status, 200, JSON.stringify(moved.body));
  };
  assert.equal(adminLogin.status, 200);
  await step("an expired access token is refreshed without the person noticing", async () => {
    const before = JSON.parse(await owner.evaluate(() => sessionStorage.getItem("eshtarek.tokens")));
    await advance("20m"); // past the 15-minute access token, well within the refresh token
    await go(owner, "/billing");
    await owner.locator('tr[data-invoice="2"]').waitFor();
    const after = JSON.parse(await owner.evaluate(() => sessionStorage.getItem("eshtarek.tokens")));
    assert.notEqual(after.access_token, before.access_token);
    assert.notEqual(after.refresh_token, before.refresh_token, "the refresh token rotated");
  });
  await step("a month later: the renewal is billed, and the lapsed session asks to sign in again", async () => {
    await advance("31d");
    await owner.reload();
    await owner.getByText("Your session has expired. Please sign in again.").waitFor();
    await owner.getByLabel("Email").fill(ownerEmail);
    await owner.getByLabel("Password").fill(PASSWORD);
    await owner.getByRole("button", { name: "Sign in" }).click();
    await owner.getByRole("button", { name: "Sign out" }).waitFor();
    await go(owner, "/billing");
    const renewal = owner.locator('tr[data-invoice="4"]');
    await renewal.getByText("Paid").waitFor();
    assert.equal((await renewal.locator("td.num").textContent()).trim(), "$79.20", "Business less WELCOME20's 20%");
  });

  await step("the tenant admin adds a webhook endpoint, sends a test, and sees it delivered", async () => {
    // A receiver on loopback (the server was started allowing private webhook targets).
    const received = [];
    const receiver = createServer((req, res) => {
      let body = "";
      req.on("data", (c) => (body += c));
      req.on("end", () => {
        received.push({ id: req.headers["webhook-id"], signature: req.headers["webhook-signature"], body: JSON.parse(body) });
        res.writeHead(200).end("thanks");
      });
    });
    await new Promise((resolve) => receiver.listen(0, "127.0.0.1", resolve));
    const url = `http://127.0.0.1:${receiver.address().port}/hooks`;
    try {
      await go(owner, "/webhooks");
      await owner.getByRole("button", { name: "Add endpoint" }).click();
      await owner.getByText(/Enter the URL your system receives webhooks at/).waitFor();
      await owner.getByLabel("URL").fill(url);
      await owner.getByLabel("Description").fill("orders service");
      await owner.getByRole("button", { name: "Add endpoint" }).click();
      assert.match((await owner.getByTestId("webhook-secret").textContent()).trim(), /^whsec_[A-Za-z0-9+/]{43}=$/);
      const row = owner.locator(`li[data-endpoint="${url}"]`);
      await row.getByRole("button", { name: "Send test" }).click();
      await advance("1s"); // runs the jobs, the webhook delivery among them
      assert.equal(received.length, 1, JSON.stringify(received));
      assert.equal(received[0].body.type, "webhook.test");
      assert.match(received[0].signature, /^v1,/);
      await row.getByRole("button", { name: "Deliveries" }).click();
      await owner.getByTestId("attempts").getByText("thanks").waitFor();
      await shot(owner, "tenant-webhooks");
    } finally {
      receiver.close();
    }
  });

  // ---------------------------------------------------------------- tenant user
  const worker = await newPage({ width: 390, height: 844 }); // a phone
  await step("a tenant user sees plan and usage, read-only, and cannot reach admin actions", async () => {
    await signIn(worker, workerEmail, PASSWORD);
    await worker.getByRole("heading", { name: /Business/ }).waitFor();
    await worker.locator('.meter[data-metric="api_calls"]').waitFor();
    const nav = await worker.getByRole("navigation", { name: "Main" }).getByRole("link").allTextContents();
    assert.deepEqual(nav, ["Dashboard"]);
    assert.equal(await worker.getByRole("link", { name: "Change plan" }).count(), 0);
    await go(worker, "/billing");
    await worker.getByRole("heading", { name: "Dashboard" }).waitFor(); // sent back
    await shot(worker, "tenant-user-dashboard-narrow");
    // The header at 390 px: nothing breaks inside an item, and it stays short.
    const height = async (locator) => (await locator.boundingBox()).height;
    const header = await height(worker.locator("header.topbar"));
    assert.ok(header <= 130, `the header is ${header} px tall`);
    assert.ok((await height(worker.getByRole("button", { name: "Sign out" }))) < 40, "Sign out on one line");
    assert.ok((await height(worker.locator(".who .role"))) < 24, "the role badge on one line");
    const token = JSON.parse(await worker.evaluate(() => sessionStorage.getItem("eshtarek.tokens"))).access_token;
    assert.equal((await api("POST", "/v1/api-keys", token, { name: "sneaky" })).status, 403);
    assert.equal((await api("GET", "/v1/admin/overview", token)).status, 403);
  });
  await step("an ended session is told to sign in again", async () => {
    await worker.evaluate(() => {
      const t = JSON.parse(sessionStorage.getItem("eshtarek.tokens"));
      sessionStorage.setItem("eshtarek.tokens", JSON.stringify({ ...t, access_token: "x", refresh_token: "y" }));
    });
    await worker.reload();
    await worker.getByText("Your session has expired. Please sign in again.").waitFor();
  });

  // ---------------------------------------------------------------- dunning gives up
  const lapsed = await newPage();
  await step("after dunning cancels a subscription the dashboard says why, links the unpaid invoice, and notifies", async () => {
    const email = `lapsed-${Date.now()}@globex.example`;
    const signedUp = await api("POST", "/v1/auth/register", null, {
      email,
      password: PASSWORD,
      name: "Lars Lapsed",
      tenant_name: "Lapsed Labs",
    });
    assert.equal(signedUp.status, 201, JSON.stringify(signedUp.body));
    const token = signedUp.body.tokens.access_token;
    assert.equal((await api("POST", "/v1/payment-methods", token, { token: "pm_card_visa", set_default: true })).status, 201);
    const plans = await api("GET", "/v1/plans?limit=100", token);
    const team = plans.body.data.find((p) => p.name === "Team");
    const subscribed = await api("POST", "/v1/subscriptions", token, { plan_id: team.id });
    assert.equal(subscribed.status, 201, JSON.stringify(subscribed.body));
    assert.equal((await api("POST", "/v1/payment-methods", token, { token: "pm_card_chargeDeclined", set_default: true })).status, 201);
    // The renewal fails, then every retry; a day at a time until dunning gives up.
    await advance("31d");
    let gaveUp = false;
    for (let day = 0; day < 10 && !gaveUp; day++) {
      await advance("1d");
      const login = await api("POST", "/v1/auth/login", null, { email, password: PASSWORD });
      gaveUp = (await api("GET", "/v1/subscriptions/current", login.body.tokens.access_token)).status === 404;
    }
    assert.ok(gaveUp, "dunning ended the subscription within 10 days");
    await signIn(lapsed, email, PASSWORD);
    const ended = lapsed.getByTestId("ended");
    await ended.getByText(/after its payment kept failing/).waitFor();
    const unpaid = /Your subscription was cancelled after its payment kept failing: invoice #(\d+) \(\$[\d,]+\.\d\d\) is unpaid\./;
    const banner = lapsed.getByRole("status").filter({ hasText: unpaid });
    const number = unpaid.exec(await banner.textContent())[1];
    assert.match(await banner.textContent(), /^Notifications:/);
    await shot(lapsed, "tenant-ended-by-dunning");
    await ended.getByRole("link", { name: `invoice #${number}` }).click();
    const linked = lapsed.getByTestId("linked-invoice");
    await linked.getByRole("heading", { name: `Invoice #${number}` }).waitFor();
    await linked.getByText("Uncollectible").waitFor();
    await linked.getByText("Amount due / paid").waitFor(); // its lines shown open
    await shot(lapsed, "tenant-unpaid-invoice");
    // The payment history links each attempt to its invoice.
    await go(lapsed, "/billing");
    await lapsed.getByRole("heading", { name: "Payment history" }).waitFor();
    assert.equal(await lapsed.getByTestId("linked-invoice").count(), 0);
    await lapsed
      .getByRole("link", { name: `#${number}` })
      .first()
      .click();
    await linked.getByRole("heading", { name: `Invoice #${number}` }).waitFor();
  });

  // ---------------------------------------------------------------- a trial that ended
  const trialled = await newPage();
  await step("after a trial ends into a paid period, the dashboard shows the next renewal, not the trial's end", async () => {
    const email = `trialled-${Date.now()}@initrode.example`;
    const signedUp = await api("POST", "/v1/auth/register", null, {
      email,
      password: PASSWORD,
      name: "Tess Trial",
      tenant_name: "Initrode",
    });
    assert.equal(signedUp.status, 201, JSON.stringify(signedUp.body));
    const token = signedUp.body.tokens.access_token;
    assert.equal((await api("POST", "/v1/payment-methods", token, { token: "pm_card_visa", set_default: true })).status, 201);
    const plans = await api("GET", "/v1/plans?limit=100", token);
    const teams = plans.body.data.find((p) => p.name === "Teams");
    const subscribed = await api("POST", "/v1/subscriptions", token, { plan_id: teams.id });
    assert.equal(subscribed.body.subscription.status, "trialing", JSON.stringify(subscribed.body));
    const trialEnd = subscribed.body.subscription.trial_end;
    await advance("15d"); // past the 14-day trial: the first paid period starts
    await signIn(trialled, email, PASSWORD);
    const token2 = JSON.parse(await trialled.evaluate(() => sessionStorage.getItem("eshtarek.tokens"))).access_token;
    const current = (await api("GET", "/v1/subscriptions/current", token2)).body;
    assert.equal(current.status, "active");
    assert.ok(current.current_period_end > trialEnd, `${current.current_period_end} after ${trialEnd}`);
    const short = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    const day = (iso) => {
      const d = new Date(iso);
      return `${d.getUTCDate()} ${short[d.getUTCMonth()]} ${d.getUTCFullYear()}`;
    };
    const renews = trialled.locator(".stat").filter({ hasText: "Renews" }).locator(".stat-value");
    await renews.getByText(day(current.current_period_end)).waitFor();
    assert.notEqual((await renews.textContent()).trim(), day(trialEnd));
  });

  // ---------------------------------------------------------------- the test clock, in the dashboard
  const operator = await newPage();
  await step("the test clock's banner shows its time; a platform admin moves it from the dashboard", async () => {
    // A tenant's people see the time, not the controls.
    const seen = lapsed.getByRole("region", { name: "Test clock" });
    await seen.locator("time").waitFor();
    assert.equal(await seen.getByRole("button").count(), 0);
    await signIn(operator, "admin@eshtarek.local", credentials["admin@eshtarek.local"]);
    const banner = operator.getByRole("region", { name: "Test clock" });
    const before = Date.parse(await banner.locator("time").getAttribute("datetime"));
    await banner.getByRole("button", { name: "+1 day" }).click();
    await operator.waitForFunction(
      (t) => Date.parse(document.querySelector('[aria-label="Test clock"] time')?.getAttribute("datetime") ?? "") >= t,
      before + 86_400_000,
    );
    // Still signed in: the access token the move outdated was refreshed.
    await operator.getByRole("heading", { name: "Platform overview" }).waitFor();
    assert.equal(await operator.getByText(/session has expired/).count(), 0);
    await shot(operator, "platform-test-clock");
  });

  for (const page of [admin, owner, worker, lapsed, trialled, operator]) assert.deepEqual(page.errors, [], "no script errors in the page");
  await step("every main page passes axe-core's WCAG 2 A/AA checks", async () => {
    const failing = accessibility.filter(([, v]) => v.length);
    assert.deepEqual(failing, [], JSON.stringify(failing, null, 2));
  });
  void ownerToken;
} catch {
  failed = true;
} finally {
  await browser.close();
}
const passed = results.filter((r) => r[1] === "ok").length;
console.log(`${passed} of ${results.length} steps passed; screenshots in ${shots}`);
process.exit(failed ? 1 : 0);
