import type { Manifest } from '@outpost/protocol/ota';

/**
 * The seam between the OTA updater (offer → verify → download → report) and what actually
 * installs an image: the agent itself, or a serial child device through the PROTOCOL.md §10
 * bootloader. The updater has already checked the manifest signature, component, hardware
 * and version, and the staged file's size and sha256, before it calls `install`.
 */

/** An intermediate step, reported as an `ota.progress` event (PROTOCOL.md §7–8). */
export interface InstallStep {
  state: 'installing' | 'rebooting' | 'trial';
  /** Short, human-readable; never a secret. */
  detail?: string;
}

export interface InstallRequest {
  /** The device the update is for: the gateway itself or one of its children. */
  deviceId: string;
  component: string;
  manifest: Manifest;
  /** The staged, verified image on local disk (size and sha256 already match the manifest). */
  artifactPath: string;
  /** Reports a step; the updater turns it into an event and persists it first. */
  report(step: InstallStep): void;
  /** Aborted when the agent shuts down; an installer leaves the device on a good version. */
  signal: AbortSignal;
}

/**
 * How an installation ended. In every case `version` is what the device runs afterwards,
 * and it is a good version: `failed` means nothing changed, `rolled_back` means the new
 * version ran and was given up.
 */
export type InstallOutcome =
  | { state: 'succeeded'; version: string }
  | { state: 'failed'; reason: string; version: string }
  | { state: 'rolled_back'; reason: string; version: string };

/** What the updater needs to decide whether an offer applies to a device. */
export interface InstalledFirmware {
  /** The hardware id compared with the manifest's `hardware` list. */
  hardware: string;
  /** The version running now (semver). */
  version: string;
}

export interface Installer {
  /** The devices and components this installer serves, e.g. the gateway's `agent`. */
  handles(deviceId: string, component: string): boolean;
  /** What the device runs now, or undefined when it cannot tell (unplugged, unknown). */
  installed(deviceId: string, component: string): Promise<InstalledFirmware | undefined>;
  install(request: InstallRequest): Promise<InstallOutcome>;
}
