// A virtualised list: of a long conversation only the rows in view (and a
// few screens around them) are in the DOM, between two spacers that keep the
// scroll height, so opening 10,000 messages builds a few dozen elements.
// Rows may differ in height: the spacers use the mean height of the rows
// measured so far. The list stays a list for assistive technology (each row
// says its position and the total: aria-posinset, aria-setsize) and is
// focusable, so the keyboard scrolls it (arrows, Page Up/Down, Home, End).
//
// Drawing again never replaces a row that stays: as the list scrolls, rows
// enter and leave at its edges and the others keep their elements (and so the
// focus on one of them, and the browser's scroll anchoring); new items (a
// message added, the whole history read after its newest chunks) keep the
// elements of the rows whose key is unchanged (changed in place, as a
// message's delivery state, by the update callback) and, unless the view
// follows the end, the row at the top of the view where it is.

const OVERSCAN_PX = 1200;
const FIRST_GUESS_PX = 32;

export class VList<T> {
	private items: readonly T[] = [];
	private rowH = FIRST_GUESS_PX;
	private measured = false;
	private first = 0;
	private last = 0;
	/** The elements of rows first..last-1, in order. */
	private rows: HTMLElement[] = [];
	private keys: string[] = [];
	private frame = 0;
	private readonly top: HTMLElement;
	private readonly bottom: HTMLElement;

	/**
	 * key(item) names what make(item) draws: an element is kept while its item's key is the same;
	 * update(element, item), if given, brings a kept element up to date with its item (what may
	 * change without a new key) whenever the items are shown anew.
	 */
	constructor(
		private readonly el: HTMLElement,
		private readonly make: (item: T) => HTMLElement,
		private readonly key: (item: T) => string,
		private readonly update?: (el: HTMLElement, item: T) => void,
	) {
		this.top = VList.spacer();
		this.bottom = VList.spacer();
		el.tabIndex = 0;
		el.addEventListener("scroll", () => {
			if (this.frame === 0)
				this.frame = requestAnimationFrame(() => {
					this.frame = 0;
					this.paint(false);
				});
		});
	}

	private static spacer(): HTMLElement {
		const s = document.createElement("li");
		s.className = "spacer";
		s.setAttribute("aria-hidden", "true");
		return s;
	}

	get length(): number {
		return this.items.length;
	}

	/** Shows items (the list keeps the array, not a copy); at the end if atEnd, else with the row at the top of the view where it was. */
	set(items: readonly T[], atEnd: boolean): void {
		const anchor = atEnd ? undefined : this.anchor();
		this.items = items;
		this.painted = undefined;
		if (atEnd) {
			this.scrollTo(items.length - 1, "end");
			return;
		}
		// The same item may sit at another index now (older messages read in above it).
		const j = anchor === undefined ? -1 : anchor.i < items.length && items[anchor.i] === anchor.item ? anchor.i : items.indexOf(anchor.item);
		if (anchor === undefined || j < 0 || j === anchor.i) {
			this.paint();
			return;
		}
		const view = this.el.clientHeight || 400;
		this.paintAt(Math.max(0, j * this.rowH - anchor.off), view);
		const row = this.row(j);
		if (row !== undefined) this.el.scrollTop += row.getBoundingClientRect().top - this.el.getBoundingClientRect().top - anchor.off;
		this.paint(false);
	}

	/** The first rendered row whose bottom is in view, with its item and its offset from the view's top. */
	private anchor(): { i: number; item: T; off: number } | undefined {
		const top = this.el.getBoundingClientRect().top;
		for (let k = 0; k < this.rows.length; k++) {
			const b = this.rows[k].getBoundingClientRect();
			if (b.bottom > top) return { i: this.first + k, item: this.items[this.first + k], off: b.top - top };
		}
		return undefined;
	}

	/** True when the view shows the last row (new rows then keep the view at the end). */
	atEnd(): boolean {
		return this.el.scrollHeight - this.el.scrollTop - this.el.clientHeight < this.rowH;
	}

	/** Brings row i into view and returns its element. */
	scrollTo(i: number, where: "end" | "center" = "center"): HTMLElement | undefined {
		if (this.items.length === 0) {
			this.clear();
			return undefined;
		}
		i = Math.max(0, Math.min(i, this.items.length - 1));
		const view = this.el.clientHeight || 400;
		// Render around i first, so that the rows there are measured.
		this.paintAt(Math.max(0, i * this.rowH - view / 2), view);
		const row = this.row(i);
		if (row === undefined) return undefined;
		if (where === "end") this.el.scrollTop = this.el.scrollHeight;
		else row.scrollIntoView({ block: "center" });
		this.paint(false);
		return this.row(i);
	}

	/** The element of row i if it is rendered. */
	row(i: number): HTMLElement | undefined {
		if (i < this.first || i >= this.last) return undefined;
		return this.rows[i - this.first];
	}

	clear(): void {
		this.items = [];
		this.painted = undefined;
		this.first = this.last = 0;
		this.rows = [];
		this.keys = [];
		this.el.replaceChildren();
	}

	/** What the DOM shows: rows first..last of this array (undefined: items changed since). */
	private painted: { items: readonly T[]; n: number; first: number; last: number } | undefined;

	/** Renders the rows around the scroll position; with force false, only if the range differs from the rendered one. */
	private paint(force = true): void {
		this.paintAt(this.el.scrollTop, this.el.clientHeight || 400, force);
	}

	private paintAt(scrollTop: number, view: number, force = true): void {
		const n = this.items.length;
		const first = Math.max(0, Math.min(n, Math.floor((scrollTop - OVERSCAN_PX) / this.rowH)));
		const last = Math.max(first, Math.min(n, Math.ceil((scrollTop + view + OVERSCAN_PX) / this.rowH)));
		const was = this.painted;
		const sameItems = was !== undefined && was.items === this.items && was.n === n;
		if (!force && sameItems && was.first === first && was.last === last) return;
		this.painted = { items: this.items, n, first, last };
		// The elements drawn already, by key (while scrolling the same items, a row's key is known by its index).
		const old = new Map<string, HTMLElement>();
		for (let k = 0; k < this.rows.length; k++) old.set(this.keys[k], this.rows[k]);
		const rows: HTMLElement[] = [];
		const keys: string[] = [];
		for (let i = first; i < last; i++) {
			const item = this.items[i];
			const k = !force && sameItems && i >= this.first && i < this.last ? this.keys[i - this.first] : this.key(item);
			let r = old.get(k);
			if (r === undefined) r = this.make(item);
			else {
				old.delete(k);
				if (force) this.update?.(r, item);
			}
			r.setAttribute("aria-posinset", String(i + 1));
			r.setAttribute("aria-setsize", String(n));
			rows.push(r);
			keys.push(k);
		}
		for (const r of old.values()) r.remove();
		this.first = first;
		this.last = last;
		this.rows = rows;
		this.keys = keys;
		this.top.style.height = first * this.rowH + "px";
		this.bottom.style.height = Math.max(0, n - last) * this.rowH + "px";
		this.place(rows);
		// One measurement of the rows' mean height (margins included) sets the spacers' scale.
		if (!this.measured && rows.length > 0) {
			const h = (this.bottom.offsetTop - this.top.offsetTop - this.top.offsetHeight) / rows.length;
			if (h > 0) {
				this.measured = true;
				this.rowH = h;
				this.top.style.height = first * h + "px";
				this.bottom.style.height = Math.max(0, n - last) * h + "px";
			}
		}
	}

	/** Puts rows between the spacers, inserting the new ones around those kept (which are never moved: moving one would take its focus). */
	private place(rows: HTMLElement[]): void {
		const el = this.el;
		if (this.top.parentNode !== el || this.bottom.parentNode !== el || el.firstChild !== this.top || el.lastChild !== this.bottom) {
			el.replaceChildren(this.top, ...rows, this.bottom);
			return;
		}
		let next: HTMLElement = this.bottom;
		for (let j = rows.length - 1; j >= 0; j--) {
			const r = rows[j];
			if (r.parentNode !== el) el.insertBefore(r, next);
			else if (r.nextSibling !== next) {
				// Kept rows in another order (not expected: items keep their order): drawn anew.
				el.replaceChildren(this.top, ...rows, this.bottom);
				return;
			}
			next = r;
		}
		if (this.top.nextSibling !== next) el.replaceChildren(this.top, ...rows, this.bottom);
	}
}
