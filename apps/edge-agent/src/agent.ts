import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import type { CommandOf } from '@outpost/protocol/commands';
import { topics } from '@outpost/protocol/topics';
import { importSigningKey } from '@outpost/signing/sign';
import type { Logger } from 'pino';
import { ClockQualityTracker } from './clock/clock-quality.js';
import {
  type ClockProbe,
  ClockSync,
  ingestDateProbe,
  timesyncdProbe,
} from './clock/sync-probes.js';
import { type AgentConfig, applyRemoteConfig, remoteConfigSchema } from './config.js';
import { type HttpFetch, nodeHttpFetch } from './http/node-http-fetch.js';
import { type LoadedIdentity, loadIdentity } from './identity/identity-store.js';
import { Intake } from './intake.js';
import { AgentMetrics } from './metrics/agent-metrics.js';
import {
  closeServer,
  isLoopback,
  parseListen,
  startMetricsServer,
} from './metrics/metrics-server.js';
import type { Installer } from './ota/installer.js';
import { OtaStateStore } from './ota/ota-state-store.js';
import { OtaUpdater } from './ota/ota-updater.js';
import { ReleaseKeyStore } from './ota/release-key-store.js';
import { SelfInstaller } from './ota/self-installer.js';
import { childDeviceIds, SerialChildInstaller } from './ota/serial-child-installer.js';
import { senmlDownsampler } from './outbox/downsample.js';
import type { Outbox } from './outbox/outbox.js';
import { SqliteOutbox } from './outbox/sqlite-outbox.js';
import { readRemoteConfig, writeRemoteConfig } from './remote-config-store.js';
import { LocalMqttSource } from './sources/local-mqtt-source.js';
import { SerialSource } from './sources/serial-source.js';
import type { PortStatus, Source } from './sources/source.js';
import { buildChildStates, buildReportedState } from './state/reported-state.js';
import { ChildStanding } from './uplink/child-standing.js';
import { CommandReceiver } from './uplink/commands.js';
import { DeviceTokens } from './uplink/device-token.js';
import { HttpTelemetry } from './uplink/http-telemetry.js';
import { MqttSession } from './uplink/mqtt-session.js';
import { Uplink } from './uplink/uplink.js';

/**
 * The composition root: the one place that builds the agent's parts and wires them
 * (STYLE.md: no DI container). Time, randomness and the boot id come in from outside.
 *
 *   sources ─sink─▶ intake (pipeline → cq → batcher → boot/seq) ─append─▶ outbox (SQLite)
 *   outbox ─take─▶ uplink (sign → MQTT QoS 1 | HTTP) ─PUBACK─▶ outbox.ack
 *   commands ─verify─▶ telemetry.rejected → quarantine (not_child: split; strangers isolated,
 *              withheld while the broker refuses their commands topic too)
 *            · config.desired → reconfigure
 *            · ota.offer / keys.release → OTA (ota/ota-updater.ts, installers)
 *   state every 60 s (retained) · Prometheus on localhost
 */
export interface AgentDeps {
  config: AgentConfig;
  logger: Logger;
  /** Wall clock, epoch ms. */
  now?: () => number;
  /** Monotonic ms. */
  monotonic?: () => number;
  /** [0, 1): backoff jitter. */
  random?: () => number;
  /** PROTOCOL.md §5 `boot`; random per start by default. */
  newBootId?: () => string;
  fetch?: HttpFetch;
  /** A signed `reboot` command arrived; main.ts exits so systemd restarts the agent. */
  onReboot?: () => void;
  /**
   * A self-update switched versions (or switched back): main.ts stops the agent and exits
   * with RESTART_EXIT_CODE so the launcher starts `current` again.
   */
  onRestart?: (reason: string) => void;
  /** Installers for child devices, tried after the agent's own (PROTOCOL.md §8, §10). */
  installers?: readonly Installer[];
}

/** Least time between two state reports asked for by events (connect, drained, ping). */
const MIN_STATE_GAP_MS = 5000;

export const AGENT_VERSION: string = (() => {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
      version?: string;
    };
    return pkg.version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
})();

/** MQTT over TLS when the ingest is reached over HTTPS and offers a TLS port. */
export function enrolledMqttUrl(identity: LoadedIdentity['identity'], server: string): string {
  const { host, port, tlsPort } = identity.mqtt;
  return server.startsWith('https:') && tlsPort !== null
    ? `mqtts://${host}:${tlsPort}`
    : `mqtt://${host}:${port}`;
}

export class Agent {
  readonly bootId: string;
  readonly deviceId: string;
  readonly metrics: AgentMetrics;
  readonly outbox: Outbox;
  readonly intake: Intake;
  readonly uplink: Uplink;
  readonly clock: ClockQualityTracker;
  #config: AgentConfig;
  #configVersion: number;
  readonly #deps: Required<Pick<AgentDeps, 'now' | 'monotonic' | 'random'>> & AgentDeps;
  readonly #identity: LoadedIdentity;
  readonly #sources: Source[];
  readonly #session: MqttSession;
  readonly #clockSync: ClockSync;
  readonly #commands: CommandReceiver;
  readonly #standing: ChildStanding;
  readonly #ota: OtaUpdater;
  /** A QoS 1 publish was acknowledged since start: the cloud is reachable (OTA trial). */
  #cloudAcked = false;
  readonly #log: Logger;
  readonly #startedAt: number;
  #metricsServer: Server | undefined;
  #stateTimer: NodeJS.Timeout | undefined;
  #stateSoon: NodeJS.Timeout | undefined;
  #lastStateAt = Number.NEGATIVE_INFINITY;
  #stopping: Promise<void> | undefined;

  private constructor(
    deps: AgentDeps,
    identity: LoadedIdentity,
    parts: {
      key: Awaited<ReturnType<typeof importSigningKey>>;
      config: AgentConfig;
      configVersion: number;
    },
  ) {
    const now = deps.now ?? Date.now;
    const monotonic = deps.monotonic ?? (() => performance.now());
    const random = deps.random ?? Math.random;
    this.#deps = { ...deps, now, monotonic, random };
    this.#identity = identity;
    this.#config = parts.config;
    this.#configVersion = parts.configVersion;
    this.#startedAt = monotonic();
    const config = parts.config;
    const { deviceId } = identity.identity;
    this.deviceId = deviceId;
    this.bootId = (deps.newBootId ?? (() => randomBytes(9).toString('base64url')))();
    this.#log = deps.logger.child({ gatewayId: deviceId });
    const log = this.#log;
    this.metrics = new AgentMetrics();
    this.metrics.configVersion.set(this.#configVersion);
    const server = config.server ?? identity.identity.server;

    this.outbox = new SqliteOutbox({
      path: join(config.dataDir, 'outbox.db'),
      maxBytes: config.outbox.maxBytes,
      whenFull: config.outbox.whenFull,
      synchronous: config.outbox.sync,
      quarantineMaxBytes: config.outbox.quarantineMaxBytes,
      downsampler: senmlDownsampler(deviceId, {
        everyMs: config.outbox.downsample.every,
        factor: config.outbox.downsample.factor,
        maxLevel: config.outbox.downsample.maxLevel,
      }),
    });

    this.clock = new ClockQualityTracker({
      now,
      monotonic,
      jumpToleranceMs: config.clock.jumpTolerance,
      toleranceMs: config.clock.tolerance,
    });
    this.clock.onJump((jump) => {
      this.metrics.clockJumps.inc({ direction: jump.byMs > 0 ? 'forward' : 'backward' });
    });
    const probes: ClockProbe[] = [];
    if (config.clock.timesyncd !== false) probes.push(timesyncdProbe(config.clock.timesyncd));
    if (config.clock.ingestDate) {
      probes.push(ingestDateProbe({ server, now, ...(deps.fetch ? { fetch: deps.fetch } : {}) }));
    }
    this.#clockSync = new ClockSync({
      tracker: this.clock,
      probes,
      everyMs: config.clock.checkEvery,
      logger: log.child({ module: 'clock' }),
    });
    /** Our clock corrected by the ingest's, for tokens and command expiry. */
    const serverNow = () => now() + (this.clock.offsetMs ?? 0);

    // Who the ingest takes readings for: learnt from the broker's answers to the children's
    // subscriptions and from `not_child` refusals; the batcher keeps strangers apart.
    this.#standing = new ChildStanding({ gatewayId: deviceId });
    const standing = this.#standing;

    this.intake = new Intake({
      outbox: this.outbox,
      publisherId: deviceId,
      bootId: this.bootId,
      pipeline: config.pipeline,
      batch: config.batch,
      clockQuality: () => this.clock.quality(),
      now,
      monotonic,
      metrics: this.metrics,
      logger: log.child({ module: 'intake' }),
      onAppended: () => this.uplink.kick(),
      strangers: standing,
    });

    const tokens = new DeviceTokens({
      key: parts.key,
      deviceId,
      audience: identity.identity.audience,
      lifetimeS: Math.floor(config.uplink.tokenLifetime / 1000),
      now,
      offsetMs: () => this.clock.offsetMs,
    });
    // Serial children (each serial source's `device`): their offers arrive on their own
    // commands topics, which the gateway subscribes to (PROTOCOL.md §4).
    const children = childDeviceIds(config).filter((id) => id !== deviceId);
    this.#commands = new CommandReceiver({
      deviceId,
      children,
      jwks: identity.jwks,
      now: serverNow,
      logger: log.child({ module: 'commands' }),
      metrics: this.metrics,
      handlers: {
        'telemetry.rejected': (c) => {
          this.uplink.rejected({ boot: c.boot, seq: c.seq }, c.reason, c.detail);
        },
        'config.desired': (c) => this.#configDesired(c),
        'ota.offer': (c) => this.#ota.offer(c),
        'keys.release': (c) => this.#ota.keysRelease(c),
        ping: () => this.requestState(),
        reboot: () => {
          log.warn('reboot requested by the service');
          (deps.onReboot ?? (() => undefined))();
        },
      },
    });
    const commandTopics = new Map(
      [deviceId, ...children].map((id) => [topics.commands(id), id] as const),
    );
    const mqttUrl = config.uplink.mqtt ?? enrolledMqttUrl(identity.identity, server);
    this.#session = new MqttSession({
      url: mqttUrl,
      deviceId,
      tokens,
      subscriptions: [topics.commands(deviceId)],
      optionalSubscriptions: children.map((id) => topics.commands(id)),
      onOptionalSubscribed: (answers) => {
        const released = standing.answered(
          [...answers].flatMap(([topic, granted]) => {
            const child = commandTopics.get(topic);
            return child === undefined ? [] : [[child, granted] as const];
          }),
        );
        if (released.length > 0) {
          log.info({ devices: released }, 'registered now: readings batched with the others again');
        }
        // The children whose state may now be published (publishState).
        this.requestState();
      },
      random,
      monotonic,
      backoff: { initialMs: config.uplink.backoff.initial, maxMs: config.uplink.backoff.max },
      stableAfterMs: config.uplink.backoff.stableAfter,
      keepaliveS: Math.max(1, Math.round(config.uplink.keepalive / 1000)),
      rejectUnauthorized: !config.uplink.insecureTls,
      logger: log.child({ module: 'mqtt' }),
      metrics: this.metrics,
      onMessage: (topic, payload) => {
        const target = commandTopics.get(topic);
        if (target !== undefined) void this.#commands.receive(payload, target);
      },
      onUp: () => {
        this.#ota.sessionUp();
        this.requestState();
        void this.#clockSync.probe();
        this.uplink.kick();
      },
      onDown: () => this.uplink.sessionDown(),
    });
    this.uplink = new Uplink({
      outbox: this.outbox,
      key: parts.key,
      topic: topics.telemetry(deviceId),
      mqtt: this.#session,
      http: config.uplink.http.fallback
        ? new HttpTelemetry({
            server,
            tokens,
            ...(deps.fetch ? { fetch: deps.fetch } : {}),
          })
        : undefined,
      window: config.uplink.window,
      backfillAfterMs: config.uplink.backfillAfter,
      ackTimeoutMs: config.uplink.ackTimeout,
      httpAfterMs: config.uplink.http.after,
      now,
      monotonic,
      logger: log.child({ module: 'uplink' }),
      metrics: this.metrics,
      onDrained: () => this.requestState(),
      notChild: {
        publisherId: deviceId,
        standing,
        renumber: (records) => ({ boot: this.bootId, seq: this.intake.claimSeq(records) }),
      },
    });

    const sourceLog = log.child({ module: 'sources' });
    this.#sources = config.sources.map((source) =>
      source.kind === 'serial'
        ? new SerialSource(source.serial, {
            sink: this.intake.sink,
            clock: { now },
            monotonic,
            random,
            logger: sourceLog,
          })
        : new LocalMqttSource(source.mqtt, {
            sink: this.intake.sink,
            clock: { now },
            logger: sourceLog,
          }),
    );
    for (const source of this.#sources) {
      if (!(source instanceof SerialSource)) continue;
      // A child that (re)identified itself, after a flash say: its state shows it soon.
      source.onFrame((frame) => {
        if (frame.kind === 'id') this.requestState();
      });
    }
    const otaLog = log.child({ module: 'ota' });
    const selfInstaller = new SelfInstaller({
      gatewayId: deviceId,
      installRoot: config.ota.installRoot,
      entry: config.ota.entry,
      runningVersion: AGENT_VERSION,
      hardware: config.ota.hardware ?? `${process.platform}-${process.arch}`,
      trialWindowMs: config.ota.trialWindow,
      maxBoots: config.ota.maxBoots,
      unpack: {
        maxBytes: config.ota.maxUnpackedBytes,
        maxEntries: config.ota.maxUnpackedEntries,
      },
      health: () => this.#health(),
      restart: (reason) => {
        log.warn({ reason }, 'restarting into another version');
        (deps.onRestart ?? (() => undefined))(reason);
      },
      now,
      sleep: (ms, signal) => delay(ms, undefined, { signal }),
      logger: otaLog,
    });
    this.#ota = new OtaUpdater({
      dataDir: config.dataDir,
      server,
      installers: [
        selfInstaller,
        new SerialChildInstaller({
          sources: this.#sources.filter((x): x is SerialSource => x instanceof SerialSource),
          config: config.ota.serial,
          monotonic,
          logger: otaLog,
        }),
        ...(deps.installers ?? []),
      ],
      releaseKeys: new ReleaseKeyStore(
        config.dataDir,
        identity.identity.releaseKeys,
        config.ota.releaseKeyPins,
      ),
      state: new OtaStateStore(config.dataDir),
      publish: async (target, event) => {
        await this.#session.publish(topics.events(target), JSON.stringify(event));
        this.#cloudAcked = true;
      },
      download: {
        token: async (fresh) => (fresh ? await tokens.fresh() : await tokens.current()).token,
        fetch: deps.fetch ?? nodeHttpFetch,
        random,
        monotonic,
        now,
        sleep: (ms, signal) => delay(ms, undefined, { signal }),
        backoff: {
          initialMs: config.ota.download.backoff.initial,
          maxMs: config.ota.download.backoff.max,
        },
        maxAttempts: config.ota.download.attempts,
        maxRetryAfterMs: config.ota.download.maxRetryAfter,
        idleTimeoutMs: config.ota.download.idleTimeout,
      },
      progressEveryMs: config.ota.download.progressEvery,
      now,
      logger: otaLog,
    });

    this.#registerGauges();
  }

  /** Loads the identity and the remote config, then starts every part. */
  static async start(deps: AgentDeps): Promise<Agent> {
    const identity = await loadIdentity(deps.config.dataDir);
    const key = await importSigningKey(identity.privateJwk);
    const remote = await readRemoteConfig(deps.config.dataDir);
    const config =
      remote === undefined ? deps.config : applyRemoteConfig(deps.config, remote.config);
    const agent = new Agent(deps, identity, {
      key,
      config,
      configVersion: remote?.version ?? 0,
    });
    await agent.#start();
    return agent;
  }

  get config(): AgentConfig {
    return this.#config;
  }

  get configVersion(): number {
    return this.#configVersion;
  }

  get sessionUp(): boolean {
    return this.#session.up;
  }

  /** Ports of the serial sources as the state report shows them. */
  ports(): PortStatus[] {
    return this.#sources.flatMap((s) => s.status());
  }

  async #start(): Promise<void> {
    const log = this.#log;
    const stats = this.outbox.stats();
    log.info(
      {
        bootId: this.bootId,
        pending: stats.records,
        quarantined: stats.quarantined,
        configVersion: this.#configVersion,
        version: AGENT_VERSION,
      },
      'agent starting',
    );
    const listen = this.#config.metrics.listen;
    if (listen !== false) {
      const address = parseListen(listen)!;
      if (!isLoopback(address.host)) {
        log.warn({ listen }, 'metrics endpoint is not on localhost');
      }
      // Without metrics the agent still keeps and sends readings: not a reason to stop.
      this.#metricsServer = await startMetricsServer(this.metrics.registry, address).catch(
        (err: unknown) => {
          log.error({ err, listen }, 'metrics endpoint not started');
          return undefined;
        },
      );
    }
    await this.#clockSync.start();
    // Before the session: an update cut short by a restart carries on, results wait for it.
    await this.#ota.start();
    this.uplink.start();
    this.#session.start();
    await Promise.all(this.#sources.map((s) => s.start()));
    this.#scheduleState();
    log.info({ sources: this.#sources.length }, 'agent running');
  }

  /** PROTOCOL.md §6, retained, whenever the session is up. */
  async publishState(): Promise<void> {
    if (!this.#session.up) return;
    this.#lastStateAt = this.#deps.monotonic();
    try {
      const ports = this.ports();
      const state = buildReportedState({
        agentVersion: AGENT_VERSION,
        uptimeS: (this.#deps.monotonic() - this.#startedAt) / 1000,
        outbox: this.outbox.stats(),
        ports,
        configVersion: this.#configVersion,
        nowMs: this.#deps.now(),
      });
      await this.#session.publish(topics.state(this.deviceId), JSON.stringify(state), true);
      this.#cloudAcked = true;
      this.metrics.statePublished.inc();
      for (const child of buildChildStates(ports, this.#deps.now())) {
        // The broker grants a child's commands topic exactly while the registry names this
        // gateway its parent, which is also when it may publish under the child's id (§4);
        // a publish it may not make would close the session.
        if (!this.#session.granted(topics.commands(child.deviceId))) continue;
        await this.#session.publish(
          topics.state(child.deviceId),
          JSON.stringify(child.state),
          true,
        );
      }
    } catch (err) {
      this.#log.debug({ err }, 'state not published');
    }
  }

  /**
   * A state report soon: at once, or MIN_STATE_GAP_MS after the last one, so a burst of
   * changes (connect, then drained a moment later) shows each state for a while.
   */
  requestState(): void {
    if (this.#stateSoon !== undefined) return;
    const wait = Math.max(0, this.#lastStateAt + MIN_STATE_GAP_MS - this.#deps.monotonic());
    this.#stateSoon = setTimeout(() => {
      this.#stateSoon = undefined;
      void this.publishState();
    }, wait);
    this.#stateSoon.unref();
  }

  #scheduleState(): void {
    clearInterval(this.#stateTimer);
    this.#stateTimer = setInterval(() => void this.publishState(), this.#config.state.every);
    this.#stateTimer.unref();
  }

  /** PROTOCOL.md §8 `config.desired`: validate, keep on disk, apply, report the version. */
  async #configDesired(command: CommandOf<'config.desired'>): Promise<void> {
    const log = this.#log;
    if (command.version <= this.#configVersion) {
      log.info({ version: command.version }, 'config.desired not newer than the current one');
      await this.publishState();
      return;
    }
    const parsed = remoteConfigSchema.safeParse(command.config);
    if (!parsed.success) {
      const problems = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
      log.error({ version: command.version, problems }, 'config.desired refused');
      await this.#session
        .publish(
          topics.events(this.deviceId),
          JSON.stringify({
            v: 1,
            type: 'log',
            at: this.#deps.now() / 1000,
            level: 'error',
            message:
              `config.desired version ${command.version} refused: ${problems.join('; ')}`.slice(
                0,
                1000,
              ),
            source: 'outpost-agent',
          }),
        )
        .catch(() => undefined);
      throw new Error('invalid remote configuration');
    }
    await writeRemoteConfig(
      this.#config.dataDir,
      command.version,
      command.config,
      this.#deps.now(),
    );
    const next = applyRemoteConfig(this.#config, parsed.data);
    this.outbox.setLimits({ maxBytes: next.outbox.maxBytes, whenFull: next.outbox.whenFull });
    this.intake.reconfigure(next.pipeline, next.batch);
    this.#config = next;
    this.#configVersion = command.version;
    this.metrics.configVersion.set(command.version);
    this.#scheduleState();
    log.info({ version: command.version }, 'remote configuration applied');
    await this.publishState();
  }

  /**
   * The health probes of a new version on trial: the cloud answers (the session is up and a
   * QoS 1 publish was acknowledged), and configured sources deliver readings.
   */
  async #health(): Promise<'cloud_unreachable' | 'sources_silent' | undefined> {
    if (!this.#session.up || !this.#cloudAcked) return 'cloud_unreachable';
    if (this.#sources.length > 0) {
      const { values } = await this.metrics.readings.get();
      const outboxed = values
        .filter((v) => v.labels.outcome === 'outboxed')
        .reduce((sum, v) => sum + v.value, 0);
      if (outboxed === 0) return 'sources_silent';
    }
    return undefined;
  }

  #registerGauges(): void {
    const m = this.metrics;
    // One look at the outbox per scrape, however many gauges read it.
    let cached: { at: number; stats: ReturnType<Outbox['stats']> } | undefined;
    const stats = () => {
      const now = this.#deps.monotonic();
      if (cached === undefined || now - cached.at > 200) {
        cached = { at: now, stats: this.outbox.stats() };
      }
      return cached.stats;
    };
    m.observe(
      'outpost_agent_outbox_pending_batches',
      'Batches waiting for the cloud',
      () => stats().pending,
    );
    m.observe(
      'outpost_agent_outbox_pending_records',
      'Records waiting for the cloud',
      () => stats().records,
    );
    m.observe(
      'outpost_agent_outbox_bytes',
      'Bytes held by the outbox (packs)',
      () => stats().bytes,
    );
    m.observe(
      'outpost_agent_outbox_max_bytes',
      'The outbox bound (outbox.maxBytes)',
      () => stats().maxBytes,
    );
    m.observe('outpost_agent_outbox_oldest_age_seconds', 'Age of the oldest pending batch', () => {
      const oldest = stats().oldestMs;
      return oldest === undefined ? 0 : Math.max(0, (this.#deps.now() - oldest) / 1000);
    });
    m.observe(
      'outpost_agent_outbox_quarantined_batches',
      'Batches refused by the ingest and kept for inspection',
      () => stats().quarantined,
    );
    m.observeLabelled(
      'outpost_agent_outbox_records',
      'What the outbox did with records since it was created, by outcome (kept across restarts)',
      'outcome',
      () => {
        const c = stats().counters;
        return {
          appended: c.appendedRecords,
          acked: c.ackedRecords,
          dropped: c.droppedRecords,
          rejected: c.rejectedRecords,
          downsampled: c.downsampledRecords,
          aggregates: c.aggregateRecords,
          quarantined: c.quarantinedRecords,
          quarantine_dropped: c.quarantineDroppedRecords,
          requeued: c.requeuedRecords,
        };
      },
    );
    m.observe(
      'outpost_agent_children_registered',
      'Child devices whose commands topic the broker granted: registered with this gateway',
      () => this.#standing.registeredChildren,
    );
    m.observe(
      'outpost_agent_isolated_devices',
      'Devices refused as not_child whose readings go in batches of their own',
      () => this.#standing.isolatedDevices,
    );
    m.observeLabelled(
      'outpost_agent_port_open',
      'Serial ports by configured path: 1 open, 0 missing or silent',
      'path',
      () => Object.fromEntries(this.ports().map((p) => [p.path, p.state === 'open' ? 1 : 0])),
    );
    m.observe(
      'outpost_agent_clock_synced',
      '1 while the wall clock is known to be synchronised',
      () => (this.clock.quality() === 'synced' ? 1 : 0),
    );
    m.observe(
      'outpost_agent_clock_offset_seconds',
      "The ingest's clock minus ours, from its HTTP Date header",
      () => (this.clock.offsetMs ?? 0) / 1000,
    );
  }

  /**
   * Graceful stop: the sources, then what they held goes to the outbox, then the session
   * (waiting briefly for PUBACKs of what is in flight), then the outbox.
   */
  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      const log = this.#log;
      clearInterval(this.#stateTimer);
      clearTimeout(this.#stateSoon);
      // First, while the session still carries its last progress events.
      await this.#ota.stop();
      await Promise.allSettled(this.#sources.map((s) => s.stop()));
      this.intake.stop();
      await this.publishState();
      await this.#session.stop();
      this.uplink.stop();
      this.#clockSync.stop();
      await closeServer(this.#metricsServer);
      const stats = this.outbox.stats();
      this.outbox.close();
      log.info({ pending: stats.records }, 'agent stopped');
    })();
    return this.#stopping;
  }
}
