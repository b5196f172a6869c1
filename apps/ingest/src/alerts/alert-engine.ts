import {
  Inject,
  Injectable,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
  Optional,
} from '@nestjs/common';
import type { Logger } from 'pino';
import { Counter, Gauge, type Registry } from 'prom-client';
import { LEASE_NAMES, LEASES, type Lease, type Leases } from '../cluster/lease.js';
import { LocalLeases } from '../cluster/local-lease.js';
import type { IngestConfig } from '../config.js';
import {
  CLOCK,
  type Clock,
  CONFIG,
  LOGGER,
  METRICS,
  RANDOM,
  type Random,
  REGISTRY_STORE,
} from '../injection.js';
import type { DeviceRecord, RegistryStore } from '../registry/registry-store.js';
import { type LiveEventMap, LiveEvents } from '../stream/live-events.js';
import {
  ALERT_STORE,
  type AlertStore,
  type AlertWrite,
  type CommitResult,
  type NewDelivery,
  type StateCommit,
} from './alert-store.js';
import { DeliveryWorker } from './delivery-worker.js';
import {
  type AlertSnapshot,
  evaluate,
  INITIAL_STATE,
  type Input,
  persistentChange,
  type RetireReason,
  type Rule,
  type RuleState,
  type Transition,
} from './evaluate.js';
import { type AlertMessage, PAGING_EVENTS, summarize, transitionMessage } from './notification.js';
import { LogNotifier } from './notifiers/log-notifier.js';
import { StreamNotifier } from './notifiers/stream-notifier.js';
import { compileRule, type RuleRecord, type Scope, scopeMatcher } from './rule.js';

interface ActiveRule {
  record: RuleRecord;
  rule: Rule;
  inScope: ReturnType<typeof scopeMatcher>;
}

interface Queued {
  input: Input | null;
  /** When it arrived: `now` of its evaluation. */
  now: number;
}

interface KeyQueue {
  key: string;
  ruleId: string;
  device: string;
  items: Queued[];
  scheduled: boolean;
  running: boolean;
}

interface Cached {
  state: RuleState;
  version: number;
  checkedAt: number;
}

/** Inputs of one (rule, device) evaluated and committed together. */
const BATCH = 256;
/** Conflicting commits (another writer got there first) are re-evaluated this many times. */
const MAX_CONFLICTS = 8;
/** Cached states beyond this are trimmed to the open ones. */
const MAX_CACHED = 200_000;
/** Devices resolved per offline rule scope. */
const MAX_SCOPE_DEVICES = 100_000;

const keyOf = (ruleId: string, device: string) => `${ruleId}\u0000${device}`;

/**
 * Runs the rules: readings and device status arrive from LiveEvents, are queued per
 * (rule, device) without any work on the ingest path, and are evaluated and committed by a
 * bounded set of workers, one (rule, device) at a time. A commit carries the new state, the
 * alert rows and the webhook deliveries of its transitions in one transaction, conditional
 * on the state version read: a transition is committed, and so notified, exactly once even
 * with several writers. Timers (`for`, `clearFor`, offline rules) run from a tick with the
 * injected clock, on the one replica holding the `alerts.timers` lease; readings are
 * evaluated on every replica. The holder learns of states opened elsewhere from the store
 * (on acquisition and every rules refresh), and of devices heard elsewhere from the registry
 * and the shared activity record.
 */
@Injectable()
export class AlertEngine implements OnApplicationBootstrap, OnApplicationShutdown {
  private rules = new Map<string, ActiveRule>();
  private byMetric = new Map<string, ActiveRule[]>();
  private offlineRules: ActiveRule[] = [];
  /** Rules no longer active whose open alerts are being retired. */
  private readonly retiring = new Map<string, ActiveRule>();
  /** Offline rules: devices in scope, with the registry's last-seen time. */
  private scopes = new Map<string, Map<string, number | null>>();
  private readonly queues = new Map<string, KeyQueue>();
  private readonly ready: KeyQueue[] = [];
  private readonly cache = new Map<string, Cached>();
  /** Keys whose cached state is pending or firing: what the timers look at. */
  private readonly open = new Set<string>();
  /** When each device was last heard from (reading or status), arrival time. */
  private readonly heard = new Map<string, number>();
  private readonly heardDirty = new Map<string, number>();
  private readonly idleWaiters: (() => void)[] = [];
  private readonly commits: {
    change: StateCommit;
    resolve: (r: CommitResult) => void;
    reject: (err: unknown) => void;
  }[] = [];
  private queued = 0;
  private running = 0;
  private pumpScheduled = false;
  private ticking = false;
  private stopping = false;
  private startedAt = 0;
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly log: Logger;
  private readonly transitionsTotal: Counter<'kind' | 'paged'>;
  private readonly droppedTotal: Counter;
  private readonly conflictsTotal: Counter;
  private lastDropWarning = 0;
  private readonly lease: Lease;
  private offLease: (() => void) | undefined;

  constructor(
    @Inject(ALERT_STORE) private readonly store: AlertStore,
    @Inject(REGISTRY_STORE) private readonly registry: RegistryStore,
    @Inject(CONFIG) private readonly config: IngestConfig,
    @Inject(CLOCK) private readonly clock: Clock,
    @Inject(RANDOM) private readonly random: Random,
    @Inject(LOGGER) logger: Logger,
    @Inject(METRICS) metrics: Registry,
    private readonly live: LiveEvents,
    private readonly stream: StreamNotifier,
    private readonly logNotifier: LogNotifier,
    private readonly worker: DeliveryWorker,
    // Absent when an engine is built by hand: it then fires its own timers, as one process does.
    @Optional() @Inject(LEASES) leases?: Leases,
  ) {
    this.log = logger.child({ module: 'alerts' });
    this.lease = (leases ?? new LocalLeases()).lease(LEASE_NAMES.alertTimers);
    this.transitionsTotal = new Counter({
      name: 'outpost_ingest_alert_transitions_total',
      help: 'Alert transitions committed, by kind and whether they paged',
      labelNames: ['kind', 'paged'],
      registers: [metrics],
    });
    this.droppedTotal = new Counter({
      name: 'outpost_ingest_alert_inputs_dropped_total',
      help: 'Readings not evaluated because the alert queue was full (INGEST_ALERT_QUEUE_MAX)',
      registers: [metrics],
    });
    this.conflictsTotal = new Counter({
      name: 'outpost_ingest_alert_commit_conflicts_total',
      help: 'Alert state commits refused because another writer changed the state first',
      registers: [metrics],
    });
    const depth = () => this.queued;
    new Gauge({
      name: 'outpost_ingest_alert_queue_depth',
      help: 'Readings and timer checks waiting for alert evaluation',
      registers: [metrics],
      collect() {
        this.set(depth());
      },
    });
  }

  async onApplicationBootstrap(): Promise<void> {
    this.startedAt = this.clock.now();
    await this.reloadRules();
    const now = this.clock.now();
    for (const s of await this.store.listActiveStates()) {
      this.remember(keyOf(s.ruleId, s.device), {
        state: s.state,
        version: s.version,
        checkedAt: now,
      });
    }
    for (const [device, at] of await this.store.loadActivity()) this.heard.set(device, at);
    await this.refreshScopes();
    this.live.on('readings', this.onReadings);
    this.live.on('status', this.onStatus);
    this.lease.start();
    this.offLease = this.lease.onChange((held) => {
      if (!held) return;
      this.syncActiveStates().catch((err: unknown) =>
        this.log.warn({ err }, 'could not read the open alert states'),
      );
    });
    const every = (ms: number, fn: () => Promise<unknown>) => {
      const t = setInterval(() => {
        fn().catch((err: unknown) => this.log.error({ err }, 'alert timer failed'));
      }, ms);
      t.unref();
      this.timers.push(t);
    };
    every(this.config.alerts.tickMs, () => this.tick());
    every(this.config.alerts.rulesRefreshMs, async () => {
      await this.reloadRules();
      await this.refreshScopes();
      if (this.lease.isHeld()) await this.syncActiveStates();
    });
    this.worker.start();
  }

  async onApplicationShutdown(): Promise<void> {
    this.stopping = true;
    for (const t of this.timers) clearInterval(t);
    this.offLease?.();
    this.live.off('readings', this.onReadings);
    this.live.off('status', this.onStatus);
    // Finish what is being committed; what is only queued is dropped (it is not acked work).
    for (const q of this.queues.values()) {
      this.queued -= q.items.length;
      q.items.length = 0;
      q.scheduled = false;
    }
    this.ready.length = 0;
    await Promise.race([this.drained(), sleep(5000)]);
    await this.flushActivity().catch(() => {});
    await this.worker.stop();
    await this.lease.stop();
    await this.store.close();
  }

  /** Resolves once nothing is queued or being evaluated. */
  drained(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /**
   * Rules changed through the API: re-read them, and retire the open alerts of `ruleId`
   * (deleted, disabled, or its condition changed).
   */
  async rulesChanged(ruleId?: string, retire?: RetireReason): Promise<void> {
    if (ruleId && retire) {
      const old = this.rules.get(ruleId);
      if (old) this.retiring.set(ruleId, old);
    }
    await this.reloadRules();
    await this.refreshScopes();
    if (!ruleId || !retire) return;
    const now = this.clock.now();
    let after: { openedAt: number; id: string } | undefined;
    do {
      const page = await this.store.listAlerts({
        ruleId,
        status: ['pending', 'firing'],
        limit: 500,
        ...(after ? { after } : {}),
      });
      for (const a of page.items)
        this.enqueue(ruleId, a.device, { kind: 'retire', reason: retire }, now);
      after = page.next ?? undefined;
    } while (after);
  }

  /**
   * Timers: pending `for`s and clearing holds that may have elapsed and offline rules (on
   * the lease holder), and the activity record (everywhere). Called every
   * INGEST_ALERT_TICK_MS with the injected clock.
   */
  async tick(now = this.clock.now()): Promise<void> {
    if (this.ticking || this.stopping) return;
    this.ticking = true;
    try {
      if (this.lease.isHeld()) await this.fireTimers(now);
      await this.flushActivity();
    } finally {
      this.ticking = false;
    }
  }

  private async fireTimers(now: number): Promise<void> {
    for (const key of this.open) {
      const s = this.cache.get(key)?.state;
      if (!s || s.phase === 'ok') continue;
      const [ruleId, device] = key.split('\u0000') as [string, string];
      const ar = this.rules.get(ruleId);
      if (ar?.rule.kind !== 'threshold') continue;
      const due =
        (s.phase === 'pending' && s.since !== null && now - s.since >= ar.rule.forMs) ||
        (s.phase === 'firing' &&
          s.clearingSince !== null &&
          now - s.clearingSince >= ar.rule.clearForMs);
      if (due) this.enqueue(ruleId, device, null, now);
    }
    await this.offlinePass(now);
  }

  /**
   * Open states from the store, for the timers: a `for` started by a reading on another
   * replica is due here. A stale entry costs one version check when it is evaluated. Also
   * when devices were last heard by the other replicas (their activity record): a device
   * heard only elsewhere is neither "never heard" nor silent here.
   */
  private async syncActiveStates(): Promise<void> {
    await this.mergeActivity();
    const now = this.clock.now();
    for (const s of await this.store.listActiveStates()) {
      const key = keyOf(s.ruleId, s.device);
      const cached = this.cache.get(key);
      if (cached && cached.version >= s.version) continue;
      this.remember(key, { state: s.state, version: s.version, checkedAt: now });
    }
  }

  private readonly onReadings = ({ publisher, points }: LiveEventMap['readings'][0]): void => {
    if (this.stopping) return;
    const now = this.clock.now();
    const tracking = this.offlineRules.length > 0;
    let lastDevice = '';
    for (const p of points) {
      if (tracking && p.device !== lastDevice) {
        this.markHeard(p.device, now);
        lastDevice = p.device;
      }
      const rules = this.byMetric.get(p.metric);
      if (!rules) continue;
      for (const ar of rules) {
        if (!ar.inScope(p.device, p.tags, publisher)) continue;
        this.enqueue(
          ar.record.id,
          p.device,
          {
            kind: 'reading',
            timeMs: p.timeMs,
            value: p.value,
            backfilled: p.backfilled === true,
            unsynced: p.unsynced === true,
          },
          now,
        );
      }
    }
    if (tracking) this.markHeard(publisher, now);
  };

  private readonly onStatus = ({ deviceId, at }: LiveEventMap['status'][0]): void => {
    if (!this.stopping && this.offlineRules.length > 0) this.markHeard(deviceId, at);
  };

  /** Records that `device` was heard from; an offline alert of it resolves promptly. */
  private markHeard(device: string, at: number): void {
    const prev = this.heard.get(device);
    if (prev !== undefined && prev >= at) return;
    this.heard.set(device, at);
    this.heardDirty.set(device, at);
    for (const ar of this.offlineRules) {
      if (this.cache.get(keyOf(ar.record.id, device))?.state.phase === 'firing') {
        this.enqueue(ar.record.id, device, { kind: 'seen', at }, at);
      }
    }
  }

  /** Synchronous and cheap: the listener's whole cost on the ingest path. */
  private enqueue(ruleId: string, device: string, input: Input | null, now: number): void {
    if (this.stopping) return;
    const key = keyOf(ruleId, device);
    let q = this.queues.get(key);
    if (!q) {
      q = { key, ruleId, device, items: [], scheduled: false, running: false };
      this.queues.set(key, q);
    }
    if (this.queued >= this.config.alerts.queueMax) {
      // Bounded: keep the newest input of this (rule, device), drop its oldest.
      this.droppedTotal.inc();
      this.warnDropped(now);
      if (q.items.length === 0) return;
      q.items.shift();
      this.queued--;
    }
    q.items.push({ input, now });
    this.queued++;
    if (!q.scheduled && !q.running) {
      q.scheduled = true;
      this.ready.push(q);
    }
    if (!this.pumpScheduled) {
      this.pumpScheduled = true;
      setImmediate(() => {
        this.pumpScheduled = false;
        this.pump();
      });
    }
  }

  private pump(): void {
    while (this.running < this.config.alerts.concurrency && this.ready.length > 0) {
      const q = this.ready.shift()!;
      q.scheduled = false;
      void this.run(q);
    }
    if (this.isIdle()) for (const resolve of this.idleWaiters.splice(0)) resolve();
  }

  private async run(q: KeyQueue): Promise<void> {
    this.running++;
    q.running = true;
    try {
      while (q.items.length > 0) {
        const batch = q.items.splice(0, BATCH);
        this.queued -= batch.length;
        try {
          await this.process(q.ruleId, q.device, batch);
        } catch (err) {
          this.log.error({ err, ruleId: q.ruleId, deviceId: q.device }, 'alert evaluation failed');
        }
      }
    } finally {
      q.running = false;
      this.running--;
      if (q.items.length > 0) {
        q.scheduled = true;
        this.ready.push(q);
      } else if (this.queues.get(q.key) === q) {
        this.queues.delete(q.key);
      }
      this.pump();
    }
  }

  private isIdle(): boolean {
    return this.queued === 0 && this.running === 0 && this.ready.length === 0;
  }

  private async process(ruleId: string, device: string, queued: readonly Queued[]): Promise<void> {
    const active = this.rules.get(ruleId);
    const ar = active ?? this.retiring.get(ruleId);
    if (!ar) return;
    // A rule no longer active only closes what it opened; readings queued before its
    // deletion must not open anything new.
    const batch = active ? queued : queued.filter((q) => q.input?.kind === 'retire');
    if (batch.length === 0) return;
    const key = keyOf(ruleId, device);
    for (let attempt = 0; attempt < MAX_CONFLICTS; attempt++) {
      const cached = await this.load(ruleId, device);
      let state = cached.state;
      const transitions: Transition[] = [];
      for (const item of batch) {
        const e = evaluate(ar.rule, item.input, state, item.now);
        this.nameNewAlert(e.state, e.transitions);
        transitions.push(...e.transitions);
        state = e.state;
      }
      if (transitions.length === 0 && !persistentChange(cached.state, state)) {
        this.remember(key, { ...cached, state });
        return;
      }
      const now = this.clock.now();
      const { alerts, messages, deliveries } = this.changesOf(ar, device, transitions, state, now);
      const result = await this.commit({
        ruleId,
        device,
        expectedVersion: cached.version,
        state,
        alerts,
        deliveries,
        now,
      });
      if (result.ok) {
        this.remember(key, { state, version: result.version, checkedAt: now });
        this.trimCache();
        for (const t of transitions) {
          this.transitionsTotal.inc({ kind: t.kind, paged: String(t.page) });
        }
        if (deliveries.length > 0) this.worker.wake();
        await this.publish(messages);
        return;
      }
      // Another writer (replica) changed this (rule, device): read again, decide again.
      this.conflictsTotal.inc();
      this.forget(key);
    }
    this.log.warn(
      { ruleId, deviceId: device },
      'alert state kept changing under us; inputs dropped',
    );
  }

  /**
   * Group commit: the changes of every (rule, device) that reaches this point in the same
   * turn of the event loop are written in one transaction, one fsync (each change still
   * succeeds or conflicts on its own).
   */
  private commit(change: StateCommit): Promise<CommitResult> {
    return new Promise((resolve, reject) => {
      this.commits.push({ change, resolve, reject });
      if (this.commits.length > 1) return;
      setImmediate(() => {
        const group = this.commits.splice(0);
        this.store.commitMany(group.map((g) => g.change)).then(
          (results) => {
            for (const [i, g] of group.entries()) g.resolve(results[i]!);
          },
          (err: unknown) => {
            for (const g of group) g.reject(err);
          },
        );
      });
    });
  }

  /** An alert opened by this evaluation gets its id here: `evaluate` stays pure. */
  private nameNewAlert(state: RuleState, transitions: Transition[]): void {
    let id: string | null = null;
    const name = (a: AlertSnapshot) => {
      if (a.id !== null) return;
      id ??= this.random.uuid();
      a.id = id;
    };
    for (const t of transitions) name(t.alert);
    if (state.alert) name(state.alert);
  }

  private changesOf(
    ar: ActiveRule,
    device: string,
    transitions: readonly Transition[],
    state: RuleState,
    now: number,
  ): { alerts: AlertWrite[]; messages: AlertMessage[]; deliveries: NewDelivery[] } {
    const spec = ar.record.spec;
    const write = (a: AlertSnapshot, summary: string): AlertWrite => ({
      id: a.id!,
      ruleId: ar.record.id,
      device,
      metric: spec.kind === 'threshold' ? spec.metric : null,
      severity: spec.severity,
      status: a.status,
      openedAt: a.openedAt,
      firedAt: a.firedAt,
      closedAt: a.closedAt,
      value: a.value,
      peak: a.peak,
      paged: a.paged,
      quiet: a.quiet,
      flapping: a.flapping,
      flaps: a.flaps,
      summary,
      updatedAt: now,
    });
    const alerts: AlertWrite[] = [];
    const messages: AlertMessage[] = [];
    const deliveries: NewDelivery[] = [];
    const webhooks = spec.channels.flatMap((c) => (c.type === 'webhook' ? [c.url] : []));
    for (const t of transitions) {
      const row = write(t.alert, '');
      row.summary = summarize(t, row, spec);
      alerts.push(row);
      const message = transitionMessage(this.random.uuid(), t, row, ar.record);
      messages.push(message);
      if (!t.page || !PAGING_EVENTS.has(message.type)) continue;
      const body = JSON.stringify(message);
      for (const url of webhooks) {
        deliveries.push({
          id: this.random.uuid(),
          alertId: row.id,
          ruleId: ar.record.id,
          device,
          event: message.type,
          url,
          body,
          createdAt: now,
        });
      }
    }
    // The open alert's latest peak and flap count; an empty summary keeps the stored one.
    if (state.alert) alerts.push(write(state.alert, ''));
    return { alerts, messages, deliveries };
  }

  /** The stream and the log see every committed transition; they never fail the commit. */
  private async publish(messages: readonly AlertMessage[]): Promise<void> {
    for (const message of messages) {
      const out = { message, body: '', deliveryId: message.id, attempt: 1 };
      await this.stream.send(out);
      if (this.ruleLogs(message.alert.ruleId)) await this.logNotifier.send(out);
    }
  }

  private ruleLogs(ruleId: string): boolean {
    const ar = this.rules.get(ruleId) ?? this.retiring.get(ruleId);
    return ar?.record.spec.channels.some((c) => c.type === 'log') ?? false;
  }

  /** The state of (rule, device): cached, re-checked against the store after a while. */
  private async load(ruleId: string, device: string): Promise<Cached> {
    const key = keyOf(ruleId, device);
    const now = this.clock.now();
    const cached = this.cache.get(key);
    if (cached && now - cached.checkedAt <= this.config.alerts.stateCacheMs) return cached;
    if (cached && (await this.store.stateVersion(ruleId, device)) === cached.version) {
      cached.checkedAt = now;
      return cached;
    }
    const stored = await this.store.getState(ruleId, device);
    const fresh: Cached = stored
      ? { state: stored.state, version: stored.version, checkedAt: now }
      : { state: INITIAL_STATE, version: 0, checkedAt: now };
    this.remember(key, fresh);
    return fresh;
  }

  private remember(key: string, cached: Cached): void {
    this.cache.set(key, cached);
    if (cached.state.phase === 'ok') this.open.delete(key);
    else this.open.add(key);
  }

  private forget(key: string): void {
    this.cache.delete(key);
    this.open.delete(key);
  }

  private trimCache(): void {
    if (this.cache.size <= MAX_CACHED) return;
    for (const [key, c] of this.cache) {
      if (c.state.phase === 'ok' && !this.queues.has(key)) this.forget(key);
    }
  }

  private async reloadRules(): Promise<void> {
    const records = await this.store.listRules();
    const rules = new Map<string, ActiveRule>();
    for (const record of records) {
      if (!record.enabled) continue;
      const existing = this.rules.get(record.id);
      rules.set(
        record.id,
        existing && existing.record.updatedAt === record.updatedAt
          ? existing
          : {
              record,
              rule: compileRule(record.spec, this.startedAt),
              inScope: scopeMatcher(record.spec.scope),
            },
      );
    }
    const byMetric = new Map<string, ActiveRule[]>();
    const offline: ActiveRule[] = [];
    for (const ar of rules.values()) {
      const spec = ar.record.spec;
      if (spec.kind === 'offline') offline.push(ar);
      else byMetric.set(spec.metric, [...(byMetric.get(spec.metric) ?? []), ar]);
    }
    this.rules = rules;
    this.byMetric = byMetric;
    this.offlineRules = offline;
  }

  /** Offline rules: which devices they watch, and when the registry last saw each. */
  private async refreshScopes(): Promise<void> {
    const scopes = new Map<string, Map<string, number | null>>();
    for (const ar of this.offlineRules) {
      try {
        scopes.set(ar.record.id, await this.resolveScope(ar.record.spec.scope));
      } catch (err) {
        this.log.warn({ err, ruleId: ar.record.id }, 'could not resolve the devices of a rule');
        const previous = this.scopes.get(ar.record.id);
        if (previous) scopes.set(ar.record.id, previous);
      }
    }
    this.scopes = scopes;
  }

  private async resolveScope(scope: Scope): Promise<Map<string, number | null>> {
    const devices = new Map<string, number | null>();
    const take = (d: DeviceRecord | null) => {
      if (d?.status !== 'active') return;
      if (scope.gateway && d.gateway !== scope.gateway && d.id !== scope.gateway) return;
      for (const [k, v] of Object.entries(scope.tags ?? {})) if (d.tags[k] !== v) return;
      devices.set(d.id, d.connectivity.lastSeen);
    };
    if (scope.devices) {
      for (const id of scope.devices) take(await this.registry.getDevice(id));
      return devices;
    }
    let after: string | undefined;
    do {
      const page = await this.registry.listDevices({
        ...(scope.tags ? { tags: { ...scope.tags } } : {}),
        ...(scope.gateway ? { gateway: scope.gateway } : {}),
        status: 'active',
        limit: 500,
        ...(after ? { after } : {}),
      });
      for (const d of page.items) take(d);
      after = page.next ?? undefined;
    } while (after && devices.size < MAX_SCOPE_DEVICES);
    if (scope.gateway) take(await this.registry.getDevice(scope.gateway));
    return devices;
  }

  private lastHeard(device: string, registrySeen: number | null | undefined): number | null {
    const heard = this.heard.get(device);
    const seen = registrySeen ?? null;
    if (heard === undefined) return seen;
    return seen === null ? heard : Math.max(heard, seen);
  }

  private async offlinePass(now: number): Promise<void> {
    for (const ar of this.offlineRules) {
      if (ar.rule.kind !== 'offline') continue;
      const rule = ar.rule;
      const scope = this.scopes.get(ar.record.id);
      if (!scope) continue;
      const candidates: string[] = [];
      for (const [device, registrySeen] of scope) {
        const seen = this.lastHeard(device, registrySeen);
        const c = this.cache.get(keyOf(ar.record.id, device));
        if (c?.state.phase === 'firing') {
          const at = c.state.alert?.lastSeenAt ?? null;
          if (seen !== null && (at === null || seen > at)) {
            this.enqueue(ar.record.id, device, { kind: 'seen', at: seen }, now);
          }
          continue;
        }
        // A device never heard from is not offline: it is not installed yet.
        if (seen === null) continue;
        if (now - Math.max(seen, rule.watchingSince) >= rule.afterMs) {
          candidates.push(device);
        }
      }
      // Before calling a device silent, ask the registry afresh: its last-seen times are
      // written in batches and our copy is refreshed only every INGEST_ALERT_RULES_REFRESH_MS.
      // Other replicas may have heard it since: their activity record is read again too.
      if (candidates.length > 0 && this.lease.isHeld()) await this.mergeActivity();
      for (const device of candidates.slice(0, 1000)) {
        const fresh = await this.registry.getDevice(device).catch(() => null);
        if (fresh) scope.set(device, fresh.connectivity.lastSeen);
        const seen = this.lastHeard(device, scope.get(device));
        if (seen !== null) this.enqueue(ar.record.id, device, { kind: 'seen', at: seen }, now);
      }
    }
  }

  private async mergeActivity(): Promise<void> {
    for (const [device, at] of await this.store.loadActivity()) {
      if ((this.heard.get(device) ?? Number.NEGATIVE_INFINITY) < at) this.heard.set(device, at);
    }
  }

  private async flushActivity(): Promise<void> {
    if (this.heardDirty.size === 0) return;
    const updates = [...this.heardDirty].map(([device, at]) => ({ device, at }));
    this.heardDirty.clear();
    await this.store.recordActivity(updates);
  }

  private warnDropped(now: number): void {
    if (now - this.lastDropWarning < 60_000) return;
    this.lastDropWarning = now;
    this.log.warn(
      { queueMax: this.config.alerts.queueMax },
      'alert queue full: oldest readings of busy rules are skipped',
    );
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
