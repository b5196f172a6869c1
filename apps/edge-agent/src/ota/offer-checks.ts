import {
  compareSemver,
  type Manifest,
  OTA_STATES,
  OTA_TERMINAL_STATES,
  type OtaState,
  type OtaTerminalState,
} from '@outpost/protocol/ota';
import { isSigningError } from '@outpost/signing/errors';
import type { InstalledFirmware } from './installer.js';

/**
 * The decisions of an OTA update on the agent's side (PROTOCOL.md §8), pure: whether an
 * offer applies, why it is refused, which step may follow which, and where the staged image
 * lives. The I/O (verification, download, installers, events) is in ota-updater.ts.
 *
 * Refusal reasons are stable codes, reported as the `reason` of `ota.result`.
 */
export type RefusalReason =
  | 'release_key_unknown'
  | 'manifest_signature_invalid'
  | 'manifest_invalid'
  | 'component_mismatch'
  | 'component_unsupported'
  | 'device_unavailable'
  | 'hardware_mismatch'
  | 'downgrade'
  | 'below_min_version'
  | 'url_foreign_origin'
  | 'busy';

export type OfferDecision =
  | { kind: 'install' }
  /** Already runs this version: report `succeeded` at once. */
  | { kind: 'current' }
  | { kind: 'refuse'; reason: RefusalReason; detail: string };

export interface OfferFacts {
  /** The offer's `component` and `rollbackTarget`. */
  offer: { component: string; rollbackTarget?: string | undefined };
  /** The verified manifest payload. */
  manifest: Manifest;
  /** What the device runs; undefined when the installer cannot tell. */
  installed: InstalledFirmware | undefined;
}

/** Whether a verified manifest applies to the device, in the order PROTOCOL.md §8 lists. */
export function decideOffer({ offer, manifest, installed }: OfferFacts): OfferDecision {
  if (manifest.component !== offer.component) {
    return refuse(
      'component_mismatch',
      `the offer is for ${offer.component}, the manifest for ${manifest.component}`,
    );
  }
  if (installed === undefined) {
    return refuse('device_unavailable', 'what the device runs cannot be told now');
  }
  if (!manifest.hardware.includes(installed.hardware)) {
    return refuse(
      'hardware_mismatch',
      `${installed.hardware} is not in ${manifest.hardware.join(', ')}`,
    );
  }
  const order = compareSemver(manifest.version, installed.version);
  if (order === 0) return { kind: 'current' };
  if (order < 0 && offer.rollbackTarget !== manifest.version) {
    return refuse('downgrade', `runs ${installed.version}, offered ${manifest.version}`);
  }
  if (
    manifest.minVersion !== undefined &&
    compareSemver(installed.version, manifest.minVersion) < 0
  ) {
    return refuse(
      'below_min_version',
      `runs ${installed.version}, the image needs at least ${manifest.minVersion}`,
    );
  }
  return { kind: 'install' };
}

function refuse(reason: RefusalReason, detail: string): OfferDecision {
  return { kind: 'refuse', reason, detail };
}

/** Why a manifest did not verify, as a refusal reason. */
export function manifestRefusal(err: unknown): RefusalReason {
  if (!isSigningError(err)) return 'manifest_invalid';
  if (err.code === 'kid_unknown' || err.code === 'kid_mismatch' || err.code === 'kid_missing') {
    return 'release_key_unknown';
  }
  return err.kind === 'unauthenticated' ? 'manifest_signature_invalid' : 'manifest_invalid';
}

/**
 * Artifacts come only from the ingest the agent is enrolled with: a signed command naming
 * another origin would make the gateway send its device JWT elsewhere.
 */
export function sameOrigin(url: string, server: string): boolean {
  try {
    return new URL(url).origin === new URL(server).origin;
  } catch {
    return false;
  }
}

const SHA256_HEX = /^[0-9a-f]{64}$/;

/**
 * File names of a staged image, derived from its sha256 only: never from the manifest
 * `name` or the URL, so no offer can choose a path.
 */
export function stagingNames(sha256: string): { partial: string; complete: string } {
  if (!SHA256_HEX.test(sha256)) throw new RangeError('not a sha256 hex digest');
  return { partial: `${sha256}.part`, complete: `${sha256}.img` };
}

export function isTerminal(state: OtaState): state is OtaTerminalState {
  return (OTA_TERMINAL_STATES as readonly string[]).includes(state);
}

/**
 * Steps only move forward (PROTOCOL.md §8 order); any unfinished step may end in a terminal
 * state, and nothing leaves a terminal state.
 */
export function canMove(from: OtaState, to: OtaState): boolean {
  if (isTerminal(from)) return false;
  if (isTerminal(to)) return true;
  return OTA_STATES.indexOf(to) > OTA_STATES.indexOf(from);
}

/** What to do with an update found in the state file at start. */
export type ResumeAction =
  /** Nothing: finished and reported. */
  | { kind: 'none' }
  /** Finished while the result was not yet acknowledged: report it. */
  | { kind: 'report' }
  /** Check, download (resuming what is staged) and install again from the offer. */
  | { kind: 'restart' }
  /** The installer was at work: hand it the update again (it knows how far it got). */
  | { kind: 'install' };

export function resumeAction(record: { state: OtaState; reported: boolean }): ResumeAction {
  if (isTerminal(record.state)) return record.reported ? { kind: 'none' } : { kind: 'report' };
  if (
    record.state === 'offered' ||
    record.state === 'downloading' ||
    record.state === 'verifying'
  ) {
    return { kind: 'restart' };
  }
  return { kind: 'install' };
}

/** How a new offer relates to what the state file holds for the same device and component. */
export type OfferRelation = 'new' | 'duplicate' | 'busy';

export function relateOffer(
  existing: { rolloutId: string; state: OtaState } | undefined,
  rolloutId: string,
): OfferRelation {
  if (existing === undefined) return 'new';
  // The ingest sends offers again on reconnect (and MQTT may deliver twice): one update per
  // rollout, whether it is still running or done.
  if (existing.rolloutId === rolloutId) return 'duplicate';
  return isTerminal(existing.state) ? 'new' : 'busy';
}
