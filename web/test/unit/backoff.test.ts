import { describe, expect, it } from 'vitest';
import { Backoff } from '@herald/client';

describe('Backoff (full jitter)', () => {
  it('draws each wait from [0, min(max, base·2^n))', () => {
    const top = new Backoff({ baseMs: 100, maxMs: 1000, random: () => 0.999999 });
    expect([1, 2, 3, 4, 5, 6].map(() => top.next())).toEqual([99, 199, 399, 799, 999, 999]);
    const bottom = new Backoff({ baseMs: 100, maxMs: 1000, random: () => 0 });
    expect([bottom.next(), bottom.next(), bottom.next()]).toEqual([0, 0, 0]);
  });

  it('spreads waits over the whole window', () => {
    const b = new Backoff({ baseMs: 1000, maxMs: 1000 });
    const waits = Array.from({ length: 2000 }, () => b.next()!);
    expect(Math.min(...waits)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...waits)).toBeLessThan(1000);
    const mean = waits.reduce((a, b) => a + b, 0) / waits.length;
    expect(mean).toBeGreaterThan(400);
    expect(mean).toBeLessThan(600);
  });

  it('resets to the smallest window', () => {
    const b = new Backoff({ baseMs: 100, maxMs: 10_000, random: () => 0.5 });
    b.next();
    b.next();
    b.next();
    expect(b.window()).toBe(800);
    b.reset();
    expect(b.attempts).toBe(0);
    expect(b.next()).toBe(50);
  });

  it('gives up after maxAttempts and never overflows', () => {
    const b = new Backoff({ baseMs: 1, maxMs: 5000, maxAttempts: 3, random: () => 0.5 });
    expect([b.next(), b.next(), b.next(), b.next()]).toEqual([0, 1, 2, null]);
    const long = new Backoff({ baseMs: 500, maxMs: 30_000, random: () => 0.999 });
    for (let i = 0; i < 5000; i++) expect(long.next()).toBeLessThan(30_000);
  });
});
