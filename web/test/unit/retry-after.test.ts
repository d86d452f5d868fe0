import { describe, expect, it } from 'vitest';
import { MAX_RETRY_AFTER_S, retryAfterSeconds } from '../../src/app/api';

describe('Retry-After', () => {
  it('reads delay-seconds, at least one', () => {
    expect(retryAfterSeconds('3')).toBe(3);
    expect(retryAfterSeconds(' 120 ')).toBe(120);
    expect(retryAfterSeconds('0')).toBe(1);
  });

  it('reads an HTTP date as the seconds until then', () => {
    const now = Date.parse('2026-01-01T00:00:00Z');
    expect(retryAfterSeconds('Thu, 01 Jan 2026 00:00:10 GMT', now)).toBe(10);
    expect(retryAfterSeconds('Wed, 31 Dec 2025 23:59:00 GMT', now)).toBe(1);
  });

  it('holds a huge value to a day', () => {
    const now = Date.parse('2026-01-01T00:00:00Z');
    expect(retryAfterSeconds('9'.repeat(400))).toBe(MAX_RETRY_AFTER_S);
    expect(retryAfterSeconds('86401')).toBe(MAX_RETRY_AFTER_S);
    expect(retryAfterSeconds('Fri, 01 Jan 2100 00:00:00 GMT', now)).toBe(MAX_RETRY_AFTER_S);
    expect(retryAfterSeconds('86400')).toBe(86_400);
  });

  it('is null when absent or unreadable', () => {
    expect(retryAfterSeconds(null)).toBeNull();
    expect(retryAfterSeconds('')).toBeNull();
    expect(retryAfterSeconds('soon')).toBeNull();
    expect(retryAfterSeconds('-5')).toBeNull();
  });
});
