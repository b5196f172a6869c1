import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DeviceExists, type PublicKeyRecord, type RegistryStore } from './registry-store.js';

/**
 * The contract every RegistryStore implementation passes. `make` returns a fresh, migrated
 * store on an empty database each time it is called.
 */
/**
 * A registry migrated from before replicas were recorded, with device `u1` left online
 * (last seen 5) by the old version: it keeps its connectivity, and since no replica is known
 * for it, only "every online device" records it offline.
 */
export async function expectUpgradedOnlineDevice(store: RegistryStore): Promise<void> {
  expect((await store.getDevice('u1'))?.connectivity).toEqual({
    online: true,
    lastSeen: 5,
    disconnectReason: null,
  });
  expect(await store.markReplicaOffline('r1', 'server_restart')).toEqual([]);
  expect(await store.markReplicaOffline(null, 'server_restart')).toEqual([
    { deviceId: 'u1', lastSeen: 5 },
  ]);
}

export function registryStoreContract(
  name: string,
  make: () => Promise<RegistryStore>,
  teardown: () => Promise<void> = async () => {},
): void {
  describe(`RegistryStore contract: ${name}`, () => {
    let store: RegistryStore;
    const T0 = 1_700_000_000_000;
    const key = (kid: string): PublicKeyRecord => ({
      kid,
      alg: 'EdDSA',
      jwk: { kty: 'OKP', crv: 'Ed25519', x: kid.padEnd(43, 'A').slice(0, 43) },
      addedAt: T0,
    });
    const enrollment = (jti: string, deviceId: string, expiresAt = T0 + 3_600_000) => ({
      jti,
      deviceId,
      kind: 'device' as const,
      gateway: null,
      createdBy: 'tok-admin',
      createdAt: T0,
      expiresAt,
    });

    beforeEach(async () => {
      store = await make();
    });
    afterEach(async () => {
      await store?.close();
    });
    afterAll(teardown);

    it('migrates idempotently and answers ping', async () => {
      await store.migrate();
      await store.migrate();
      await expect(store.ping()).resolves.toBeUndefined();
      expect(await store.countDevices()).toBe(0);
    });

    it('inserts devices all-or-nothing and names every existing id', async () => {
      await store.insertDevices([{ id: 'a1', kind: 'device', tags: { site: 'x' } }], T0);
      await expect(
        store.insertDevices(
          [
            { id: 'b1', kind: 'device' },
            { id: 'a1', kind: 'device' },
          ],
          T0,
        ),
      ).rejects.toBeInstanceOf(DeviceExists);
      expect(await store.getDevice('b1')).toBeNull();
      const a1 = await store.getDevice('a1');
      expect(a1).toMatchObject({
        id: 'a1',
        kind: 'device',
        status: 'pending',
        tags: { site: 'x' },
        gateway: null,
        policy: { payloadSigning: 'required' },
        keys: [],
        connectivity: { online: false, lastSeen: null, disconnectReason: null },
        desiredConfigVersion: 0,
        createdAt: T0,
      });
    });

    it('lists with filters and pagination, treating hostile text as data', async () => {
      await store.insertDevices(
        [
          { id: 'gw-1', kind: 'gateway', tags: { site: 'north' } },
          { id: 'gw-2', kind: 'gateway', tags: { site: 'south' } },
          { id: 's-1', kind: 'device', gateway: 'gw-1', tags: { site: 'north', line: 'a' } },
          { id: 's-2', kind: 'device', gateway: 'gw-1', tags: { site: 'north', line: 'b' } },
          { id: 's-3', kind: 'device', gateway: 'gw-2', name: "Boiler '7' 100%_x" },
        ],
        T0,
      );
      const ids = async (f: Parameters<RegistryStore['listDevices']>[0]) =>
        (await store.listDevices(f)).items.map((d) => d.id);
      expect(await ids({ limit: 10 })).toEqual(['gw-1', 'gw-2', 's-1', 's-2', 's-3']);
      expect(await ids({ limit: 10, kind: 'gateway' })).toEqual(['gw-1', 'gw-2']);
      expect(await ids({ limit: 10, gateway: 'gw-1' })).toEqual(['s-1', 's-2']);
      expect(await ids({ limit: 10, tags: { site: 'north' } })).toEqual(['gw-1', 's-1', 's-2']);
      expect(await ids({ limit: 10, tags: { site: 'north', line: 'b' } })).toEqual(['s-2']);
      expect(await ids({ limit: 10, text: '100%_' })).toEqual(['s-3']);
      expect(await ids({ limit: 10, text: '%' })).toEqual(['s-3']);
      expect(await ids({ limit: 10, text: "' OR 1=1 --" })).toEqual([]);
      expect(await ids({ limit: 10, tags: { "site' OR '1'='1": 'x' } })).toEqual([]);
      expect(await ids({ limit: 10, status: 'pending' })).toHaveLength(5);

      const p1 = await store.listDevices({ limit: 2 });
      expect(p1.items.map((d) => d.id)).toEqual(['gw-1', 'gw-2']);
      expect(p1.next).toBe('gw-2');
      const p2 = await store.listDevices({ limit: 2, after: p1.next! });
      expect(p2.items.map((d) => d.id)).toEqual(['s-1', 's-2']);
      const p3 = await store.listDevices({ limit: 2, after: p2.next! });
      expect(p3.items.map((d) => d.id)).toEqual(['s-3']);
      expect(p3.next).toBeNull();
      expect(await store.childrenOf('gw-1')).toEqual(['s-1', 's-2']);
      // The store survived the hostile input above.
      expect(await store.countDevices()).toBe(5);
    });

    it('patches devices and versions desired config', async () => {
      await store.insertDevices([{ id: 'p1', kind: 'device', tags: { a: '1' } }], T0);
      const d = await store.updateDevice(
        'p1',
        { name: 'Pump', tags: { b: '2' }, policy: { payloadSigning: 'optional' } },
        T0 + 1,
      );
      expect(d).toMatchObject({
        name: 'Pump',
        tags: { b: '2' },
        policy: { payloadSigning: 'optional' },
        updatedAt: T0 + 1,
      });
      const c1 = await store.updateDevice('p1', { desiredConfig: { batch: 1 } }, T0 + 2);
      const c2 = await store.updateDevice('p1', { desiredConfig: { batch: 2 } }, T0 + 3);
      expect(c1?.desiredConfigVersion).toBe(1);
      expect(c2).toMatchObject({ desiredConfig: { batch: 2 }, desiredConfigVersion: 2 });
      expect(await store.updateDevice('nope', { name: 'x' }, T0)).toBeNull();
    });

    it('completes an enrollment exactly once under 50 concurrent attempts', async () => {
      await store.insertDevices([{ id: 'e1', kind: 'device' }], T0);
      await store.insertEnrollment(enrollment('jti-00000001', 'e1'));
      const outcomes = await Promise.all(
        Array.from({ length: 50 }, (_, i) =>
          store.completeEnrollment('jti-00000001', key(`kid-${i}`), T0 + 10),
        ),
      );
      const ok = outcomes.filter((o) => o.ok);
      expect(ok).toHaveLength(1);
      expect(outcomes.filter((o) => !o.ok && o.reason === 'used')).toHaveLength(49);
      const d = await store.getDevice('e1');
      expect(d?.status).toBe('active');
      expect(d?.keys).toHaveLength(1);
      expect((await store.getEnrollment('jti-00000001'))?.usedAt).toBe(T0 + 10);
      expect((await store.deviceByKid(d!.keys[0]!.kid))?.id).toBe('e1');
    });

    it('refuses expired, unknown, revoked and duplicate-key enrollments', async () => {
      await store.insertDevices(
        [
          { id: 'x1', kind: 'device' },
          { id: 'x2', kind: 'device' },
          { id: 'x3', kind: 'device' },
        ],
        T0,
      );
      await store.insertEnrollment(enrollment('jti-expired1', 'x1', T0 + 5));
      expect(await store.completeEnrollment('jti-expired1', key('k1'), T0 + 5)).toEqual({
        ok: false,
        reason: 'expired',
      });
      expect(await store.completeEnrollment('jti-unknown1', key('k1'), T0)).toEqual({
        ok: false,
        reason: 'unknown',
      });
      await store.insertEnrollment(enrollment('jti-revoked1', 'x2'));
      await store.revokeDevice('x2', T0);
      expect(await store.completeEnrollment('jti-revoked1', key('k2'), T0)).toEqual({
        ok: false,
        reason: 'revoked',
      });
      await store.insertEnrollment(enrollment('jti-shared01', 'x3'));
      await store.insertEnrollment(enrollment('jti-shared02', 'x1'));
      expect((await store.completeEnrollment('jti-shared01', key('k-shared'), T0)).ok).toBe(true);
      expect(await store.completeEnrollment('jti-shared02', key('k-shared'), T0)).toEqual({
        ok: false,
        reason: 'key_in_use',
      });
      // A refused attempt consumed nothing.
      expect((await store.getEnrollment('jti-shared02'))?.usedAt).toBeNull();
    });

    it('revokes idempotently and keeps the first revocation time', async () => {
      await store.insertDevices([{ id: 'r1', kind: 'device' }], T0);
      await store.recordConnectivity([
        { deviceId: 'r1', online: true, lastSeen: T0 + 1, disconnectReason: null, replica: 'r1' },
      ]);
      const r = await store.revokeDevice('r1', T0 + 5);
      expect(r).toMatchObject({
        status: 'revoked',
        revokedAt: T0 + 5,
        connectivity: { online: false, disconnectReason: 'revoked' },
      });
      expect((await store.revokeDevice('r1', T0 + 9))?.revokedAt).toBe(T0 + 5);
      expect(await store.revokeDevice('missing', T0)).toBeNull();
    });

    it('records connectivity and reported state, and filters buffering devices', async () => {
      await store.insertDevices(
        [
          { id: 'c1', kind: 'gateway' },
          { id: 'c2', kind: 'gateway' },
          { id: 'c3', kind: 'gateway' },
        ],
        T0,
      );
      for (const [i, id] of ['c1', 'c2', 'c3'].entries()) {
        await store.insertEnrollment(enrollment(`jti-conn000${i}`, id));
        await store.completeEnrollment(`jti-conn000${i}`, key(`kc-${i}`), T0);
      }
      await store.recordConnectivity([
        { deviceId: 'c1', online: true, lastSeen: T0 + 100, disconnectReason: null, replica: 'r1' },
        {
          deviceId: 'c2',
          online: false,
          lastSeen: T0 + 50,
          disconnectReason: 'keepalive',
          replica: null,
        },
        {
          deviceId: 'c3',
          online: false,
          lastSeen: T0 + 50,
          disconnectReason: 'network',
          replica: null,
        },
      ]);
      // last_seen never moves backwards.
      await store.recordConnectivity([
        { deviceId: 'c1', online: true, lastSeen: T0 + 10, disconnectReason: null, replica: 'r1' },
      ]);
      await store.recordReportedState('c2', { v: 1, outbox: { pending: 42 } }, 42, T0 + 60);
      const c1 = await store.getDevice('c1');
      expect(c1?.connectivity).toEqual({
        online: true,
        lastSeen: T0 + 100,
        disconnectReason: null,
      });
      const c2 = await store.getDevice('c2');
      expect(c2).toMatchObject({
        reportedState: { v: 1, outbox: { pending: 42 } },
        reportedAt: T0 + 60,
        connectivity: { online: false, disconnectReason: 'keepalive' },
      });
      const ids = async (status: 'online' | 'offline' | 'buffering') =>
        (await store.listDevices({ limit: 10, status })).items.map((d) => d.id);
      expect(await ids('online')).toEqual(['c1']);
      expect(await ids('offline')).toEqual(['c2', 'c3']);
      expect(await ids('buffering')).toEqual(['c2']);
    });

    describe('markReplicaOffline', () => {
      const online = (deviceId: string, lastSeen: number, replica: string | null) => ({
        deviceId,
        online: true,
        lastSeen,
        disconnectReason: null,
        replica,
      });
      const connectivityOf = async (id: string) => (await store.getDevice(id))?.connectivity;

      beforeEach(async () => {
        await store.insertDevices(
          ['m1', 'm2', 'm3', 'm4', 'm5'].map((id) => ({ id, kind: 'device' as const })),
          T0,
        );
        await store.recordConnectivity([
          online('m1', T0 + 10, 'r1'),
          online('m2', T0 + 20, 'r1'),
          online('m3', T0 + 30, 'r2'),
          {
            deviceId: 'm4',
            online: false,
            lastSeen: T0 + 40,
            disconnectReason: 'keepalive_timeout',
            replica: null,
          },
        ]);
      });

      it("records offline the replica's online devices only, keeping last seen", async () => {
        // m2 reconnected through r2 before r1 was found dead: its row names r2 now.
        await store.recordConnectivity([online('m2', T0 + 50, 'r2')]);
        expect(await store.markReplicaOffline('r1', 'replica_lost')).toEqual([
          { deviceId: 'm1', lastSeen: T0 + 10 },
        ]);
        expect(await connectivityOf('m1')).toEqual({
          online: false,
          lastSeen: T0 + 10,
          disconnectReason: 'replica_lost',
        });
        expect(await connectivityOf('m2')).toEqual({
          online: true,
          lastSeen: T0 + 50,
          disconnectReason: null,
        });
        expect(await connectivityOf('m3')).toMatchObject({ online: true });
        // Offline or never connected: untouched.
        expect(await connectivityOf('m4')).toEqual({
          online: false,
          lastSeen: T0 + 40,
          disconnectReason: 'keepalive_timeout',
        });
        expect(await connectivityOf('m5')).toEqual({
          online: false,
          lastSeen: null,
          disconnectReason: null,
        });
        // Nothing left to change the second time; other replicas' devices stay.
        expect(await store.markReplicaOffline('r1', 'replica_lost')).toEqual([]);
        expect(await store.markReplicaOffline('r9', 'replica_lost')).toEqual([]);
        expect(await connectivityOf('m3')).toMatchObject({ online: true });
      });

      it('with no replica, records every online device offline, whoever recorded it', async () => {
        expect(await store.markReplicaOffline(null, 'server_restart')).toEqual([
          { deviceId: 'm1', lastSeen: T0 + 10 },
          { deviceId: 'm2', lastSeen: T0 + 20 },
          { deviceId: 'm3', lastSeen: T0 + 30 },
        ]);
        for (const id of ['m1', 'm2', 'm3']) {
          expect(await connectivityOf(id)).toMatchObject({
            online: false,
            disconnectReason: 'server_restart',
          });
        }
        expect((await connectivityOf('m4'))?.disconnectReason).toBe('keepalive_timeout');
        expect(await store.markReplicaOffline(null, 'server_restart')).toEqual([]);
      });

      it('a device recorded online again is online, and belongs to its new replica', async () => {
        await store.markReplicaOffline('r1', 'server_restart');
        await store.recordConnectivity([online('m1', T0 + 60, 'r2')]);
        expect(await connectivityOf('m1')).toEqual({
          online: true,
          lastSeen: T0 + 60,
          disconnectReason: null,
        });
        expect(await store.markReplicaOffline('r1', 'server_restart')).toEqual([]);
        expect(await store.markReplicaOffline('r2', 'replica_lost')).toEqual([
          { deviceId: 'm1', lastSeen: T0 + 60 },
          { deviceId: 'm3', lastSeen: T0 + 30 },
        ]);
      });
    });

    it('stores API tokens by hash, revokes them and throttles last-used writes', async () => {
      await store.insertApiToken({
        id: 'tok-1',
        name: 'ci',
        roles: ['viewer', 'operator'],
        hash: 'ab'.repeat(32),
        createdBy: 'bootstrap',
        createdAt: T0,
        expiresAt: null,
        revokedAt: null,
        lastUsedAt: null,
      });
      expect(await store.getApiToken('tok-1')).toMatchObject({
        roles: ['viewer', 'operator'],
        hash: 'ab'.repeat(32),
      });
      await store.touchApiToken('tok-1', T0 + 1000);
      await store.touchApiToken('tok-1', T0 + 2000);
      expect((await store.getApiToken('tok-1'))?.lastUsedAt).toBe(T0 + 1000);
      await store.touchApiToken('tok-1', T0 + 70_000);
      expect((await store.getApiToken('tok-1'))?.lastUsedAt).toBe(T0 + 70_000);
      expect((await store.revokeApiToken('tok-1', T0 + 5))?.revokedAt).toBe(T0 + 5);
      expect(await store.listApiTokens()).toHaveLength(1);
      expect(await store.getApiToken('missing')).toBeNull();
    });

    it('keeps the first service key when several replicas race to create one', async () => {
      const results = await Promise.all(
        ['k-a', 'k-b', 'k-c'].map((kid, i) =>
          store.ensureServiceKey({ kid, privateJwk: { kty: 'OKP', d: kid }, createdAt: T0 + i }),
        ),
      );
      const first = results[0]![0]!.kid;
      for (const r of results) {
        expect(r).toHaveLength(1);
        expect(r[0]!.kid).toBe(first);
      }
    });
  });
}
