import { useCallback, useEffect, useRef, useState } from "react";
import { useSession } from "./session";

export interface Loaded<T> {
  data: T | undefined;
  error: unknown;
  loading: boolean;
  reload: () => void;
}

/** GETs `path` (none when null) and keeps the answer, the error and a reload. */
export function useGet<T>(path: string | null): Loaded<T> {
  const { api } = useSession();
  const [state, setState] = useState<{ data?: T; error?: unknown; loading: boolean }>({ loading: path !== null });
  const [tick, setTick] = useState(0);
  useEffect(() => {
    if (path === null) {
      setState({ loading: false });
      return;
    }
    let live = true;
    setState((s) => ({ data: s.data, loading: true }));
    api.get<T>(path).then(
      (data) => live && setState({ data, loading: false }),
      (error) => live && setState({ error, loading: false }),
    );
    return () => {
      live = false;
    };
  }, [api, path, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { data: state.data, error: state.error, loading: state.loading, reload };
}

/** Runs an action, tracking busy and error, for buttons and forms. */
export function useAction() {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const mounted = useRef(true);
  useEffect(
    () => () => {
      mounted.current = false;
    },
    [],
  );
  const run = useCallback(async <R>(action: () => Promise<R>): Promise<R | undefined> => {
    setBusy(true);
    setError(null);
    try {
      return await action();
    } catch (e) {
      if (mounted.current) setError(e);
      return undefined;
    } finally {
      if (mounted.current) setBusy(false);
    }
  }, []);
  return { busy, error, run, clear: () => setError(null) };
}

/** Cursor paging: a stack of cursors so Previous works without the API going backwards. */
export function usePager(base: string) {
  const [cursors, setCursors] = useState<(string | null)[]>([null]);
  const cursor = cursors[cursors.length - 1];
  useEffect(() => setCursors([null]), [base]);
  const sep = base.includes("?") ? "&" : "?";
  const path = cursor ? `${base}${sep}cursor=${encodeURIComponent(cursor)}` : base;
  return {
    path,
    page: cursors.length,
    next: (next: string | null) => next && setCursors((c) => [...c, next]),
    previous: () => setCursors((c) => (c.length > 1 ? c.slice(0, -1) : c)),
    hasPrevious: cursors.length > 1,
  };
}
