import {
  DURATION_HINT,
  formatDuration as formatMs,
  parseDuration,
} from '@outpost/protocol/duration';

/** The CLI speaks whole seconds; the parsing rules are the protocol package's. */
export { DURATION_HINT };

/** Whole seconds, or `undefined` when `text` is not a duration of whole seconds. */
export function parseDurationSeconds(text: string): number | undefined {
  const ms = parseDuration(text);
  return ms !== undefined && ms % 1000 === 0 ? ms / 1000 : undefined;
}

/** `90061` → `1d1h1m1s`. */
export function formatDuration(seconds: number): string {
  return formatMs(seconds * 1000);
}
