import type { ConnectivityUpdate } from '../registry/registry-store.js';

/**
 * Online state and last-seen times, kept in memory and written to the registry in batches
 * (PROTOCOL.md §3): never a registry write per message. Pure: the caller passes the time.
 */
export class ConnectivityTracker {
  private readonly pending = new Map<string, ConnectivityUpdate>();
  private readonly online = new Set<string>();

  /** `replica`: this replica's id, recorded with every online update. */
  constructor(private readonly replica: string) {}

  connected(deviceId: string, now: number): void {
    this.online.add(deviceId);
    this.pending.set(deviceId, this.onlineUpdate(deviceId, now));
  }

  disconnected(deviceId: string, reason: string, now: number): void {
    this.online.delete(deviceId);
    this.pending.set(deviceId, {
      deviceId,
      online: false,
      lastSeen: now,
      disconnectReason: reason,
      replica: null,
    });
  }

  /**
   * The device connected to another replica at `now`: it is no longer online here (that
   * replica sends it commands and records its connectivity), and an update of ours not
   * written yet is older news: written late, an "offline" would overwrite that replica's
   * "online", or an "online" its later "offline".
   */
  movedAway(deviceId: string, now: number): void {
    this.online.delete(deviceId);
    const p = this.pending.get(deviceId);
    if (p && p.lastSeen <= now) this.pending.delete(deviceId);
  }

  /** Activity of a connected device (a message); cheap, called on the hot path. */
  seen(deviceId: string, now: number): void {
    const p = this.pending.get(deviceId);
    if (p) p.lastSeen = Math.max(p.lastSeen, now);
    else if (this.online.has(deviceId))
      this.pending.set(deviceId, this.onlineUpdate(deviceId, now));
  }

  isOnline(deviceId: string): boolean {
    return this.online.has(deviceId);
  }

  get onlineCount(): number {
    return this.online.size;
  }

  /** The updates since the last call. */
  take(): ConnectivityUpdate[] {
    const updates = [...this.pending.values()];
    this.pending.clear();
    return updates;
  }

  private onlineUpdate(deviceId: string, now: number): ConnectivityUpdate {
    return { deviceId, online: true, lastSeen: now, disconnectReason: null, replica: this.replica };
  }
}

/**
 * Disconnect reasons of sessions that ended with their replica's process, which could not
 * record them: `server_restart`, recorded by the replica when it starts again, and
 * `replica_lost`, recorded by a survivor once the replica is found dead for good.
 */
export const LOST_SESSION = {
  serverRestart: 'server_restart',
  replicaLost: 'replica_lost',
} as const;

/**
 * Whose devices a starting replica records offline (`markReplicaOffline`) before it accepts
 * connections. No session outlives its process, so a device the registry shows online
 * through this replica was left by a run that died without recording it offline (kill -9,
 * power loss). Alone, the registry is this process's own: every online device. Shared with
 * other replicas, only those recorded under this replica id: the others' devices are theirs,
 * and a replica gone for good is marked by the survivor that adopts its outbox.
 */
export function staleAtStart(registryShared: boolean, replicaId: string): string | null {
  return registryShared ? replicaId : null;
}

/**
 * Counts events per key in a sliding window; used for refusals per device and client-id
 * takeovers. Bounded by the number of keys it is asked about within one window.
 */
export class WindowCounter {
  private readonly events = new Map<string, number[]>();

  constructor(private readonly windowMs: number) {}

  add(key: string, now: number): number {
    const list = this.prune(key, now);
    list.push(now);
    this.events.set(key, list);
    return list.length;
  }

  count(key: string, now: number): number {
    return this.prune(key, now).length;
  }

  forget(key: string): void {
    this.events.delete(key);
  }

  private prune(key: string, now: number): number[] {
    const list = this.events.get(key) ?? [];
    while (list.length > 0 && list[0]! <= now - this.windowMs) list.shift();
    if (list.length === 0) this.events.delete(key);
    return list;
  }
}
