import { describe, expect, it } from 'vitest';
import { formatBuild, rates } from '../../src/app/pages/Operations';

const s = (t: number, published: number, deliveries: number) => ({ t, websocket: 0, sse: 0, published, deliveries });

describe('operations rates', () => {
  it('divides the counters’ differences by the time between snapshots', () => {
    expect(rates([s(0, 10, 100), s(1000, 15, 130), s(3000, 25, 130)])).toEqual([
      { t: 1000, published: 5, deliveries: 30 },
      { t: 3000, published: 5, deliveries: 0 },
    ]);
  });

  it('skips a pair when a counter went back (a restart) or no time passed', () => {
    expect(rates([s(0, 10, 10), s(1000, 2, 3), s(1000, 4, 4), s(2000, 6, 7)])).toEqual([{ t: 2000, published: 2, deliveries: 3 }]);
  });

  it('needs two snapshots', () => {
    expect(rates([])).toEqual([]);
    expect(rates([s(0, 1, 1)])).toEqual([]);
  });
});

// The cases of internal/version's TestResolve: the page names a build as
// `herald version` and the start line do.
describe('operations build', () => {
  it('names the build as herald version does', () => {
    expect(
      formatBuild({
        version: 'v0.0.0-20250102030405-0123456789ab+dirty',
        commit: '0123456789abcdef0123456789abcdef01234567',
        commit_time: '2025-01-02T03:04:05Z',
        modified: true,
      }),
    ).toBe('v0.0.0-20250102030405-0123456789ab+dirty (commit 0123456789ab, 2025-01-02T03:04:05Z, modified)');
    expect(formatBuild({ version: 'v1.2.3', commit: 'fedcba9876543210fedcba9876543210fedcba98', commit_time: '', modified: false })).toBe(
      'v1.2.3 (commit fedcba987654)',
    );
    expect(formatBuild({ version: 'devel', commit: '', commit_time: '', modified: false })).toBe('devel');
    expect(formatBuild({ version: 'v2.0.0' })).toBe('v2.0.0');
  });
});
