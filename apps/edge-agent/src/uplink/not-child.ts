import type { DeviceId } from '@outpost/protocol/ids';
import { compressPack, type Reading } from '@outpost/protocol/senml';
import { decodePack } from '../outbox/downsample.js';
import type { OutboxBatch } from '../outbox/outbox.js';
import { packReadings } from '../outbox/pack.js';

/**
 * How a batch refused as `not_child` is cut (PROTOCOL.md §9). Pure: a batch in, packs out.
 *
 * The ingest refuses the whole batch when one record names a device that is not a child of
 * the gateway, and says which only in free text. The agent does not parse that: it keeps
 * the readings of devices it knows the ingest takes (the gateway, children whose commands
 * topic the broker granted) and sets the others apart.
 *
 * There is nothing to split, and the batch is quarantined whole, when no reading is of a
 * known device, or when every reading is (what the agent believes is then out of date: a
 * child unregistered since its subscription was granted). The second rule also ends the
 * story of a re-queued part that is refused again: it holds only known devices, so its
 * refusal quarantines it.
 */
export interface RequeuePart {
  pack: string;
  records: number;
  /** The weights of the kept records, when the refused batch held aggregates. */
  weights?: number[];
}

export interface NotChildSplit {
  /** Devices named in the batch that are not known to be registered, in order of first use. */
  strangers: string[];
  /** Undefined when there is nothing to split (see above). */
  parts:
    | {
        /** The known devices' readings, in their order, packed as `packReadings` packs. */
        requeue: RequeuePart[];
        /** The other readings, as one pack. */
        quarantine: { pack: string; records: number };
      }
    | undefined;
}

export function splitNotChild(
  batch: Pick<OutboxBatch, 'pack' | 'weights'>,
  publisherId: DeviceId,
  registered: (deviceId: string) => boolean,
): NotChildSplit {
  let readings: Reading[];
  try {
    readings = decodePack(batch.pack, publisherId);
  } catch {
    // A pack the agent wrote itself always decodes; if one does not, keep it as it is.
    return { strangers: [], parts: undefined };
  }
  const kept: Reading[] = [];
  const keptWeights: number[] = [];
  const refused: Reading[] = [];
  const strangers = new Set<string>();
  readings.forEach((reading, i) => {
    if (registered(reading.deviceId)) {
      kept.push(reading);
      keptWeights.push(batch.weights?.[i] ?? 1);
    } else {
      refused.push(reading);
      strangers.add(reading.deviceId);
    }
  });
  if (kept.length === 0 || refused.length === 0) {
    return { strangers: [...strangers], parts: undefined };
  }
  let offset = 0;
  const requeue = packReadings(kept, publisherId).map((p): RequeuePart => {
    const records = p.readings.length;
    const part: RequeuePart = { pack: p.pack, records };
    if (batch.weights !== undefined) part.weights = keptWeights.slice(offset, offset + records);
    offset += records;
    return part;
  });
  return {
    strangers: [...strangers],
    parts: {
      requeue,
      quarantine: {
        pack: JSON.stringify(compressPack(refused, publisherId)),
        records: refused.length,
      },
    },
  };
}
