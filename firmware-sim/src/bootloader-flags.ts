/**
 * The `serial-device` flags that shape the bootloader, as the `bootloader:` entry of a
 * scenario (scenario.ts validates it, so flags and files accept the same things):
 *
 * - `--fail-flash verify` (END fails its image check) or `--fail-flash <offset>` (the chunk
 *   covering that byte fails to write), `--fail-flash-times N` (then it works);
 * - `--fail-health <duration>` (new firmware reverts that long after its reboot),
 *   `--fail-health-times N`;
 * - `--slow-ms` (each chunk's ack waits that long: a slow link or flash), `--reboot-ms`,
 *   `--max-image-bytes`.
 */
export interface BootloaderFlags {
  failFlash?: string;
  failFlashTimes?: number;
  /** Milliseconds, already parsed by the command line. */
  failHealth?: number;
  failHealthTimes?: number;
  slowMs?: number;
  rebootMs?: number;
  maxImageBytes?: number;
}

const OFFSET = /^(?:0|[1-9][0-9]{0,9})$/;

/** The scenario `bootloader:` object for these flags; throws on a flag that cannot work. */
export function bootloaderFromFlags(flags: BootloaderFlags): Record<string, unknown> {
  const bootloader: Record<string, unknown> = {};
  const { failFlash, failFlashTimes, failHealth, failHealthTimes } = flags;
  if (failFlash !== undefined) {
    const times = failFlashTimes === undefined ? {} : { times: failFlashTimes };
    if (failFlash === 'verify') bootloader.failFlash = { verify: true, ...times };
    else if (OFFSET.test(failFlash))
      bootloader.failFlash = { atOffset: Number(failFlash), ...times };
    else throw new Error(`--fail-flash: expected verify or a byte offset, got "${failFlash}"`);
  } else if (failFlashTimes !== undefined) {
    throw new Error('--fail-flash-times needs --fail-flash');
  }
  if (failHealth !== undefined) {
    const times = failHealthTimes === undefined ? {} : { times: failHealthTimes };
    bootloader.failHealth = { after: `${failHealth}ms`, ...times };
  } else if (failHealthTimes !== undefined) {
    throw new Error('--fail-health-times needs --fail-health');
  }
  if (flags.slowMs !== undefined) bootloader.slowMs = flags.slowMs;
  if (flags.rebootMs !== undefined) bootloader.rebootMs = flags.rebootMs;
  if (flags.maxImageBytes !== undefined) bootloader.maxImageBytes = flags.maxImageBytes;
  return bootloader;
}
