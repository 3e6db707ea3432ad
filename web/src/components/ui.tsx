import { useId, type ReactNode } from "react";
import { explain } from "../api/problem";
import { ApiProblem } from "../api/problem";
import { formatNumber, metricLabel, meterLevel, statusLabel } from "../format";
import type { MetricUsage } from "../api/types";
import type { Loaded } from "../hooks";

export function Loading({ what = "Loading" }: { what?: string }) {
  return (
    <p className="loading" role="status" aria-live="polite">
      {what}…
    </p>
  );
}

/** A problem from the API, in words, where the person is looking. */
export function ErrorNotice({ error, onRetry }: { error: unknown; onRetry?: () => void }) {
  if (!error) return null;
  const kind = error instanceof ApiProblem && error.status === 402 ? "limit" : "error";
  return (
    <div className={`notice notice-${kind}`} role="alert">
      <span>{explain(error)}</span>
      {onRetry && (
        <button type="button" className="link" onClick={onRetry}>
          Retry
        </button>
      )}
    </div>
  );
}

export function Success({ children }: { children: ReactNode }) {
  return (
    <div className="notice notice-ok" role="status">
      {children}
    </div>
  );
}

export function Card({ title, children, actions }: { title?: ReactNode; children: ReactNode; actions?: ReactNode }) {
  return (
    <section className="card">
      {(title || actions) && (
        <header className="card-head">
          {title && <h2>{title}</h2>}
          {actions && <div className="card-actions">{actions}</div>}
        </header>
      )}
      {children}
    </section>
  );
}

export function Stat({ label, value, tone }: { label: string; value: ReactNode; tone?: string }) {
  return (
    <div className={`stat ${tone ? `stat-${tone}` : ""}`}>
      <div className="stat-value">{value}</div>
      <div className="stat-label">{label}</div>
    </div>
  );
}

export function StatusBadge({ status }: { status: string }) {
  return <span className={`badge badge-${status}`}>{statusLabel(status)}</span>;
}

/** A labelled input with its validation message tied to it for screen readers. */
export function Field({
  label,
  error,
  hint,
  children,
}: {
  label: string;
  error?: string | null;
  hint?: string;
  children: (props: { id: string; "aria-invalid": boolean; "aria-describedby"?: string }) => ReactNode;
}) {
  const id = useId();
  const described = error ? `${id}-error` : hint ? `${id}-hint` : undefined;
  return (
    <div className={`field ${error ? "field-invalid" : ""}`}>
      <label htmlFor={id}>{label}</label>
      {children({ id, "aria-invalid": Boolean(error), "aria-describedby": described })}
      {hint && !error && (
        <small id={`${id}-hint`} className="hint">
          {hint}
        </small>
      )}
      {error && (
        <small id={`${id}-error`} className="field-error">
          {error}
        </small>
      )}
    </div>
  );
}

/** The error unless it is a 422 about one of `fields` (shown beside that field instead). */
export function unlessFieldError(error: unknown, fields: string[]): unknown {
  return error instanceof ApiProblem && error.status === 422 && error.field && fields.includes(error.field) ? null : error;
}

/** The API's 422 names the field; show it beside that field. */
export function fieldError(error: unknown, field: string): string | null {
  return error instanceof ApiProblem && error.status === 422 && error.field === field ? error.detail : null;
}

export function Meter({ usage }: { usage: MetricUsage }) {
  const level = meterLevel(usage.percent);
  const width = usage.percent === null ? 0 : Math.min(100, usage.percent);
  return (
    <div className={`meter meter-${level}`} data-metric={usage.metric}>
      <div className="meter-head">
        <span className="meter-name">{metricLabel(usage.metric)}</span>
        <span className="meter-figures">
          {formatNumber(usage.used)} / {formatNumber(usage.limit)}
          {usage.percent !== null && <> ({usage.percent}%)</>}
        </span>
      </div>
      <div
        className="meter-bar"
        role="progressbar"
        aria-label={metricLabel(usage.metric)}
        aria-valuemin={0}
        aria-valuemax={100}
        aria-valuenow={width}
      >
        <div className="meter-fill" style={{ width: `${width}%` }} />
      </div>
      {level !== "ok" && (
        <small className="meter-note">
          {level === "full"
            ? usage.enforcement === "hard"
              ? "Limit reached: further use is refused until the period resets or you upgrade."
              : "Over the included amount: overage is counted."
            : "Nearing the limit."}
        </small>
      )}
    </div>
  );
}

/**
 * A loaded resource's three states: loading (first load only; a reload keeps showing the
 * data unless `fresh`), an error with a retry, or the data.
 */
export function WhenLoaded<T>({
  state,
  children,
  fresh = false,
}: {
  state: Loaded<T>;
  children: (data: T) => ReactNode;
  /** Show the loading state on every load, not just the first (filters, pages). */
  fresh?: boolean;
}) {
  if (state.loading && (fresh || state.data === undefined)) return <Loading />;
  if (state.error) return <ErrorNotice error={state.error} onRetry={state.reload} />;
  return state.data === undefined ? null : <>{children(state.data)}</>;
}

/** Previous/Next for a `usePager` over a list answer. */
export function PagerFor({
  pager,
  next,
}: {
  pager: { page: number; hasPrevious: boolean; previous: () => void; next: (cursor: string | null) => void };
  next: string | null | undefined;
}) {
  return (
    <Pager
      page={pager.page}
      hasPrevious={pager.hasPrevious}
      next={next}
      onPrevious={pager.previous}
      onNext={() => pager.next(next ?? null)}
    />
  );
}

export function Pager({
  page,
  hasPrevious,
  next,
  onPrevious,
  onNext,
}: {
  page: number;
  hasPrevious: boolean;
  next: string | null | undefined;
  onPrevious: () => void;
  onNext: () => void;
}) {
  return (
    <nav className="pager" aria-label="Pages">
      <button type="button" onClick={onPrevious} disabled={!hasPrevious}>
        Previous
      </button>
      <span>Page {page}</span>
      <button type="button" onClick={onNext} disabled={!next}>
        Next
      </button>
    </nav>
  );
}

export function Empty({ children }: { children: ReactNode }) {
  return <p className="empty">{children}</p>;
}
