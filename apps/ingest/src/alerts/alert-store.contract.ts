import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AlertStore, AlertWrite, NewDelivery, StateCommit } from './alert-store.js';
import { INITIAL_STATE, type RuleState } from './evaluate.js';
import type { RuleRecord } from './rule.js';

/**
 * The contract every AlertStore implementation passes. `make` returns a fresh, migrated store
 * on an empty database and a way to open another connection to the same database (a second
 * process or replica).
 */
export function alertStoreContract(
  name: string,
  make: () => Promise<{ store: AlertStore; twin: () => Promise<AlertStore> }>,
  teardown: () => Promise<void> = async () => {},
): void {
  describe(`AlertStore contract: ${name}`, () => {
    let store: AlertStore;
    let twin: () => Promise<AlertStore>;
    const opened: AlertStore[] = [];
    const T0 = 1_700_000_000_000;

    const rule = (id: string, extra: Partial<RuleRecord> = {}): RuleRecord => ({
      id,
      name: `rule ${id}`,
      enabled: true,
      spec: {
        kind: 'threshold',
        metric: 'temperature',
        above: 90,
        forMs: 0,
        clearForMs: 0,
        scope: {},
        severity: 'warning',
        channels: [{ type: 'webhook', url: 'http://127.0.0.1:9/hook' }],
        backfill: 'record',
        flap: null,
      },
      createdBy: 'tok-1',
      createdAt: T0,
      updatedAt: T0,
      deletedAt: null,
      ...extra,
    });

    const alert = (id: string, extra: Partial<AlertWrite> = {}): AlertWrite => ({
      id,
      ruleId: 'r1',
      device: 'dev-1',
      metric: 'temperature',
      severity: 'warning',
      status: 'firing',
      openedAt: T0,
      firedAt: T0,
      closedAt: null,
      value: 95.5,
      peak: 97.25,
      paged: true,
      quiet: null,
      flapping: false,
      flaps: 0,
      summary: 'temperature > 90',
      updatedAt: T0,
      ...extra,
    });

    const firing = (alertId: string): RuleState => ({
      ...INITIAL_STATE,
      phase: 'firing',
      lastAt: T0,
      alert: {
        id: alertId,
        status: 'firing',
        openedAt: T0,
        firedAt: T0,
        closedAt: null,
        value: 95.5,
        peak: 95.5,
        paged: true,
        quiet: null,
        flapping: false,
        flaps: 0,
        lastSeenAt: null,
      },
    });

    const delivery = (id: string, extra: Partial<NewDelivery> = {}): NewDelivery => ({
      id,
      alertId: 'a1',
      ruleId: 'r1',
      device: 'dev-1',
      event: 'alert.firing',
      url: 'http://127.0.0.1:9/hook',
      body: JSON.stringify({ id, n: 1 }),
      createdAt: T0,
      ...extra,
    });

    const commit = (extra: Partial<StateCommit> = {}): StateCommit => ({
      ruleId: 'r1',
      device: 'dev-1',
      expectedVersion: 0,
      state: firing('a1'),
      alerts: [alert('a1')],
      deliveries: [],
      now: T0,
      ...extra,
    });

    const other = async () => {
      const s = await twin();
      opened.push(s);
      return s;
    };

    beforeEach(async () => {
      ({ store, twin } = await make());
      await store.insertRule(rule('r1'), 'secret-1');
    });
    afterEach(async () => {
      await Promise.all(opened.splice(0).map((s) => s.close()));
      await store?.close();
    });
    afterAll(teardown);

    it('migrates idempotently and answers ping', async () => {
      await store.migrate();
      await store.migrate();
      await expect(store.ping()).resolves.toBeUndefined();
    });

    it('keeps rules, their secrets apart, and deleted rules out of the list', async () => {
      await store.insertRule(rule('r2', { createdAt: T0 + 1 }), 'secret-2');
      expect((await store.listRules()).map((r) => r.id)).toEqual(['r1', 'r2']);
      expect(await store.getRule('r1')).toEqual(rule('r1'));
      expect(JSON.stringify(await store.getRule('r1'))).not.toContain('secret-1');
      expect(await store.ruleSecret('r2')).toBe('secret-2');
      expect(await store.setRuleSecret('r2', 'secret-2b', T0 + 5)).toBe(true);
      expect(await store.ruleSecret('r2')).toBe('secret-2b');

      const renamed = { ...rule('r2'), name: 'renamed', enabled: false, updatedAt: T0 + 9 };
      expect(await store.updateRule(renamed)).toBe(true);
      expect(await store.getRule('r2')).toMatchObject({ name: 'renamed', enabled: false });
      expect(await store.updateRule({ ...renamed, deletedAt: T0 + 10 })).toBe(true);
      expect((await store.listRules()).map((r) => r.id)).toEqual(['r1']);
      expect((await store.getRule('r2'))?.deletedAt).toBe(T0 + 10);
      expect(await store.updateRule({ ...renamed, name: 'again' })).toBe(false);
      expect(await store.setRuleSecret('r2', 'x', T0)).toBe(false);
      expect(await store.getRule('nope')).toBeNull();
    });

    it('commits state with an optimistic version and refuses a stale writer', async () => {
      expect(await store.stateVersion('r1', 'dev-1')).toBe(0);
      expect(await store.commit(commit())).toEqual({ ok: true, version: 1 });
      expect(await store.commit(commit())).toEqual({ ok: false, conflict: 'state' });
      const stored = await store.getState('r1', 'dev-1');
      expect(stored).toEqual({ ruleId: 'r1', device: 'dev-1', version: 1, state: firing('a1') });
      const ok = { ...INITIAL_STATE, lastAt: T0 + 5 };
      const resolved = alert('a1', { status: 'resolved', closedAt: T0 + 5 });
      expect(
        await store.commit(commit({ expectedVersion: 1, state: ok, alerts: [resolved] })),
      ).toEqual({ ok: true, version: 2 });
      expect(await store.commit(commit({ expectedVersion: 1, state: ok, alerts: [] }))).toEqual({
        ok: false,
        conflict: 'state',
      });
      expect(await store.stateVersion('r1', 'dev-1')).toBe(2);
      expect(await store.getAlert('a1')).toMatchObject({ status: 'resolved', closedAt: T0 + 5 });
    });

    it('never holds two open alerts for one rule and device, and writes nothing of a refused commit', async () => {
      await store.commit(commit());
      const refused = await store.commit(
        commit({
          expectedVersion: 1,
          state: firing('a2'),
          alerts: [alert('a2')],
          deliveries: [delivery('d-refused')],
        }),
      );
      expect(refused).toEqual({ ok: false, conflict: 'open_alert' });
      expect(await store.stateVersion('r1', 'dev-1')).toBe(1);
      expect(await store.getAlert('a2')).toBeNull();
      expect(await store.getDelivery('d-refused')).toBeNull();

      // Closing one and opening the next in one commit is fine, in that order.
      const next = await store.commit(
        commit({
          expectedVersion: 1,
          state: firing('a2'),
          alerts: [alert('a1', { status: 'resolved', closedAt: T0 + 1 }), alert('a2')],
        }),
      );
      expect(next).toEqual({ ok: true, version: 2 });
      // Another device of the same rule has its own alert.
      expect(
        await store.commit(commit({ device: 'dev-2', alerts: [alert('b1', { device: 'dev-2' })] })),
      ).toMatchObject({ ok: true });
    });

    it('commits many changes at once, each on its own', async () => {
      await store.commit(commit());
      const results = await store.commitMany([
        commit({
          device: 'dev-2',
          alerts: [alert('m2', { device: 'dev-2' })],
          state: firing('m2'),
        }),
        // A stale version: refused, alone.
        commit({ deliveries: [delivery('m-stale')] }),
        // A second open alert for dev-1: refused, alone.
        commit({
          expectedVersion: 1,
          alerts: [alert('m3')],
          state: firing('m3'),
          deliveries: [delivery('m-second')],
        }),
        commit({
          device: 'dev-4',
          alerts: [alert('m4', { device: 'dev-4' })],
          state: firing('m4'),
          deliveries: [delivery('m4-d', { alertId: 'm4', device: 'dev-4' })],
        }),
      ]);
      expect(results).toEqual([
        { ok: true, version: 1 },
        { ok: false, conflict: 'state' },
        { ok: false, conflict: 'open_alert' },
        { ok: true, version: 1 },
      ]);
      expect(await store.getAlert('m2')).not.toBeNull();
      expect(await store.getAlert('m3')).toBeNull();
      expect(await store.getAlert('m4')).not.toBeNull();
      expect(await store.getDelivery('m-stale')).toBeNull();
      expect(await store.getDelivery('m-second')).toBeNull();
      expect(await store.getDelivery('m4-d')).not.toBeNull();
      expect(await store.stateVersion('r1', 'dev-1')).toBe(1);
      expect(await store.commitMany([])).toEqual([]);
    });

    it('lets exactly one of many concurrent writers on several connections open an alert', async () => {
      const writers = [store, await other(), await other()];
      const results = await Promise.all(
        Array.from({ length: 30 }, (_, i) =>
          writers[i % writers.length]!.commit(
            commit({
              state: firing(`c${i}`),
              alerts: [alert(`c${i}`)],
              deliveries: [delivery(`dc${i}`, { alertId: `c${i}` })],
            }),
          ),
        ),
      );
      expect(results.filter((r) => r.ok)).toHaveLength(1);
      const page = await store.listAlerts({ limit: 100, status: ['pending', 'firing'] });
      expect(page.items).toHaveLength(1);
      const winner = page.items[0]!.id;
      const claimed = await store.claimDeliveries(T0, 100, 1000);
      expect(claimed.map((d) => d.alertId)).toEqual([winner]);
    });

    it('lists open states with their versions for the timers after a restart', async () => {
      await store.insertRule(rule('r-gone', { deletedAt: T0 }), 's');
      await store.commit(commit());
      await store.commit(commit({ device: 'dev-ok', state: INITIAL_STATE, alerts: [] }));
      await store.commit(
        commit({
          ruleId: 'r-gone',
          alerts: [alert('g1', { ruleId: 'r-gone' })],
          state: firing('g1'),
        }),
      );
      const active = await store.listActiveStates();
      expect(active.map((s) => [s.ruleId, s.device, s.version, s.state.phase])).toEqual([
        ['r1', 'dev-1', 1, 'firing'],
      ]);
    });

    it('lists alerts newest first, filtered, paged, with the rule name', async () => {
      await store.insertRule(rule('r2'), 's2');
      const rows = [
        alert('x1', { device: 'd1', openedAt: T0 + 1, status: 'resolved', closedAt: T0 + 2 }),
        alert('x2', { device: 'd2', openedAt: T0 + 2, severity: 'critical' }),
        alert('x3', { device: 'd3', openedAt: T0 + 2, ruleId: 'r2' }),
        alert('x4', { device: 'd4', openedAt: T0 + 3, status: 'pending', firedAt: null }),
      ];
      for (const a of rows) {
        await store.commit(
          commit({ ruleId: a.ruleId, device: a.device, alerts: [a], state: firing(a.id) }),
        );
      }
      const all = await store.listAlerts({ limit: 10 });
      expect(all.items.map((a) => a.id)).toEqual(['x4', 'x3', 'x2', 'x1']);
      expect(all.items[1]).toMatchObject({ ruleName: 'rule r2', value: 95.5, peak: 97.25 });
      expect(all.next).toBeNull();

      const p1 = await store.listAlerts({ limit: 2 });
      expect(p1.items.map((a) => a.id)).toEqual(['x4', 'x3']);
      const p2 = await store.listAlerts({ limit: 2, after: p1.next! });
      expect(p2.items.map((a) => a.id)).toEqual(['x2', 'x1']);

      const ids = async (f: Parameters<AlertStore['listAlerts']>[0]) =>
        (await store.listAlerts(f)).items.map((a) => a.id);
      expect(await ids({ limit: 10, status: ['firing'] })).toEqual(['x3', 'x2']);
      expect(await ids({ limit: 10, status: ['pending', 'resolved'] })).toEqual(['x4', 'x1']);
      expect(await ids({ limit: 10, ruleId: 'r2' })).toEqual(['x3']);
      expect(await ids({ limit: 10, device: 'd2' })).toEqual(['x2']);
      expect(await ids({ limit: 10, severity: 'critical' })).toEqual(['x2']);
      expect(await ids({ limit: 10, acknowledged: true })).toEqual([]);
      expect(await ids({ limit: 10, device: "d1' OR 1=1 --" })).toEqual([]);
    });

    it('acknowledges an open alert once, queues its deliveries once, and keeps it through engine writes', async () => {
      await store.commit(commit());
      const acks = await Promise.all(
        Array.from({ length: 5 }, (_, i) =>
          store.acknowledge('a1', `op-${i}`, T0 + 10, [
            delivery(`ack-${i}`, { event: 'alert.acknowledged' }),
          ]),
        ),
      );
      expect(acks.filter((a) => a.outcome === 'acknowledged')).toHaveLength(1);
      expect(acks.filter((a) => a.outcome === 'already')).toHaveLength(4);
      const claimed = await store.claimDeliveries(T0 + 10, 100, 1000);
      expect(claimed).toHaveLength(1);

      await store.commit(
        commit({
          expectedVersion: 1,
          state: INITIAL_STATE,
          alerts: [alert('a1', { status: 'resolved', closedAt: T0 + 20, peak: 99 })],
        }),
      );
      const after = await store.getAlert('a1');
      expect(after).toMatchObject({ status: 'resolved', peak: 99, acknowledgedAt: T0 + 10 });
      expect(after?.acknowledgedBy).toMatch(/^op-\d$/);
      expect(await store.acknowledge('a1', 'late', T0 + 30, [])).toMatchObject({
        outcome: 'already',
      });

      await store.commit(
        commit({ device: 'dev-9', alerts: [alert('z1', { device: 'dev-9', status: 'resolved' })] }),
      );
      expect(await store.acknowledge('z1', 'op', T0, [delivery('never')])).toMatchObject({
        outcome: 'not_open',
      });
      expect(await store.getDelivery('never')).toBeNull();
      expect(await store.acknowledge('nope', 'op', T0, [])).toEqual({ outcome: 'not_found' });
    });

    it('runs the delivery queue: claim with a lease, retry later, dead-letter, retry by hand', async () => {
      await store.commit(
        commit({
          deliveries: [
            delivery('d1'),
            delivery('d2', { alertId: 'a2', device: 'dev-2', createdAt: T0 + 1 }),
          ],
        }),
      );
      const first = await store.claimDeliveries(T0 + 1, 10, 5000);
      expect(first.map((d) => [d.id, d.attempts, d.state])).toEqual([
        ['d1', 1, 'queued'],
        ['d2', 1, 'queued'],
      ]);
      expect(first[0]!.body).toBe(JSON.stringify({ id: 'd1', n: 1 }));
      // Leased: invisible until the lease ends (a crashed sender's work comes back).
      expect(await store.claimDeliveries(T0 + 2, 10, 5000)).toEqual([]);

      await store.deliverySucceeded('d1', 1, T0 + 3, 204);
      await store.deliveryFailed('d2', 1, {
        at: T0 + 3,
        error: 'connect ECONNREFUSED',
        status: null,
        retryAt: T0 + 1000,
      });
      expect(await store.getDelivery('d1')).toMatchObject({
        state: 'delivered',
        deliveredAt: T0 + 3,
        lastStatus: 204,
      });
      expect(await store.claimDeliveries(T0 + 999, 10, 5000)).toEqual([]);
      const again = await store.claimDeliveries(T0 + 1000, 10, 5000);
      expect(again.map((d) => [d.id, d.attempts, d.lastError])).toEqual([
        ['d2', 2, 'connect ECONNREFUSED'],
      ]);
      // A stale attempt's outcome is ignored.
      await store.deliverySucceeded('d2', 1, T0 + 1001, 200);
      expect((await store.getDelivery('d2'))?.state).toBe('queued');

      await store.deliveryFailed('d2', 2, {
        at: T0 + 1002,
        error: 'HTTP 500',
        status: 500,
        retryAt: null,
      });
      expect(await store.getDelivery('d2')).toMatchObject({ state: 'dead', deadAt: T0 + 1002 });
      expect((await store.listDeadDeliveries(10)).map((d) => d.id)).toEqual(['d2']);
      expect(await store.claimDeliveries(T0 + 99_999, 10, 5000)).toEqual([]);

      expect(await store.retryDelivery('d1', T0 + 2000)).toBeNull();
      expect(await store.retryDelivery('d2', T0 + 2000)).toMatchObject({
        state: 'queued',
        attempts: 0,
        deadAt: null,
      });
      expect(await store.listDeadDeliveries(10)).toEqual([]);
      expect((await store.claimDeliveries(T0 + 2000, 10, 5000)).map((d) => d.id)).toEqual(['d2']);

      expect(await store.pruneDeliveries(T0 + 4)).toBe(1);
      expect(await store.getDelivery('d1')).toBeNull();
    });

    it('pages dead letters newest first', async () => {
      const ids = ['e1', 'e2', 'e3'];
      await store.commit(
        commit({ deliveries: ids.map((id) => delivery(id, { alertId: id, device: id })) }),
      );
      const claimed = await store.claimDeliveries(T0, 10, 10);
      for (const [i, d] of claimed.entries()) {
        await store.deliveryFailed(d.id, 1, { at: T0 + i, error: 'x', status: 410, retryAt: null });
      }
      const p1 = await store.listDeadDeliveries(2);
      expect(p1.map((d) => d.id)).toEqual(['e3', 'e2']);
      expect((await store.listDeadDeliveries(2, 'e2')).map((d) => d.id)).toEqual(['e1']);
    });

    it('hands each due delivery to exactly one of several concurrent senders', async () => {
      const deliveries = Array.from({ length: 40 }, (_, i) =>
        delivery(`q${String(i).padStart(2, '0')}`, { alertId: `qa${i}`, device: `qd${i}` }),
      );
      await store.commit(commit({ deliveries }));
      const senders = [store, await other(), await other()];
      const batches = await Promise.all(
        Array.from({ length: 12 }, (_, i) => senders[i % 3]!.claimDeliveries(T0, 5, 60_000)),
      );
      const ids = batches.flat().map((d) => d.id);
      expect(new Set(ids).size).toBe(ids.length);
      expect(ids.length).toBe(40);
    });

    it('hands out the notifications of one rule and device to one URL in order, one at a time', async () => {
      const other = 'http://127.0.0.1:9/other';
      await store.commit(
        commit({
          deliveries: [
            delivery('o1-firing'),
            delivery('o2-other-url', { url: other }),
            delivery('o3-resolved', { event: 'alert.resolved' }),
            delivery('o4-other-device', { alertId: 'b1', device: 'dev-2' }),
          ],
        }),
      );
      const first = await store.claimDeliveries(T0, 10, 60_000);
      expect(first.map((d) => d.id)).toEqual(['o1-firing', 'o2-other-url', 'o4-other-device']);
      // Leased, not done: the resolve still waits for the fire.
      expect(
        (await store.claimDeliveries(T0 + 60_001, 10, 60_000)).map((d) => [d.id, d.attempts]),
      ).toEqual([
        ['o1-firing', 2],
        ['o2-other-url', 2],
        ['o4-other-device', 2],
      ]);
      await store.deliveryFailed('o1-firing', 2, {
        at: T0,
        error: 'HTTP 500',
        status: 500,
        retryAt: T0 + 200_000,
      });
      expect((await store.claimDeliveries(T0 + 120_002, 10, 1)).map((d) => d.id)).toEqual([
        'o2-other-url',
        'o4-other-device',
      ]);
      // Once the earlier one is settled (here: a dead letter), the next goes.
      const claimed = await store.claimDeliveries(T0 + 200_000, 10, 1);
      expect(claimed.map((d) => d.id).sort()).toEqual([
        'o1-firing',
        'o2-other-url',
        'o4-other-device',
      ]);
      await store.deliveryFailed('o1-firing', 3, {
        at: T0,
        error: 'x',
        status: 410,
        retryAt: null,
      });
      expect((await store.claimDeliveries(T0 + 200_002, 10, 1)).map((d) => d.id)).toContain(
        'o3-resolved',
      );
    });

    it('remembers when devices were last heard from, never going back', async () => {
      await store.recordActivity([
        { device: 'a', at: T0 + 5 },
        { device: 'b', at: T0 },
      ]);
      await store.recordActivity([{ device: 'a', at: T0 + 1 }]);
      expect(await store.loadActivity()).toEqual(
        new Map([
          ['a', T0 + 5],
          ['b', T0],
        ]),
      );
    });
  });
}
