/**
 * HTTP `Range` requests for artifact downloads (RFC 9110 §14), so an interrupted download
 * resumes. One range per request: that is what resuming needs; a request for several is
 * answered in full, which RFC 9110 §14.2 allows ("a server MAY ignore the Range header").
 */
export type RangeDecision =
  | { kind: 'full' }
  /** `end` is inclusive, as in `Content-Range`. */
  | { kind: 'partial'; start: number; end: number }
  | { kind: 'unsatisfiable' };

const DIGITS = /^\d{1,16}$/;

function integer(text: string): number | undefined {
  if (!DIGITS.test(text)) return undefined;
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : undefined;
}

export function parseRange(header: string | undefined, size: number): RangeDecision {
  if (header === undefined) return { kind: 'full' };
  const match = /^\s*bytes\s*=\s*(.*)$/i.exec(header);
  // Another range unit, or none: ignored (RFC 9110 §14.2).
  if (!match) return { kind: 'full' };
  const specs = match[1]!.split(',').map((s) => s.trim());
  if (specs.length !== 1) return { kind: 'full' };
  const spec = specs[0]!;
  const dash = spec.indexOf('-');
  if (dash === -1) return { kind: 'full' };
  const first = spec.slice(0, dash).trim();
  const last = spec.slice(dash + 1).trim();
  if (first === '') {
    // Suffix range: the last N bytes (RFC 9110 §14.1.2).
    const n = integer(last);
    if (n === undefined) return { kind: 'full' };
    if (n === 0 || size === 0) return { kind: 'unsatisfiable' };
    return { kind: 'partial', start: Math.max(0, size - n), end: size - 1 };
  }
  const start = integer(first);
  if (start === undefined) return { kind: 'full' };
  const end = last === '' ? Number.MAX_SAFE_INTEGER : integer(last);
  // An invalid range-spec (last < first) makes the whole header invalid: ignored.
  if (end === undefined || end < start) return { kind: 'full' };
  if (start >= size) return { kind: 'unsatisfiable' };
  return { kind: 'partial', start, end: Math.min(end, size - 1) };
}

/**
 * `If-Range` (RFC 9110 §13.1.5): the range applies only if the representation is still the
 * one the client has. We send a strong ETag and no Last-Modified, so anything but that ETag
 * means "send it all".
 */
export function ifRangeHolds(ifRange: string | undefined, etag: string): boolean {
  return ifRange === undefined || ifRange.trim() === etag;
}

export function contentRange(decision: RangeDecision, size: number): string | undefined {
  if (decision.kind === 'partial') return `bytes ${decision.start}-${decision.end}/${size}`;
  if (decision.kind === 'unsatisfiable') return `bytes */${size}`;
  return undefined;
}
