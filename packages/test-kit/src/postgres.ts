import { existsSync, readFileSync, rmSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { findBinary } from './binaries.js';
import { LOOPBACK } from './ports.js';
import { ManagedProcess, onProcessExit, runCommand, waitFor } from './process.js';
import {
  type PortServiceHandle,
  portServiceHandle,
  ServiceRunner,
  type StartOptions,
} from './service.js';
import { testRootDir } from './workdir.js';

export interface PostgresOptions extends StartOptions {
  /** Extra server settings, passed as `-c name=value`. */
  settings?: Readonly<Record<string, string | number>>;
}

export interface PostgresHandle extends PortServiceHandle {
  /** `postgres://postgres@127.0.0.1:<port>/postgres` (trust auth, no password). */
  readonly url: string;
  readonly user: string;
  /** Creates a database and returns its URL. */
  createDatabase(name: string): Promise<string>;
  /** Runs SQL through psql (unaligned, tuples only, stops on the first error); returns stdout. */
  sql(statement: string, database?: string): Promise<string>;
}

const SUPERUSER = 'postgres';
// Unix socket paths are limited to 107 bytes; with a longer dir, listen on TCP only.
const MAX_SOCKET_DIR = 90;

interface Owner {
  uid: number;
  gid: number;
}

/** initdb and postgres refuse to run as root: as root, run them as the `postgres` user. */
function serverOwner(): Owner | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const passwd = readFileSync('/etc/passwd', 'utf8');
  for (const line of passwd.split('\n')) {
    const [name, , uid, gid] = line.split(':');
    if (name === 'postgres' && uid !== undefined && gid !== undefined) {
      return { uid: Number(uid), gid: Number(gid) };
    }
  }
  throw new Error(
    'running as root but there is no postgres user: run `npm run setup` (installs Debian package postgresql)',
  );
}

function ownerOptions(owner: Owner | undefined): { uid?: number; gid?: number } {
  return owner === undefined ? {} : { uid: owner.uid, gid: owner.gid };
}

/** The environment without PG* variables, so a developer's PGHOST or PGSSLMODE cannot leak in. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith('PG')) env[key] = value;
  }
  env.LC_ALL = 'C';
  return env;
}

async function makeOwnedDir(owner: Owner | undefined, dir: string, mode: number): Promise<string> {
  await mkdir(dir, { mode });
  if (owner !== undefined) await chown(dir, owner.uid, owner.gid);
  return dir;
}

// initdb takes ~0.7 s, a copy of its result ~0.1 s (both slower on a busy machine): the first
// start in a process runs initdb into a template, later starts copy it. The template is removed
// when the process exits.
const templates = new Map<string, Promise<string>>();

async function makeTemplate(initdb: string, owner: Owner | undefined): Promise<string> {
  const root = testRootDir();
  await mkdir(root, { recursive: true, mode: 0o755 });
  const dir = await mkdtemp(join(root, 'postgres-template-'));
  onProcessExit(() => rmSync(dir, { recursive: true, force: true }));
  await chmod(dir, 0o755);
  const data = await makeOwnedDir(owner, join(dir, 'data'), 0o700);
  await runCommand(
    initdb,
    [
      ...['-D', data, '-A', 'trust', '-U', SUPERUSER, '--no-sync', '--encoding=UTF8', '--locale=C'],
      // 1 MB WAL segments instead of 16 MB: a smaller template to copy for each server.
      '--wal-segsize=1',
    ],
    { ...ownerOptions(owner), cwd: dir, env: cleanEnv(), timeoutMs: 60_000 },
  ).catch((err: unknown) => {
    const hint =
      owner === undefined
        ? ''
        : ' (it runs as user postgres, which must be able to reach this directory: set OUTPOST_TEST_DIR to a path under /tmp if not)';
    const reason = err instanceof Error ? err.message : String(err);
    throw new Error(`initdb failed in ${dir}${hint}: ${reason}`, { cause: err });
  });
  return data;
}

function templateDataDir(initdb: string, owner: Owner | undefined): Promise<string> {
  let template = templates.get(initdb);
  if (template === undefined) {
    template = makeTemplate(initdb, owner);
    templates.set(initdb, template);
    template.catch(() => templates.delete(initdb));
  }
  return template;
}

/** `"name"` with embedded quotes doubled. */
export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** Ready when postmaster.pid belongs to this process and reports `ready` (as pg_ctl -w checks). */
async function postmasterReady(data: string, pid: number | undefined): Promise<boolean> {
  const lines = (await readFile(join(data, 'postmaster.pid'), 'utf8')).split('\n');
  return lines[0] === String(pid) && lines[7]?.trim() === 'ready';
}

/** A throwaway PostgreSQL server on 127.0.0.1, trust auth, fsync off. */
export async function startPostgres(options: PostgresOptions = {}): Promise<PostgresHandle> {
  const initdb = findBinary('initdb', options.lookup);
  const binDir = dirname(initdb);
  const postgres = findBinary('postgres', { ...options.lookup, preferDirs: [binDir] });
  const psql = findBinary('psql', { ...options.lookup, preferDirs: [binDir] });
  const owner = serverOwner();
  const env = cleanEnv();
  const template = await templateDataDir(initdb, owner);
  let data = '';

  const runner = await ServiceRunner.start(
    {
      name: 'postgres',
      async spawn({ port, dir, logPath }) {
        if (data === '') {
          data = join(dir, 'data');
          await runCommand('cp', ['-a', template, data]);
        }
        const socketDir = join(dir, 'socket');
        if (!existsSync(socketDir)) await makeOwnedDir(owner, socketDir, 0o700);
        const settings: [string, string | number][] = [
          ['listen_addresses', LOOPBACK],
          ['port', port],
          ['unix_socket_directories', socketDir.length <= MAX_SOCKET_DIR ? socketDir : ''],
          ['fsync', 'off'],
          ...Object.entries(options.settings ?? {}),
        ];
        return ManagedProcess.start({
          name: 'postgres',
          command: postgres,
          args: ['-D', data, ...settings.flatMap(([k, v]) => ['-c', `${k}=${v}`])],
          cwd: dir,
          env,
          logPath,
          ...ownerOptions(owner),
          // SIGTERM is "smart" shutdown and waits for clients; SIGINT is "fast".
          stopSignal: 'SIGINT',
        });
      },
      ready: (proc, { port, readyTimeoutMs }) =>
        waitFor(() => postmasterReady(data, proc.pid), {
          what: `postgres ready on 127.0.0.1:${port}`,
          timeoutMs: readyTimeoutMs,
          intervalMs: 20,
          process: proc,
        }).then(() => undefined),
    },
    options,
  );

  const urlOf = (database: string): string =>
    `postgres://${SUPERUSER}@${LOOPBACK}:${runner.port}/${encodeURIComponent(database)}`;
  const sql = async (statement: string, database = 'postgres'): Promise<string> => {
    const result = await runCommand(
      psql,
      [
        ...['-h', LOOPBACK, '-p', String(runner.port), '-U', SUPERUSER, '-d', database],
        ...['-X', '-A', '-t', '-q', '-v', 'ON_ERROR_STOP=1', '-c', statement],
      ],
      { env },
    );
    return result.stdout;
  };
  return Object.assign(
    portServiceHandle(runner, () => urlOf('postgres')),
    {
      user: SUPERUSER,
      sql,
      async createDatabase(name: string) {
        await sql(`CREATE DATABASE ${quoteIdent(name)}`);
        return urlOf(name);
      },
    },
  );
}
