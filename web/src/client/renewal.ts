// When to renew an app's subscription token: shortly before it expires, as
// its exp claim (read, not verified) says.

import { jwtTimes } from './auth';

/**
 * How far the client's clock may be from the token issuer's before the
 * token's own iat is trusted over it (a token issued "in the future").
 */
const SKEW_MS = 60_000;

/**
 * Milliseconds from `nowMs` until a subscription token should be renewed,
 * or null when it cannot tell (no readable exp) or the token has run out.
 *
 * With r the time the token has left, the renewal comes at 90% of r, and
 * at least 5 s before the expiry, unless r is under 10 s: then at half of
 * r, so a short-lived token is never renewed in a tight loop. When the
 * client's clock disagrees with the issuer's (iat more than a minute
 * ahead, or the token seemingly expired on arrival while its iat says it
 * has a lifetime), r is measured from iat instead: exp - iat.
 */
export function renewalDelay(token: string, nowMs: number = Date.now()): number | null {
  const t = jwtTimes(token);
  if (!t) return null;
  let remaining = t.exp * 1000 - nowMs;
  if (t.iat !== null && t.exp > t.iat && (remaining <= 0 || t.iat * 1000 - nowMs > SKEW_MS)) {
    remaining = (t.exp - t.iat) * 1000;
  }
  if (remaining <= 0) return null;
  const lead = Math.max(remaining * 0.1, Math.min(5_000, remaining / 2));
  return Math.round(remaining - lead);
}
