/** One entry of a problem document's errors[]: where the problem is and what is wrong. */
export interface ProblemError {
  /** Where: body.events[2].type, query.cursor, path.tenant, header.Content-Type … */
  location?: string;
  message?: string;
  /** The value that was refused, when Herald echoes it (shortened, never a secret). */
  value?: unknown;
}

/**
 * An error answer of the Herald API: an RFC 9457 problem document (application/problem+json).
 * Thrown by every client method for a status of 400 or more; `errors` names each invalid field.
 */
export class HeraldProblem extends Error {
  override readonly name = "HeraldProblem";
  /** The HTTP status (422 for invalid input, 404, 409, 429, 503 …). */
  readonly status: number;
  /** The problem type URI; "about:blank" when Herald sends none. */
  readonly type: string;
  readonly title: string;
  readonly detail?: string;
  readonly instance?: string;
  readonly errors: ProblemError[];
  /** Seconds the server asked to wait (Retry-After), if it said. */
  readonly retryAfter?: number;

  constructor(status: number, doc: Record<string, unknown>, retryAfter?: number) {
    const title = typeof doc.title === "string" ? doc.title : `HTTP ${status}`;
    const detail = typeof doc.detail === "string" ? doc.detail : undefined;
    const errors = Array.isArray(doc.errors) ? (doc.errors as ProblemError[]) : [];
    const where = errors
      .map((e) => [e.location, e.message].filter(Boolean).join(": "))
      .filter(Boolean)
      .join("; ");
    super(`${status} ${title}${detail && detail !== title ? ": " + detail : ""}${where ? " (" + where + ")" : ""}`);
    this.status = status;
    this.type = typeof doc.type === "string" ? doc.type : "about:blank";
    this.title = title;
    this.detail = detail;
    this.instance = typeof doc.instance === "string" ? doc.instance : undefined;
    this.errors = errors;
    this.retryAfter = retryAfter;
  }

  /** The error at a location (body.url, query.status), if the problem names it. */
  at(location: string): ProblemError | undefined {
    return this.errors.find((e) => e.location === location);
  }

  /** Whether the same request may succeed later: rate limited, or the server unavailable. */
  get retryable(): boolean {
    return isRetryableStatus(this.status);
  }
}

/** Statuses after which the same request may succeed later (the Go client's, client/client.go). */
export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 429 || status === 502 || status === 503 || status === 504;
}
