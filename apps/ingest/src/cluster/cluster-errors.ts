import { AppError } from '@outpost/protocol/errors';

/** The replicas' shared transport (Redis) is unreachable: readiness fails until it is back. */
export class ClusterUnavailable extends AppError {
  constructor(message = 'the cluster bus (redis) is unreachable') {
    super('unavailable', 'cluster_unavailable', message);
  }
}
