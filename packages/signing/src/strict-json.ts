export type StrictJsonResult = { ok: true; value: unknown } | { ok: false; reason: string };

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Parses UTF-8 JSON the way RFC 7515 §5.2 and RFC 7519 §7.2 require of JOSE headers and claims:
 * well-formed UTF-8, no byte order mark, and no duplicate member names. `JSON.parse` keeps
 * the last of two equal names silently, so `{"alg":"none","alg":"EdDSA"}` would mean different
 * things to different parsers; such input is refused.
 */
export function parseStrictJson(bytes: Uint8Array): StrictJsonResult {
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    return { ok: false, reason: 'not UTF-8' };
  }
  if (text.charCodeAt(0) === 0xfeff) return { ok: false, reason: 'byte order mark' };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { ok: false, reason: 'not JSON' };
  }
  if (hasDuplicateNames(text, value)) return { ok: false, reason: 'duplicate member name' };
  return { ok: true, value };
}

const COLON = 0x3a;
const BACKSLASH = 0x5c;

/**
 * `JSON.parse` keeps one member per name, so the parsed value has fewer members than the text
 * has member names exactly when some object repeats a name. Counting both is cheaper than
 * collecting names per object (no string copies, no sets).
 */
function hasDuplicateNames(text: string, value: unknown): boolean {
  return countMemberNames(text) !== countMembers(value);
}

/**
 * Member names in `text`, which must already be known to be valid JSON. In valid JSON a
 * string followed by `:` (after optional whitespace) is a member name and every other string
 * is a value, so only the strings and the character after each need looking at.
 */
export function countMemberNames(text: string): number {
  let names = 0;
  let i = 0;
  for (;;) {
    const open = text.indexOf('"', i);
    if (open === -1) return names;
    i = closingQuote(text, open) + 1;
    let c = text.charCodeAt(i);
    // RFC 8259 §2: insignificant whitespace is space, tab, line feed and carriage return.
    while (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) c = text.charCodeAt(++i);
    if (c === COLON) names += 1;
  }
}

/** Index of the quote ending the string that starts at `open`. */
function closingQuote(text: string, open: number): number {
  let close = text.indexOf('"', open + 1);
  for (;;) {
    // A quote preceded by an odd number of backslashes is escaped.
    let backslashes = 0;
    while (text.charCodeAt(close - 1 - backslashes) === BACKSLASH) backslashes += 1;
    if (backslashes % 2 === 0) return close;
    close = text.indexOf('"', close + 1);
  }
}

/** Members of every object in a parsed JSON value. */
export function countMembers(value: unknown): number {
  if (typeof value !== 'object' || value === null) return 0;
  let members = 0;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) members += countMembers(value[i]);
    return members;
  }
  // A parsed value's members are all own and enumerable; `for…in` needs no key array.
  for (const name in value) {
    members += 1 + countMembers((value as Record<string, unknown>)[name]);
  }
  return members;
}
