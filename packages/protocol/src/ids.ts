import { z } from 'zod';

/** PROTOCOL.md §1: device ids. */
export const DEVICE_ID_PATTERN = /^[a-z0-9][a-z0-9._-]{0,63}$/;
/**
 * PROTOCOL.md §1: metric names. The first character must be a letter or digit: a SenML name
 * may not start with `_`, `.` or `-` (RFC 8428 §4.5.1), and a device's own metric is sent as
 * the bare SenML name.
 */
export const METRIC_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export type DeviceId = string;
export type MetricName = string;

export const deviceIdSchema = z
  .string()
  .regex(DEVICE_ID_PATTERN, 'device id must match ^[a-z0-9][a-z0-9._-]{0,63}$');
export const metricNameSchema = z
  .string()
  .regex(METRIC_NAME_PATTERN, 'metric name must match ^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$');

export function isDeviceId(value: unknown): value is DeviceId {
  return typeof value === 'string' && DEVICE_ID_PATTERN.test(value);
}

export function isMetricName(value: unknown): value is MetricName {
  return typeof value === 'string' && METRIC_NAME_PATTERN.test(value);
}

/** PROTOCOL.md §1: a device is a sensor/actuator (`device`) or a `gateway`. */
export const DEVICE_KINDS = ['device', 'gateway'] as const;
export type DeviceKind = (typeof DEVICE_KINDS)[number];
export const deviceKindSchema = z.enum(DEVICE_KINDS);
