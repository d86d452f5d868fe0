import { describe, expect, it } from 'vitest';
import { rates } from '../../src/app/pages/Operations';

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
