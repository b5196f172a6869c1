import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import type {
  FirmwareRecord,
  NewRolloutDevice,
  OtaStore,
  ReleaseKeyRecord,
  RolloutRecord,
} from './ota-store.js';
import { initialState, type RolloutPlan } from './rollout.js';

/**
 * The contract every OtaStore implementation passes. `make` returns a fresh, migrated store
 * on an empty database and a way to open another connection to the same database (a second
 * process or replica).
 */
export function otaStoreContract(
  name: string,
  make: () => Promise<{ store: OtaStore; twin: () => Promise<OtaStore> }>,
  teardown: () => Promise<void> = async () => {},
): void {
  describe(`OtaStore contract: ${name}`, () => {
    let store: OtaStore;
    let twin: () => Promise<OtaStore>;
    const opened: OtaStore[] = [];
    const T0 = 1_700_000_000_000;

    const key = (kid: string, extra: Partial<ReleaseKeyRecord> = {}): ReleaseKeyRecord => ({
      kid,
      alg: 'EdDSA',
      jwk: { kty: 'OKP', crv: 'Ed25519', x: `${kid}x`.padEnd(43, 'A'), kid, alg: 'EdDSA' },
      name: `key ${kid}`,
      createdBy: 'tok-1',
      createdAt: T0,
      revokedAt: null,
      revokedBy: null,
      ...extra,
    });

    const firmware = (id: string, extra: Partial<FirmwareRecord> = {}): FirmwareRecord => ({
      id,
      name: 'Boiler controller',
      component: 'main',
      version: '1.2.0',
      hardware: ['esp32-c3', 'esp32-s3'],
      size: 123_456,
      sha256: 'ab'.repeat(32),
      minVersion: '1.0.0',
      manifestCreatedAt: 1_700_000_000,
      manifest: 'eyJh.eyJi.c2ln',
      kid: 'k1',
      uploadedBy: 'tok-1',
      uploadedAt: T0,
      ...extra,
    });

    const plan: RolloutPlan = {
      waves: [10, 50, 100],
      soakMs: 600_000,
      abortFailureRate: 0.1,
      minDevices: 5,
      offerTimeoutMs: 900_000,
      updateTimeoutMs: 3_600_000,
    };

    const rollout = (id: string, extra: Partial<RolloutRecord> = {}): RolloutRecord => ({
      ...initialState(plan),
      id,
      firmwareId: 'fw-1',
      component: 'main',
      version: '1.2.0',
      target: { tags: { site: 'north' }, devices: ['d-1'] },
      plan,
      rollbackTarget: null,
      createdBy: 'tok-1',
      createdAt: T0,
      updatedAt: T0,
      revision: 0,
      ...extra,
    });

    const targets = (n: number, prefix = 'dev'): NewRolloutDevice[] =>
      Array.from({ length: n }, (_, i) => ({
        deviceId: `${prefix}-${String(i).padStart(4, '0')}`,
        position: i,
        wave: i < n / 2 ? 0 : 1,
      }));

    beforeEach(async () => {
      ({ store, twin } = await make());
      opened.push(store);
    });

    afterEach(async () => {
      await Promise.all(opened.splice(0).map((s) => s.close()));
    });

    afterAll(teardown);

    const open = async () => {
      const s = await twin();
      opened.push(s);
      return s;
    };

    describe('release keys', () => {
      it('adds keys once, lists them oldest first, revoked ones too', async () => {
        expect(await store.addReleaseKey(key('k2', { createdAt: T0 + 1 }))).toEqual({
          created: true,
          key: key('k2', { createdAt: T0 + 1 }),
        });
        await store.addReleaseKey(key('k1'));
        const again = await store.addReleaseKey(key('k1', { name: 'other', createdAt: T0 + 9 }));
        expect(again).toEqual({ created: false, key: key('k1') });
        expect((await store.listReleaseKeys()).map((k) => k.kid)).toEqual(['k1', 'k2']);
      });

      it('revokes a key but never the last one not revoked', async () => {
        await store.addReleaseKey(key('k1'));
        expect(await store.revokeReleaseKey('k1', 'tok-2', T0 + 5)).toEqual({
          outcome: 'last_key',
        });
        await store.addReleaseKey(key('k2'));
        expect(await store.revokeReleaseKey('k1', 'tok-2', T0 + 5)).toEqual({
          outcome: 'revoked',
          key: key('k1', { revokedAt: T0 + 5, revokedBy: 'tok-2' }),
        });
        expect((await store.revokeReleaseKey('k1', 'tok-3', T0 + 6)).outcome).toBe('already');
        expect(await store.revokeReleaseKey('k2', 'tok-2', T0 + 7)).toEqual({
          outcome: 'last_key',
        });
        expect(await store.revokeReleaseKey('nope', 'tok-2', T0 + 7)).toEqual({
          outcome: 'not_found',
        });
        const listed = await store.listReleaseKeys();
        expect(listed.map((k) => [k.kid, k.revokedAt])).toEqual([
          ['k1', T0 + 5],
          ['k2', null],
        ]);
      });

      it('leaves at least one key when two replicas revoke the last two at once', async () => {
        await store.addReleaseKey(key('k1'));
        await store.addReleaseKey(key('k2'));
        const other = await open();
        const outcomes = await Promise.all([
          store.revokeReleaseKey('k1', 'a', T0 + 1),
          other.revokeReleaseKey('k2', 'b', T0 + 1),
        ]);
        expect(outcomes.map((o) => o.outcome).sort()).toEqual(['last_key', 'revoked']);
        expect((await store.listReleaseKeys()).filter((k) => k.revokedAt === null)).toHaveLength(1);
      });

      it('versions the key set and remembers what each device was sent', async () => {
        expect(await store.releaseKeySetVersion()).toBe(0);
        await store.addReleaseKey(key('k1'));
        await store.addReleaseKey(key('k2'));
        // Added or changed at the same millisecond still counts.
        expect(await store.releaseKeySetVersion()).toBe(2);
        await store.addReleaseKey(key('k2'));
        expect(await store.releaseKeySetVersion()).toBe(2);
        await store.revokeReleaseKey('k1', 'tok', T0);
        expect(await store.releaseKeySetVersion()).toBe(3);
        await store.revokeReleaseKey('k1', 'tok', T0);
        expect(await store.releaseKeySetVersion()).toBe(3);

        expect(await store.releaseKeysSentTo('d-1')).toBe(0);
        await store.recordReleaseKeysSent(['d-1', 'd-2'], 2);
        await store.recordReleaseKeysSent(['d-1'], 3);
        // An older version arriving late does not move it back.
        await store.recordReleaseKeysSent(['d-1'], 2);
        expect(await store.releaseKeysSentTo('d-1')).toBe(3);
        expect(await store.releaseKeysSentTo('d-2')).toBe(2);
        await store.recordReleaseKeysSent([], 4);
      });
    });

    describe('firmware', () => {
      it('stores a firmware record and returns it as written', async () => {
        expect(await store.insertFirmware(firmware('fw-1'))).toEqual({ created: true });
        expect(await store.getFirmware('fw-1')).toEqual(firmware('fw-1'));
        expect(await store.getFirmware('nope')).toBeNull();
        expect(await store.findFirmware('main', '1.2.0')).toEqual(firmware('fw-1'));
        expect(await store.findFirmware('main', '1.2.1')).toBeNull();
      });

      it('refuses a second firmware of one component and version, returning the first', async () => {
        await store.insertFirmware(firmware('fw-1'));
        const second = await store.insertFirmware(firmware('fw-2', { sha256: 'cd'.repeat(32) }));
        expect(second).toEqual({ created: false, existing: firmware('fw-1') });
        expect(await store.insertFirmware(firmware('fw-3', { component: 'radio' }))).toEqual({
          created: true,
        });
      });

      it('lists newest first, by component, in pages', async () => {
        for (let i = 0; i < 5; i++) {
          await store.insertFirmware(
            firmware(`fw-${i}`, {
              version: `1.${i}.0`,
              component: i % 2 === 0 ? 'main' : 'radio',
              uploadedAt: T0 + i,
            }),
          );
        }
        const first = await store.listFirmware({ limit: 2 });
        expect(first.items.map((f) => f.id)).toEqual(['fw-4', 'fw-3']);
        expect(first.next).toBe('fw-3');
        const second = await store.listFirmware({ limit: 2, after: first.next! });
        expect(second.items.map((f) => f.id)).toEqual(['fw-2', 'fw-1']);
        const last = await store.listFirmware({ limit: 2, after: second.next! });
        expect(last).toEqual({ items: [expect.objectContaining({ id: 'fw-0' })], next: null });
        const main = await store.listFirmware({ limit: 10, component: 'main' });
        expect(main.items.map((f) => f.id)).toEqual(['fw-4', 'fw-2', 'fw-0']);
      });
    });

    describe('rollouts', () => {
      beforeEach(async () => {
        await store.insertFirmware(firmware('fw-1'));
        await store.insertFirmware(firmware('fw-2', { version: '1.3.0' }));
      });

      it('stores a rollout with its devices in order', async () => {
        await store.insertRollout(rollout('r-1'), targets(4).reverse());
        expect(await store.getRollout('r-1')).toEqual(rollout('r-1'));
        const devices = await store.listRolloutDevices('r-1');
        expect(devices.map((d) => [d.deviceId, d.position, d.wave])).toEqual([
          ['dev-0000', 0, 0],
          ['dev-0001', 1, 0],
          ['dev-0002', 2, 1],
          ['dev-0003', 3, 1],
        ]);
        expect(devices[0]).toEqual({
          rolloutId: 'r-1',
          deviceId: 'dev-0000',
          position: 0,
          wave: 0,
          state: 'pending',
          reason: null,
          detail: null,
          version: null,
          offeredAt: null,
          updatedAt: T0,
          revision: 0,
        });
        expect(await store.getRolloutDevice('r-1', 'dev-0003')).toMatchObject({ position: 3 });
        expect(await store.getRolloutDevice('r-1', 'nope')).toBeNull();
        expect(await store.getRollout('nope')).toBeNull();
      });

      it('writes a rollout and its devices all or nothing', async () => {
        const twice = [...targets(3), { deviceId: 'dev-0000', position: 9, wave: 1 }];
        await expect(store.insertRollout(rollout('r-1'), twice)).rejects.toThrow();
        expect(await store.getRollout('r-1')).toBeNull();
        expect(await store.listRolloutDevices('r-1')).toEqual([]);
      });

      it('stores thousands of devices in one rollout', async () => {
        await store.insertRollout(rollout('r-big'), targets(5000));
        const devices = await store.listRolloutDevices('r-big');
        expect(devices).toHaveLength(5000);
        expect(devices.at(-1)).toMatchObject({ deviceId: 'dev-4999', position: 4999 });
        const ids = devices.map((d) => d.deviceId);
        expect(await store.markOffered('r-big', ids, T0 + 1)).toHaveLength(5000);
        expect(await store.busyDevices('main', ids)).toHaveLength(5000);
        expect(await store.wasOffered('fw-1', ['someone', 'dev-4999'])).toBe(true);
      });

      it('lists newest first, filtered by status, in pages', async () => {
        for (let i = 0; i < 4; i++) {
          await store.insertRollout(
            rollout(`r-${i}`, {
              createdAt: T0 + i,
              status: i === 1 ? 'completed' : 'running',
            }),
            [],
          );
        }
        const first = await store.listRollouts({ limit: 2 });
        expect(first.items.map((r) => r.id)).toEqual(['r-3', 'r-2']);
        const second = await store.listRollouts({ limit: 2, after: first.next! });
        expect(second).toEqual({
          items: [expect.objectContaining({ id: 'r-1' }), expect.objectContaining({ id: 'r-0' })],
          next: null,
        });
        const running = await store.listRollouts({ limit: 10, status: ['running'] });
        expect(running.items.map((r) => r.id)).toEqual(['r-3', 'r-2', 'r-0']);
        expect((await store.listRollouts({ limit: 10, status: [] })).items).toEqual([]);
      });

      it('updates a rollout only from the revision it was read at', async () => {
        await store.insertRollout(rollout('r-1'), []);
        const change = {
          status: 'paused' as const,
          currentWave: 1,
          waves: [
            { startedAt: T0, completedAt: T0 + 5 },
            { startedAt: T0 + 6, completedAt: null },
            { startedAt: null, completedAt: null },
          ],
          reason: null,
          finishedAt: null,
          updatedAt: T0 + 7,
        };
        const updated = await store.updateRollout('r-1', 0, change);
        expect(updated).toEqual({ ...rollout('r-1'), ...change, revision: 1 });
        // A writer that read revision 0 lost: nothing is written.
        expect(await store.updateRollout('r-1', 0, { ...change, status: 'cancelled' })).toBeNull();
        expect((await store.getRollout('r-1'))?.status).toBe('paused');
        expect(await store.updateRollout('nope', 0, change)).toBeNull();
      });

      it('updates a device only from the revision it was read at', async () => {
        await store.insertRollout(rollout('r-1'), targets(2));
        const change = {
          state: 'downloading' as const,
          reason: null,
          detail: '42%',
          version: null,
          updatedAt: T0 + 3,
        };
        const updated = await store.updateRolloutDevice('r-1', 'dev-0000', 0, change);
        expect(updated).toMatchObject({ ...change, revision: 1, position: 0 });
        expect(
          await store.updateRolloutDevice('r-1', 'dev-0000', 0, { ...change, state: 'failed' }),
        ).toBeNull();
        const done = await store.updateRolloutDevice('r-1', 'dev-0000', 1, {
          state: 'rolled_back',
          reason: 'health check failed',
          detail: null,
          version: '1.1.0',
          updatedAt: T0 + 4,
        });
        expect(done).toMatchObject({ state: 'rolled_back', version: '1.1.0', revision: 2 });
      });

      it('offers each pending device once, and only while the rollout runs', async () => {
        await store.insertRollout(rollout('r-1'), targets(4));
        const moved = await store.markOffered('r-1', ['dev-0000', 'dev-0001', 'ghost'], T0 + 1);
        expect(moved.sort()).toEqual(['dev-0000', 'dev-0001']);
        expect(await store.markOffered('r-1', ['dev-0000'], T0 + 2)).toEqual([]);
        expect(await store.getRolloutDevice('r-1', 'dev-0000')).toMatchObject({
          state: 'offered',
          offeredAt: T0 + 1,
          updatedAt: T0 + 1,
          revision: 1,
        });
        await store.updateRollout('r-1', 0, { ...rollout('r-1'), status: 'paused' });
        expect(await store.markOffered('r-1', ['dev-0002'], T0 + 3)).toEqual([]);
        expect(await store.markOffered('r-1', [], T0 + 3)).toEqual([]);
      });

      it('offers each device once when two replicas offer at the same time', async () => {
        await store.insertRollout(rollout('r-1'), targets(200));
        const other = await open();
        const ids = (await store.listRolloutDevices('r-1')).map((d) => d.deviceId);
        const [a, b] = await Promise.all([
          store.markOffered('r-1', ids, T0 + 1),
          other.markOffered('r-1', [...ids].reverse(), T0 + 1),
        ]);
        expect([...a, ...b].sort()).toEqual(ids);
      });

      it('finds offers a device has not answered in running rollouts', async () => {
        await store.insertRollout(rollout('r-1', { createdAt: T0 }), targets(2));
        await store.insertRollout(
          rollout('r-2', { firmwareId: 'fw-2', component: 'radio', createdAt: T0 + 1 }),
          targets(2),
        );
        await store.markOffered('r-1', ['dev-0000'], T0 + 1);
        await store.markOffered('r-2', ['dev-0000'], T0 + 1);
        expect((await store.offersAwaiting('dev-0000')).map((d) => d.rolloutId)).toEqual([
          'r-1',
          'r-2',
        ]);
        await store.updateRollout('r-2', 0, { ...rollout('r-2'), status: 'paused' });
        expect((await store.offersAwaiting('dev-0000')).map((d) => d.rolloutId)).toEqual(['r-1']);
        await store.updateRolloutDevice('r-1', 'dev-0000', 1, {
          state: 'downloading',
          reason: null,
          detail: null,
          version: null,
          updatedAt: T0 + 2,
        });
        expect(await store.offersAwaiting('dev-0000')).toEqual([]);
        expect(await store.offersAwaiting('dev-0001')).toEqual([]);
      });

      it('names devices busy in an active rollout of the same component', async () => {
        await store.insertRollout(rollout('r-1'), targets(3));
        await store.insertRollout(
          rollout('r-2', { component: 'radio', firmwareId: 'fw-2' }),
          targets(1, 'other'),
        );
        await store.markOffered('r-1', ['dev-0000'], T0);
        await store.updateRolloutDevice('r-1', 'dev-0000', 1, {
          state: 'succeeded',
          reason: null,
          detail: null,
          version: '1.2.0',
          updatedAt: T0 + 1,
        });
        const busy = await store.busyDevices('main', ['dev-0000', 'dev-0001', 'other-0000', 'x']);
        expect(busy).toEqual([{ deviceId: 'dev-0001', rolloutId: 'r-1' }]);
        expect(await store.busyDevices('radio', ['other-0000'])).toEqual([
          { deviceId: 'other-0000', rolloutId: 'r-2' },
        ]);
        await store.updateRollout('r-1', 0, { ...rollout('r-1'), status: 'cancelled' });
        expect(await store.busyDevices('main', ['dev-0001'])).toEqual([]);
        expect(await store.busyDevices('main', [])).toEqual([]);
      });

      it('knows which firmware a device (or its gateway) was offered', async () => {
        await store.insertRollout(rollout('r-1'), targets(2));
        expect(await store.wasOffered('fw-1', ['dev-0000'])).toBe(false);
        await store.markOffered('r-1', ['dev-0000'], T0);
        expect(await store.wasOffered('fw-1', ['gw-1', 'dev-0000'])).toBe(true);
        expect(await store.wasOffered('fw-2', ['dev-0000'])).toBe(false);
        expect(await store.wasOffered('fw-1', ['dev-0001'])).toBe(false);
        expect(await store.wasOffered('fw-1', [])).toBe(false);
      });
    });
  });
}
