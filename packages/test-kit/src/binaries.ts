import { accessSync, constants, readdirSync } from 'node:fs';
import { delimiter, join } from 'node:path';

/** The Debian package that provides each binary the test kit starts or calls. */
const DEBIAN_PACKAGES: Readonly<Record<string, string>> = {
  'redis-server': 'redis-server',
  'redis-cli': 'redis-tools',
  'victoria-metrics': 'victoria-metrics',
  influxd: 'influxdb',
  mosquitto: 'mosquitto',
  mosquitto_pub: 'mosquitto-clients',
  mosquitto_sub: 'mosquitto-clients',
  socat: 'socat',
  initdb: 'postgresql',
  postgres: 'postgresql',
  pg_ctl: 'postgresql',
  psql: 'postgresql-client',
  createdb: 'postgresql-client',
  chromium: 'chromium',
};

export const SETUP_COMMAND = 'npm run setup';

export function debianPackageOf(binary: string): string | undefined {
  return DEBIAN_PACKAGES[binary];
}

export class MissingBinaryError extends Error {
  readonly binary: string;
  readonly debianPackage: string | undefined;
  readonly searched: readonly string[];

  constructor(binary: string, searched: readonly string[]) {
    const pkg = debianPackageOf(binary);
    const installs = pkg === undefined ? '' : ` (installs Debian package ${pkg})`;
    super(`${binary} not found: run \`${SETUP_COMMAND}\`${installs}`);
    this.name = 'MissingBinaryError';
    this.binary = binary;
    this.debianPackage = pkg;
    this.searched = searched;
  }
}

export interface BinaryLookupOptions {
  /** A PATH-style list; defaults to `process.env.PATH`. */
  path?: string;
  /** Directories searched after PATH; defaults to {@link defaultSearchDirs}. */
  searchDirs?: readonly string[];
  /** Directories searched before PATH (e.g. the PostgreSQL bin dir already in use). */
  preferDirs?: readonly string[];
  isExecutable?: (file: string) => boolean;
}

/**
 * Directories outside a typical PATH where Debian puts daemons: /usr/sbin (mosquitto) and
 * /usr/lib/postgresql/<major>/bin (initdb, postgres), newest major first.
 */
export function defaultSearchDirs(): string[] {
  return ['/usr/local/sbin', '/usr/sbin', '/sbin', ...postgresBinDirs()];
}

function postgresBinDirs(root = '/usr/lib/postgresql'): string[] {
  let majors: string[];
  try {
    majors = readdirSync(root);
  } catch {
    return [];
  }
  return majors
    .filter((m) => /^\d+(\.\d+)?$/.test(m))
    .sort((a, b) => Number.parseFloat(b) - Number.parseFloat(a))
    .map((m) => join(root, m, 'bin'));
}

function isExecutableFile(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The absolute path of `binary`, or throws {@link MissingBinaryError}. */
export function findBinary(binary: string, options: BinaryLookupOptions = {}): string {
  const pathDirs = (options.path ?? process.env.PATH ?? '').split(delimiter).filter(Boolean);
  const dirs = [
    ...(options.preferDirs ?? []),
    ...pathDirs,
    ...(options.searchDirs ?? defaultSearchDirs()),
  ];
  const isExecutable = options.isExecutable ?? isExecutableFile;
  const searched: string[] = [];
  for (const dir of dirs) {
    const candidate = join(dir, binary);
    if (searched.includes(candidate)) continue;
    searched.push(candidate);
    if (isExecutable(candidate)) return candidate;
  }
  throw new MissingBinaryError(binary, searched);
}
