// A small protobuf codec: enough of the wire format (varint, fixed64,
// length-delimited) for the few messages the web client exchanges. The
// field numbers come from the project's proto/*.proto files (written from
// the specification); each message module names the numbers it uses.
// Readers are bounded: every length is checked against the bytes left.

export class PbError extends Error {}

export type Field = { no: number; wt: number; v: bigint; b?: Uint8Array };

/** Every field of one message, in order (repeated fields repeat). */
export function decode(buf: Uint8Array, maxFields = 100000): Field[] {
	const out: Field[] = [];
	let i = 0;
	const varint = (): bigint => {
		let r = 0n;
		for (let s = 0n; s < 70n; s += 7n) {
			if (i >= buf.length) throw new PbError("truncated varint");
			const c = buf[i++];
			r |= BigInt(c & 0x7f) << s;
			if ((c & 0x80) === 0) return r & 0xffffffffffffffffn;
		}
		throw new PbError("varint too long");
	};
	while (i < buf.length) {
		if (out.length >= maxFields) throw new PbError("too many fields");
		const key = varint();
		const no = Number(key >> 3n);
		const wt = Number(key & 7n);
		if (no === 0) throw new PbError("field number 0");
		switch (wt) {
			case 0:
				out.push({ no, wt, v: varint() });
				break;
			case 1: {
				if (buf.length - i < 8) throw new PbError("truncated fixed64");
				const dv = new DataView(buf.buffer, buf.byteOffset + i, 8);
				out.push({ no, wt, v: dv.getBigUint64(0, true) });
				i += 8;
				break;
			}
			case 2: {
				const n = varint();
				if (n > BigInt(buf.length - i)) throw new PbError("truncated bytes");
				const b = buf.subarray(i, i + Number(n));
				i += Number(n);
				out.push({ no, wt, v: n, b });
				break;
			}
			case 5: {
				if (buf.length - i < 4) throw new PbError("truncated fixed32");
				const dv = new DataView(buf.buffer, buf.byteOffset + i, 4);
				out.push({ no, wt, v: BigInt(dv.getUint32(0, true)) });
				i += 4;
				break;
			}
			default:
				throw new PbError("unsupported wire type " + wt);
		}
	}
	return out;
}

/** Last value of a field (proto semantics for a singular field). */
export function get(fs: Field[], no: number): Field | undefined {
	let r: Field | undefined;
	for (const f of fs) if (f.no === no) r = f;
	return r;
}

export function bytes(fs: Field[], no: number): Uint8Array | undefined {
	const f = get(fs, no);
	if (f === undefined) return undefined;
	if (f.b === undefined) throw new PbError("field " + no + " is not length-delimited");
	return f.b;
}

export function all(fs: Field[], no: number): Uint8Array[] {
	const r: Uint8Array[] = [];
	for (const f of fs)
		if (f.no === no) {
			if (f.b === undefined) throw new PbError("field " + no + " is not length-delimited");
			r.push(f.b);
		}
	return r;
}

const utf8d = new TextDecoder("utf-8", { fatal: true });
const utf8e = new TextEncoder();

export function str(fs: Field[], no: number): string | undefined {
	const b = bytes(fs, no);
	if (b === undefined) return undefined;
	try {
		return utf8d.decode(b);
	} catch {
		throw new PbError("field " + no + " is not UTF-8");
	}
}

export function num(fs: Field[], no: number): bigint {
	const f = get(fs, no);
	if (f === undefined) return 0n;
	if (f.b !== undefined) throw new PbError("field " + no + " is not a number");
	return f.v;
}

/** Builds one message; fields are appended in call order. */
export class Writer {
	private parts: number[] = [];

	private varint(v: bigint): void {
		v &= 0xffffffffffffffffn;
		while (v >= 0x80n) {
			this.parts.push(Number(v & 0x7fn) | 0x80);
			v >>= 7n;
		}
		this.parts.push(Number(v));
	}

	uint(no: number, v: bigint | number): this {
		this.varint(BigInt((no << 3) | 0));
		this.varint(BigInt(v));
		return this;
	}

	/** A proto3 scalar: left out when zero. */
	uint3(no: number, v: bigint | number): this {
		return BigInt(v) === 0n ? this : this.uint(no, v);
	}

	fixed64(no: number, v: bigint): this {
		this.varint(BigInt((no << 3) | 1));
		for (let k = 0n; k < 64n; k += 8n) this.parts.push(Number((v >> k) & 0xffn));
		return this;
	}

	bytes(no: number, b: Uint8Array): this {
		this.varint(BigInt((no << 3) | 2));
		this.varint(BigInt(b.length));
		for (const c of b) this.parts.push(c);
		return this;
	}

	string(no: number, s: string): this {
		return this.bytes(no, utf8e.encode(s));
	}

	finish(): Uint8Array {
		return Uint8Array.from(this.parts);
	}
}
