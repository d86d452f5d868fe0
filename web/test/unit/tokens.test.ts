// Resume lists with ':' in group names, reading a JWT's times, and when a
// subscription token is renewed. (The renewals themselves, against a real
// herald: apps.test.ts.)
import { afterEach, describe, expect, it, vi } from 'vitest';
import { formatPositions, jwtExpiry, jwtTimes, parsePositions, renewalDelay } from '@herald/client';
import { mintToken } from './helpers';

const b64url = (s: string) => Buffer.from(s).toString('base64url');
/** A token with the given payload text, signed with nothing (the client never verifies). */
const unsigned = (payload: string) => `${b64url('{"alg":"HS256","typ":"JWT"}')}.${b64url(payload)}.c2ln`;

describe('parsePositions', () => {
  it('reads each entry from its end, so groups may hold ":"', () => {
    expect(parsePositions('chat:lobby:3ea97484.1:12,campaign_1::0,a:b:c:e-1_x.2:9223372036854775807')).toEqual([
      { group: 'chat:lobby', epoch: '3ea97484.1', offset: 12 },
      { group: 'campaign_1', epoch: '', offset: 0 },
      { group: 'a:b:c', epoch: 'e-1_x.2', offset: 9223372036854775807 },
    ]);
  });

  it('skips malformed entries and keeps the rest', () => {
    const good = { group: 'chat:lobby', epoch: 'e', offset: 3 };
    for (const bad of ['lobby', 'lobby:5', ':e:1', '::1', 'g:e:', 'g:e:x', 'g:e:-1', 'g:e:1.5', '']) {
      expect(parsePositions(`${bad},chat:lobby:e:3`), bad).toEqual([good]);
    }
  });

  it('reads back what formatPositions writes', () => {
    const ps = [
      { group: 'chat:room:7', epoch: 'abc.3', offset: 41 },
      { group: 'room_5', epoch: '', offset: 0 },
      { group: 'user_2', epoch: 'x', offset: 1 },
    ];
    expect(parsePositions(formatPositions(ps))).toEqual(ps);
  });
});

describe('jwtTimes', () => {
  it('reads exp and iat from a base64url payload without verifying it', () => {
    // "?>" and "~" encode to '-' and '_' in base64url, which atob alone refuses.
    const t = mintToken({ sub: 'u?>~1', channel: 'chat:lobby', exp: 2_000_000_000, iat: 1_999_999_000 }, 'x'.repeat(32));
    expect(t.split('.')[1]).toMatch(/[-_]/);
    expect(jwtTimes(t)).toEqual({ exp: 2_000_000_000, iat: 1_999_999_000 });
    expect(jwtExpiry(t)).toBe(2_000_000_000);
    expect(jwtTimes(unsigned('{"exp":1700000000}'))).toEqual({ exp: 1_700_000_000, iat: null });
    expect(jwtTimes(unsigned('{"exp":1700000000,"iat":"yesterday"}'))).toEqual({ exp: 1_700_000_000, iat: null });
  });

  it('ignores tokens it cannot read', () => {
    const bad = [
      '',
      'not-a-jwt',
      'only.two',
      `${b64url('{}')}.${b64url('{"exp":1}')}.sig.extra`,
      'a.!!!!.c',
      unsigned('{"exp":1700000000'), // cut short
      unsigned('null'),
      unsigned('[1700000000]'),
      unsigned('{"exp":"1700000000"}'),
      unsigned('{"sub":"u1"}'),
      unsigned('{"exp":1e999}'), // Infinity
    ];
    for (const t of bad) {
      expect(jwtTimes(t), t).toBeNull();
      expect(jwtExpiry(t), t).toBeNull();
      expect(renewalDelay(t, 0), t).toBeNull();
    }
  });
});

describe('renewalDelay', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  const now = 1_800_000_000_000; // ms
  const at = (expIn: number, iatIn?: number) =>
    unsigned(JSON.stringify({ exp: now / 1000 + expIn, ...(iatIn === undefined ? {} : { iat: now / 1000 + iatIn }) }));

  it('renews at 90% of the time left, at least 5 s before the expiry', () => {
    expect(renewalDelay(at(3600), now)).toBe(3_240_000); // an hour: 6 minutes before
    expect(renewalDelay(at(50), now)).toBe(45_000); // 10% is 5 s
    expect(renewalDelay(at(20), now)).toBe(15_000); // 5 s before, not 18 s
    expect(renewalDelay(at(10), now)).toBe(5_000);
  });

  it('renews a short-lived token halfway, never in a tight loop', () => {
    expect(renewalDelay(at(3), now)).toBe(1_500);
    expect(renewalDelay(at(1), now)).toBe(500);
  });

  it('has nothing to renew when the token has run out', () => {
    expect(renewalDelay(at(0), now)).toBeNull();
    expect(renewalDelay(at(-5), now)).toBeNull();
  });

  it('measures from iat when the clock disagrees with the issuer’s', () => {
    // This clock is two minutes behind: the token was issued "in the future".
    expect(renewalDelay(at(180, 120), now)).toBe(54_000);
    // Two minutes ahead: a one-minute token looks expired on arrival.
    expect(renewalDelay(at(-60, -120), now)).toBe(54_000);
    // Within a minute of the issuer: the local clock decides.
    expect(renewalDelay(at(60, 30), now)).toBe(54_000);
    expect(renewalDelay(at(60, -3000), now)).toBe(54_000);
  });

  it('uses the current time by default', () => {
    vi.useFakeTimers();
    vi.setSystemTime(now);
    const token = at(100);
    expect(renewalDelay(token)).toBe(90_000);
    vi.setSystemTime(now + 80_000); // 20 s left
    expect(renewalDelay(token)).toBe(15_000);
    vi.setSystemTime(now + 100_000);
    expect(renewalDelay(token)).toBeNull();
  });
});
