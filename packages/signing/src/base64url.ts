import { base64url } from 'jose';

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const BASE64URL_CHARS = /^[A-Za-z0-9_-]*$/;

/**
 * RFC 7515 §2 base64url without padding, in its one canonical spelling: no `=`, no whitespace,
 * no other alphabet, and unused trailing bits zero, so two different strings never decode to
 * the same bytes.
 */
export function isCanonicalBase64url(value: string): boolean {
  if (!BASE64URL_CHARS.test(value)) return false;
  const rest = value.length % 4;
  if (rest === 0) return true;
  if (rest === 1) return false;
  const last = ALPHABET.indexOf(value.charAt(value.length - 1));
  return rest === 2 ? (last & 0x0f) === 0 : (last & 0x03) === 0;
}

/**
 * Decodes `value` if it is canonical (see {@link isCanonicalBase64url}), else undefined. One
 * pass of Node's decoder and encoder instead of a pattern test before decoding: the encoder
 * writes the one canonical spelling of the bytes, so it gives `value` back exactly when
 * `value` was canonical.
 */
export function decodeCanonicalBase64url(value: string): Uint8Array | undefined {
  const bytes = Buffer.from(value, 'base64url');
  if (bytes.toString('base64url') !== value) return undefined;
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Decodes a string already checked with {@link isCanonicalBase64url}. */
export function decodeBase64url(value: string): Uint8Array {
  return base64url.decode(value);
}

export function encodeBase64url(value: Uint8Array | string): string {
  return base64url.encode(value);
}
