import type { Subscription } from "./api/types";

/** The date a subscription's summary leads with, and what it is: a trial's end while
 * trialing; otherwise the period's end, as a renewal or, when cancelling, the end. A trial that
 * ended keeps its `trial_end` (in the past), so it is never read outside the trial. */
export function nextDate(sub: Pick<Subscription, "status" | "trial_end" | "current_period_end" | "cancel_at_period_end">): {
  label: string;
  at: string;
} {
  if (sub.status === "trialing") return { label: "Trial ends", at: sub.trial_end ?? sub.current_period_end };
  return { label: sub.cancel_at_period_end ? "Ends" : "Renews", at: sub.current_period_end };
}
