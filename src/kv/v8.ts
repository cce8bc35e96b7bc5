// Deno KV's V8-encoded values (docs/deno-kv.md §3): V8's ValueSerializer format, as the real Deno
// writes it, for what structured clone gives a Deno KV value. Bun's node:v8 writes JavaScriptCore's
// format instead, which Deno cannot read. Deno 2.9.6 writes version 16; ours says 15 with the same
// bytes after it, since V8 reads any version up to its own: Deno reads ours, and so does Node 20
// (@deno/kv's client), whose V8 refuses 16 (test/kv-connect.test.ts).

import { InvalidValueError } from "../errors.ts";

/** The version written, and the newest one read. */
const VERSION_WRITTEN = 15;
const VERSION_READ_MAX = 16;
const T = {
  version: 0xff,
  padding: 0x00,
  undefined: 0x5f, // _
  null: 0x30, // 0
  true: 0x54, // T
  false: 0x46, // F
  int32: 0x49, // I
  double: 0x4e, // N
  bigint: 0x5a, // Z
  utf8String: 0x53, // S
  oneByteString: 0x22, // "
  twoByteString: 0x63, // c
  objectReference: 0x5e, // ^
  beginObject: 0x6f, // o
  endObject: 0x7b, // {
  beginSparseArray: 0x61, // a
  endSparseArray: 0x40, // @
  beginDenseArray: 0x41, // A
  endDenseArray: 0x24, // $
  theHole: 0x2d, // -
  date: 0x44, // D
  regExp: 0x52, // R
  beginMap: 0x3b, // ;
  endMap: 0x3a, // :
  beginSet: 0x27, // '
  endSet: 0x2c, // ,
  arrayBuffer: 0x42, // B
  arrayBufferView: 0x56, // V
  hostObject: 0x5c, // \\ (Node's node:v8 writes its ArrayBufferViews as these: readNodeView)
  error: 0x72, // r
} as const;

/** ArrayBufferView subtags, and the constructors they stand for. */
const VIEWS: [tag: number, make: new (b: ArrayBuffer, offset: number, length: number) => ArrayBufferView, bytesPer: number][] = [
  [0x62, Int8Array, 1], // b
  [0x42, Uint8Array, 1], // B
  [0x43, Uint8ClampedArray, 1], // C
  [0x77, Int16Array, 2], // w
  [0x57, Uint16Array, 2], // W
  [0x64, Int32Array, 4], // d
  [0x44, Uint32Array, 4], // D
  [0x66, Float32Array, 4], // f
  [0x46, Float64Array, 8], // F
  [0x71, BigInt64Array, 8], // q
  [0x51, BigUint64Array, 8], // Q
  [0x3f, DataView as unknown as new (b: ArrayBuffer, o: number, l: number) => ArrayBufferView, 1], // ?
];

/** Error subtags: the prototype (none: Error), message, stack, cause, end. */
const ERR = { eval: 0x45, range: 0x52, reference: 0x46, syntax: 0x53, type: 0x54, uri: 0x55, message: 0x6d, stack: 0x73, cause: 0x63, end: 0x2e } as const;
const ERRORS: [tag: number, ctor: ErrorConstructor][] = [
  [ERR.eval, EvalError],
  [ERR.range, RangeError],
  [ERR.reference, ReferenceError],
  [ERR.syntax, SyntaxError],
  [ERR.type, TypeError],
  [ERR.uri, URIError],
];

/** RegExp flags as V8 numbers them. */
const FLAG_BITS: Record<string, number> = { g: 1, i: 2, m: 4, y: 8, u: 16, s: 32, d: 128, v: 256 };

/** Smis: Deno's V8 (no pointer compression) writes the int32 range as int32, other numbers as doubles. */
const SMI_MIN = -(2 ** 31);
const SMI_MAX = 2 ** 31 - 1;

export function serializeV8(value: unknown): Uint8Array {
  const w = new Writer();
  w.byte(T.version);
  w.varint(VERSION_WRITTEN);
  w.value(value);
  return w.bytes();
}

export function deserializeV8(bytes: Uint8Array): unknown {
  const r = new Reader(bytes);
  if (r.byte() !== T.version) throw new InvalidValueError("not a V8-serialized value (no version tag)");
  const version = r.varint();
  if (version < 13 || version > VERSION_READ_MAX) throw new InvalidValueError(`V8 serialization format version ${version} is not supported`);
  const v = r.value();
  if (r.at !== bytes.length) throw new InvalidValueError(`trailing bytes after the V8 value at ${r.at}`);
  return v;
}

class Writer {
  private buf = new Uint8Array(64);
  private n = 0;
  private readonly ids = new Map<object, number>();
  private readonly scratch = new DataView(new ArrayBuffer(8));

  bytes(): Uint8Array {
    return this.buf.slice(0, this.n);
  }

  byte(b: number): void {
    this.room(1);
    this.buf[this.n++] = b;
  }

  raw(b: Uint8Array): void {
    this.room(b.length);
    this.buf.set(b, this.n);
    this.n += b.length;
  }

  varint(v: number): void {
    do {
      let b = v % 128;
      v = Math.floor(v / 128);
      if (v > 0) b |= 0x80;
      this.byte(b);
    } while (v > 0);
  }

  double(v: number): void {
    this.scratch.setFloat64(0, v, true);
    this.raw(new Uint8Array(this.scratch.buffer));
  }

  string(s: string): void {
    let oneByte = true;
    for (let i = 0; i < s.length && oneByte; i++) oneByte = s.charCodeAt(i) < 0x100;
    if (oneByte) {
      this.byte(T.oneByteString);
      this.varint(s.length);
      this.room(s.length);
      for (let i = 0; i < s.length; i++) this.buf[this.n++] = s.charCodeAt(i);
      return;
    }
    const byteLength = 2 * s.length;
    // V8 aligns two-byte data: a padding byte first when the tag and the length would end odd.
    if ((this.n + 1 + varintBytes(byteLength)) & 1) this.byte(T.padding);
    this.byte(T.twoByteString);
    this.varint(byteLength);
    this.room(byteLength);
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      this.buf[this.n++] = c & 0xff;
      this.buf[this.n++] = c >> 8;
    }
  }

  value(v: unknown): void {
    switch (typeof v) {
      case "undefined":
        return this.byte(T.undefined);
      case "boolean":
        return this.byte(v ? T.true : T.false);
      case "number":
        if (Number.isInteger(v) && v >= SMI_MIN && v <= SMI_MAX && !Object.is(v, -0)) {
          this.byte(T.int32);
          return this.varint(v >= 0 ? v * 2 : -v * 2 - 1); // zigzag
        }
        this.byte(T.double);
        return this.double(v);
      case "bigint":
        return this.bigint(v);
      case "string":
        return this.string(v);
      case "object":
        if (v === null) return this.byte(T.null);
        return this.object(v);
      default:
        throw new InvalidValueError(`a ${typeof v} cannot be stored in Deno KV (structured clone)`);
    }
  }

  private bigint(v: bigint): void {
    const negative = v < 0n;
    let m = negative ? -v : v;
    const words: bigint[] = [];
    for (; m > 0n; m >>= 64n) words.push(m & 0xffff_ffff_ffff_ffffn);
    this.byte(T.bigint);
    this.varint(words.length * 8 * 2 + (negative ? 1 : 0)); // byte length << 1 | sign
    for (const word of words) {
      this.scratch.setBigUint64(0, word, true);
      this.raw(new Uint8Array(this.scratch.buffer));
    }
  }

  private object(o: object): void {
    const seen = this.ids.get(o);
    if (seen !== undefined) {
      this.byte(T.objectReference);
      return this.varint(seen);
    }
    if (ArrayBuffer.isView(o)) return this.arrayBufferView(o);
    this.ids.set(o, this.ids.size);
    if (Array.isArray(o)) return this.array(o);
    if (o instanceof Date) {
      this.byte(T.date);
      return this.double(o.getTime());
    }
    if (o instanceof RegExp) {
      this.byte(T.regExp);
      this.string(o.source);
      let flags = 0;
      for (const f of o.flags) flags |= FLAG_BITS[f] ?? 0;
      return this.varint(flags);
    }
    if (o instanceof Map) {
      this.byte(T.beginMap);
      for (const [k, v] of o) {
        this.value(k);
        this.value(v);
      }
      this.byte(T.endMap);
      return this.varint(2 * o.size);
    }
    if (o instanceof Set) {
      this.byte(T.beginSet);
      for (const v of o) this.value(v);
      this.byte(T.endSet);
      return this.varint(o.size);
    }
    if (o instanceof ArrayBuffer) {
      if (o.resizable) throw new InvalidValueError("a resizable ArrayBuffer cannot be stored in Deno KV here");
      this.byte(T.arrayBuffer);
      this.varint(o.byteLength);
      return this.raw(new Uint8Array(o));
    }
    if (o instanceof Error) return this.error(o);
    const proto = Object.getPrototypeOf(o);
    if (proto !== Object.prototype && proto !== null) {
      throw new InvalidValueError(`a ${o.constructor?.name ?? "class instance"} cannot be stored in Deno KV (only plain objects)`);
    }
    this.byte(T.beginObject);
    const n = this.properties(o as Record<string, unknown>, Object.keys(o));
    this.byte(T.endObject);
    this.varint(n);
  }

  /** The buffer first (an object of its own, or a reference to it), then the view over it, as V8 does. */
  private arrayBufferView(o: ArrayBufferView): void {
    const view = VIEWS.find(([, make]) => o.constructor === make);
    if (!view || !(o.buffer instanceof ArrayBuffer)) throw new InvalidValueError(`a ${o.constructor.name} cannot be stored in Deno KV`);
    this.object(o.buffer);
    this.ids.set(o, this.ids.size);
    this.byte(T.arrayBufferView);
    this.byte(view[0]);
    this.varint(o.byteOffset);
    this.varint(o.byteLength);
    this.varint(0); // flags
  }

  private array(a: unknown[]): void {
    const keys = Object.keys(a);
    const dense = keys.length >= a.length; // no holes (extra named properties follow the elements)
    if (dense) {
      this.byte(T.beginDenseArray);
      this.varint(a.length);
      for (let i = 0; i < a.length; i++) this.value(a[i]);
      const n = this.properties(a as unknown as Record<string, unknown>, keys.filter((k) => !isIndex(k)));
      this.byte(T.endDenseArray);
      this.varint(n);
      return this.varint(a.length);
    }
    this.byte(T.beginSparseArray);
    this.varint(a.length);
    const n = this.properties(a as unknown as Record<string, unknown>, keys);
    this.byte(T.endSparseArray);
    this.varint(n);
    this.varint(a.length);
  }

  /** Key, value pairs; a key that is an array index goes as a number, as V8 writes it. */
  private properties(o: Record<string, unknown>, keys: string[]): number {
    for (const k of keys) {
      if (isIndex(k)) this.value(Number(k));
      else this.string(k);
      this.value(o[k]);
    }
    return keys.length;
  }

  private error(e: Error): void {
    this.byte(T.error);
    const kind = ERRORS.find(([, ctor]) => Object.getPrototypeOf(e) === ctor.prototype);
    if (kind) this.byte(kind[0]);
    if (e.message !== "") {
      this.byte(ERR.message);
      this.string(e.message);
    }
    if (typeof e.stack === "string") {
      this.byte(ERR.stack);
      this.string(e.stack);
    }
    if ("cause" in e) {
      this.byte(ERR.cause);
      this.value(e.cause);
    }
    this.byte(ERR.end);
  }

  private room(n: number): void {
    if (this.n + n <= this.buf.length) return;
    const next = new Uint8Array(Math.max(2 * this.buf.length, this.n + n));
    next.set(this.buf.subarray(0, this.n));
    this.buf = next;
  }
}

class Reader {
  at = 0;
  private readonly objects: unknown[] = [];
  private readonly view: DataView;

  constructor(private readonly b: Uint8Array) {
    this.view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  }

  byte(): number {
    if (this.at >= this.b.length) throw new InvalidValueError("V8 value ends early");
    return this.b[this.at++]!;
  }

  varint(): number {
    let v = 0;
    let scale = 1;
    for (;;) {
      const x = this.byte();
      v += (x & 0x7f) * scale;
      if (x < 0x80) return v;
      scale *= 128;
      if (scale > 2 ** 56) throw new InvalidValueError("V8 varint too long");
    }
  }

  take(n: number): Uint8Array {
    if (this.at + n > this.b.length) throw new InvalidValueError("V8 value ends early");
    const out = this.b.subarray(this.at, this.at + n);
    this.at += n;
    return out;
  }

  double(): number {
    const at = this.at;
    this.take(8);
    return this.view.getFloat64(at, true);
  }

  /** A value; an ArrayBuffer (or a reference to one) followed by a view tag is that view. */
  value(): unknown {
    const v = this.valueItself();
    if (!(v instanceof ArrayBuffer) || this.b[this.at] !== T.arrayBufferView) return v;
    this.at++;
    const sub = this.byte();
    const offset = this.varint();
    const byteLength = this.varint();
    this.varint(); // flags
    const kind = VIEWS.find(([t]) => t === sub);
    if (!kind) throw new InvalidValueError(`V8 view type 0x${sub.toString(16)} is not supported`);
    const view = new kind[1](v, offset, byteLength / kind[2]);
    this.objects.push(view);
    return view;
  }

  private valueItself(): unknown {
    let tag = this.byte();
    while (tag === T.padding) tag = this.byte();
    switch (tag) {
      case T.undefined:
        return undefined;
      case T.null:
        return null;
      case T.true:
        return true;
      case T.false:
        return false;
      case T.int32: {
        const z = this.varint();
        return z % 2 === 0 ? z / 2 : -(z + 1) / 2;
      }
      case T.double:
        return this.double();
      case T.bigint: {
        const bits = this.varint();
        const bytes = this.take(Math.floor(bits / 2));
        let m = 0n;
        for (let i = bytes.length - 1; i >= 0; i--) m = (m << 8n) | BigInt(bytes[i]!);
        return bits & 1 ? -m : m;
      }
      case T.oneByteString:
        return asBuffer(this.take(this.varint())).toString("latin1"); // (ISO-8859-1: byte b is U+00bb)
      case T.twoByteString: {
        const bytes = this.take(this.varint());
        if (bytes.length % 2 !== 0) throw new InvalidValueError("a V8 two-byte string of an odd number of bytes");
        return asBuffer(bytes).toString("utf16le"); // code units as they are, lone surrogates too
      }
      case T.utf8String:
        return new TextDecoder().decode(this.take(this.varint()));
      case T.objectReference: {
        const id = this.varint();
        if (id >= this.objects.length) throw new InvalidValueError(`V8 back-reference to object ${id}, which is not there`);
        return this.objects[id];
      }
      case T.beginObject: {
        const o: Record<string, unknown> = {};
        this.objects.push(o);
        const n = this.properties(o, T.endObject);
        if (this.varint() !== n) throw new InvalidValueError("V8 object property count does not match");
        return o;
      }
      case T.beginDenseArray: {
        const length = this.arrayLength();
        if (length > this.b.length - this.at) throw new InvalidValueError(`V8 array of ${length} elements in ${this.b.length - this.at} bytes`);
        const a: unknown[] = new Array(length);
        this.objects.push(a);
        for (let i = 0; i < length; i++) {
          if (this.b[this.at] === T.theHole) this.at++;
          else a[i] = this.value();
        }
        this.endOfArray(a, T.endDenseArray, length);
        return a;
      }
      case T.beginSparseArray: {
        const length = this.arrayLength();
        const a: unknown[] = new Array(length);
        this.objects.push(a);
        this.endOfArray(a, T.endSparseArray, length);
        return a;
      }
      case T.date: {
        const d = new Date(this.double());
        this.objects.push(d);
        return d;
      }
      case T.regExp: {
        const source = this.value();
        const bits = this.varint();
        let flags = "";
        for (const f of "dgimsuvy") if (bits & FLAG_BITS[f]!) flags += f;
        const re = new RegExp(String(source), flags);
        this.objects.push(re);
        return re;
      }
      case T.beginMap: {
        const m = new Map<unknown, unknown>();
        this.objects.push(m);
        while (this.b[this.at] !== T.endMap) m.set(this.value(), this.value());
        this.at++;
        this.varint();
        return m;
      }
      case T.beginSet: {
        const s = new Set<unknown>();
        this.objects.push(s);
        while (this.b[this.at] !== T.endSet) s.add(this.value());
        this.at++;
        this.varint();
        return s;
      }
      case T.arrayBuffer: {
        const buffer = copyOf(this.take(this.varint())).buffer;
        this.objects.push(buffer);
        return buffer;
      }
      case T.error:
        return this.error();
      case T.hostObject:
        return this.nodeView();
      default:
        throw new InvalidValueError(`V8 tag 0x${tag.toString(16)} at byte ${this.at - 1} is not supported`);
    }
  }

  /** An array's length, which JavaScript caps below 2³². */
  private arrayLength(): number {
    const length = this.varint();
    if (length >= 2 ** 32) throw new InvalidValueError(`V8 array length ${length} is past JavaScript's`);
    return length;
  }

  /** An array's properties up to `end`, then their count and the length again, both checked. */
  private endOfArray(a: unknown[], end: number, length: number): void {
    const n = this.properties(a as unknown as Record<string, unknown>, end);
    if (this.varint() !== n || this.varint() !== length) throw new InvalidValueError("V8 array property count or length does not match");
  }

  private properties(o: Record<string, unknown>, end: number): number {
    let n = 0;
    while (this.b[this.at] !== end) {
      if (this.at >= this.b.length) throw new InvalidValueError("V8 value ends early");
      const k = this.value();
      o[String(k)] = this.value();
      n++;
    }
    this.at++;
    return n;
  }

  /**
   * An ArrayBufferView as Node's node:v8 writes it (lib/v8.js DefaultSerializer, so @deno/kv under
   * Node): a host object of its type's index in Node's list, its byte length, its bytes.
   */
  private nodeView(): ArrayBufferView {
    const type = this.varint();
    const bytes = copyOf(this.take(this.varint()));
    const Ctor = NODE_VIEW_TYPES[type];
    if (Ctor === undefined) throw new InvalidValueError(`V8 host object of type ${type} is not one of Node's ArrayBufferViews`);
    const size = Ctor === DataView ? 1 : (Ctor as unknown as { BYTES_PER_ELEMENT: number }).BYTES_PER_ELEMENT;
    if (bytes.length % size !== 0) throw new InvalidValueError(`a Node ${Ctor.name} of ${bytes.length} bytes`);
    const view = Ctor === DataView ? new DataView(bytes.buffer) : new (Ctor as Uint8ArrayConstructor)(bytes.buffer, 0, bytes.length / size);
    this.objects.push(view);
    return view;
  }

  private error(): Error {
    const id = this.objects.push(undefined) - 1; // (its id comes before any object its cause holds)
    let ctor: ErrorConstructor = Error;
    let message = "";
    let stack: string | undefined;
    let cause: { value: unknown } | null = null;
    for (;;) {
      const sub = this.byte();
      if (sub === ERR.end) break;
      if (sub === ERR.message) message = String(this.value());
      else if (sub === ERR.stack) stack = String(this.value());
      else if (sub === ERR.cause) cause = { value: this.value() };
      else {
        const kind = ERRORS.find(([t]) => t === sub);
        if (!kind) throw new InvalidValueError(`V8 error field 0x${sub.toString(16)} is not supported`);
        ctor = kind[1];
      }
    }
    const e = cause === null ? new ctor(message) : new ctor(message, { cause: cause.value });
    if (stack !== undefined) e.stack = stack;
    this.objects[id] = e;
    return e;
  }
}

/** Node's ArrayBufferView types by their index in its host-object encoding (10 is its Buffer: a Uint8Array here). */
const NODE_VIEW_TYPES: (abstract new (...args: never[]) => ArrayBufferView)[] = [
  Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array,
  Float32Array, Float64Array, DataView, Uint8Array, BigInt64Array, BigUint64Array,
];

/** A copy in a buffer of its own (a Buffer's own slice() is a view, not a copy). */
function copyOf(b: Uint8Array): Uint8Array {
  return Uint8Array.prototype.slice.call(b);
}

/** The same bytes as a Buffer, for its native string decoders (a JavaScript loop was ~17× slower). */
function asBuffer(b: Uint8Array): Buffer {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

function varintBytes(v: number): number {
  let n = 1;
  for (; v >= 128; v = Math.floor(v / 128)) n++;
  return n;
}

function isIndex(k: string): boolean {
  return /^(0|[1-9]\d{0,9})$/.test(k) && Number(k) < 2 ** 32 - 1;
}
