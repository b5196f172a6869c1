import type { ConnectivityUpdate } from '../registry/registry-store.js';

/**
 * Online state and last-seen times, kept in memory and written to the registry in batches
 * (PROTOCOL.md §3): never a registry write per message. Pure: the caller passes the time.
 */
export class ConnectivityTracker {
  private readonly pending = new Map<string, ConnectivityUpdate>();
  private readonly online = new Set<string>();

  connected(deviceId: string, now: number): void {
    this.online.add(deviceId);
    this.pending.set(deviceId, { deviceId, online: true, lastSeen: now, disconnectReason: null });
  }

  disconnected(deviceId: string, reason: string, now: number): void {
    this.online.delete(deviceId);
    this.pending.set(deviceId, {
      deviceId,
      online: false,
      lastSeen: now,
      disconnectReason: reason,
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
    else if (this.online.has(deviceId)) {
      this.pending.set(deviceId, { deviceId, online: true, lastSeen: now, disconnectReason: null });
    }
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
