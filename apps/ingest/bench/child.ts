import { type ChildProcess, fork } from 'node:child_process';

/**
 * Load generators, the peer's subscriber and the session holder run as their own processes,
 * so their CPU is measured apart from the server's. They talk to the bench over the IPC
 * channel with `{type, ...}` messages; a child reports a failure as `{type: 'error'}`.
 */
export interface Message {
  type: string;
}

interface ErrorMessage {
  type: 'error';
  message: string;
}

type Waiter = {
  type: string;
  resolve: (m: Message) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
};

export class Child<In extends Message, Out extends Message> {
  private readonly inbox: Message[] = [];
  private readonly waiters: Waiter[] = [];
  private exitStatus: string | undefined;
  private readonly exited: Promise<void>;

  private constructor(
    readonly name: string,
    private readonly proc: ChildProcess,
  ) {
    proc.on('message', (m: Message) => this.deliver(m));
    this.exited = new Promise((resolve) => {
      proc.once('exit', (code, signal) => {
        this.exitStatus = signal ? `killed by ${signal}` : `exited with code ${code}`;
        for (const w of this.waiters.splice(0)) {
          clearTimeout(w.timer);
          w.reject(new Error(`${this.name} ${this.exitStatus} while waiting for "${w.type}"`));
        }
        resolve();
      });
    });
  }

  /** Forks a compiled entry module (a sibling `.js` file of this one). */
  static start<In extends Message, Out extends Message>(
    name: string,
    entry: string,
    options: { execArgv?: string[] } = {},
  ): Child<In, Out> {
    const proc = fork(new URL(entry, import.meta.url), [], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      execArgv: options.execArgv ?? [],
      serialization: 'advanced',
    });
    return new Child<In, Out>(name, proc);
  }

  get pid(): number {
    if (this.proc.pid === undefined) throw new Error(`${this.name} has no pid`);
    return this.proc.pid;
  }

  send(message: In): void {
    if (this.exitStatus !== undefined) throw new Error(`${this.name} ${this.exitStatus}`);
    this.proc.send(message);
  }

  /** The next message of `type` (messages are kept until asked for). */
  next<T extends Out['type']>(type: T, timeoutMs: number): Promise<Extract<Out, { type: T }>> {
    const i = this.inbox.findIndex((m) => m.type === type || m.type === 'error');
    if (i >= 0)
      return this.settle(this.inbox.splice(i, 1)[0]!) as Promise<Extract<Out, { type: T }>>;
    if (this.exitStatus !== undefined) {
      return Promise.reject(new Error(`${this.name} ${this.exitStatus}`));
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const at = this.waiters.findIndex((w) => w.timer === timer);
        if (at >= 0) this.waiters.splice(at, 1);
        reject(new Error(`${this.name}: no "${type}" within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.push({
        type,
        resolve: (m) => this.settle(m).then((v) => resolve(v as Extract<Out, { type: T }>), reject),
        reject,
        timer,
      });
    });
  }

  /** Asks the child to exit, then kills it if it does not within `timeoutMs`. */
  async stop(goodbye: In, timeoutMs = 10_000): Promise<void> {
    if (this.exitStatus === undefined) {
      try {
        this.proc.send(goodbye);
      } catch {
        // The channel is already closed: the kill below ends it.
      }
    }
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), timeoutMs);
    await this.exited;
    clearTimeout(timer);
  }

  private settle(m: Message): Promise<Message> {
    if (m.type === 'error') {
      return Promise.reject(new Error(`${this.name}: ${(m as ErrorMessage).message}`));
    }
    return Promise.resolve(m);
  }

  private deliver(m: Message): void {
    const i = this.waiters.findIndex((w) => w.type === m.type || m.type === 'error');
    if (i < 0) {
      this.inbox.push(m);
      return;
    }
    const [w] = this.waiters.splice(i, 1);
    clearTimeout(w!.timer);
    w!.resolve(m);
  }
}

/**
 * The child side: hands each message from the bench to `handle`; a thrown error goes back
 * as `{type: 'error'}`. The child exits when the bench goes away.
 */
export function serveParent<In extends Message, Out extends Message>(
  handle: (message: In, reply: (m: Out) => void) => Promise<void> | void,
): void {
  if (process.send === undefined) throw new Error('this module runs as a child of the bench');
  const reply = (m: Out | ErrorMessage) => process.send!(m);
  process.on('message', (m: In) => {
    Promise.resolve()
      .then(() => handle(m, reply))
      .catch((err: unknown) =>
        reply({
          type: 'error',
          message: err instanceof Error ? (err.stack ?? err.message) : String(err),
        }),
      );
  });
  process.on('disconnect', () => process.exit(0));
}
