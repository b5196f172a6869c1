/**
 * What the agent knows of which devices the ingest takes readings for from this gateway
 * (PROTOCOL.md §4), and which devices it keeps apart because the ingest refused them. Pure:
 * the session reports what the broker answered, the uplink what the ingest refused.
 *
 * - **Registered**: the gateway itself, and each child whose commands topic the broker
 *   granted. The broker grants a child's commands topic exactly while the registry names
 *   this gateway its parent, the same rule the ingest applies to readings. The last answer
 *   holds until the next connection answers again, so a refusal that arrives between a
 *   reconnect and its SUBACK is still judged on what the broker said before.
 * - **Isolated**: devices named in a batch refused as `not_child` that are not known to be
 *   registered. Their readings go in batches of their own: one such device in a shared batch
 *   gets every reading in it refused. A device stays isolated until the broker grants its
 *   commands topic (it was registered, and a later connection subscribed again); devices
 *   whose topic the agent never subscribes to (local MQTT sensors) stay isolated until they
 *   are the oldest of more than `maxIsolated`.
 * - **Withheld**: isolated devices whose commands topic the broker refused on its last
 *   answer. Both the ingest and the broker said no, so their batches are quarantined by the
 *   agent instead of sent: every refused batch counts towards the ingest's refusals per
 *   minute, beyond which it closes the gateway's session (and the refused subscription at
 *   each reconnect counts too), which would cut the registered children off as well.
 */
export interface ChildStandingOptions {
  gatewayId: string;
  /** Bound of the isolated set; the oldest entry leaves first. Default 64. */
  maxIsolated?: number;
}

export const DEFAULT_MAX_ISOLATED = 64;

export class ChildStanding {
  readonly #gatewayId: string;
  readonly #maxIsolated: number;
  readonly #registered = new Set<string>();
  /** Children whose commands topic the broker refused on its last answer. */
  readonly #refused = new Set<string>();
  /** Insertion-ordered: the first entry is the oldest. */
  readonly #isolated = new Set<string>();

  constructor(options: ChildStandingOptions) {
    this.#gatewayId = options.gatewayId;
    this.#maxIsolated = Math.max(1, options.maxIsolated ?? DEFAULT_MAX_ISOLATED);
  }

  /**
   * The broker answered the child subscriptions of a connection: `true` granted, `false`
   * refused. Returns the devices this takes out of isolation.
   */
  answered(answers: Iterable<readonly [deviceId: string, granted: boolean]>): string[] {
    const released: string[] = [];
    for (const [deviceId, granted] of answers) {
      if (!granted) {
        this.#registered.delete(deviceId);
        this.#refused.add(deviceId);
        continue;
      }
      this.#refused.delete(deviceId);
      this.#registered.add(deviceId);
      if (this.#isolated.delete(deviceId)) released.push(deviceId);
    }
    return released;
  }

  /** The ingest takes this device's readings from the gateway, as far as the agent knows. */
  registered(deviceId: string): boolean {
    return deviceId === this.#gatewayId || this.#registered.has(deviceId);
  }

  /**
   * Devices of a batch refused as `not_child` that are not known registered: kept apart from
   * now on. Returns those newly isolated.
   */
  isolate(deviceIds: Iterable<string>): string[] {
    const added: string[] = [];
    for (const deviceId of deviceIds) {
      if (this.registered(deviceId) || this.#isolated.has(deviceId)) continue;
      this.#isolated.add(deviceId);
      added.push(deviceId);
      if (this.#isolated.size > this.#maxIsolated) {
        this.#isolated.delete(this.#isolated.values().next().value!);
      }
    }
    return added;
  }

  isolated(deviceId: string): boolean {
    return this.#isolated.has(deviceId);
  }

  /** Isolated, and its commands topic refused: its batches are quarantined, not sent. */
  withheld(deviceId: string): boolean {
    return this.#isolated.has(deviceId) && this.#refused.has(deviceId);
  }

  get registeredChildren(): number {
    return this.#registered.size;
  }

  get isolatedDevices(): number {
    return this.#isolated.size;
  }
}
