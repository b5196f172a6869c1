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
/** Longest MQTT topic the broker looks at; every PROTOCOL.md §4 topic is far shorter. */
export const MAX_TOPIC_LENGTH = 256;
/** Longest SenML `bn`, `n` and resolved name (RFC 8428 §4.5.1 leaves it open). */
export const MAX_SENML_NAME_LENGTH = 256;
/** Longest SenML unit (`u`, `bu`); registered units are a few characters. */
export const MAX_SENML_UNIT_LENGTH = 32;
/** Largest free-text field in a state report, event or command (log lines, details). */
export const MAX_TEXT_LENGTH = 1024;
/** Largest number of trusted release keys a device holds. */
export const MAX_RELEASE_KEYS = 16;
/** Largest firmware image a manifest may announce. */
export const MAX_FIRMWARE_BYTES = 2 * 1024 * 1024 * 1024;
/** Largest number of hardware ids one manifest may list. */
export const MAX_MANIFEST_HARDWARE = 32;
/** Largest number of firmware components and serial ports in a state report. */
export const MAX_STATE_COMPONENTS = 32;
export const MAX_STATE_PORTS = 64;
/** Longest URL in a command (`ota.offer`). */
export const MAX_URL_LENGTH = 2048;
/** Longest version string (semver or a reported firmware version). */
export const MAX_VERSION_LENGTH = 128;
