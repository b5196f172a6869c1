import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  signEnrollmentProof,
  signEnrollmentToken,
  verifyEnrollmentProof,
  verifyEnrollmentToken,
} from '@outpost/signing/enrollment';
import { generateKeyPair } from '@outpost/signing/keys';
import { type PostgresHandle, startPostgres } from '@outpost/test-kit/postgres';
import { printTable, round, writeTable } from './results.js';

/** The parts of the built registry stores this bench drives (apps/ingest/dist). */
interface NewDevice {
  id: string;
  kind: 'device';
  tags?: Record<string, string>;
}
interface RegistryStore {
  migrate(): Promise<void>;
  close(): Promise<void>;
  insertDevices(devices: readonly NewDevice[], now: number): Promise<void>;
  insertEnrollment(e: Record<string, unknown>): Promise<void>;
  completeEnrollment(
    jti: string,
    key: Record<string, unknown>,
    now: number,
  ): Promise<{ ok: boolean; reason?: string }>;
}
const dist = (path: string) => new URL(`../../dist/${path}`, import.meta.url).href;
const { SqliteRegistryStore } = (await import(dist('registry/sqlite-registry-store.js'))) as {
  SqliteRegistryStore: new (path: string) => RegistryStore;
};
const { PostgresRegistryStore } = (await import(dist('registry/postgres-registry-store.js'))) as {
  PostgresRegistryStore: new (url: string) => RegistryStore;
};

/**
 * Provisioning at scale (SURFACES.md bulk import, PROTOCOL.md §2 enrollment): a 10,000-device
 * import in one all-or-nothing transaction, and enrollments (token check + proof of
 * possession + atomic single use) one after another, on SQLite and on a real PostgreSQL.
 */

const dir = mkdtempSync(join(tmpdir(), 'outpost-registry-bench-'));
let pg: PostgresHandle;
let sqlite: RegistryStore;
let postgres: RegistryStore;
let seq = 0;

function devices(prefix: string): NewDevice[] {
  return Array.from({ length: 10_000 }, (_, i) => ({
    id: `${prefix}-${i}`,
    kind: 'device' as const,
    tags: { site: `s${i % 20}`, line: `l${i % 7}` },
  }));
}

const service = await generateKeyPair();
const deviceKey = await generateKeyPair();

async function enrollOne(store: RegistryStore, prefix: string): Promise<void> {
  const id = `${prefix}-${++seq}`;
  await store.insertDevices([{ id, kind: 'device' }], Date.now());
  const { token, claims } = await signEnrollmentToken(service.privateJwk, {
    issuer: 'bench',
    deviceId: id,
  });
  await store.insertEnrollment({
    jti: claims.jti,
    deviceId: id,
    kind: 'device',
    gateway: null,
    createdBy: 'bench',
    createdAt: Date.now(),
    expiresAt: claims.exp * 1000,
  });
  const { token: proof } = await signEnrollmentProof(deviceKey.privateJwk, {
    jti: claims.jti,
    deviceId: id,
  });
  const verified = await verifyEnrollmentToken(token, {
    keys: [service.publicJwk],
    issuer: 'bench',
  });
  await verifyEnrollmentProof(proof, { publicJwk: deviceKey.publicJwk, token: verified.claims });
  // A fresh key per device: the registry refuses a key another device holds.
  const kid = `${id.padEnd(43, 'A').slice(0, 43)}`;
  const outcome = await store.completeEnrollment(
    claims.jti,
    { kid, alg: 'EdDSA', jwk: { ...deviceKey.publicJwk, kid }, addedAt: Date.now() },
    Date.now(),
  );
  if (!outcome.ok) throw new Error(outcome.reason ?? 'refused');
}

async function time(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

sqlite = new SqliteRegistryStore(join(dir, 'registry.db'));
await sqlite.migrate();
pg = await startPostgres();
postgres = new PostgresRegistryStore(await pg.createDatabase('bench'));
await postgres.migrate();
const rows: (string | number)[][] = [];
try {
  for (const [name, store] of [
    ['SQLite', sqlite],
    ['PostgreSQL', postgres],
  ] as const) {
    const imports: number[] = [];
    for (let i = 0; i < 3; i++)
      imports.push(
        await time(() => store.insertDevices(devices(`${name.toLowerCase()}${i}`), Date.now())),
      );
    const n = 200;
    const enroll = await time(async () => {
      for (let i = 0; i < n; i++) await enrollOne(store, `e${name.toLowerCase()}`);
    });
    rows.push([
      name,
      round(Math.min(...imports) / 1000, 2),
      round(imports.reduce((a, b) => a + b, 0) / imports.length / 1000, 2),
      Math.round((n * 1000) / enroll),
    ]);
  }
} finally {
  await sqlite.close();
  await postgres.close();
  await pg.stop();
  rmSync(dir, { recursive: true, force: true });
}
const table = {
  kind: 'table' as const,
  title: 'Registry: bulk import of 10,000 devices and enrollments (store + signatures)',
  columns: ['store', 'import best (s)', 'import mean (s)', 'enrollments/s (sequential)'],
  rows,
  notes: [
    'import: one all-or-nothing transaction with 2 tags per device; enrollment: token and proof verified, token consumed atomically',
  ],
};
printTable(table);
writeTable('ingest-registry', table);
