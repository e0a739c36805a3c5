// BLAKE2b (RFC 7693) with key, salt and personalisation, for the one hash
// libsodium.js cannot give: salt and personal over a non-empty message
// (its crypto_generichash_blake2b_salt_personal hashes the empty message
// only). Used for the rendezvous path hash of a few dozen bytes, so it
// favours clarity (BigInt words) over speed. web/test/unit.ts checks it
// against libsodium.

const M64 = 0xffffffffffffffffn;
const IV = [
	0x6a09e667f3bcc908n, 0xbb67ae8584caa73bn, 0x3c6ef372fe94f82bn, 0xa54ff53a5f1d36f1n,
	0x510e527fade682d1n, 0x9b05688c2b3e6c1fn, 0x1f83d9abfb41bd6bn, 0x5be0cd19137e2179n,
];
const SIGMA = [
	[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
	[14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3],
	[11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4],
	[7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8],
	[9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13],
	[2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9],
	[12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11],
	[13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10],
	[6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5],
	[10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0],
];

const rotr = (x: bigint, n: bigint): bigint => ((x >> n) | (x << (64n - n))) & M64;

function word(b: Uint8Array, off: number): bigint {
	let r = 0n;
	for (let i = 7; i >= 0; i--) r = (r << 8n) | BigInt(b[off + i] ?? 0);
	return r;
}

function compress(h: bigint[], block: Uint8Array, t: bigint, last: boolean): void {
	const v = [...h, ...IV];
	const m: bigint[] = [];
	for (let i = 0; i < 16; i++) m.push(word(block, 8 * i));
	v[12] ^= t & M64;
	v[13] ^= t >> 64n;
	if (last) v[14] ^= M64;
	const g = (a: number, b: number, c: number, d: number, x: bigint, y: bigint): void => {
		v[a] = (v[a] + v[b] + x) & M64;
		v[d] = rotr(v[d] ^ v[a], 32n);
		v[c] = (v[c] + v[d]) & M64;
		v[b] = rotr(v[b] ^ v[c], 24n);
		v[a] = (v[a] + v[b] + y) & M64;
		v[d] = rotr(v[d] ^ v[a], 16n);
		v[c] = (v[c] + v[d]) & M64;
		v[b] = rotr(v[b] ^ v[c], 63n);
	};
	for (let r = 0; r < 12; r++) {
		const s = SIGMA[r % 10];
		g(0, 4, 8, 12, m[s[0]], m[s[1]]);
		g(1, 5, 9, 13, m[s[2]], m[s[3]]);
		g(2, 6, 10, 14, m[s[4]], m[s[5]]);
		g(3, 7, 11, 15, m[s[6]], m[s[7]]);
		g(0, 5, 10, 15, m[s[8]], m[s[9]]);
		g(1, 6, 11, 12, m[s[10]], m[s[11]]);
		g(2, 7, 8, 13, m[s[12]], m[s[13]]);
		g(3, 4, 9, 14, m[s[14]], m[s[15]]);
	}
	for (let i = 0; i < 8; i++) h[i] ^= v[i] ^ v[i + 8];
}

/** BLAKE2b of msg, outLen 1..64 bytes; key up to 64, salt and personal up to 16 (zero-padded). */
export function blake2b(
	outLen: number,
	msg: Uint8Array,
	key?: Uint8Array,
	salt?: Uint8Array,
	personal?: Uint8Array,
): Uint8Array {
	const kl = key?.length ?? 0;
	if (outLen < 1 || outLen > 64 || kl > 64 || (salt?.length ?? 0) > 16 || (personal?.length ?? 0) > 16)
		throw new RangeError("blake2b parameters");
	const s = new Uint8Array(16);
	const p = new Uint8Array(16);
	if (salt) s.set(salt);
	if (personal) p.set(personal);
	const h = IV.slice();
	h[0] ^= 0x01010000n ^ (BigInt(kl) << 8n) ^ BigInt(outLen);
	h[4] ^= word(s, 0);
	h[5] ^= word(s, 8);
	h[6] ^= word(p, 0);
	h[7] ^= word(p, 8);
	let data = msg;
	if (kl > 0) {
		data = new Uint8Array(128 + msg.length);
		data.set(key as Uint8Array);
		data.set(msg, 128);
	}
	let t = 0n;
	let off = 0;
	while (data.length - off > 128) {
		t += 128n;
		compress(h, data.subarray(off, off + 128), t, false);
		off += 128;
	}
	const last = new Uint8Array(128);
	last.set(data.subarray(off));
	t += BigInt(data.length - off);
	compress(h, last, t, true);
	const out = new Uint8Array(64);
	for (let i = 0; i < 8; i++) for (let j = 0; j < 8; j++) out[8 * i + j] = Number((h[i] >> BigInt(8 * j)) & 0xffn);
	return out.slice(0, outLen);
}
