import { EventEmitter } from 'node:events';
import { Injectable } from '@nestjs/common';

/**
 * In-process registry events. The broker listens for revocations to drop sessions; in
 * cluster mode an adapter relays them between replicas.
 */
export interface RegistryEventMap {
  'device.revoked': [{ deviceId: string; at: number }];
  'device.updated': [{ deviceId: string; fields: readonly string[] }];
  'token.revoked': [{ tokenId: string }];
}

@Injectable()
export class RegistryEvents extends EventEmitter<RegistryEventMap> {}
