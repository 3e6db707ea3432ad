import { useGet } from "../hooks";
import type { UpcomingInvoice as Upcoming } from "../api/types";
import { ApiProblem } from "../api/problem";
import { formatDate, formatMoney } from "../format";
import { Empty, ErrorNotice, Loading } from "./ui";

/** What the next invoice would bill if the period ended now: base and seats for the next period,
 * usage so far with its charges, credit applied. `path` is the tenant's or an admin's view. */
export function UpcomingInvoice({ path }: { path: string }) {
  const upcoming = useGet<Upcoming>(path);
  if (upcoming.loading && !upcoming.data) return <Loading />;
  if (upcoming.error instanceof ApiProblem && upcoming.error.status === 404) return <Empty>No live subscription, so nothing is due.</Empty>;
  if (upcoming.error) return <ErrorNotice error={upcoming.error} onRetry={upcoming.reload} />;
  const inv = upcoming.data;
  if (!inv) return null;
  return (
    <div className="upcoming" data-testid="upcoming-invoice">
      <p>
        {inv.is_final ? "Final invoice" : "Next invoice"}, due {formatDate(inv.issue_at)}:{" "}
        <strong>{formatMoney(inv.amount_due, inv.currency)}</strong>
      </p>
      <div className="table-wrap">
        <table>
          <thead>
            <tr>
              <th scope="col">Line</th>
              <th scope="col" className="num">
                Quantity
              </th>
              <th scope="col" className="num">
                Included
              </th>
              <th scope="col" className="num">
                Billable
              </th>
              <th scope="col" className="num">
                Amount
              </th>
            </tr>
          </thead>
          <tbody>
            {inv.lines.map((l, i) => (
              <tr key={i} data-kind={l.kind}>
                <td>
                  {l.description}
                  {l.period_start && l.period_end && (
                    <span className="hint">
                      {" "}
                      ({formatDate(l.period_start)} – {formatDate(l.period_end)})
                    </span>
                  )}
                </td>
                <td className="num">{l.detail ? l.detail.quantity.toLocaleString("en-US") : ""}</td>
                <td className="num">{l.detail ? l.detail.included.toLocaleString("en-US") : ""}</td>
                <td className="num">{l.detail ? l.detail.billable.toLocaleString("en-US") : ""}</td>
                <td className="num">{formatMoney(l.amount, inv.currency)}</td>
              </tr>
            ))}
            <tr>
              <th scope="row" colSpan={4}>
                Total
              </th>
              <td className="num">{formatMoney(inv.total, inv.currency)}</td>
            </tr>
          </tbody>
        </table>
      </div>
    </div>
  );
}
