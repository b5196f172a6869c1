import { readdirSync, readFileSync } from 'node:fs';
import { loadavg } from 'node:os';

/**
 * CPU and memory of processes and of the machine, read from /proc (Linux). CPU times are
 * in clock ticks of USER_HZ, which is 100 on every Linux architecture Node supports.
 */
const TICK_MS = 10;

/** utime + stime of a process and all its threads, in milliseconds. */
export function processCpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) may contain spaces and parentheses: count from its end.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // proc(5): utime and stime are fields 14 and 15, i.e. 11 and 12 after the name.
  return (Number(fields[11]) + Number(fields[12])) * TICK_MS;
}

/** Resident set size of a process in bytes. */
export function processRssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(status);
  return match ? Number(match[1]) * 1024 : 0;
}

/** Open file descriptors of a process. */
export function processOpenFiles(pid: number): { soft: number; hard: number } {
  const limits = readFileSync(`/proc/${pid}/limits`, 'utf8');
  const match = /^Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/m.exec(limits);
  const read = (v: string | undefined) =>
    v === undefined || v === 'unlimited' ? Infinity : Number(v);
  return { soft: read(match?.[1]), hard: read(match?.[2]) };
}

/**
 * CPU milliseconds of a process's threads: the event loop (the main thread) apart from the
 * others, which Node 20 leaves unnamed (`node`): the libuv threadpool (WebCrypto jobs such
 * as signature verification, fs, zlib) and V8's helpers (concurrent GC, compiler).
 */
export function threadCpuMs(pid: number): Record<string, number> {
  const out: Record<string, number> = {};
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const group = tid === String(pid) ? 'event loop' : name === 'node' ? 'other threads' : name;
      out[group] = (out[group] ?? 0) + (Number(fields[11]) + Number(fields[12])) * TICK_MS;
    } catch {
      // The thread ended meanwhile.
    }
  }
  return out;
}

/**
 * Nanoseconds a process's main thread ran on a CPU and waited on a run queue for one
 * (/proc/<pid>/task/<pid>/schedstat): the wait is time it was ready to run but the machine
 * was busy with something else.
 */
export function mainThreadSched(pid: number): { runNs: number; waitNs: number } {
  try {
    const [run, wait] = readFileSync(`/proc/${pid}/task/${pid}/schedstat`, 'utf8')
      .trim()
      .split(' ')
      .map(Number);
    return { runNs: run ?? 0, waitNs: wait ?? 0 };
  } catch {
    return { runNs: Number.NaN, waitNs: Number.NaN };
  }
}

/** `after - before` per key, keys of either. */
export function diffCpu(
  before: Record<string, number>,
  after: Record<string, number>,
): Record<string, number> {
  const out: Record<string, number> = {};
  for (const key of new Set([...Object.keys(before), ...Object.keys(after)])) {
    out[key] = (after[key] ?? 0) - (before[key] ?? 0);
  }
  return out;
}

interface MachineTicks {
  busy: number;
  total: number;
}

/** Aggregate CPU ticks of the machine (/proc/stat `cpu` line). */
export function machineTicks(): MachineTicks {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
  const values = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest time is already in user).
  const total = values.slice(0, 8).reduce((a, b) => a + b, 0);
  const idle = (values[3] ?? 0) + (values[4] ?? 0);
  return { busy: total - idle, total };
}

export interface CpuWindow {
  /** Seconds of wall time. */
  wallS: number;
  /** CPU milliseconds per named process over the window. */
  processMs: Record<string, number>;
  /**
   * Per named process, shares of the window its main thread (the event loop) spent running
   * and waiting for a CPU; the rest it was idle or blocked (e.g. in fsync).
   */
  mainThread: Record<string, { running: number; waitingForCpu: number }>;
  /** Fraction of all cores busy over the window (0–1), whatever process used them. */
  machineBusy: number;
  /** Load averages at the end of the window. */
  load: [number, number, number];
}

/** Snapshots the CPU of named processes and of the machine; `since()` gives the deltas. */
export class CpuMeter {
  private readonly startedAt = performance.now();
  private readonly startMs: Record<string, number>;
  private readonly startMachine = machineTicks();
  private readonly startSched: Record<string, { runNs: number; waitNs: number }>;

  constructor(private readonly pids: Record<string, number>) {
    this.startMs = Object.fromEntries(
      Object.entries(pids).map(([name, pid]) => [name, safeCpuMs(pid)]),
    );
    this.startSched = Object.fromEntries(
      Object.entries(pids).map(([name, pid]) => [name, mainThreadSched(pid)]),
    );
  }

  since(): CpuWindow {
    const machine = machineTicks();
    const wallS = (performance.now() - this.startedAt) / 1000;
    const processMs: Record<string, number> = {};
    const mainThread: CpuWindow['mainThread'] = {};
    for (const [name, pid] of Object.entries(this.pids)) {
      processMs[name] = safeCpuMs(pid) - (this.startMs[name] ?? 0);
      const sched = mainThreadSched(pid);
      const start = this.startSched[name]!;
      mainThread[name] = {
        running: (sched.runNs - start.runNs) / 1e9 / wallS,
        waitingForCpu: (sched.waitNs - start.waitNs) / 1e9 / wallS,
      };
    }
    const total = machine.total - this.startMachine.total;
    const [l1, l5, l15] = loadavg();
    return {
      wallS,
      processMs,
      mainThread,
      machineBusy: total > 0 ? (machine.busy - this.startMachine.busy) / total : 0,
      load: [l1 ?? 0, l5 ?? 0, l15 ?? 0],
    };
  }
}

/** A process that already exited has no /proc entry: NaN marks its window as unmeasured. */
function safeCpuMs(pid: number): number {
  try {
    return processCpuMs(pid);
  } catch {
    return Number.NaN;
  }
}
