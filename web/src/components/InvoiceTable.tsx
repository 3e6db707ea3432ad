import { Fragment, useState } from "react";
import type { Invoice } from "../api/types";
import { formatDate, formatMoney } from "../format";
import { Empty, StatusBadge } from "./ui";

/** Invoices with their lines on demand (`expanded`: one shown open from the start); open ones can
 * be paid when `onPay` is given. */
export function InvoiceTable({
  invoices,
  onPay,
  busy,
  expanded,
}: {
  invoices: Invoice[];
  onPay?: (i: Invoice) => void;
  busy?: boolean;
  expanded?: string;
}) {
  const [open, setOpen] = useState<string | null>(expanded ?? null);
  if (!invoices.length) return <Empty>No invoices yet.</Empty>;
  return (
    <div className="table-wrap">
      <table className="invoices">
        <thead>
          <tr>
            <th scope="col">Number</th>
            <th scope="col">Date</th>
            <th scope="col">Period</th>
            <th scope="col">Status</th>
            <th scope="col" className="num">
              Total
            </th>
            <th scope="col">
              <span className="sr-only">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {invoices.map((inv) => (
            <Fragment key={inv.id}>
              <tr data-invoice={inv.number}>
                <td>
                  <button
                    type="button"
                    className="link"
                    aria-expanded={open === inv.id}
                    onClick={() => setOpen(open === inv.id ? null : inv.id)}
                  >
                    #{inv.number}
                  </button>
                </td>
                <td>{formatDate(inv.created_at)}</td>
                <td>
                  {formatDate(inv.period_start)} – {formatDate(inv.period_end)}
                </td>
                <td>
                  <StatusBadge status={inv.status} />
                </td>
                <td className="num">{formatMoney(inv.total, inv.currency)}</td>
                <td>
                  {onPay && inv.status === "open" && (
                    <button type="button" onClick={() => onPay(inv)} disabled={busy}>
                      Pay now
                    </button>
                  )}
                </td>
              </tr>
              {open === inv.id && (
                <tr className="lines">
                  <td colSpan={6}>
                    <table>
                      <tbody>
                        {inv.lines.map((l, i) => (
                          <tr key={i}>
                            <td>{l.description}</td>
                            <td className="num">{formatMoney(l.amount, inv.currency)}</td>
                          </tr>
                        ))}
                        {inv.credit_applied !== "0.00" && inv.credit_applied !== "0" && (
                          <tr>
                            <td>Credit applied</td>
                            <td className="num">-{formatMoney(inv.credit_applied, inv.currency)}</td>
                          </tr>
                        )}
                        <tr>
                          <th scope="row">Amount due / paid</th>
                          <td className="num">
                            {formatMoney(inv.amount_due, inv.currency)} / {formatMoney(inv.amount_paid, inv.currency)}
                          </td>
                        </tr>
                      </tbody>
                    </table>
                  </td>
                </tr>
              )}
            </Fragment>
          ))}
        </tbody>
      </table>
    </div>
  );
}
