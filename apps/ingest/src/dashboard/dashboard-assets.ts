import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import { gzipSync } from 'node:zlib';

/**
 * The built dashboard (`apps/dashboard/dist`), read into memory from Vite's manifest. Only
 * the files the manifest names are served, by exact URL path: a request path is looked up in
 * this whitelist and never joined to a directory.
 */
export interface DashboardFile {
  body: Buffer;
  /** Present when it saves bytes; sent to clients that accept gzip. */
  gzip: Buffer | undefined;
  contentType: string;
  etag: string;
  /** Vite puts a content hash in these names: cacheable for a year. */
  immutable: boolean;
}

export interface DashboardBuild {
  index: DashboardFile;
  /** By URL path, e.g. `/assets/index-CCfW5qjX.js`. */
  files: ReadonlyMap<string, DashboardFile>;
  /** The manifest's modification time, to notice a rebuild. */
  builtAt: number;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.webp': 'image/webp',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.json': 'application/json',
};
const COMPRESSIBLE = new Set(['.html', '.js', '.css', '.svg', '.json']);
/** A manifest file name as Vite writes it: relative, no `..`, no backslashes. */
const SAFE_NAME = /^(?!.*\.\.)[A-Za-z0-9_][A-Za-z0-9_./-]*$/;

export const MANIFEST = 'manifest.json';

interface ManifestChunk {
  file?: unknown;
  css?: unknown;
  assets?: unknown;
}

function load(dir: string, name: string, immutable: boolean): DashboardFile | undefined {
  const type = TYPES[extname(name)];
  if (!type) return undefined;
  const body = readFileSync(join(dir, name));
  const gz = COMPRESSIBLE.has(extname(name)) ? gzipSync(body, { level: 9 }) : undefined;
  return {
    body,
    gzip: gz && gz.length < body.length ? gz : undefined,
    contentType: type,
    etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`,
    immutable,
  };
}

/** The manifest's time, or undefined when the dashboard is not built in `dir`. */
export function builtAt(dir: string): number | undefined {
  try {
    return statSync(join(dir, MANIFEST)).mtimeMs;
  } catch {
    return undefined;
  }
}

/** Reads the build in `dir`; undefined when there is none (no manifest or no index.html). */
export function loadDashboard(dir: string): DashboardBuild | undefined {
  const mtime = builtAt(dir);
  if (mtime === undefined) return undefined;
  const manifest = JSON.parse(readFileSync(join(dir, MANIFEST), 'utf8')) as Record<
    string,
    ManifestChunk
  >;
  const names = new Set<string>();
  const add = (v: unknown) => {
    if (typeof v === 'string' && SAFE_NAME.test(v)) names.add(v);
  };
  for (const chunk of Object.values(manifest)) {
    add(chunk.file);
    for (const list of [chunk.css, chunk.assets]) if (Array.isArray(list)) list.forEach(add);
  }
  let index: DashboardFile | undefined;
  try {
    index = load(dir, 'index.html', false);
  } catch {
    return undefined;
  }
  if (!index) return undefined;
  const files = new Map<string, DashboardFile>();
  for (const name of names) {
    const file = load(dir, name, true);
    if (file) files.set(`/${name}`, file);
  }
  return { index, files, builtAt: mtime };
}

/** Paths the dashboard never answers: they belong to the API and the service. */
const SERVICE_PREFIXES = ['/api', '/mqtt', '/healthz', '/readyz', '/metrics'];

export function isServicePath(path: string): boolean {
  return SERVICE_PREFIXES.some((p) => path === p || path.startsWith(`${p}/`));
}

/**
 * What to answer for a GET of `path`: a file of the build, the app itself for client
 * routes (SPA fallback), or nothing (404) for service paths and missing assets.
 */
export function resolvePath(build: DashboardBuild, path: string): DashboardFile | 'not-found' {
  const file = build.files.get(path);
  if (file) return file;
  if (isServicePath(path)) return 'not-found';
  // A missing asset is a 404, not the page: a stale tab must not run HTML as a script.
  // Client routes with ids (`/devices/th-1.boiler`) have two segments and stay routes.
  if (path.startsWith('/assets/')) return 'not-found';
  if (path.lastIndexOf('/') === 0 && Object.hasOwn(TYPES, extname(path))) return 'not-found';
  return build.index;
}

/**
 * CSP of the page: scripts, styles and connections from this origin only (the API and the
 * event stream), no inline script or style, no framing.
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "connect-src 'self'",
  "img-src 'self' data:",
  "style-src 'self'",
  "script-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

export const NOT_BUILT_PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Outpost</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><h1>Outpost</h1><p>dashboard not built: run npm run build</p>
<p>The API is at <a href="/api/docs">/api/docs</a>.</p></body></html>`;
