// Money arrives as a decimal string ("1200.50"). Arithmetic is done in
// integer cents so that totals stay exact.

/** Cents of a decimal string; NaN if it is not one. */
export function toCents(amount: string): number {
  const m = /^\s*(-)?(\d+)(?:\.(\d{1,2}))?\s*$/.exec(amount);
  if (!m) return Number.NaN;
  const cents = Number(m[2]) * 100 + Number((m[3] ?? '').padEnd(2, '0'));
  return m[1] ? -cents : cents;
}

/** The decimal string of an amount in cents ("1200.50"). */
export function fromCents(cents: number): string {
  const neg = cents < 0;
  const abs = Math.abs(Math.round(cents));
  const s = `${Math.floor(abs / 100)}.${String(abs % 100).padStart(2, '0')}`;
  return neg ? `-${s}` : s;
}

/** a + b of two decimal strings. */
export function addMoney(a: string, b: string): string {
  return fromCents(toCents(a) + toCents(b));
}

/** A decimal string for people: "$1,200.50". */
export function formatMoney(amount: string, currency = 'USD', locale?: string): string {
  const cents = toCents(amount);
  if (Number.isNaN(cents)) return amount;
  try {
    return new Intl.NumberFormat(locale, { style: 'currency', currency }).format(cents / 100);
  } catch {
    return `${fromCents(cents)} ${currency}`;
  }
}
