import { useEffect, useRef, useState, type FormEvent } from "react";
import { Link, useSearchParams } from "react-router";
import { useSession } from "../../session";
import { useAction, useGet, usePager } from "../../hooks";
import { idempotencyKey } from "../../api/client";
import type { Invoice, Page, Payment, PaymentMethod, PlanVersion, Subscription } from "../../api/types";
import { Card, Empty, ErrorNotice, Field, fieldError, PagerFor, StatusBadge, Success, WhenLoaded } from "../../components/ui";
import { InvoiceTable } from "../../components/InvoiceTable";
import { UpcomingInvoice } from "../../components/UpcomingInvoice";
import { CreditsPanel, SeatsPanel, TopUpsPanel } from "../../components/Credits";
import { formatDateTime, formatMoney } from "../../format";

/** Test cards the mock gateway knows (Stripe's numbers). */
const TEST_CARDS = [
  ["4242424242424242", "Visa, always succeeds"],
  ["4000000000000002", "Visa, always declined"],
  ["4000000000009995", "Visa, insufficient funds"],
];

/** Payment methods, invoices (pay an open one) and the payment history. */
export function Billing() {
  const { api } = useSession();
  const methods = useGet<{ data: PaymentMethod[] }>("/v1/payment-methods");
  const invoicePager = usePager("/v1/invoices?limit=10");
  const invoices = useGet<Page<Invoice>>(invoicePager.path);
  // `#/billing?invoice=<id>`: one invoice shown first and open (links from the payment
  // history, notifications and the dashboard).
  const [search] = useSearchParams();
  const linked = search.get("invoice");
  const shown = useGet<Invoice>(linked ? `/v1/invoices/${encodeURIComponent(linked)}` : null);
  const shownRef = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (shown.data) shownRef.current?.scrollIntoView({ block: "start" });
  }, [shown.data]);
  const historyPager = usePager("/v1/billing/history?limit=10");
  const history = useGet<Page<Payment>>(historyPager.path);
  const [card, setCard] = useState({ number: TEST_CARDS[0][0], exp_month: "12", exp_year: "2030", set_default: true });
  const [done, setDone] = useState<string | null>(null);
  const current = useGet<Subscription>("/v1/subscriptions/current");
  const [code, setCode] = useState("");
  const [upcomingKey, setUpcomingKey] = useState(0);
  const sub = current.data;
  const version = useGet<PlanVersion>(sub ? `/v1/plans/${sub.plan_id}/versions/${sub.plan_version}` : null);
  const redeem = useAction();
  const add = useAction();
  const act = useAction();

  const reloadAll = () => {
    if (linked) shown.reload();
    methods.reload();
    invoices.reload();
    history.reload();
  };
  // After seats or a top-up were bought: the bill, the seats and the credits all moved.
  const afterPurchase = () => {
    reloadAll();
    current.reload();
    setUpcomingKey((k) => k + 1);
  };
  const submit = (e: FormEvent) => {
    e.preventDefault();
    void add.run(async () => {
      await api.post(
        "/v1/payment-methods",
        {
          card: { number: card.number.replace(/\s+/g, ""), exp_month: Number(card.exp_month), exp_year: Number(card.exp_year) },
          set_default: card.set_default,
        },
        { idempotencyKey: idempotencyKey() },
      );
      setDone("Card added.");
      methods.reload();
    });
  };
  const pay = (invoice: Invoice) =>
    act.run(async () => {
      setDone(null);
      const paid = await api.post<Invoice>(`/v1/invoices/${invoice.id}/pay`, {}, { idempotencyKey: idempotencyKey() });
      setDone(paid.status === "paid" ? `Invoice #${paid.number} is paid.` : `Invoice #${paid.number} is still ${paid.status}.`);
      reloadAll();
    });
  const cardError = fieldError(add.error, "card.number") ?? fieldError(add.error, "card");
  const applyCoupon = (e: FormEvent) => {
    e.preventDefault();
    const sub = current.data;
    if (!sub) return;
    void redeem.run(async () => {
      setDone(null);
      await api.post(`/v1/subscriptions/${sub.id}/coupon`, { code: code.trim() }, { idempotencyKey: idempotencyKey() });
      setDone(`Coupon ${code.trim().toUpperCase()} applied.`);
      setCode("");
      current.reload();
      setUpcomingKey((k) => k + 1);
    });
  };
  const discount = current.data?.discount;

  return (
    <div className="page">
      <h1>Billing</h1>
      {done && <Success>{done}</Success>}
      <ErrorNotice error={act.error} />
      <Card title="Payment methods">
        <WhenLoaded state={methods}>
          {() =>
            methods.data?.data.length ? (
              <ul className="methods">
                {methods.data.data.map((m) => (
                  <li key={m.id}>
                    <span>
                      {m.brand.toUpperCase()} •••• {m.last4}, expires {String(m.exp_month).padStart(2, "0")}/{m.exp_year}
                      {m.is_default && <span className="badge">default</span>}
                    </span>
                    <button
                      type="button"
                      className="link"
                      disabled={act.busy}
                      onClick={() =>
                        void act.run(async () => {
                          await api.delete(`/v1/payment-methods/${m.id}`);
                          methods.reload();
                        })
                      }
                    >
                      Remove
                    </button>
                  </li>
                ))}
              </ul>
            ) : (
              <Empty>No payment method yet.</Empty>
            )
          }
        </WhenLoaded>
        <form onSubmit={submit} noValidate className="inline-form" aria-label="Add a test card">
          <Field label="Card number (test cards only)" error={cardError} hint="4242… succeeds; 4000 0000 0000 0002 is declined.">
            {(p) => (
              <input
                {...p}
                list="test-cards"
                inputMode="numeric"
                value={card.number}
                onChange={(e) => setCard({ ...card, number: e.target.value })}
              />
            )}
          </Field>
          <datalist id="test-cards">
            {TEST_CARDS.map(([n, label]) => (
              <option key={n} value={n}>
                {label}
              </option>
            ))}
          </datalist>
          <Field label="Month" error={fieldError(add.error, "card.exp_month")}>
            {(p) => (
              <input
                {...p}
                inputMode="numeric"
                size={3}
                value={card.exp_month}
                onChange={(e) => setCard({ ...card, exp_month: e.target.value })}
              />
            )}
          </Field>
          <Field label="Year" error={fieldError(add.error, "card.exp_year")}>
            {(p) => (
              <input
                {...p}
                inputMode="numeric"
                size={5}
                value={card.exp_year}
                onChange={(e) => setCard({ ...card, exp_year: e.target.value })}
              />
            )}
          </Field>
          <label className="check">
            <input type="checkbox" checked={card.set_default} onChange={(e) => setCard({ ...card, set_default: e.target.checked })} /> Make
            default
          </label>
          <button type="submit" disabled={add.busy}>
            Add card
          </button>
        </form>
        <ErrorNotice error={cardError ? null : add.error} />
      </Card>
      <Card title="Upcoming invoice">
        <UpcomingInvoice key={upcomingKey} path="/v1/invoices/upcoming" />
        {current.data &&
          (discount ? (
            <p data-testid="discount">
              Coupon {discount.coupon}:{" "}
              {discount.percent_off ? `${discount.percent_off}% off` : `${formatMoney(discount.amount_off, current.data.currency)} off`}
              {discount.invoices_left === null
                ? " every invoice"
                : ` the next ${discount.invoices_left === 1 ? "invoice" : `${discount.invoices_left} invoices`}`}
              .
            </p>
          ) : (
            <form onSubmit={applyCoupon} noValidate className="inline-form" aria-label="Apply a coupon">
              <Field label="Coupon code" error={fieldError(redeem.error, "code")}>
                {(p) => <input {...p} value={code} autoComplete="off" onChange={(e) => setCode(e.target.value)} />}
              </Field>
              <button type="submit" disabled={redeem.busy || !code.trim()}>
                Apply
              </button>
            </form>
          ))}
        <ErrorNotice error={fieldError(redeem.error, "code") ? null : redeem.error} />
      </Card>
      {sub && version.data?.seats && (
        <Card title="Seats">
          <SeatsPanel
            key={`${sub.id}-${sub.seats_billed}-${sub.seats_licensed}`}
            sub={sub}
            version={version.data}
            onChanged={afterPurchase}
          />
        </Card>
      )}
      {sub && version.data && (
        <Card title="Top-ups">
          <TopUpsPanel sub={sub} version={version.data} onBought={afterPurchase} />
        </Card>
      )}
      <Card title="Credits">
        <CreditsPanel key={upcomingKey} path="/v1/billing/credits" />
      </Card>
      {linked && (
        <div ref={shownRef} data-testid="linked-invoice">
          <Card title={shown.data ? `Invoice #${shown.data.number}` : "Invoice"}>
            <WhenLoaded state={shown}>
              {() =>
                shown.data && (
                  <InvoiceTable
                    key={shown.data.id}
                    invoices={[shown.data]}
                    expanded={shown.data.id}
                    onPay={(i) => void pay(i)}
                    busy={act.busy}
                  />
                )
              }
            </WhenLoaded>
          </Card>
        </div>
      )}
      <Card title="Invoices">
        <WhenLoaded state={invoices}>
          {() => <InvoiceTable invoices={invoices.data?.data ?? []} onPay={(i) => void pay(i)} busy={act.busy} />}
        </WhenLoaded>
        <PagerFor pager={invoicePager} next={invoices.data?.next_cursor} />
      </Card>
      <Card title="Payment history">
        <WhenLoaded state={history}>
          {() =>
            history.data?.data.length ? (
              <div className="table-wrap">
                <table>
                  <thead>
                    <tr>
                      <th scope="col">When</th>
                      <th scope="col">Invoice</th>
                      <th scope="col">Amount</th>
                      <th scope="col">Outcome</th>
                    </tr>
                  </thead>
                  <tbody>
                    {history.data.data.map((p) => (
                      <tr key={p.id}>
                        <td>{formatDateTime(p.created_at)}</td>
                        <td>
                          <Link to={`/billing?invoice=${encodeURIComponent(p.invoice_id)}`}>#{p.invoice_number}</Link>
                        </td>
                        <td className="num">{formatMoney(p.amount, p.currency)}</td>
                        <td>
                          <StatusBadge status={p.outcome} />
                          {p.failure_code && <span className="hint"> {p.failure_code.replace(/_/g, " ")}</span>}
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            ) : (
              <Empty>No payments yet.</Empty>
            )
          }
        </WhenLoaded>
        <PagerFor pager={historyPager} next={history.data?.next_cursor} />
      </Card>
      <p className="hint">Times are UTC.</p>
    </div>
  );
}
