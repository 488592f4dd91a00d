// A virtual table: only the rows in view (plus a few) exist in the DOM, so 10,000 runs scroll
// as smoothly as 10. One scroll container holds a sticky header and absolutely placed rows;
// row elements are reused while scrolling (only their text changes).

import { h } from "./dom.js";

const ROW_HEIGHT = 30;
const OVERSCAN = 8;

/**
 * columns: [{key, label, width, render(row) -> string|Node, sortValue(row), className,
 *   sticky (stays in view while the table scrolls sideways: leading columns only), title}]
 *   or, for cells with controls, create() -> Node made once per pooled row and
 *   update(node, row) that patches it (no elements are created while scrolling)
 * options: {rowKey(row), onSort(key), selected: Set, onSelect(), rowClass(row),
 *   moreColumns (a "more columns →" button while columns lie past the right edge)}
 */
export class VirtualTable {
  constructor(container, options) {
    this.options = options;
    this.rows = [];
    this.columns = [];
    this.sort = { key: null, dir: 1 };
    this.pool = [];
    this.scroller = h("div", { class: "vt-scroll", tabindex: "0" });
    this.header = h("div", { class: "vt-header", role: "row" });
    this.body = h("div", { class: "vt-body", role: "rowgroup" });
    this.empty = h("div", { class: "vt-empty" });
    this.scroller.append(this.header, this.body, this.empty);
    container.append(this.scroller);
    this.frame = 0;
    this.scroller.addEventListener("scroll", () => this.schedule(), { passive: true });
    new ResizeObserver(() => this.schedule()).observe(this.scroller);
    if (options.moreColumns) {
      // a scrollbar alone is easy to miss: overlay scrollbars are invisible until one scrolls
      this.more = h("button", { type: "button", class: "more-columns", hidden: true,
        onclick: () => this.scroller.scrollBy({ left: this.scroller.clientWidth * 0.8 }) }, "more columns →");
      container.append(this.more);
      this.scroller.addEventListener("scroll", () => this.updateMore(), { passive: true });
      new ResizeObserver(() => this.updateMore()).observe(this.scroller);
    }
  }

  /** Show the "more columns" button (and `data-more-columns` on the container) while columns
   * lie past the right edge. */
  updateMore() {
    if (!this.more) return;
    const sc = this.scroller;
    const more = sc.scrollWidth - sc.clientWidth - sc.scrollLeft > 4;
    this.more.hidden = !more;
    this.scroller.parentElement.dataset.moreColumns = more ? "true" : "false";
  }

  setColumns(columns) {
    this.columns = columns;
    let left = 0;
    for (const column of columns) {
      column.left = column.sticky ? left : null;
      left += column.width;
    }
    const width = columns.reduce((sum, c) => sum + c.width, 0);
    this.header.replaceChildren(...columns.map((c) => this.headerCell(c)));
    this.header.style.width = `${width}px`;
    this.body.style.width = `${width}px`;
    for (const row of this.pool) row.remove();
    this.pool = [];
    this.schedule();
    this.updateMore();
  }

  headerCell(column) {
    const cell = h("div", {
      class: `vt-cell vt-head ${column.className || ""}`,
      role: "columnheader",
      title: column.title || column.label,
      dataset: { key: column.key },
    }, column.header ? column.header() : column.label);
    cell.style.width = `${column.width}px`;
    this.stick(cell, column);
    if (column.sortValue) {
      cell.classList.add("sortable");
      cell.addEventListener("click", () => this.options.onSort(column.key));
    }
    return cell;
  }

  stick(cell, column) {
    if (column.left === null || column.left === undefined) return;
    cell.classList.add("sticky");
    cell.style.left = `${column.left}px`;
  }

  setRows(rows, emptyText = "") {
    this.rows = rows;
    this.body.style.height = `${rows.length * ROW_HEIGHT}px`;
    this.empty.textContent = rows.length ? "" : emptyText;
    this.empty.hidden = rows.length > 0;
    this.refreshAll();
  }

  /** Redraw every visible row (after a selection or data change). */
  refreshAll() {
    for (const el of this.pool) el.dataset.index = "-1";
    this.schedule();
  }

  schedule() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.render();
    });
  }

  render() {
    const top = this.scroller.scrollTop;
    const height = this.scroller.clientHeight || 600;
    const first = Math.max(0, Math.floor(top / ROW_HEIGHT) - OVERSCAN);
    const last = Math.min(this.rows.length, Math.ceil((top + height) / ROW_HEIGHT) + OVERSCAN);
    const needed = last - first;
    while (this.pool.length < needed) {
      const el = h("div", { class: "vt-row", role: "row", dataset: { index: "-1" } });
      for (const column of this.columns) {
        const cell = h("div", { class: `vt-cell ${column.className || ""}`, role: "cell" });
        cell.style.width = `${column.width}px`;
        this.stick(cell, column);
        if (column.create) cell.append(column.create());
        el.append(cell);
      }
      this.body.append(el);
      this.pool.push(el);
    }
    for (let i = 0; i < this.pool.length; i++) {
      const el = this.pool[i];
      const index = first + i;
      if (index >= last) {
        el.hidden = true;
        continue;
      }
      el.hidden = false;
      el.style.transform = `translateY(${index * ROW_HEIGHT}px)`;
      if (el.dataset.index === String(index)) continue;
      el.dataset.index = String(index);
      const row = this.rows[index];
      el.className = `vt-row ${this.options.rowClass ? this.options.rowClass(row) : ""}`;
      el.dataset.key = this.options.rowKey(row);
      const cells = el.children;
      for (let c = 0; c < this.columns.length; c++) {
        const column = this.columns[c];
        const cell = cells[c];
        if (column.update) {
          column.update(cell.firstChild, row); // patch the element made once by create()
          continue;
        }
        const content = column.render(row);
        if (content instanceof Node) cell.replaceChildren(content);
        else if (cell.textContent !== content) {
          cell.textContent = content;
          cell.title = content;
        }
      }
    }
  }
}

const measure = document.createElement("canvas").getContext("2d");
const FONT_CELL = '14px system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", sans-serif';
const FONT_HEAD = '600 12px system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", sans-serif';
const SAMPLE_ROWS = 200;
const ARROW_SPACE = " ▼";

function textWidth(text, font) {
  measure.font = font;
  return measure.measureText(text).width;
}

/** A column as wide as its header (its `lines`, or its label) and its values (`text(row)` or
 * `render(row)`) in a sample of `rows`, within bounds; `slack`: padding and margin in px. */
export function fitWidth(column, rows) {
  const head = column.lines ? [column.lines[0] + ARROW_SPACE, column.lines[1]] : [column.label + ARROW_SPACE];
  let width = Math.max(...head.map((line) => textWidth(line, FONT_HEAD)));
  const text = column.text || column.render;
  if (text) {
    const step = Math.max(1, Math.floor(rows.length / SAMPLE_ROWS));
    for (let i = 0; i < rows.length; i += step) {
      const value = text(rows[i]);
      if (typeof value === "string" && value) width = Math.max(width, textWidth(value, FONT_CELL));
    }
  }
  return Math.round(Math.min(280, Math.max(48, width + (column.slack || 22)))); // padding 16
}

export { ROW_HEIGHT };
