/**
 * Unit names and linear conversions for the `units` pipeline step. Targets are SenML units
 * (RFC 8428 §12.1, and the secondary units of RFC 8798 §3); sources may also be common
 * non-SenML units sensors report (`degF`, `psi`, `mph`, ...).
 */

/** RFC 8428 §12.1 and RFC 8798 §2 (primary) units. */
// biome-ignore format: a table
const SENML_PRIMARY = [
  'm', 'kg', 'g', 's', 'A', 'K', 'cd', 'mol', 'Hz', 'rad', 'sr', 'N', 'Pa', 'J', 'W', 'C',
  'V', 'F', 'Ohm', 'S', 'Wb', 'T', 'H', 'Cel', 'lm', 'lx', 'Bq', 'Gy', 'Sv', 'kat', 'm2',
  'm3', 'l', 'm/s', 'm/s2', 'm3/s', 'l/s', 'W/m2', 'cd/m2', 'bit', 'bit/s', 'lat', 'lon',
  'pH', 'dB', 'dBW', 'Bspl', 'count', '/', '%', '%RH', '%EL', 'EL', '1/s', '1/min',
  'beat/min', 'beats', 'S/m', 'B', 'VA', 'VAs', 'var', 'vars', 'J/m', 'kg/m3', 'deg', 'NTU',
];

/** RFC 8798 §3 secondary units. */
// biome-ignore format: a table
const SENML_SECONDARY = [
  'ms', 'min', 'h', 'MHz', 'kW', 'kVA', 'kvar', 'Ah', 'Wh', 'kWh', 'varh', 'kvarh', 'kVAh',
  'Wh/km', 'KiB', 'GB', 'Mbit/s', 'B/s', 'MB/s', 'mV', 'mA', 'dBm', 'ug/m3', 'mm/h', 'm/h',
  'ppm', '/100', '/1000', 'hPa', 'mm', 'cm', 'km', 'km/h',
];

const SENML_UNITS: ReadonlySet<string> = new Set([...SENML_PRIMARY, ...SENML_SECONDARY]);

export function isSenmlUnit(unit: string): boolean {
  return SENML_UNITS.has(unit);
}

/** `base = value · factor + offset` within one dimension. */
interface LinearUnit {
  dimension: string;
  factor: number;
  offset: number;
}

const linear = (dimension: string, factor: number, offset = 0): LinearUnit => ({
  dimension,
  factor,
  offset,
});

const UNITS: Readonly<Record<string, LinearUnit>> = {
  // temperature, base Cel
  Cel: linear('temperature', 1),
  K: linear('temperature', 1, -273.15),
  degF: linear('temperature', 5 / 9, (-32 * 5) / 9),
  // speed, base m/s
  'm/s': linear('speed', 1),
  'km/h': linear('speed', 1 / 3.6),
  'm/h': linear('speed', 1 / 3600),
  mph: linear('speed', 0.44704),
  kn: linear('speed', 1852 / 3600),
  // pressure, base Pa
  Pa: linear('pressure', 1),
  hPa: linear('pressure', 100),
  kPa: linear('pressure', 1000),
  mbar: linear('pressure', 100),
  bar: linear('pressure', 100_000),
  psi: linear('pressure', 6894.757293168361),
  mmHg: linear('pressure', 133.322387415),
  inHg: linear('pressure', 3386.388640341),
  atm: linear('pressure', 101_325),
  // length, base m
  m: linear('length', 1),
  mm: linear('length', 0.001),
  cm: linear('length', 0.01),
  km: linear('length', 1000),
  in: linear('length', 0.0254),
  ft: linear('length', 0.3048),
  mi: linear('length', 1609.344),
  // time, base s
  s: linear('time', 1),
  ms: linear('time', 0.001),
  min: linear('time', 60),
  h: linear('time', 3600),
  d: linear('time', 86_400),
  // energy, base J
  J: linear('energy', 1),
  Wh: linear('energy', 3600),
  kWh: linear('energy', 3_600_000),
  // power, base W
  W: linear('power', 1),
  mW: linear('power', 0.001),
  kW: linear('power', 1000),
  // electric potential and current
  V: linear('voltage', 1),
  mV: linear('voltage', 0.001),
  A: linear('current', 1),
  mA: linear('current', 0.001),
  // mass, base kg
  kg: linear('mass', 1),
  g: linear('mass', 0.001),
  lb: linear('mass', 0.45359237),
  // volume and flow
  m3: linear('volume', 1),
  l: linear('volume', 0.001),
  'm3/s': linear('flow', 1),
  'l/s': linear('flow', 0.001),
  'l/min': linear('flow', 0.001 / 60),
  'm3/h': linear('flow', 1 / 3600),
  // frequency, base Hz
  Hz: linear('frequency', 1),
  kHz: linear('frequency', 1000),
  MHz: linear('frequency', 1_000_000),
  '1/s': linear('frequency', 1),
  '1/min': linear('frequency', 1 / 60),
  rpm: linear('frequency', 1 / 60),
  // ratios, base 1
  '/': linear('ratio', 1),
  '%': linear('ratio', 0.01),
  '/100': linear('ratio', 0.01),
  '/1000': linear('ratio', 0.001),
  ppm: linear('ratio', 1e-6),
};

export function knownUnit(unit: string): boolean {
  return Object.hasOwn(UNITS, unit);
}

/** A function converting values from `from` to `to`, or undefined across dimensions. */
export function unitConversion(from: string, to: string): ((value: number) => number) | undefined {
  if (!knownUnit(from) || !knownUnit(to)) return undefined;
  const a = UNITS[from]!;
  const b = UNITS[to]!;
  if (a.dimension !== b.dimension) return undefined;
  if (from === to) return (value) => value;
  return (value) => (value * a.factor + a.offset - b.offset) / b.factor;
}
