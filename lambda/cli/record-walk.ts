/**
 * The inner loop of replay's record-boundary walk (archive-scan.ts, splitRecords), as a small WebAssembly
 * function: the end of one JSON object or array (strings and their escapes skipped, structure not validated),
 * and whether its bytes contain `iam.amazonaws.com` or `bedrock`, found in the same pass. Profiled on the replay
 * benchmark's archive, the walk in JavaScript (a Buffer.indexOf per string: about 100 million a GiB) and the two
 * needle searches over every byte (Buffer.indexOf, about 0.3 ns a byte each) cost a worker more than inflating
 * the files; this loop does both at a fraction of that. Same answers as the JavaScript walk, byte for byte
 * (tested against it on generated and hostile inputs): a record is still found only from the file's structure,
 * so text inside a string can neither start nor end one.
 *
 * The module is written out below, instruction by instruction (no toolchain, nothing fetched or generated at
 * build time). Memory: a 256-byte class table at 0, the two needles at NEEDLE_IAM and NEEDLE_BEDROCK, the file's
 * bytes from DATA. A needle is looked for only where the walk meets its rarest byte (`z` of `amazonaws`, `k` of
 * `bedrock`: under one byte in a hundred of CloudTrail text), never matched across the record's own braces (a
 * needle holds none), so the answer is exactly "this record's bytes contain the needle".
 */

/** Byte classes of the table. */
const C_QUOTE = 1;
const C_BACKSLASH = 2;
const C_OPEN = 3;
const C_CLOSE = 4;
const C_IAM_ANCHOR = 5;
const C_BEDROCK_ANCHOR = 6;

export const IAM_NEEDLE = 'iam.amazonaws.com';
export const BEDROCK_NEEDLE = 'bedrock';
/** Where each needle's anchor byte is in it. */
const IAM_ANCHOR_AT = IAM_NEEDLE.indexOf('z');
const BEDROCK_ANCHOR_AT = BEDROCK_NEEDLE.indexOf('k');

const NEEDLE_IAM = 256;
const NEEDLE_BEDROCK = 288;
const DATA = 320;
const PAGE = 65536;
/** Quotes written after the data: at least two (see load), and the string loop reads four bytes at a time. */
const TAIL = 8;

/** Flags of the last record walked. */
export const HAS_IAM = 1;
export const HAS_BEDROCK = 2;

// Opcodes (WebAssembly 1.0, https://webassembly.github.io/spec/core/binary/instructions.html).
const BLOCK = 0x02;
const LOOP = 0x03;
const IF = 0x04;
const END = 0x0b;
const BR = 0x0c;
const BR_IF = 0x0d;
const RETURN = 0x0f;
const CALL = 0x10;
const LOCAL_GET = 0x20;
const LOCAL_SET = 0x21;
const LOCAL_TEE = 0x22;
const GLOBAL_GET = 0x23;
const GLOBAL_SET = 0x24;
const I32_LOAD8_U = 0x2d;
const I32_CONST = 0x41;
const I32_EQZ = 0x45;
const I32_EQ = 0x46;
const I32_NE = 0x47;
const I32_LT_S = 0x48;
const I32_GT_U = 0x4b;
const I32_GE_U = 0x4f;
const I32_ADD = 0x6a;
const I32_SUB = 0x6b;
const I32_OR = 0x72;
const EMPTY = 0x40;
const I32 = 0x7f;

function uleb(n: number): number[] {
  const out: number[] = [];
  let v = n >>> 0;
  do {
    let byte = v & 0x7f;
    v >>>= 7;
    if (v !== 0) byte |= 0x80;
    out.push(byte);
  } while (v !== 0);
  return out;
}

function sleb(n: number): number[] {
  const out: number[] = [];
  let v = n | 0;
  for (;;) {
    const byte = v & 0x7f;
    v >>= 7;
    const done = (v === 0 && (byte & 0x40) === 0) || (v === -1 && (byte & 0x40) !== 0);
    out.push(done ? byte : byte | 0x80);
    if (done) return out;
  }
}

const i32 = (n: number) => [I32_CONST, ...sleb(n)];
const get = (l: number) => [LOCAL_GET, ...uleb(l)];
const set = (l: number) => [LOCAL_SET, ...uleb(l)];
const tee = (l: number) => [LOCAL_TEE, ...uleb(l)];
/** i32.load8_u with a constant offset. */
const load8 = (offset: number) => [I32_LOAD8_U, 0, ...uleb(offset)];

function section(id: number, body: number[]): number[] {
  return [id, ...uleb(body.length), ...body];
}

function vector(items: number[][]): number[] {
  return [...uleb(items.length), ...items.flat()];
}

function name(s: string): number[] {
  return vector([...Buffer.from(s, 'ascii')].map((b) => [b]));
}

function body(locals: number, code: number[]): number[] {
  const decl = locals === 0 ? [0] : [1, ...uleb(locals), I32];
  const all = [...decl, ...code, END];
  return [...uleb(all.length), ...all];
}

/** eq(address, needle, length) → 1 when memory holds the needle at address. Locals: k (3). */
// biome-ignore format: one instruction, or one short sequence, per line
const EQ = body(1, [
  BLOCK, EMPTY,
  LOOP, EMPTY,
  ...get(3), ...get(2), I32_GE_U, IF, EMPTY, ...i32(1), RETURN, END,
  ...get(0), ...get(3), I32_ADD, ...load8(0),
  ...get(1), ...get(3), I32_ADD, ...load8(0),
  I32_NE, BR_IF, 1,
  ...get(3), ...i32(1), I32_ADD, ...set(3),
  BR, 0,
  END,
  END,
  ...i32(0),
]);

/**
 * One needle test at an anchor byte (params class (0), p (1), n (2); local s (3)): the needle would start at
 * s = p - anchorAt, and lie whole within the data [0, n).
 */
function needleTest(anchorClass: number, anchorAt: number, needle: number, length: number, flag: number) {
  // biome-ignore format: one instruction, or one short sequence, per line
  return [
    ...get(0), ...i32(anchorClass), I32_EQ, IF, EMPTY,
    ...get(1), ...i32(anchorAt), I32_SUB, ...tee(3), ...i32(0), I32_LT_S, BR_IF, 1,
    ...get(3), ...i32(length), I32_ADD, ...get(2), I32_GT_U, BR_IF, 1,
    ...get(3), ...i32(DATA), I32_ADD, ...i32(needle), ...i32(length), CALL, 2,
    IF, EMPTY, GLOBAL_GET, 0, ...i32(flag), I32_OR, GLOBAL_SET, 0, END,
    END,
  ];
}

/** check(class, p, n): the byte at data offset p has class `class`; sets the flag of a needle found there. */
const CHECK = body(1, [
  BLOCK,
  EMPTY,
  ...needleTest(C_IAM_ANCHOR, IAM_ANCHOR_AT, NEEDLE_IAM, IAM_NEEDLE.length, HAS_IAM),
  ...needleTest(C_BEDROCK_ANCHOR, BEDROCK_ANCHOR_AT, NEEDLE_BEDROCK, BEDROCK_NEEDLE.length, HAS_BEDROCK),
  END,
]);

/**
 * valueEnd(i, n) → the data offset just past the object or array opening at i, or -1 when the data (n bytes)
 * ends first. Params i (0), n (1); locals depth (2), class (3). Branch depths are counted from the innermost
 * block: the comments name the blocks.
 */
// biome-ignore format: one instruction, or one short sequence, per line
const VALUE_END = body(2, [
  BLOCK, EMPTY, // $fail
  LOOP, EMPTY, // $out: outside strings
  ...get(0), ...get(1), I32_GE_U, BR_IF, 1,
  ...get(0), ...load8(DATA), ...load8(0), ...set(3),
  ...get(0), ...i32(1), I32_ADD, ...set(0),
  ...get(3), I32_EQZ, BR_IF, 0,
  BLOCK, EMPTY, // $notQuote
  ...get(3), ...i32(C_QUOTE), I32_NE, BR_IF, 0,
  LOOP, EMPTY, // $str: inside a string (no bound check: quotes follow the data, see load)
  // Four bytes of no interest at once (most of a string's bytes).
  ...get(0), ...load8(DATA), ...load8(0),
  ...get(0), ...load8(DATA + 1), ...load8(0), I32_OR,
  ...get(0), ...load8(DATA + 2), ...load8(0), I32_OR,
  ...get(0), ...load8(DATA + 3), ...load8(0), I32_OR,
  I32_EQZ, IF, EMPTY, ...get(0), ...i32(4), I32_ADD, ...set(0), BR, 1, END,
  ...get(0), ...load8(DATA), ...load8(0), ...tee(3),
  ...get(0), ...i32(1), I32_ADD, ...set(0),
  I32_EQZ, BR_IF, 0,
  ...get(3), ...i32(C_QUOTE), I32_EQ, BR_IF, 2,
  BLOCK, EMPTY, // $notBackslash
  ...get(3), ...i32(C_BACKSLASH), I32_NE, BR_IF, 0,
  ...get(0), ...i32(1), I32_ADD, ...set(0),
  BR, 1,
  END,
  ...get(3), ...get(0), ...i32(1), I32_SUB, ...get(1), CALL, 1,
  BR, 0,
  END, // $str
  END, // $notQuote
  BLOCK, EMPTY, // $notOpen
  ...get(3), ...i32(C_OPEN), I32_NE, BR_IF, 0,
  ...get(2), ...i32(1), I32_ADD, ...set(2),
  BR, 1,
  END,
  BLOCK, EMPTY, // $notClose
  ...get(3), ...i32(C_CLOSE), I32_NE, BR_IF, 0,
  ...get(2), ...i32(1), I32_SUB, ...tee(2),
  I32_EQZ, IF, EMPTY, ...get(0), RETURN, END,
  BR, 1,
  END,
  ...get(3), ...get(0), ...i32(1), I32_SUB, ...get(1), CALL, 1,
  BR, 0,
  END, // $out
  END, // $fail
  ...i32(-1),
]);

function moduleBytes(): Uint8Array {
  const types = vector([
    [0x60, ...vector([[I32], [I32]]), ...vector([[I32]])], // valueEnd
    [0x60, ...vector([[I32], [I32], [I32]]), ...vector([])], // check
    [0x60, ...vector([[I32], [I32], [I32]]), ...vector([[I32]])], // eq
  ]);
  // biome-ignore format: the header on one line
  const bytes = [
    0x00,
    0x61,
    0x73,
    0x6d,
    0x01,
    0x00,
    0x00,
    0x00,
    ...section(1, types),
    ...section(3, vector([[0], [1], [2]])),
    ...section(5, vector([[0x00, ...uleb(1)]])),
    ...section(6, vector([[I32, 0x01, ...i32(0), END]])),
    ...section(
      7,
      vector([
        [...name('memory'), 0x02, 0],
        [...name('valueEnd'), 0x00, 0],
        [...name('flags'), 0x03, 0],
      ]),
    ),
    ...section(10, vector([VALUE_END, CHECK, EQ])),
  ];
  return Uint8Array.from(bytes);
}

/** The parts of the WebAssembly API used here (the project's TypeScript libraries do not declare them). */
interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
interface WasmGlobal {
  value: number;
}
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: unknown };
}

/** WebAssembly, or undefined where this Node runs without it (node --jitless). */
export const wasmApi = (globalThis as { WebAssembly?: WasmApi }).WebAssembly;

let compiled: object | null = null;

/**
 * One thread's walker: the file's bytes are copied into its memory, then walked record by record. Not shared
 * between threads; used for one file at a time (load, then valueEnd calls).
 */
export class RecordWalker {
  private readonly memory: WasmMemory;
  private readonly walk: (i: number, n: number) => number;
  private readonly flagsGlobal: WasmGlobal;
  private length = 0;

  /** Throws where WebAssembly is not available. */
  constructor() {
    if (wasmApi === undefined) throw new Error('WebAssembly is not available');
    compiled ??= new wasmApi.Module(moduleBytes());
    const instance = new wasmApi.Instance(compiled, {});
    const exports = instance.exports as {
      memory: WasmMemory;
      valueEnd: (i: number, n: number) => number;
      flags: WasmGlobal;
    };
    this.memory = exports.memory;
    this.walk = exports.valueEnd;
    this.flagsGlobal = exports.flags;
    const head = new Uint8Array(this.memory.buffer, 0, DATA);
    head[0x22] = C_QUOTE;
    head[0x5c] = C_BACKSLASH;
    head[0x7b] = C_OPEN;
    head[0x5b] = C_OPEN;
    head[0x7d] = C_CLOSE;
    head[0x5d] = C_CLOSE;
    head[0x7a] = C_IAM_ANCHOR;
    head[0x6b] = C_BEDROCK_ANCHOR;
    head.set(Buffer.from(IAM_NEEDLE, 'ascii'), NEEDLE_IAM);
    head.set(Buffer.from(BEDROCK_NEEDLE, 'ascii'), NEEDLE_BEDROCK);
  }

  /** Bytes of memory the walker holds (it never shrinks: a caller drops a walker grown too large). */
  get size(): number {
    return this.memory.buffer.byteLength;
  }

  /** Copies the bytes in, growing the memory as needed. */
  load(bytes: Uint8Array): void {
    // Two quotes after the data end any string there (even one whose last byte is a backslash): the string
    // loop needs no bound check, and the walk then finds the data's end outside strings.
    const need = DATA + bytes.length + TAIL;
    const have = this.memory.buffer.byteLength;
    if (need > have) this.memory.grow(Math.ceil((need - have) / PAGE));
    const view = new Uint8Array(this.memory.buffer, DATA, bytes.length + TAIL);
    view.set(bytes);
    view.fill(0x22, bytes.length);
    this.length = bytes.length;
  }

  /**
   * The offset just past the object or array opening at `i` in the loaded bytes, or -1 when they end first;
   * `flags` then tells which needles its bytes contain (HAS_IAM, HAS_BEDROCK).
   */
  valueEnd(i: number): number {
    this.flagsGlobal.value = 0;
    return this.walk(i, this.length);
  }

  get flags(): number {
    return this.flagsGlobal.value;
  }
}
