// A virtualised list: of a long conversation only the rows in view (and a
// few screens around them) are in the DOM, between two spacers that keep the
// scroll height, so opening 10,000 messages builds a few dozen elements.
// Rows may differ in height: the spacers use the mean height of the rows
// measured so far. The list stays a list for assistive technology (each row
// says its position and the total: aria-posinset, aria-setsize) and is
// focusable, so the keyboard scrolls it (arrows, Page Up/Down, Home, End).

const OVERSCAN_PX = 1200;
const FIRST_GUESS_PX = 32;

export class VList<T> {
	private items: readonly T[] = [];
	private rowH = FIRST_GUESS_PX;
	private measured = false;
	private first = 0;
	private last = 0;
	private frame = 0;
	private readonly top: HTMLElement;
	private readonly bottom: HTMLElement;

	constructor(
		private readonly el: HTMLElement,
		private readonly make: (item: T) => HTMLElement,
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

	/** Shows items (the list keeps the array, not a copy); at the end if atEnd, else where it was. */
	set(items: readonly T[], atEnd: boolean): void {
		this.items = items;
		this.painted = undefined;
		if (atEnd) this.scrollTo(items.length - 1, "end");
		else this.paint();
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
		this.paint();
		return this.row(i);
	}

	/** The element of row i if it is rendered. */
	row(i: number): HTMLElement | undefined {
		if (i < this.first || i >= this.last) return undefined;
		return this.el.children[1 + i - this.first] as HTMLElement | undefined;
	}

	clear(): void {
		this.items = [];
		this.painted = undefined;
		this.first = this.last = 0;
		this.el.replaceChildren();
	}

	/** What the DOM shows: rows first..last of this array (undefined: build anew). */
	private painted: { items: readonly T[]; n: number; first: number; last: number } | undefined;

	/** Renders the rows around the scroll position; with force false, only if they differ from the rendered ones (so scrolling keeps the elements, and focus, of rows that stay). */
	private paint(force = true): void {
		this.paintAt(this.el.scrollTop, this.el.clientHeight || 400, force);
	}

	private paintAt(scrollTop: number, view: number, force = true): void {
		const n = this.items.length;
		const first = Math.max(0, Math.floor((scrollTop - OVERSCAN_PX) / this.rowH));
		const last = Math.min(n, Math.ceil((scrollTop + view + OVERSCAN_PX) / this.rowH));
		const was = this.painted;
		if (!force && was !== undefined && was.items === this.items && was.n === n && was.first === first && was.last === last) return;
		this.painted = { items: this.items, n, first, last };
		const rows: HTMLElement[] = [];
		for (let i = first; i < last; i++) {
			const r = this.make(this.items[i]);
			r.setAttribute("aria-posinset", String(i + 1));
			r.setAttribute("aria-setsize", String(n));
			rows.push(r);
		}
		this.first = first;
		this.last = Math.max(first, last);
		this.top.style.height = first * this.rowH + "px";
		this.bottom.style.height = Math.max(0, n - this.last) * this.rowH + "px";
		this.el.replaceChildren(this.top, ...rows, this.bottom);
		// One measurement of the rows' mean height (margins included) sets the spacers' scale.
		if (!this.measured && rows.length > 0) {
			const h = (this.bottom.offsetTop - this.top.offsetTop - this.top.offsetHeight) / rows.length;
			if (h > 0) {
				this.measured = true;
				this.rowH = h;
				this.top.style.height = first * h + "px";
				this.bottom.style.height = Math.max(0, n - this.last) * h + "px";
			}
		}
	}
}
