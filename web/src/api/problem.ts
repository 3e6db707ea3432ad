/** An RFC 9457 problem document from the API, as an Error the pages can show. */
export class ApiProblem extends Error {
  readonly status: number;
  readonly type: string;
  readonly title: string;
  readonly detail: string;
  /** The offending request field, when there is one (422). */
  readonly field?: string;
  /** The metric of a plan limit (402). */
  readonly metric?: string;
  readonly body: Record<string, unknown>;

  constructor(status: number, body: Record<string, unknown>) {
    const str = (k: string) => (typeof body[k] === "string" ? (body[k] as string) : undefined);
    const detail = str("detail") ?? str("title") ?? `Request failed (${status})`;
    super(detail);
    this.name = "ApiProblem";
    this.status = status;
    this.type = str("type") ?? "about:blank";
    this.title = str("title") ?? "Error";
    this.detail = detail;
    this.field = str("field");
    this.metric = str("metric");
    this.body = body;
  }

  /** A machine-readable reason (`code`), when the API gives one. */
  get code(): string | undefined {
    return typeof this.body.code === "string" ? this.body.code : undefined;
  }

  /** The session is over (expired, revoked, or logged out elsewhere): every 401 but a refused
   * sign-in, which is about the credentials typed, not a session. */
  get sessionEnded(): boolean {
    return this.status === 401 && this.code !== "invalid_credentials";
  }
}

/** A message for a person: what happened and, where we know, what to do about it. */
export function explain(error: unknown): string {
  if (error instanceof ApiProblem) {
    switch (error.status) {
      case 401:
        // A wrong password is not an expired session: say what the API said.
        if (!error.sessionEnded) return error.detail;
        return "Your session has expired. Please sign in again.";
      case 402:
        return error.metric ? `Plan limit reached for ${error.metric}: ${error.detail}` : `Payment required: ${error.detail}`;
      case 403:
        return `Not allowed: ${error.detail}`;
      case 404:
        return `Not found: ${error.detail}`;
      case 429:
        return `Too many attempts: ${error.detail}`;
      default:
        if (/declin|card|payment/i.test(error.detail)) return `Payment declined: ${error.detail}`;
        return error.detail;
    }
  }
  if (error instanceof TypeError) return "Cannot reach the server. Check your connection and retry.";
  return error instanceof Error ? error.message : String(error);
}
