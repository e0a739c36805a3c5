// A WebSocket with a pull interface: next() resolves with the next binary
// message, or rejects once the socket is closed (the error carries the
// close code). Bounded: a peer that sends more than maxQueued bytes
// unread closes the socket.

export class WsClosed extends Error {
	constructor(
		public code: number,
		reason: string,
	) {
		super(reason || "the connection closed (" + code + ")");
	}
}

export class WsQueue {
	private ws: WebSocket;
	private queue: Uint8Array[] = [];
	private queued = 0;
	private waiter: { res: (m: Uint8Array) => void; rej: (e: Error) => void } | undefined;
	private closed: WsClosed | undefined;
	onmessage: ((m: Uint8Array) => void) | undefined;

	private constructor(
		ws: WebSocket,
		private maxQueued: number,
	) {
		this.ws = ws;
		ws.binaryType = "arraybuffer";
		ws.onmessage = (ev: MessageEvent) => {
			if (!(ev.data instanceof ArrayBuffer)) {
				this.close(4000);
				return;
			}
			const m = new Uint8Array(ev.data);
			if (this.waiter) {
				const w = this.waiter;
				this.waiter = undefined;
				w.res(m);
				return;
			}
			if (this.onmessage) {
				this.onmessage(m);
				return;
			}
			if (this.queued + m.length > this.maxQueued) {
				this.close(4000);
				return;
			}
			this.queue.push(m);
			this.queued += m.length;
		};
		ws.onclose = (ev: CloseEvent) => this.ended(new WsClosed(ev.code, ev.reason));
	}

	/** The connection is over: waiters fail and onclose runs (once). */
	private ended(c: WsClosed): void {
		if (this.closed !== undefined) return;
		this.closed = c;
		if (this.waiter) {
			const w = this.waiter;
			this.waiter = undefined;
			w.rej(c);
		}
		this.onclose?.(c);
	}

	onclose: ((e: WsClosed) => void) | undefined;

	static open(url: string, maxQueued: number, timeoutMs: number): Promise<WsQueue> {
		return new Promise((res, rej) => {
			let ws: WebSocket;
			try {
				ws = new WebSocket(url);
			} catch (e) {
				rej(e instanceof Error ? e : new Error(String(e)));
				return;
			}
			const t = setTimeout(() => {
				ws.close();
				rej(new Error("cannot reach " + url + " (timed out)"));
			}, timeoutMs);
			ws.onopen = () => {
				clearTimeout(t);
				res(new WsQueue(ws, maxQueued));
			};
			ws.onerror = () => {
				clearTimeout(t);
				rej(new Error("cannot reach " + url));
			};
		});
	}

	/** The next message (in order), within timeoutMs. */
	next(timeoutMs: number): Promise<Uint8Array> {
		const m = this.queue.shift();
		if (m !== undefined) {
			this.queued -= m.length;
			return Promise.resolve(m);
		}
		if (this.closed) return Promise.reject(this.closed);
		return new Promise((res, rej) => {
			const t = setTimeout(() => {
				this.waiter = undefined;
				rej(new Error("no answer in time"));
			}, timeoutMs);
			this.waiter = {
				res: (x) => {
					clearTimeout(t);
					res(x);
				},
				rej: (e) => {
					clearTimeout(t);
					rej(e);
				},
			};
		});
	}

	/** Hands queued and later messages to fn instead of next(). */
	listen(fn: (m: Uint8Array) => void): void {
		this.onmessage = fn;
		while (this.queue.length > 0) fn(this.queue.shift() as Uint8Array);
		this.queued = 0;
	}

	send(b: Uint8Array): void {
		if (this.closed) throw this.closed;
		this.ws.send(b as Uint8Array<ArrayBuffer>);
	}

	isOpen(): boolean {
		return this.closed === undefined;
	}

	/**
	 * Closes without waiting for the other side's close (a connection that
	 * stopped answering may never send one): onclose runs now.
	 */
	abandon(code: number, reason: string): void {
		this.close(code);
		this.ended(new WsClosed(code, reason));
	}

	close(code = 1000): void {
		try {
			this.ws.close(code);
		} catch {
			/* already closing */
		}
	}
}
