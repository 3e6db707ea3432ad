import { ApiProblem } from "./problem";

/** The token pair the API hands out at login, refresh and tenant switch. */
export interface Tokens {
  access_token: string;
  refresh_token: string;
  /** RFC 3339 */
  expires_at: string;
  refresh_expires_at?: string;
  tenant_id?: string | null;
  role?: string | null;
}

/** Where tokens live between page loads. */
export interface TokenStore {
  load(): Tokens | null;
  save(tokens: Tokens | null): void;
}

/**
 * Keeps the pair in `sessionStorage`: it survives a reload but not the tab, and nothing of it
 * is sent to the server except as the `Authorization` header the client sets. The dashboard's
 * CSP allows no foreign script, which is what would otherwise read it.
 */
export function sessionTokenStore(storage: Storage = sessionStorage): TokenStore {
  const key = "eshtarek.tokens";
  return {
    load() {
      try {
        const text = storage.getItem(key);
        return text ? (JSON.parse(text) as Tokens) : null;
      } catch {
        return null;
      }
    },
    save(tokens) {
      if (tokens) storage.setItem(key, JSON.stringify(tokens));
      else storage.removeItem(key);
    },
  };
}

export function memoryTokenStore(initial: Tokens | null = null): TokenStore {
  let tokens = initial;
  return {
    load: () => tokens,
    save: (t) => {
      tokens = t;
    },
  };
}

export interface ClientOptions {
  store: TokenStore;
  baseUrl?: string;
  fetch?: typeof fetch;
  /** Milliseconds since the epoch; injectable so tests can move it. */
  now?: () => number;
  /** Called once when the session ends (refresh refused, or logout). */
  onSessionEnded?: (reason: "expired" | "logout") => void;
}

export interface RequestOptions {
  /** Send without the access token (login, register, public plan list). */
  anonymous?: boolean;
  idempotencyKey?: string;
}

/** Refresh this long before the access token's expiry, so a request never races it. */
const REFRESH_MARGIN_MS = 30_000;

/**
 * The API client: JSON in and out, problem documents as `ApiProblem`, and transparent token
 * refresh. A request whose access token is about to expire refreshes first; a 401 refreshes
 * once and retries once. Concurrent requests share one refresh (the API rotates refresh tokens
 * and treats reuse of an old one as theft, so two refreshes with one token would end the
 * session).
 */
export class ApiClient {
  private readonly store: TokenStore;
  private readonly baseUrl: string;
  private readonly fetcher: typeof fetch;
  private readonly now: () => number;
  private readonly onSessionEnded?: ClientOptions["onSessionEnded"];
  private refreshing: Promise<boolean> | null = null;

  constructor(options: ClientOptions) {
    this.store = options.store;
    this.baseUrl = options.baseUrl ?? "";
    this.fetcher = options.fetch ?? ((input, init) => fetch(input, init));
    this.now = options.now ?? Date.now;
    this.onSessionEnded = options.onSessionEnded;
  }

  get tokens(): Tokens | null {
    return this.store.load();
  }

  get signedIn(): boolean {
    return this.tokens !== null;
  }

  /** Sets the pair from a login, signup or tenant switch answer. */
  adopt(tokens: Tokens): void {
    this.store.save(tokens);
  }

  get<T>(path: string, options?: RequestOptions): Promise<T> {
    return this.request<T>("GET", path, undefined, options);
  }
  post<T>(path: string, body?: unknown, options?: RequestOptions): Promise<T> {
    return this.request<T>("POST", path, body ?? {}, options);
  }
  patch<T>(path: string, body: unknown, options?: RequestOptions): Promise<T> {
    return this.request<T>("PATCH", path, body, options);
  }
  put<T>(path: string, body: unknown, options?: RequestOptions): Promise<T> {
    return this.request<T>("PUT", path, body, options);
  }
  delete<T>(path: string, options?: RequestOptions): Promise<T> {
    return this.request<T>("DELETE", path, undefined, options);
  }

  async request<T>(method: string, path: string, body?: unknown, options: RequestOptions = {}): Promise<T> {
    if (!options.anonymous && this.expiresSoon()) await this.refresh();
    let response = await this.send(method, path, body, options);
    if (response.status === 401 && !options.anonymous && this.tokens) {
      if (await this.refresh()) response = await this.send(method, path, body, options);
    }
    return this.read<T>(response, options);
  }

  /** Ends the session on the server (best effort) and forgets every token here. */
  async logout(): Promise<void> {
    if (this.tokens) {
      try {
        await this.send("POST", "/v1/auth/logout", {}, {});
      } catch {
        // Offline or already expired: the local state is cleared all the same.
      }
    }
    this.end("logout");
  }

  /** One refresh at a time; every caller waiting on it gets its outcome. */
  refresh(): Promise<boolean> {
    if (!this.refreshing) {
      this.refreshing = this.doRefresh().finally(() => {
        this.refreshing = null;
      });
    }
    return this.refreshing;
  }

  private async doRefresh(): Promise<boolean> {
    const tokens = this.tokens;
    if (!tokens) return false;
    let response: Response;
    try {
      response = await this.send("POST", "/v1/auth/refresh", { refresh_token: tokens.refresh_token }, { anonymous: true });
    } catch {
      // The network failed, not the session: keep the tokens, let the caller see the error.
      return false;
    }
    if (!response.ok) {
      this.end("expired");
      return false;
    }
    const fresh = (await response.json()) as Tokens;
    this.store.save({ ...tokens, ...fresh });
    return true;
  }

  private expiresSoon(): boolean {
    const tokens = this.tokens;
    if (!tokens) return false;
    const expiry = Date.parse(tokens.expires_at);
    return Number.isFinite(expiry) && expiry - this.now() < REFRESH_MARGIN_MS;
  }

  private end(reason: "expired" | "logout"): void {
    const had = this.tokens !== null;
    this.store.save(null);
    if (had) this.onSessionEnded?.(reason);
  }

  private send(method: string, path: string, body: unknown, options: RequestOptions): Promise<Response> {
    const headers: Record<string, string> = { accept: "application/json" };
    if (body !== undefined) headers["content-type"] = "application/json";
    const tokens = this.tokens;
    if (!options.anonymous && tokens) headers.authorization = `Bearer ${tokens.access_token}`;
    if (options.idempotencyKey) headers["idempotency-key"] = options.idempotencyKey;
    return this.fetcher(this.baseUrl + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  }

  private async read<T>(response: Response, options: RequestOptions): Promise<T> {
    if (response.status === 204) return undefined as T;
    const text = await response.text();
    let parsed: unknown = undefined;
    if (text) {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = { detail: text };
      }
    }
    if (!response.ok) {
      const problem = new ApiProblem(response.status, (parsed ?? {}) as Record<string, unknown>);
      // Only a request sent with the session's token can say the session is over: a refused
      // sign-in (an anonymous request) is about the credentials typed.
      if (response.status === 401 && !options.anonymous && this.tokens) this.end("expired");
      throw problem;
    }
    return parsed as T;
  }
}

/** A fresh key for a state-changing POST, so a retried click is not applied twice. */
export function idempotencyKey(): string {
  return globalThis.crypto?.randomUUID?.() ?? `${Date.now()}-${Math.random().toString(36).slice(2)}`;
}
