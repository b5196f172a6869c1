#!/usr/bin/env node
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { SigningAlgorithm } from '@outpost/protocol/claims';
import { Command, InvalidArgumentError, Option } from 'commander';
import { pino } from 'pino';
import { AGENT_VERSION, Agent } from './agent.js';
import {
  type AgentConfig,
  configJsonSchema,
  configPathOf,
  DEFAULT_CONFIG_PATH,
  DEFAULT_DATA_DIR,
  dataDirOf,
  loadConfigFile,
  optionalConfigPathOf,
} from './config.js';
import { AgentError, exitCodeOf } from './errors.js';
import { nodeHttpFetch } from './http/node-http-fetch.js';
import { enroll } from './identity/enroll.js';
import { RESTART_EXIT_CODE } from './ota/self-installer.js';
import { formatOutboxReport, outboxReport, uplinkFromMetrics } from './outbox/outbox-report.js';
import { SqliteOutbox } from './outbox/sqlite-outbox.js';
import { formatPorts, portBindings } from './ports-report.js';
import { PortDiscovery } from './sources/port-discovery.js';

/**
 * `outpost-agent`: enroll the gateway, run the agent, and look at its serial ports and its
 * outbox (SURFACES.md "Edge agent"). Errors end with one line on stderr (and a hint), exit
 * code 2 for a usage or configuration problem, 1 otherwise.
 */

function configPath(option: string | undefined): string {
  return configPathOf(option, process.env);
}

function loadConfig(path: string): Promise<AgentConfig> {
  return loadConfigFile(path, { env: process.env });
}

function fail(err: unknown): never {
  if (err instanceof AgentError) {
    process.stderr.write(`outpost-agent: ${err.message}\n`);
    if (err.hint) process.stderr.write(`  hint: ${err.hint}\n`);
  } else {
    process.stderr.write(
      `outpost-agent: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
  }
  process.exit(exitCodeOf(err));
}

const program = new Command()
  .name('outpost-agent')
  .description('Outpost edge agent: serial and local MQTT sensors to the cloud, nothing lost')
  .version(AGENT_VERSION)
  .showHelpAfterError();

program
  .command('enroll')
  .description("make this gateway's key pair here and enroll it (PROTOCOL.md §2)")
  .requiredOption('--server <url>', 'the ingest, e.g. https://ingest.example:8080')
  .requiredOption('--token <token>', 'the enrollment token (outpost device enroll-token)')
  .option(
    '--data-dir <dir>',
    `where identity.json and device-key.json go (default ${DEFAULT_DATA_DIR}, or AGENT_DATA_DIR)`,
  )
  .addOption(new Option('--alg <alg>', 'key type').choices(['EdDSA', 'ES256']).default('EdDSA'))
  .option('--force', 'replace an existing identity')
  .action(
    async (opts: {
      server: string;
      token: string;
      dataDir?: string;
      alg: string;
      force?: boolean;
    }) => {
      const dataDir = dataDirOf(opts.dataDir, process.env);
      const identity = await enroll({
        server: opts.server,
        token: opts.token,
        dataDir,
        alg: opts.alg as SigningAlgorithm,
        force: opts.force === true,
      });
      process.stdout.write(
        `enrolled ${identity.deviceId} (${identity.kind}, key ${identity.kid})\n` +
          `identity: ${join(dataDir, 'identity.json')}\nkey:      ${join(dataDir, 'device-key.json')} (0600)\n`,
      );
    },
  );

program
  .command('run')
  .description('run the agent until SIGTERM')
  .option('--config <file>', `agent.yaml (default ${DEFAULT_CONFIG_PATH}, or AGENT_CONFIG)`)
  .action(async (opts: { config?: string }) => {
    const config = await loadConfig(configPath(opts.config));
    const logger = pino({ level: config.log.level, base: { service: 'outpost-agent' } });
    let agent: Agent | undefined;
    let exiting = false;
    const exit = async (code: number, reason: string) => {
      if (exiting) return;
      exiting = true;
      logger.info({ reason }, 'stopping');
      const force = setTimeout(() => process.exit(code === 0 ? 1 : code), 20_000);
      force.unref();
      try {
        await agent?.stop();
      } catch (err) {
        logger.error({ err }, 'stop failed');
      }
      process.exit(code);
    };
    process.on('SIGTERM', () => void exit(0, 'SIGTERM'));
    process.on('SIGINT', () => void exit(0, 'SIGINT'));
    process.on('uncaughtException', (err) => {
      logger.fatal({ err }, 'uncaught exception');
      void exit(1, 'uncaught exception');
    });
    process.on('unhandledRejection', (err) => {
      logger.fatal({ err }, 'unhandled rejection');
      void exit(1, 'unhandled rejection');
    });
    agent = await Agent.start({
      config,
      logger,
      // systemd's Restart=always brings the agent back.
      onReboot: () => void exit(0, 'reboot command'),
      // The launcher (or systemd) starts `current` again: the new version, or the old one.
      onRestart: (reason) => void exit(RESTART_EXIT_CODE, `self-update: ${reason}`),
    });
  });

program
  .command('ports')
  .description('list serial ports: by-id path, VID/PID, serial number, what is bound to them')
  .option('--config <file>', 'agent.yaml, to show which source each port is bound to')
  .option('--json', 'JSON instead of a table')
  .action(async (opts: { config?: string; json?: boolean }) => {
    const path = optionalConfigPathOf(opts.config, process.env);
    const config = path === undefined ? undefined : await loadConfig(path);
    const discovery = new PortDiscovery();
    const ports = await discovery.list();
    const bound = await portBindings(ports, config?.sources ?? [], (p) => discovery.resolvePath(p));
    process.stdout.write(opts.json ? `${JSON.stringify(bound, null, 2)}\n` : formatPorts(bound));
  });

program
  .command('outbox')
  .description('what is buffered: pending records and bytes, oldest age, quarantine, drain ETA')
  .option('--config <file>', `agent.yaml (default ${DEFAULT_CONFIG_PATH}, or AGENT_CONFIG)`)
  .option('--json', 'JSON instead of text')
  .option('--quarantine <n>', 'show the last n quarantined batches', intArg, 5)
  .action(async (opts: { config?: string; json?: boolean; quarantine: number }) => {
    const config = await loadConfig(configPath(opts.config));
    const path = join(config.dataDir, 'outbox.db');
    let outbox: SqliteOutbox;
    try {
      outbox = new SqliteOutbox({
        path,
        maxBytes: config.outbox.maxBytes,
        whenFull: config.outbox.whenFull,
        readonly: true,
      });
    } catch (cause) {
      throw new AgentError('invalid', 'outbox_missing', `cannot open ${path}`, {
        cause,
        hint: 'has the agent run with this dataDir?',
      });
    }
    const stats = outbox.stats();
    const quarantine = outbox.listQuarantine(opts.quarantine);
    outbox.close();
    let uplink: ReturnType<typeof uplinkFromMetrics>;
    if (config.metrics.listen !== false) {
      try {
        const res = await nodeHttpFetch(`http://${config.metrics.listen}/metrics`, {
          signal: AbortSignal.timeout(2000),
        });
        uplink = uplinkFromMetrics(await res.text());
      } catch {
        uplink = undefined;
      }
    }
    const report = outboxReport(stats, uplink, quarantine, Date.now());
    process.stdout.write(
      opts.json ? `${JSON.stringify(report, null, 2)}\n` : formatOutboxReport(report),
    );
  });

program
  .command('schema')
  .description('print the JSON Schema of agent.yaml (for editors)')
  .option('--out <file>', 'write it to a file instead')
  .action(async (opts: { out?: string }) => {
    const text = `${JSON.stringify(configJsonSchema(), null, 2)}\n`;
    if (opts.out === undefined) process.stdout.write(text);
    else await writeFile(opts.out, text);
  });

function intArg(text: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 0) throw new InvalidArgumentError('expected an integer ≥ 0');
  return n;
}

await program.parseAsync(process.argv).catch(fail);
