// libsodium in the browser, and the key derivations the protocols share.
import sodium from "libsodium-wrappers-sumo";
import { blake2b } from "./blake2b";

export { sodium };

let readyP: Promise<void> | undefined;
export function ready(): Promise<void> {
	readyP ??= sodium.ready;
	return readyP;
}

const te = new TextEncoder();

/**
 * BLAKE2b-256 keyed with key, empty message, salt and personal as ASCII,
 * zero-padded to 16 bytes: the KDF of the multi-device and rendezvous
 * protocols (lib/crypto veil_kdf).
 */
export function kdf(key: Uint8Array, salt: string, personal: string): Uint8Array {
	const s = new Uint8Array(16);
	const p = new Uint8Array(16);
	s.set(te.encode(salt));
	p.set(te.encode(personal));
	return sodium.crypto_generichash_blake2b_salt_personal(32, key, s, p);
}

/** BLAKE2b-256 of msg with salt and personal and no key. */
export function hashSaltPersonal(msg: Uint8Array, salt: string, personal: string): Uint8Array {
	return blake2b(32, msg, undefined, te.encode(salt), te.encode(personal));
}

export function random(n: number): Uint8Array {
	return sodium.randombytes_buf(n);
}

export function wipe(...bufs: (Uint8Array | undefined)[]): void {
	for (const b of bufs) if (b) b.fill(0);
}

export function hex(b: Uint8Array): string {
	return sodium.to_hex(b);
}

/** A random non-zero 64-bit device ID. */
export function randomU64(): bigint {
	for (;;) {
		const b = random(8);
		let v = 0n;
		for (let i = 7; i >= 0; i--) v = (v << 8n) | BigInt(b[i]);
		if (v !== 0n) return v;
	}
}
