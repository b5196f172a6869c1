import { leaseContract } from './lease.contract.js';
import { LocalLeases } from './local-lease.js';

// Real: LocalLeases (nothing else to be real about: one process holds every lease).
leaseContract('LocalLeases', async () => {
  const made: LocalLeases[] = [];
  return {
    async replica() {
      const leases = new LocalLeases();
      made.push(leases);
      return leases;
    },
    async close() {
      for (const leases of made) await leases.close();
    },
  };
});
