import { MemoryOutbox } from './memory-outbox.js';
import { contractDownsampler, outboxContract } from './outbox.contract.js';

outboxContract(
  'MemoryOutbox',
  (limits, { downsample }) =>
    new MemoryOutbox({ ...limits, ...(downsample ? { downsampler: contractDownsampler() } : {}) }),
);
