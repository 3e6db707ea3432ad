import { useState } from "react";
import { Bar, BarChart, CartesianGrid, ResponsiveContainer, Tooltip, XAxis, YAxis } from "recharts";
import { useGet } from "../hooks";
import type { History, MetricUsage } from "../api/types";
import { formatBucket, formatNumber, metricLabel } from "../format";
import { Empty, ErrorNotice, Loading } from "./ui";

const DAY_MS = 86_400_000;

/**
 * Totals per bucket over the metric's current counting period. The range comes from the
 * period the API reports, not from this browser's clock (the server may run a test clock).
 */
export function UsageHistory({ usage, fallbackStart, fallbackEnd }: { usage: MetricUsage[]; fallbackStart: string; fallbackEnd: string }) {
  const counted = usage.filter((u) => u.reset_period !== "none");
  const [metric, setMetric] = useState(counted[0]?.metric ?? "");
  const current = counted.find((u) => u.metric === metric) ?? counted[0];
  const from = current?.period_start && !current.period_start.startsWith("1970") ? current.period_start : fallbackStart;
  const to = current?.period_end ?? fallbackEnd;
  const span = Date.parse(to) - Date.parse(from);
  const [granularity, setGranularity] = useState<"hour" | "day">(span <= 3 * DAY_MS ? "hour" : "day");
  const path = current
    ? `/v1/usage/history?metric=${encodeURIComponent(current.metric)}&from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}&granularity=${granularity}`
    : null;
  const history = useGet<History>(path);
  if (!current) return <Empty>No metered usage on this plan.</Empty>;
  const data = (history.data?.data ?? []).map((b) => ({ label: formatBucket(b.bucket), total: b.total }));
  return (
    <div className="history">
      <div className="history-controls">
        <label>
          Metric{" "}
          <select value={current.metric} onChange={(e) => setMetric(e.target.value)}>
            {counted.map((u) => (
              <option key={u.metric} value={u.metric}>
                {metricLabel(u.metric)}
              </option>
            ))}
          </select>
        </label>
        <label>
          Per{" "}
          <select value={granularity} onChange={(e) => setGranularity(e.target.value as "hour" | "day")}>
            <option value="hour">hour</option>
            <option value="day">day</option>
          </select>
        </label>
      </div>
      {history.loading && !history.data ? (
        <Loading what="Loading history" />
      ) : history.error ? (
        <ErrorNotice error={history.error} onRetry={history.reload} />
      ) : data.length === 0 ? (
        <Empty>No usage recorded in this period yet.</Empty>
      ) : (
        <div className="chart" role="img" aria-label={`${metricLabel(current.metric)} per ${granularity}`}>
          <ResponsiveContainer width="100%" height={240}>
            <BarChart data={data} margin={{ top: 8, right: 8, left: 8, bottom: 8 }}>
              <CartesianGrid strokeDasharray="3 3" vertical={false} />
              <XAxis dataKey="label" fontSize={12} />
              <YAxis fontSize={12} allowDecimals={false} tickFormatter={(v: number) => formatNumber(v)} width={70} />
              <Tooltip formatter={(v) => formatNumber(Number(v))} />
              {/* A bar stays a bar when there are few: one day is not 80% of the chart. */}
              <Bar dataKey="total" name={metricLabel(current.metric)} fill="#3346d3" isAnimationActive={false} maxBarSize={48} />
            </BarChart>
          </ResponsiveContainer>
        </div>
      )}
    </div>
  );
}
