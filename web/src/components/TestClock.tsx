import { useSession } from "../session";
import { useAction, useGet } from "../hooks";
import { ErrorNotice } from "./ui";
import { formatDateTime } from "../format";

interface Clock {
  now: string;
  test_clock: boolean;
}

/** On a server started with `--test-clock` (a demo): a banner with the clock's time, and for a
 * platform admin buttons that move it (running the jobs then due). `onMoved` lets the page
 * reload what it shows. Nothing on a server on the wall clock (or the Lambda API, which has no
 * `/v1/clock`). */
export function TestClockBanner({ admin, onMoved }: { admin: boolean; onMoved: () => void }) {
  const { api } = useSession();
  const clock = useGet<Clock>("/v1/clock");
  const act = useAction();
  if (!clock.data?.test_clock) return null;
  const advance = (duration: string) =>
    void act.run(async () => {
      await api.post("/v1/admin/clock/advance", { duration });
      clock.reload();
      onMoved();
    });
  return (
    <div className="clock-banner" role="region" aria-label="Test clock">
      <span>
        Test clock: <time dateTime={clock.data.now}>{formatDateTime(clock.data.now)}</time>
      </span>
      {admin && (
        <span className="clock-actions">
          Advance{" "}
          {[
            ["1h", "1 hour"],
            ["1d", "1 day"],
            ["7d", "7 days"],
            ["30d", "30 days"],
          ].map(([duration, label]) => (
            <button key={duration} type="button" disabled={act.busy} onClick={() => advance(duration)}>
              +{label}
            </button>
          ))}
        </span>
      )}
      <ErrorNotice error={act.error} />
    </div>
  );
}
