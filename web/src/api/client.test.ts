import { describe, expect, it } from "vitest";
import { ApiClient, memoryTokenStore, type Tokens } from "./client";
import { ApiProblem, explain } from "./problem";

const NOW = Date.parse("2026-11-25T12:00:00Z");

function tokens(access: string, refresh: string, expiresInMs = 15 * 60_000): Tokens {
  return { access_token: access, refresh_token: refresh, expires_at: new Date(NOW + expiresInMs).toISOString() };
}

interface Call {
  method: string;
  path: string;
  auth?: string;
  body?: unknown;
}

/** A fake API: valid access tokens in `valid`, refresh tokens rotate once each. */
function fakeApi(valid: Set<string>, refreshable: Map<string, Tokens>) {
  const calls: Call[] = [];
  const json = (status: number, body: unknown) =>
    new Response(JSON.stringify(body), {
      status,
      headers: { "content-type": status >= 400 ? "application/problem+json" : "application/json" },
    });
  const fetcher = async (url: string | URL | Request, init?: RequestInit) => {
    const headers = (init?.headers ?? {}) as Record<string, string>;
    const body = init?.body ? JSON.parse(String(init.body)) : undefined;
    const call: Call = { method: init?.method ?? "GET", path: String(url), auth: headers.authorization, body };
    calls.push(call);
    await new Promise((r) => setTimeout(r, 1));
    if (call.path === "/v1/auth/refresh") {
      const next = refreshable.get(body.refresh_token);
      refreshable.delete(body.refresh_token); // rotation: a refresh token works once
      if (!next)
        return json(401, { type: "/problems/unauthenticated", title: "Unauthenticated", status: 401, detail: "refresh token reused" });
      valid.add(next.access_token);
      return json(200, next);
    }
    if (call.path === "/v1/auth/logout") return new Response(null, { status: 204 });
    const token = call.auth?.replace("Bearer ", "");
    if (!token || !valid.has(token))
      return json(401, { type: "/problems/unauthenticated", title: "Unauthenticated", status: 401, detail: "expired" });
    if (call.path === "/v1/usage/events")
      return json(402, {
        type: "/problems/limit-exceeded",
        title: "Plan limit reached",
        status: 402,
        detail: "api_calls would pass 100",
        metric: "api_calls",
      });
    return json(200, { ok: true, path: call.path });
  };
  return { calls, fetcher: fetcher as typeof fetch };
}

describe("ApiClient token refresh", () => {
  it("refreshes once on a 401 and retries the request with the new token", async () => {
    const api = fakeApi(new Set(), new Map([["r1", tokens("a2", "r2")]]));
    const store = memoryTokenStore(tokens("a1-expired-on-server", "r1"));
    const client = new ApiClient({ store, fetch: api.fetcher, now: () => NOW });
    await expect(client.get("/v1/usage")).resolves.toEqual({ ok: true, path: "/v1/usage" });
    expect(api.calls.map((c) => c.path)).toEqual(["/v1/usage", "/v1/auth/refresh", "/v1/usage"]);
    expect(api.calls[2].auth).toBe("Bearer a2");
    expect(store.load()?.refresh_token).toBe("r2");
  });

  it("refreshes before sending when the access token is about to expire", async () => {
    const api = fakeApi(new Set(["a1"]), new Map([["r1", tokens("a2", "r2")]]));
    const client = new ApiClient({ store: memoryTokenStore(tokens("a1", "r1", 10_000)), fetch: api.fetcher, now: () => NOW });
    await client.get("/v1/usage");
    expect(api.calls.map((c) => c.path)).toEqual(["/v1/auth/refresh", "/v1/usage"]);
    expect(api.calls[1].auth).toBe("Bearer a2");
  });

  it("shares one refresh between concurrent requests (a rotated token is never sent twice)", async () => {
    const api = fakeApi(new Set(), new Map([["r1", tokens("a2", "r2")]]));
    const client = new ApiClient({ store: memoryTokenStore(tokens("stale", "r1")), fetch: api.fetcher, now: () => NOW });
    const results = await Promise.all([client.get("/v1/a"), client.get("/v1/b"), client.get("/v1/c")]);
    expect(results).toHaveLength(3);
    expect(api.calls.filter((c) => c.path === "/v1/auth/refresh")).toHaveLength(1);
    expect(client.tokens?.access_token).toBe("a2");
  });

  it("ends the session when the refresh is refused, and says so once", async () => {
    const api = fakeApi(new Set(), new Map());
    const ended: string[] = [];
    const client = new ApiClient({
      store: memoryTokenStore(tokens("stale", "reused")),
      fetch: api.fetcher,
      now: () => NOW,
      onSessionEnded: (reason) => ended.push(reason),
    });
    const error = await client.get("/v1/usage").catch((e) => e);
    expect(error).toBeInstanceOf(ApiProblem);
    expect((error as ApiProblem).sessionEnded).toBe(true);
    expect(explain(error)).toMatch(/session has expired/);
    expect(client.tokens).toBeNull();
    expect(ended).toEqual(["expired"]);
  });

  it("logout tells the server and clears every token even when the server is unreachable", async () => {
    const ended: string[] = [];
    const offline = (async () => {
      throw new TypeError("fetch failed");
    }) as typeof fetch;
    const store = memoryTokenStore(tokens("a1", "r1"));
    const client = new ApiClient({ store, fetch: offline, now: () => NOW, onSessionEnded: (r) => ended.push(r) });
    await client.logout();
    expect(store.load()).toBeNull();
    expect(ended).toEqual(["logout"]);

    const api = fakeApi(new Set(["a1"]), new Map());
    const online = new ApiClient({ store: memoryTokenStore(tokens("a1", "r1")), fetch: api.fetcher, now: () => NOW });
    await online.logout();
    expect(api.calls).toEqual([{ method: "POST", path: "/v1/auth/logout", auth: "Bearer a1", body: {} }]);
    expect(online.signedIn).toBe(false);
  });

  it("turns problem documents into ApiProblem with their metric or field", async () => {
    const api = fakeApi(new Set(["a1"]), new Map());
    const client = new ApiClient({ store: memoryTokenStore(tokens("a1", "r1")), fetch: api.fetcher, now: () => NOW });
    const error = (await client.post("/v1/usage/events", { metric: "api_calls" }, { idempotencyKey: "k1" }).catch((e) => e)) as ApiProblem;
    expect(error.status).toBe(402);
    expect(error.metric).toBe("api_calls");
    expect(explain(error)).toBe("Plan limit reached for api_calls: api_calls would pass 100");
    // A 402 is not a session problem: the tokens stay.
    expect(client.signedIn).toBe(true);
  });

  it("does not refresh or attach tokens for anonymous requests", async () => {
    const api = fakeApi(new Set(), new Map([["r1", tokens("a2", "r2")]]));
    const client = new ApiClient({ store: memoryTokenStore(tokens("a1", "r1", 1_000)), fetch: api.fetcher, now: () => NOW });
    await client.get("/v1/plans", { anonymous: true }).catch(() => undefined);
    expect(api.calls.map((c) => [c.path, c.auth])).toEqual([["/v1/plans", undefined]]);
  });

  it("keeps the session when an anonymous request (a sign-in) is refused", async () => {
    const api = fakeApi(new Set(["a1"]), new Map());
    let ended = 0;
    const client = new ApiClient({
      store: memoryTokenStore(tokens("a1", "r1")),
      fetch: api.fetcher,
      now: () => NOW,
      onSessionEnded: () => ended++,
    });
    await expect(client.post("/v1/auth/login", { email: "x", password: "y" }, { anonymous: true })).rejects.toBeInstanceOf(ApiProblem);
    expect(ended).toBe(0);
    await client.get("/v1/plans");
    expect(api.calls.at(-1)?.auth).toBe("Bearer a1");
  });
});

describe("explain", () => {
  it("names declined payments and network failures in words", () => {
    expect(explain(new ApiProblem(409, { detail: "the card was declined (card_declined)" }))).toBe(
      "Payment declined: the card was declined (card_declined)",
    );
    expect(explain(new TypeError("Failed to fetch"))).toMatch(/Cannot reach the server/);
  });

  it("says a wrong password is wrong, not that a session expired", () => {
    const refused = new ApiProblem(401, { detail: "wrong email or password", code: "invalid_credentials" });
    expect(refused.sessionEnded).toBe(false);
    expect(explain(refused)).toBe("wrong email or password");
    const ended = new ApiProblem(401, { detail: "the session has ended; log in again", code: "session_ended" });
    expect(ended.sessionEnded).toBe(true);
    expect(explain(ended)).toMatch(/session has expired/);
  });
});
