import { type Command, type CommandOf, commandSchema } from '@outpost/protocol/commands';
import { verifyCommand } from '@outpost/signing/command';
import type { Jwks } from '@outpost/signing/jwks';
import { MemoryReplayCache } from '@outpost/signing/replay-cache';
import type { Logger } from 'pino';
import type { AgentMetrics } from '../metrics/agent-metrics.js';

/** What the agent does with each command type it understands (PROTOCOL.md §8). */
export interface CommandHandlers {
  'telemetry.rejected'(command: CommandOf<'telemetry.rejected'>): void;
  'config.desired'(command: CommandOf<'config.desired'>): Promise<void> | void;
  'ota.offer'(command: CommandOf<'ota.offer'>): Promise<void> | void;
  'keys.release'(command: CommandOf<'keys.release'>): Promise<void> | void;
  ping(command: CommandOf<'ping'>): void;
  reboot(command: CommandOf<'reboot'>): void;
}

export interface CommandReceiverOptions {
  deviceId: string;
  /**
   * Child devices this gateway acts for (PROTOCOL.md §4). A command addressed to one of
   * them is accepted only when it is an `ota.offer` arriving on that child's own commands
   * topic; everything else a child could be sent is the gateway's business.
   */
  children?: readonly string[];
  /** The service JWKS from enrollment. */
  jwks: Jwks;
  /** Epoch ms, on the ingest's clock when its offset is known. */
  now: () => number;
  handlers: CommandHandlers;
  logger: Logger;
  metrics: AgentMetrics;
}

/**
 * Verifies every message on the commands topic before acting on it: service signature
 * (JWKS from enrollment), `exp`, target `device` and the payload schema, and each `id` once
 * (replay cache). "Devices ignore commands whose signature, `exp` or target device does not
 * check out" (PROTOCOL.md §8): a refused command is counted and logged, never acted on.
 */
export class CommandReceiver {
  readonly #o: CommandReceiverOptions;
  readonly #replay: MemoryReplayCache;

  constructor(options: CommandReceiverOptions) {
    this.#o = options;
    this.#replay = new MemoryReplayCache({ maxEntries: 10_000, now: () => options.now() / 1000 });
  }

  /** `target`: the device whose commands topic the message arrived on. */
  async receive(payload: Buffer, target = this.#o.deviceId): Promise<Command | undefined> {
    const { logger, metrics } = this.#o;
    const forChild = target !== this.#o.deviceId;
    if (forChild && !(this.#o.children ?? []).includes(target)) {
      metrics.commands.inc({ type: 'unknown', outcome: 'refused' });
      logger.warn({ target }, 'command on the topic of a device this gateway does not serve');
      return undefined;
    }
    let command: Command;
    try {
      const verified = await verifyCommand(payload.toString('utf8'), {
        keys: this.#o.jwks,
        // The signed target must be the device of the topic it came on: a command for the
        // gateway replayed onto a child's topic, or the reverse, is refused.
        deviceId: target,
        replayCache: this.#replay,
        schema: commandSchema,
        now: () => this.#o.now() / 1000,
      });
      command = verified.payload;
    } catch (err) {
      metrics.commands.inc({ type: 'unknown', outcome: 'refused' });
      logger.warn({ err: (err as Error).message, target }, 'command refused');
      return undefined;
    }
    if (forChild && command.type !== 'ota.offer') {
      metrics.commands.inc({ type: command.type, outcome: 'refused' });
      logger.warn({ type: command.type, target }, 'only ota.offer is taken for a child device');
      return undefined;
    }
    const handler = this.#o.handlers[command.type as keyof CommandHandlers] as
      | ((c: Command) => Promise<void> | void)
      | undefined;
    if (handler === undefined) {
      metrics.commands.inc({ type: command.type, outcome: 'ignored' });
      logger.info({ type: command.type, id: command.id }, 'command not handled by this agent');
      return command;
    }
    try {
      await handler(command);
      metrics.commands.inc({ type: command.type, outcome: 'applied' });
    } catch (err) {
      metrics.commands.inc({ type: command.type, outcome: 'failed' });
      logger.error({ err, type: command.type, id: command.id }, 'command failed');
    }
    return command;
  }
}
