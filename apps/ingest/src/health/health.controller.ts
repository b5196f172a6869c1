import { Controller, Get, Header, Inject } from '@nestjs/common';
import type { Registry } from 'prom-client';
import { z } from 'zod';
import { Public } from '../auth/access.js';
import { CLUSTER_BUS, type ClusterBus } from '../cluster/cluster-bus.js';
import { ClusterUnavailable } from '../cluster/cluster-errors.js';
import { StorageUnavailable } from '../errors.js';
import { ApiDoc } from '../http/openapi.js';
import { METRICS, REGISTRY_STORE } from '../injection.js';
import type { RegistryStore } from '../registry/registry-store.js';

const statusSchema = z.object({ status: z.literal('ok') });

@Controller()
@Public()
export class HealthController {
  constructor(
    @Inject(REGISTRY_STORE) private readonly registry: RegistryStore,
    @Inject(METRICS) private readonly metrics: Registry,
    @Inject(CLUSTER_BUS) private readonly bus: ClusterBus,
  ) {}

  @Get('healthz')
  @ApiDoc({ summary: 'Liveness: the process answers', response: statusSchema, tag: 'service' })
  healthz() {
    return { status: 'ok' as const };
  }

  @Get('readyz')
  @ApiDoc({
    summary: 'Readiness: storage (and, in cluster mode, Redis) is reachable',
    response: statusSchema,
    tag: 'service',
  })
  async readyz() {
    try {
      await this.registry.ping();
    } catch (err) {
      throw new StorageUnavailable('registry storage unreachable', err);
    }
    if (!this.bus.healthy()) throw new ClusterUnavailable();
    return { status: 'ok' as const };
  }

  @Get('metrics')
  @Header('content-type', 'text/plain; version=0.0.4; charset=utf-8')
  @ApiDoc({ summary: 'Prometheus metrics', tag: 'service' })
  async prometheus(): Promise<string> {
    return this.metrics.metrics();
  }
}
