import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Summary of a V8 `.cpuprofile` of the event loop (cpu-profiler.ts): self time per function
 * and per area of the code. Time the event loop spends blocked in a native call (an fsync
 * inside a SQLite commit) is sampled in that call's JS caller, and so is time the event loop
 * waits for a CPU after handing a signature check to the threadpool. Work the threadpool
 * does (signature verification) is not in this profile: see the thread CPU split instead. A
 * native function's time counts for the area of its nearest caller with a URL.
 */

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileEntry {
  name: string;
  selfMs: number;
  /** Share of the non-idle time. */
  share: number;
}

export interface ProfileSummary {
  file: string;
  /** Sampled time the event loop was not idle. */
  busyMs: number;
  idleMs: number;
  byArea: ProfileEntry[];
  topFunctions: ProfileEntry[];
}

/** Which part of the stack a frame belongs to; first match wins. */
const AREAS: [RegExp, string][] = [
  [/\/node_modules\/jose\//, 'jose (JWS parsing, WebCrypto calls)'],
  [/\/node_modules\/zod\//, 'zod (schema validation)'],
  [/\/node_modules\/better-sqlite3\//, 'better-sqlite3 (outbox commits, incl. fsync waits)'],
  [/\/node_modules\/(aedes|mqtt-packet|bl|mqemitter|aedes-[^/]+)\//, 'aedes + mqtt-packet'],
  [/\/node_modules\/@influxdata\//, 'InfluxDB client transport'],
  [/\/node_modules\/(prom-client|pino[^/]*)\//, 'metrics + logging'],
  [/\/node_modules\/(fastify|@nestjs|light-my-request|avvio)[^/]*\//, 'HTTP (Fastify/Nest)'],
  [/\/node_modules\//, 'other dependencies'],
  [/\/packages\/signing\//, '@outpost/signing (JWS checks)'],
  [/\/packages\/protocol\//, '@outpost/protocol (SenML resolve, schemas)'],
  [/\/apps\/ingest\/dist\/telemetry\/durable-outbox/, 'outbox (encode, dedup, commit)'],
  [
    /\/apps\/ingest\/dist\/telemetry\/(influx-telemetry-store|line-protocol)/,
    'line protocol + store',
  ],
  [/\/apps\/ingest\/dist\/telemetry\//, 'telemetry pipeline'],
  [/\/apps\/ingest\/dist\/broker\//, 'broker hooks + frame guard'],
  [/\/apps\/ingest\/dist\//, 'ingest (other)'],
  [/^node:internal\/crypto\//, 'crypto job dispatch (verification itself is off-thread)'],
  [/^node:|^internal\//, 'Node core (net, streams, http, timers)'],
];

function areaOf(frame: CallFrame): string {
  if (frame.functionName === '(garbage collector)') return 'garbage collection';
  if (frame.functionName === '(program)') return 'V8/native (program)';
  for (const [pattern, area] of AREAS) if (pattern.test(frame.url)) return area;
  return 'other';
}

function shortUrl(url: string): string {
  const nm = url.lastIndexOf('/node_modules/');
  if (nm >= 0) return url.slice(nm + '/node_modules/'.length);
  const dist = url.indexOf('/dist/');
  if (dist >= 0) return url.slice(url.lastIndexOf('/', dist - 1) + 1);
  return url.replace(/^file:\/\//, '');
}

/** Summarizes the `.cpuprofile` in `dir`; undefined when there is none. */
export function summarizeProfile(dir: string, top = 15): ProfileSummary | undefined {
  const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
  const file = files.sort().at(-1);
  if (file === undefined) return undefined;
  const profile = JSON.parse(readFileSync(join(dir, file), 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  // timeDeltas[i] is the time since the previous sample: it belongs to sample i - 1.
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i]!;
    selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i + 1] ?? 0));
  }
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  // A native function (no URL: JSON.parse, a SQLite statement, code zod compiles with
  // `new Function`) counts for the area of the nearest caller that has one.
  const areaOfNode = (id: number): string => {
    let at: number | undefined = id;
    while (at !== undefined) {
      const frame = byId.get(at)!.callFrame;
      if (frame.url !== '' || frame.functionName.startsWith('(')) return areaOf(frame);
      at = parent.get(at);
    }
    return 'other';
  };
  const areas = new Map<string, number>();
  const functions = new Map<string, number>();
  let idleUs = 0;
  let busyUs = 0;
  for (const [id, us] of selfUs) {
    const frame = byId.get(id)!.callFrame;
    if (frame.functionName === '(idle)') {
      idleUs += us;
      continue;
    }
    busyUs += us;
    const area = areaOfNode(id);
    areas.set(area, (areas.get(area) ?? 0) + us);
    const where = frame.url
      ? ` ${shortUrl(frame.url)}:${frame.lineNumber + 1}`
      : frame.functionName.startsWith('(')
        ? ''
        : ' (native)';
    const name = `${frame.functionName || '(anonymous)'}${where}`;
    functions.set(name, (functions.get(name) ?? 0) + us);
  }
  const entries = (m: Map<string, number>) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .map(([name, us]) => ({ name, selfMs: us / 1000, share: busyUs > 0 ? us / busyUs : 0 }));
  return {
    file: join(dir, file),
    busyMs: busyUs / 1000,
    idleMs: idleUs / 1000,
    byArea: entries(areas).slice(0, top),
    topFunctions: entries(functions).slice(0, top),
  };
}
