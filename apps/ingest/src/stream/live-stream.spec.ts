import { describe, expect, it } from 'vitest';
import type { ClusterBus } from '../cluster/cluster-bus.js';
import type { ClusterEnvelope, ClusterEvent, LiveType } from '../cluster/cluster-messages.js';
import { InProcessClusterBus } from '../cluster/in-process-cluster-bus.js';
import { LiveEvents } from './live-events.js';
import { LiveStream } from './live-stream.js';

/** A cluster bus that records what is sent and lets the test deliver messages. */
class RecordingBus implements ClusterBus {
  readonly replicaId = 'replica-a';
  readonly clustered = true;
  readonly sent: ClusterEvent[] = [];
  readonly wanted = new Set<LiveType>();
  othersWanting = new Set<LiveType>();
  private readonly handlers = new Set<(e: ClusterEnvelope) => void>();

  publish(event: ClusterEvent): void {
    this.sent.push(event);
  }
  onMessage(handler: (e: ClusterEnvelope) => void): () => void {
    this.handlers.add(handler);
    return () => this.handlers.delete(handler);
  }
  onReconnected(): () => void {
    return () => {};
  }
  wantLive(type: LiveType, wanted: boolean): void {
    if (wanted) this.wanted.add(type);
    else this.wanted.delete(type);
  }
  othersWantLive(type: LiveType): boolean {
    return this.othersWanting.has(type);
  }
  healthy(): boolean {
    return true;
  }
  async start(): Promise<void> {}
  async close(): Promise<void> {}
  deliver(event: ClusterEvent, seq = 1): void {
    for (const h of this.handlers) h({ v: 1, origin: 'replica-b', seq, event });
  }
}

const point = { device: 'th-1', metric: 'temp', timeMs: 1000, value: 21, tags: { room: 'a' } };

describe('LiveStream', () => {
  it('on one node, passes this replica’s events through and stops when told', () => {
    const live = new LiveEvents();
    const stream = new LiveStream(live, new InProcessClusterBus('solo'));
    stream.onApplicationBootstrap();
    const seen: unknown[] = [];
    const off = stream.on('readings', (r) => seen.push(r));
    live.emit('readings', { publisher: 'th-1', points: [point] });
    off();
    off();
    live.emit('readings', { publisher: 'th-1', points: [point] });
    expect(seen).toEqual([{ publisher: 'th-1', points: [point] }]);
    expect(live.listenerCount('readings')).toBe(0);
  });

  it('sends local events only while another replica wants them, without tags', () => {
    const live = new LiveEvents();
    const bus = new RecordingBus();
    const stream = new LiveStream(live, bus);
    stream.onApplicationBootstrap();
    live.emit('readings', { publisher: 'th-1', points: [point] });
    expect(bus.sent).toEqual([]);
    bus.othersWanting.add('readings');
    live.emit('readings', { publisher: 'th-1', points: [point] });
    live.emit('status', { deviceId: 'th-1', online: true, reason: null, at: 5 });
    expect(bus.sent).toEqual([
      {
        type: 'readings',
        publisher: 'th-1',
        points: [{ device: 'th-1', metric: 'temp', timeMs: 1000, value: 21 }],
      },
    ]);
    stream.beforeApplicationShutdown();
    live.emit('readings', { publisher: 'th-1', points: [point] });
    expect(bus.sent).toHaveLength(1);
  });

  it('gives SSE listeners other replicas’ events, not the local alert engine', () => {
    const live = new LiveEvents();
    const bus = new RecordingBus();
    const stream = new LiveStream(live, bus);
    stream.onApplicationBootstrap();
    const engine: unknown[] = [];
    live.on('status', (s) => engine.push(s));
    const seen: unknown[] = [];
    const first = stream.on('status', (s) => seen.push(s));
    const second = stream.on('status', () => {});
    expect([...bus.wanted]).toEqual(['status']);
    bus.deliver({ type: 'status', deviceId: 'th-1', online: false, reason: 'takeover', at: 9 });
    // A registry event on the bus is not a live event.
    bus.deliver({ type: 'device.revoked', deviceId: 'th-1', at: 9 }, 2);
    expect(seen).toEqual([{ deviceId: 'th-1', online: false, reason: 'takeover', at: 9 }]);
    expect(engine).toEqual([]);
    first();
    expect([...bus.wanted]).toEqual(['status']);
    second();
    expect([...bus.wanted]).toEqual([]);
  });
});
