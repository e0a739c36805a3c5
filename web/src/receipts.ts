// Delivery receipts (type 0x80): a status byte, then the IDs of the
// messages it is about, 8 bytes each, little-endian. IDs are kept as
// decimal strings, as ChatMessage.id.

/** Message IDs in one receipt: 7000 bytes of body / 8 (the specification's bundles). */
export const RECEIPT_IDS_MAX = 875;

/** A delivery receipt's body; throws unless it is a status and 1 to RECEIPT_IDS_MAX IDs. */
export function parseReceipt(b: Uint8Array): { status: number; ids: string[] } {
	if (b.length < 9 || (b.length - 1) % 8 !== 0 || (b.length - 1) / 8 > RECEIPT_IDS_MAX) throw new Error("malformed delivery receipt");
	const dv = new DataView(b.buffer, b.byteOffset, b.length);
	const ids: string[] = [];
	for (let o = 1; o < b.length; o += 8) ids.push(dv.getBigUint64(o, true).toString());
	return { status: b[0], ids };
}

/** The body of a receipt of status about ids (decimal 64-bit message IDs). */
export function encodeReceipt(status: number, ids: string[]): Uint8Array {
	if (ids.length === 0 || ids.length > RECEIPT_IDS_MAX) throw new Error("a receipt names 1 to " + RECEIPT_IDS_MAX + " messages");
	if (!ids.every((id) => /^\d{1,20}$/.test(id) && BigInt(id) < 1n << 64n)) throw new Error("a message ID is a 64-bit number");
	const b = new Uint8Array(1 + 8 * ids.length);
	const dv = new DataView(b.buffer);
	b[0] = status;
	ids.forEach((id, i) => dv.setBigUint64(1 + 8 * i, BigInt(id), true));
	return b;
}

