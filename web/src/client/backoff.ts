// Full-jitter exponential backoff: the n-th retry waits a uniformly random
// time between 0 and min(maxMs, baseMs * 2^n). Spreading retries over the
// whole window keeps a crowd of clients that lost the same server (a deploy,
// a 1012 close) from coming back in lock-step.

export interface BackoffOptions {
  /** Window of the first retry, in ms (default 500). */
  baseMs?: number;
  /** Largest window, in ms (default 30 000): no wait is ever longer. */
  maxMs?: number;
  /** Retries before giving up (default: never give up). */
  maxAttempts?: number;
  /** Source of randomness in [0, 1) (tests pass a fixed one). */
  random?: () => number;
}

export class Backoff {
  private attempt = 0;
  private readonly baseMs: number;
  private readonly maxMs: number;
  private readonly maxAttempts: number;
  private readonly random: () => number;

  constructor(opts: BackoffOptions = {}) {
    this.baseMs = Math.max(1, opts.baseMs ?? 500);
    this.maxMs = Math.max(this.baseMs, opts.maxMs ?? 30_000);
    this.maxAttempts = opts.maxAttempts ?? Number.POSITIVE_INFINITY;
    this.random = opts.random ?? Math.random;
  }

  /** Retries made since the last reset. */
  get attempts(): number {
    return this.attempt;
  }

  /** The upper bound of the next wait, in ms. */
  window(): number {
    // 2^n grows past any cap quickly; clamp the exponent so it never overflows.
    return Math.min(this.maxMs, this.baseMs * 2 ** Math.min(this.attempt, 30));
  }

  /** The next wait in ms, or null when the attempts are used up. */
  next(): number | null {
    if (this.attempt >= this.maxAttempts) return null;
    const delay = Math.floor(this.random() * this.window());
    this.attempt++;
    return delay;
  }

  /** Start over: the next wait is drawn from the smallest window again. */
  reset(): void {
    this.attempt = 0;
  }
}
