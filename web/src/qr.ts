// A QR code encoder (ISO/IEC 18004): byte mode, error correction level M,
// the smallest version 1-40 that holds the text, and the mask chosen by the
// same penalty rules as libqrencode, which `veil` uses (cmd/veil/qr.c), so
// that both draw the same symbol for the same text (web/test/unit.ts checks
// this module by module against tests/tools/qr_modules.c). Drawn as SVG.

/** Level M per version 1-40: ECC codewords per block, blocks of group 1 and 2, data codewords of a group-1 block. */
const M_ECC = [
	10, 16, 26, 18, 24, 16, 18, 22, 22, 26, 30, 22, 22, 24, 24, 28, 28, 26, 26, 26, 26, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28,
	28, 28, 28, 28, 28,
];
const M_B1 = [1, 1, 1, 2, 2, 4, 4, 2, 3, 4, 1, 6, 8, 4, 5, 7, 10, 9, 3, 3, 17, 17, 4, 6, 8, 19, 22, 3, 21, 19, 2, 10, 14, 14, 12, 6, 29, 13, 40, 18];
const M_B2 = [0, 0, 0, 0, 0, 0, 0, 2, 2, 1, 4, 2, 1, 5, 5, 3, 1, 4, 11, 13, 0, 0, 14, 14, 13, 4, 3, 23, 7, 10, 29, 23, 21, 23, 26, 34, 14, 32, 7, 31];
const M_D1 = [
	16, 28, 44, 32, 43, 27, 31, 38, 36, 43, 50, 36, 37, 40, 41, 45, 46, 43, 44, 41, 42, 46, 47, 45, 47, 46, 45, 45, 45, 47, 46, 46, 46, 46, 47,
	47, 46, 46, 47, 47,
];
/** Level M's two format bits (L 01, M 00, Q 11, H 10). */
const LEVEL_M = 0;
export const QR_MAX_BYTES = 2331;

export class QrError extends Error {}

export type Qr = { version: number; size: number; mask: number; dark: (x: number, y: number) => boolean };

const size = (v: number): number => 4 * v + 17;

function dataCodewords(v: number): number {
	const i = v - 1;
	return M_B1[i] * M_D1[i] + M_B2[i] * (M_D1[i] + 1);
}

// GF(256) with the polynomial 0x11d, for the Reed-Solomon codes.
const EXP = new Uint8Array(512);
const LOG = new Uint8Array(256);
{
	let x = 1;
	for (let i = 0; i < 255; i++) {
		EXP[i] = x;
		LOG[x] = i;
		x <<= 1;
		if (x & 0x100) x ^= 0x11d;
	}
	for (let i = 255; i < 512; i++) EXP[i] = EXP[i - 255];
}
const mul = (a: number, b: number): number => (a === 0 || b === 0 ? 0 : EXP[LOG[a] + LOG[b]]);

/** The generator polynomial of degree n (roots a^0..a^(n-1)), highest coefficient first without the leading 1. */
function generator(n: number): Uint8Array {
	let g = Uint8Array.of(1);
	for (let i = 0; i < n; i++) {
		const h = new Uint8Array(g.length + 1);
		for (let j = 0; j < g.length; j++) {
			h[j] ^= g[j];
			h[j + 1] ^= mul(g[j], EXP[i]);
		}
		g = h;
	}
	return g.subarray(1);
}

function ecc(data: Uint8Array, gen: Uint8Array): Uint8Array {
	const r = new Uint8Array(gen.length);
	for (const d of data) {
		const f = d ^ r[0];
		r.copyWithin(0, 1);
		r[r.length - 1] = 0;
		for (let j = 0; j < gen.length; j++) r[j] ^= mul(gen[j], f);
	}
	return r;
}

/** Mode, count, bytes, terminator, pad bytes; then blocks with their ECC, interleaved. */
function codewords(text: Uint8Array, v: number): Uint8Array {
	const cap = dataCodewords(v);
	const bits: number[] = [];
	const put = (val: number, n: number): void => {
		for (let i = n - 1; i >= 0; i--) bits.push((val >>> i) & 1);
	};
	put(0b0100, 4);
	put(text.length, v < 10 ? 8 : 16);
	for (const b of text) put(b, 8);
	put(0, Math.min(4, cap * 8 - bits.length));
	while (bits.length % 8 !== 0) bits.push(0);
	const data = new Uint8Array(cap);
	for (let i = 0; i < bits.length; i += 8) {
		let b = 0;
		for (let j = 0; j < 8; j++) b = (b << 1) | bits[i + j];
		data[i / 8] = b;
	}
	for (let i = bits.length / 8, p = 0; i < cap; i++, p ^= 1) data[i] = p === 0 ? 0xec : 0x11;
	const i = v - 1;
	const gen = generator(M_ECC[i]);
	const blocks: Uint8Array[] = [];
	const eccs: Uint8Array[] = [];
	let off = 0;
	for (let b = 0; b < M_B1[i] + M_B2[i]; b++) {
		const n = M_D1[i] + (b < M_B1[i] ? 0 : 1);
		const d = data.subarray(off, off + n);
		off += n;
		blocks.push(d);
		eccs.push(ecc(d, gen));
	}
	const out: number[] = [];
	for (let k = 0; k <= M_D1[i]; k++) for (const d of blocks) if (k < d.length) out.push(d[k]);
	for (let k = 0; k < M_ECC[i]; k++) for (const e of eccs) out.push(e[k]);
	return Uint8Array.from(out);
}

function alignments(v: number): number[] {
	if (v === 1) return [];
	const n = Math.floor(v / 7) + 2;
	const step = v === 32 ? 26 : Math.ceil((v * 4 + 4) / (n * 2 - 2)) * 2;
	const r = [6];
	for (let p = size(v) - 7; r.length < n; p -= step) r.splice(1, 0, p);
	return r;
}

/** BCH remainder of value (shifted by the generator's degree). */
function bch(value: number, poly: number, deg: number): number {
	let r = value << deg;
	for (let i = 31 - Math.clz32(r); i >= deg; i--) if ((r >>> i) & 1) r ^= poly << (i - deg);
	return r;
}

class Matrix {
	readonly dark: Uint8Array;
	readonly fn: Uint8Array;
	constructor(readonly n: number) {
		this.dark = new Uint8Array(n * n);
		this.fn = new Uint8Array(n * n);
	}
	set(x: number, y: number, d: boolean): void {
		this.dark[y * this.n + x] = d ? 1 : 0;
		this.fn[y * this.n + x] = 1;
	}
}

function functionPatterns(m: Matrix, v: number): void {
	const n = m.n;
	for (let i = 0; i < n; i++) {
		m.set(6, i, i % 2 === 0);
		m.set(i, 6, i % 2 === 0);
	}
	for (const [cx, cy] of [
		[3, 3],
		[n - 4, 3],
		[3, n - 4],
	])
		for (let dy = -4; dy <= 4; dy++)
			for (let dx = -4; dx <= 4; dx++) {
				const x = cx + dx;
				const y = cy + dy;
				if (x < 0 || y < 0 || x >= n || y >= n) continue;
				const d = Math.max(Math.abs(dx), Math.abs(dy));
				m.set(x, y, d !== 2 && d !== 4);
			}
	const al = alignments(v);
	for (const ay of al)
		for (const ax of al) {
			if ((ax === 6 && ay === 6) || (ax === 6 && ay === n - 7) || (ax === n - 7 && ay === 6)) continue;
			for (let dy = -2; dy <= 2; dy++) for (let dx = -2; dx <= 2; dx++) m.set(ax + dx, ay + dy, Math.max(Math.abs(dx), Math.abs(dy)) !== 1);
		}
	format(m, 0); // reserved; written per mask
	if (v >= 7) {
		const bits = (v << 12) | bch(v, 0x1f25, 12);
		for (let i = 0; i < 18; i++) {
			const d = ((bits >>> i) & 1) === 1;
			const a = n - 11 + (i % 3);
			const b = Math.floor(i / 3);
			m.set(a, b, d);
			m.set(b, a, d);
		}
	}
}

function format(m: Matrix, mask: number): void {
	const n = m.n;
	const data = (LEVEL_M << 3) | mask;
	const bits = ((data << 10) | bch(data, 0x537, 10)) ^ 0x5412;
	const bit = (i: number): boolean => ((bits >>> i) & 1) === 1;
	for (let i = 0; i <= 5; i++) m.set(8, i, bit(i));
	m.set(8, 7, bit(6));
	m.set(8, 8, bit(7));
	m.set(7, 8, bit(8));
	for (let i = 9; i < 15; i++) m.set(14 - i, 8, bit(i));
	for (let i = 0; i < 8; i++) m.set(n - 1 - i, 8, bit(i));
	for (let i = 8; i < 15; i++) m.set(8, n - 15 + i, bit(i));
	m.set(8, n - 8, true);
}

function place(m: Matrix, cw: Uint8Array): void {
	const n = m.n;
	let i = 0;
	for (let right = n - 1; right >= 1; right -= 2) {
		if (right === 6) right = 5;
		const up = ((right + 1) & 2) === 0;
		for (let k = 0; k < n; k++) {
			const y = up ? n - 1 - k : k;
			for (let j = 0; j < 2; j++) {
				const x = right - j;
				if (m.fn[y * n + x]) continue;
				m.dark[y * n + x] = i < cw.length * 8 ? (cw[i >>> 3] >>> (7 - (i & 7))) & 1 : 0;
				i++;
			}
		}
	}
}

function masked(mask: number, x: number, y: number): boolean {
	switch (mask) {
		case 0:
			return (x + y) % 2 === 0;
		case 1:
			return y % 2 === 0;
		case 2:
			return x % 3 === 0;
		case 3:
			return (x + y) % 3 === 0;
		case 4:
			return (Math.floor(y / 2) + Math.floor(x / 3)) % 2 === 0;
		case 5:
			return ((x * y) % 2) + ((x * y) % 3) === 0;
		case 6:
			return (((x * y) % 2) + ((x * y) % 3)) % 2 === 0;
		default:
			return (((x + y) % 2) + ((x * y) % 3)) % 2 === 0;
	}
}

/** Runs along one line; a line that starts dark starts with a light run of -1 (so dark runs have odd indices). */
function runs(get: (i: number) => number, n: number, out: number[]): number {
	let len = 0;
	if (get(0) === 1) out[len++] = -1;
	out[len] = 1;
	for (let i = 1; i < n; i++) {
		if (get(i) !== get(i - 1)) out[++len] = 1;
		else out[len]++;
	}
	return len + 1;
}

/** Runs of five or more; 1:1:3:1:1 dark-light-dark patterns with light of four times the unit on one side. */
function lineDemerit(r: number[], len: number): number {
	let d = 0;
	for (let i = 0; i < len; i++) {
		if (r[i] >= 5) d += 3 + (r[i] - 5);
		if (i & 1 && i >= 3 && i < len - 2 && r[i] % 3 === 0) {
			const f = r[i] / 3;
			if (r[i - 2] === f && r[i - 1] === f && r[i + 1] === f && r[i + 2] === f) {
				if (i === 3 || r[i - 3] >= 4 * f || i + 4 >= len || r[i + 3] >= 4 * f) d += 40;
			}
		}
	}
	return d;
}

function demerit(d: Uint8Array, n: number): number {
	let total = 0;
	let blacks = 0;
	for (const b of d) blacks += b;
	const ratio = Math.floor((Math.floor((200 * blacks + n * n) / (n * n)) / 2));
	total += Math.floor(Math.abs(ratio - 50) / 5) * 10;
	for (let y = 1; y < n; y++)
		for (let x = 1; x < n; x++) {
			const s = d[y * n + x] + d[y * n + x - 1] + d[(y - 1) * n + x] + d[(y - 1) * n + x - 1];
			if (s === 0 || s === 4) total += 3;
		}
	const r: number[] = new Array<number>(n + 2);
	for (let y = 0; y < n; y++) total += lineDemerit(r, runs((i) => d[y * n + i], n, r));
	for (let x = 0; x < n; x++) total += lineDemerit(r, runs((i) => d[i * n + x], n, r));
	return total;
}

/** Encodes text (UTF-8) in byte mode at level M. Throws QrError when it does not fit version 40. */
export function encode(text: string): Qr {
	const b = new TextEncoder().encode(text);
	if (b.length > QR_MAX_BYTES) throw new QrError("too long for a QR code");
	let v = 1;
	while (v <= 40 && Math.ceil((4 + (v < 10 ? 8 : 16) + 8 * b.length) / 8) > dataCodewords(v)) v++;
	if (v > 40) throw new QrError("too long for a QR code");
	const n = size(v);
	const m = new Matrix(n);
	functionPatterns(m, v);
	place(m, codewords(b, v));
	let best: Uint8Array | undefined;
	let bestMask = 0;
	let bestD = Infinity;
	for (let k = 0; k < 8; k++) {
		const t = new Matrix(n);
		t.fn.set(m.fn);
		for (let y = 0; y < n; y++)
			for (let x = 0; x < n; x++) {
				const i = y * n + x;
				t.dark[i] = m.fn[i] ? m.dark[i] : m.dark[i] ^ (masked(k, x, y) ? 1 : 0);
			}
		format(t, k);
		const dm = demerit(t.dark, n);
		if (dm < bestD) {
			bestD = dm;
			best = t.dark;
			bestMask = k;
		}
	}
	const dark = best as Uint8Array;
	return { version: v, size: n, mask: bestMask, dark: (x, y) => dark[y * n + x] === 1 };
}

/** The symbol as an SVG element (one path, a quiet zone of four modules), labelled for screen readers. */
export function svg(q: Qr, label: string): SVGSVGElement {
	const NS = "http://www.w3.org/2000/svg";
	const w = q.size + 8;
	const s = document.createElementNS(NS, "svg");
	s.setAttribute("viewBox", `0 0 ${w} ${w}`);
	s.setAttribute("role", "img");
	s.setAttribute("aria-label", label);
	s.setAttribute("shape-rendering", "crispEdges");
	const bg = document.createElementNS(NS, "rect");
	bg.setAttribute("width", String(w));
	bg.setAttribute("height", String(w));
	bg.setAttribute("fill", "#fff");
	const p = document.createElementNS(NS, "path");
	let d = "";
	for (let y = 0; y < q.size; y++) for (let x = 0; x < q.size; x++) if (q.dark(x, y)) d += `M${x + 4} ${y + 4}h1v1h-1z`;
	p.setAttribute("d", d);
	p.setAttribute("fill", "#000");
	s.append(bg, p);
	return s;
}
