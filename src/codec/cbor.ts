// The two CBOR codecs: one for WAL payloads (the on-disk format), one for user values.

// Must run before cbor-x loads: its native string extractor (cbor-extract), when npm has built it
// from source, returns garbage or crashes under Bun on bulk decodes of byte strings. Pure JS is fast
// enough here and is the same on every machine.
import "./cbor-env.ts";
import { Decoder, Encoder, isNativeAccelerationEnabled } from "cbor-x";

export { isNativeAccelerationEnabled };

/**
 * Frame payloads: plain CBOR that any decoder reads; byte strings untagged. The decoder copies
 * byte strings so a decoded value never pins the segment buffer it came from.
 */
export const payloadEncoder = new Encoder({ useRecords: false, tagUint8Array: false, mapsAsObjects: true });
export const payloadDecoder = new Decoder({ useRecords: false, mapsAsObjects: true, copyBuffers: true });

/** User values: Map (tag 259), Date, typed arrays round-trip; every decode is a fresh copy. */
export const valueEncoder = new Encoder({ useRecords: false, mapsAsObjects: true });
export const valueDecoder = new Decoder({ useRecords: false, mapsAsObjects: true, copyBuffers: true });
