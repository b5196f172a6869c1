import { Controller, Get, Inject, NotFoundException, Req, Res } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { Public } from '../auth/access.js';
import type { IngestConfig } from '../config.js';
import { CONFIG, LOGGER } from '../injection.js';
import {
  builtAt,
  CONTENT_SECURITY_POLICY,
  type DashboardBuild,
  type DashboardFile,
  isServicePath,
  loadDashboard,
  NOT_BUILT_PAGE,
  resolvePath,
} from './dashboard-assets.js';

/** How often a request may look for a new build (a rebuild while the service runs). */
const RECHECK_MS = 2000;

const PAGE_HEADERS = {
  'content-security-policy': CONTENT_SECURITY_POLICY,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
};

/**
 * The operator dashboard at `/`: the built app's files, and the app itself for its client
 * routes. Public: the page holds no data; its API calls carry the token.
 */
@Controller()
@Public()
export class DashboardController {
  private readonly log: Logger;
  private build: DashboardBuild | undefined;
  private checkedAt = 0;

  constructor(
    @Inject(CONFIG) private readonly config: IngestConfig,
    @Inject(LOGGER) logger: Logger,
  ) {
    this.log = logger.child({ module: 'dashboard' });
    this.build = this.read();
    if (this.build) {
      this.log.info(
        { dir: config.dashboardDir, files: this.build.files.size + 1 },
        'dashboard served at /',
      );
    } else {
      this.log.warn({ dir: config.dashboardDir }, 'dashboard not built: run npm run build');
    }
  }

  @Get()
  root(@Req() request: FastifyRequest, @Res() reply: FastifyReply) {
    return this.serve('/', request, reply);
  }

  @Get('*')
  any(@Req() request: FastifyRequest, @Res() reply: FastifyReply) {
    return this.serve(request.url.split('?')[0] ?? '/', request, reply);
  }

  private serve(path: string, request: FastifyRequest, reply: FastifyReply) {
    const build = this.current();
    if (!build) {
      if (isServicePath(decodePath(path))) throw new NotFoundException();
      return reply
        .code(200)
        .headers({
          ...PAGE_HEADERS,
          'content-type': 'text/html; charset=utf-8',
          'cache-control': 'no-store',
        })
        .send(NOT_BUILT_PAGE);
    }
    const file = resolvePath(build, decodePath(path));
    // Nest's 404 for unknown routes: problem details with `route_not_found`.
    if (file === 'not-found') throw new NotFoundException();
    return this.send(file, request, reply);
  }

  private send(file: DashboardFile, request: FastifyRequest, reply: FastifyReply) {
    const headers: Record<string, string> = {
      'content-type': file.contentType,
      etag: file.etag,
      vary: 'accept-encoding',
      'cache-control': file.immutable ? 'public, max-age=31536000, immutable' : 'no-cache',
      'x-content-type-options': 'nosniff',
    };
    if (file.contentType.startsWith('text/html')) Object.assign(headers, PAGE_HEADERS);
    if (request.headers['if-none-match'] === file.etag) {
      return reply.code(304).headers(headers).send();
    }
    const gzip = file.gzip && /\bgzip\b/.test(String(request.headers['accept-encoding'] ?? ''));
    if (gzip) headers['content-encoding'] = 'gzip';
    return reply
      .code(200)
      .headers(headers)
      .send(gzip ? file.gzip : file.body);
  }

  /** The build, re-read when its manifest changed (at most every {@link RECHECK_MS}). */
  private current(): DashboardBuild | undefined {
    const now = Date.now();
    if (now - this.checkedAt < RECHECK_MS) return this.build;
    this.checkedAt = now;
    const mtime = builtAt(this.config.dashboardDir);
    if (mtime !== this.build?.builtAt) {
      this.build = this.read();
      if (this.build) this.log.info({ dir: this.config.dashboardDir }, 'dashboard build loaded');
    }
    return this.build;
  }

  private read(): DashboardBuild | undefined {
    try {
      return loadDashboard(this.config.dashboardDir);
    } catch (err) {
      this.log.warn({ err, dir: this.config.dashboardDir }, 'dashboard build unreadable');
      return undefined;
    }
  }
}

function decodePath(path: string): string {
  try {
    return decodeURIComponent(path);
  } catch {
    return path;
  }
}
