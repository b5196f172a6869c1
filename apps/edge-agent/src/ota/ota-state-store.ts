import { join } from 'node:path';
import { compactJwsSchema } from '@outpost/protocol/claims';
import { deviceIdSchema } from '@outpost/protocol/ids';
import { MAX_TEXT_LENGTH, MAX_URL_LENGTH } from '@outpost/protocol/limits';
import {
  componentNameSchema,
  otaStateSchema,
  rolloutIdSchema,
  semverSchema,
} from '@outpost/protocol/ota';
import { z } from 'zod';
import { writeFileAtomic } from '../identity/identity-store.js';
import { readJsonFile } from './json-file.js';
import { isTerminal } from './offer-checks.js';

/**
 * `<dataDir>/ota-state.json`: one record per device and component, written (temporary file,
 * fsync, rename) before each step of an update, so that after a crash or `kill -9` the agent
 * knows how far it got and finishes the update, or at least its report, on the next start.
 */
export const OTA_STATE_FILE = 'ota-state.json';

/** A gateway with its children and their components; finished records beyond are dropped. */
export const MAX_OTA_RECORDS = 256;

export const otaRecordSchema = z.object({
  deviceId: deviceIdSchema,
  component: componentNameSchema,
  rolloutId: rolloutIdSchema,
  state: otaStateSchema,
  /** The offer, kept to resume the update after a restart. */
  manifest: compactJwsSchema,
  url: z.string().max(MAX_URL_LENGTH),
  rollbackTarget: semverSchema.optional(),
  /** The manifest's version, once verified. */
  version: semverSchema.optional(),
  /** What the device ran when the offer came. */
  fromVersion: semverSchema.optional(),
  /** Bytes staged so far (the staged file itself is the reference on resume). */
  received: z.number().int().nonnegative().default(0),
  reason: z.string().max(MAX_TEXT_LENGTH).optional(),
  /** The terminal result was acknowledged by the ingest (PUBACK). */
  reported: z.boolean().default(false),
  /** Epoch ms. */
  updatedAt: z.number().nonnegative(),
});
export type OtaRecord = z.output<typeof otaRecordSchema>;

const fileSchema = z.object({
  v: z.literal(1),
  records: z.array(otaRecordSchema).max(MAX_OTA_RECORDS),
});

export function recordKey(deviceId: string, component: string): string {
  return `${deviceId}/${component}`;
}

export class OtaStateStore {
  readonly #path: string;
  readonly #records = new Map<string, OtaRecord>();
  /** Writes in order: a later state never lands before an earlier one. */
  #writing: Promise<void> = Promise.resolve();

  constructor(dataDir: string) {
    this.#path = join(dataDir, OTA_STATE_FILE);
  }

  get path(): string {
    return this.#path;
  }

  /**
   * Reads the file; a missing file is an empty state. A damaged one is reported to the caller
   * (which logs it) and treated as empty: an update then starts again from its offer.
   */
  async load(): Promise<{ damaged: boolean }> {
    const read = await readJsonFile(this.#path, fileSchema);
    if (read.state !== 'ok') return { damaged: read.state === 'damaged' };
    const parsed = read.value;
    this.#records.clear();
    for (const r of parsed.records) this.#records.set(recordKey(r.deviceId, r.component), r);
    return { damaged: false };
  }

  get(deviceId: string, component: string): OtaRecord | undefined {
    return this.#records.get(recordKey(deviceId, component));
  }

  all(): OtaRecord[] {
    return [...this.#records.values()];
  }

  /** Stores the record and resolves once it is on disk. */
  put(record: OtaRecord): Promise<void> {
    this.#records.set(recordKey(record.deviceId, record.component), record);
    this.#prune();
    const text = `${JSON.stringify({ v: 1, records: this.all() }, null, 2)}\n`;
    const write = this.#writing.then(() => writeFileAtomic(this.#path, text, 0o600));
    this.#writing = write.catch(() => undefined);
    return write;
  }

  #prune(): void {
    if (this.#records.size <= MAX_OTA_RECORDS) return;
    const done = [...this.#records.entries()]
      .filter(([, r]) => isTerminal(r.state) && r.reported)
      .sort(([, a], [, b]) => a.updatedAt - b.updatedAt);
    for (const [key] of done.slice(0, this.#records.size - MAX_OTA_RECORDS)) {
      this.#records.delete(key);
    }
  }
}
