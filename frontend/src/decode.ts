// Tensors off the wire: "float16-base64" (little-endian IEEE half) or nested JSON lists.

import type { EncodedArray, IndexArray, SparseRowsBlock } from "./types";

/** One IEEE 754 half-precision value (as its 16 bits) to a JS number. */
export function halfToFloat(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24; // subnormal (and ±0)
  if (exponent === 0x1f) return fraction ? NaN : sign * Infinity;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

// All 65,536 halves decoded once: a full SmolLM2 response is millions of values, and a
// table lookup is several times faster than the arithmetic above per value.
let table: Float32Array | null = null;
function halfTable(): Float32Array {
  if (!table) {
    table = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) table[i] = halfToFloat(i);
  }
  return table;
}

export function base64ToBytes(b64: string): Uint8Array {
  const binary = atob(b64);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/** Little-endian float16 bytes → Float32Array (byte order fixed by the contract, not the CPU). */
export function decodeFloat16(bytes: Uint8Array): Float32Array {
  if (bytes.length % 2) throw new Error(`float16 data has an odd number of bytes (${bytes.length})`);
  const lut = halfTable();
  const out = new Float32Array(bytes.length / 2);
  for (let i = 0, b = 0; i < out.length; i++, b += 2) out[i] = lut[bytes[b] | (bytes[b + 1] << 8)];
  return out;
}

function flatten(data: unknown, out: number[]): void {
  if (Array.isArray(data)) for (const item of data) flatten(item, out);
  else out.push(data as number);
}

/** Any encoded array of the contract → flat row-major values, checked against its shape. */
export function decodeArray(array: EncodedArray): Float32Array {
  let values: Float32Array;
  if (array.encoding === "float16-base64") {
    values = decodeFloat16(base64ToBytes(array.data as string));
  } else if (array.encoding === "json") {
    const flat: number[] = [];
    flatten(array.data, flat);
    values = Float32Array.from(flat);
  } else {
    throw new Error(`unknown encoding ${JSON.stringify((array as EncodedArray).encoding)}`);
  }
  const expected = array.shape.reduce((a, b) => a * b, 1);
  if (values.length !== expected) {
    throw new Error(`array of shape [${array.shape}] should hold ${expected} values, got ${values.length}`);
  }
  return values;
}

/** The sparse encoding's column indices → Uint32Array, checked against its shape. */
export function decodeIndices(array: IndexArray): Uint32Array {
  let values: Uint32Array;
  if (array.encoding === "base64") {
    const bytes = base64ToBytes(array.data);
    const width = array.dtype === "uint16" ? 2 : 4;
    if (bytes.length % width) throw new Error(`${array.dtype} data has ${bytes.length} bytes`);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    values = new Uint32Array(bytes.length / width);
    for (let i = 0; i < values.length; i++) values[i] = width === 2 ? view.getUint16(i * 2, true) : view.getUint32(i * 4, true);
  } else if (array.encoding === "json") {
    const flat: number[] = [];
    flatten(array.data, flat);
    values = Uint32Array.from(flat);
  } else {
    throw new Error(`unknown index encoding ${JSON.stringify((array as IndexArray).encoding)}`);
  }
  const expected = array.shape.reduce((a, b) => a * b, 1);
  if (values.length !== expected) throw new Error(`index array of shape [${array.shape}] should hold ${expected} values, got ${values.length}`);
  return values;
}

/**
 * Top-k-per-row blocks → the dense [..., T, T] values (zeros where a row's small values were
 * not sent: `rest` says how much that was, and the page says so).
 */
export function densify(block: SparseRowsBlock): Float32Array {
  const T = block.shape[block.shape.length - 1];
  const rows = block.shape.slice(0, -1).reduce((a, b) => a * b, 1);
  const values = decodeArray(block.values);
  const columns = decodeIndices(block.columns);
  const k = block.k;
  if (values.length !== rows * k || columns.length !== rows * k) {
    throw new Error(`sparse block of shape [${block.shape}] with k=${k} needs ${rows * k} values and columns`);
  }
  const dense = new Float32Array(rows * T);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < k; j++) {
      const c = columns[r * k + j];
      if (c >= T) throw new Error(`column ${c} out of range for ${T} tokens`);
      dense[r * T + c] = values[r * k + j];
    }
  }
  return dense;
}

/** Any block of attention or rollout, dense or sparse → flat dense values. */
export function decodeBlock(block: EncodedArray | SparseRowsBlock): Float32Array {
  return block.encoding === "topk-per-row" ? densify(block) : decodeArray(block);
}
