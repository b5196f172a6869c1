/** Limits from PROTOCOL.md; every one is the default of a configurable setting. */

/** PROTOCOL.md §5: maximum size of one MQTT or HTTP telemetry message. */
export const MAX_MESSAGE_BYTES = 256 * 1024;
/** PROTOCOL.md §5: maximum SenML records in one batch. */
export const MAX_RECORDS_PER_BATCH = 5000;
/** PROTOCOL.md §3: device JWT lifetime may not exceed 24 h. */
export const MAX_DEVICE_JWT_LIFETIME_S = 24 * 60 * 60;
/** PROTOCOL.md §3: clock skew allowance. */
export const CLOCK_SKEW_S = 60;
/** PROTOCOL.md §2: enrollment tokens expire after 24 h by default. */
export const ENROLLMENT_TOKEN_TTL_S = 24 * 60 * 60;
/** Largest compact JWS/JWT accepted as a credential (password, bearer, token field). */
export const MAX_TOKEN_BYTES = 4096;
/** Largest string value (`vs`) in a SenML record. */
export const MAX_STRING_VALUE_LENGTH = 1024;
/** Largest number of tags on a device, and their key/value lengths. */
export const MAX_TAGS = 32;
export const MAX_TAG_KEY_LENGTH = 64;
export const MAX_TAG_VALUE_LENGTH = 128;
