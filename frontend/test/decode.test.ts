import { describe, expect, it } from "vitest";
import { base64ToBytes, decodeArray, decodeFloat16, halfToFloat } from "../src/decode";
import type { EncodedArray } from "../src/types";

// Made with numpy: np.array([...], dtype="<f2").tobytes(), base64-encoded (as the server does).
const NUMPY_B64 = "AAAAPADAADj/e44GVDUAgAEAAHw=";
const NUMPY_VALUES = [0, 1, -2, 0.5, 65504, 0.00010001659393310547, 0.3330078125, -0, 5.960464477539063e-8, Infinity];

describe("float16 decoding", () => {
  it("decodes normal, subnormal, signed zero, the largest half and infinity", () => {
    expect(halfToFloat(0x3c00)).toBe(1);
    expect(halfToFloat(0xc000)).toBe(-2);
    expect(halfToFloat(0x7bff)).toBe(65504);
    expect(halfToFloat(0x0001)).toBe(2 ** -24); // smallest subnormal
    expect(halfToFloat(0x0400)).toBe(2 ** -14); // smallest normal
    expect(Object.is(halfToFloat(0x8000), -0)).toBe(true);
    expect(halfToFloat(0x7c00)).toBe(Infinity);
    expect(halfToFloat(0xfc00)).toBe(-Infinity);
    expect(halfToFloat(0x7e00)).toBeNaN();
  });

  it("reads numpy's little-endian float16 bytes exactly", () => {
    const values = Array.from(decodeFloat16(base64ToBytes(NUMPY_B64)));
    expect(values).toEqual(NUMPY_VALUES);
  });

  it("refuses an odd number of bytes", () => {
    expect(() => decodeFloat16(new Uint8Array(3))).toThrow(/odd number of bytes/);
  });
});

describe("encoded arrays of the contract", () => {
  it("float16-base64 and json give the same values in row-major order", () => {
    // np.arange(24).reshape(1, 2, 3, 4) / 32 as float16 (all exact in half precision)
    const half = decodeArray({ encoding: "float16-base64", shape: [1, 2, 3, 4], data: "AAAAKAAsAC4AMAAxADIAMwA0gDQANYA1ADaANgA3gDcAOEA4gDjAOAA5QDmAOcA5" });
    const nested = [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11], [12, 13, 14, 15], [16, 17, 18, 19], [20, 21, 22, 23]].map((r) => r.map((v) => v / 32));
    const json = decodeArray({ encoding: "json", shape: [1, 2, 3, 4], data: [[nested.slice(0, 3), nested.slice(3)]] });
    expect(Array.from(half)).toEqual(Array.from(json));
    expect(half[23]).toBe(23 / 32);
  });

  it("checks the values against the shape", () => {
    expect(() => decodeArray({ encoding: "json", shape: [2, 2], data: [[1, 2], [3]] })).toThrow(/should hold 4 values, got 3/);
  });

  it("names an unknown encoding", () => {
    expect(() => decodeArray({ encoding: "bfloat16", shape: [1], data: "" } as unknown as EncodedArray)).toThrow(/unknown encoding "bfloat16"/);
  });
});
