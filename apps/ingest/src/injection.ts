/** Injection tokens for the providers that are ports or plain values. */
export const CONFIG = Symbol('CONFIG');
export const LOGGER = Symbol('LOGGER');
export const CLOCK = Symbol('CLOCK');
export const METRICS = Symbol('METRICS');
export const REGISTRY_STORE = Symbol('REGISTRY_STORE');
export const RANDOM = Symbol('RANDOM');

/** Time is injected everywhere (epoch milliseconds). */
export interface Clock {
  now(): number;
}

/** Randomness is injected: ids and secrets. */
export interface Random {
  uuid(): string;
  /** base64url of `n` random bytes. */
  token(n: number): string;
  /** Uniform in [0, 1): jitter. */
  unit(): number;
}
