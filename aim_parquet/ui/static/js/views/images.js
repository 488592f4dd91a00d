// The images explorer: the images of the sequences matching an AimQL images query at one step,
// in a grid grouped by run, name, context, step or any param. Thumbnails are made by the server
// and loaded as they scroll into view; a click opens the image at full size.

import { fmtNumber, h } from "../dom.js";
import { objectError, objectUrl, sequenceTitle, settled } from "../explorer.js";
import { mountGrid } from "./grid.js";

export const IMAGES_DEFAULTS = { q: "", step: "", group_by: "run.hash", size: 160 };
const SIZES = [64, 96, 128, 160, 200, 256, 320, 400, 512];

export function mountImages(container, where = {}) {
  return mountGrid(container, "images", {
    defaults: IMAGES_DEFAULTS,
    noun: "image",
    countAttr: "imageCount",
    placeholder: "AimQL images query, e.g. images.name == 'samples' and run.hparams.lr < 0.01",
    emptyHint: "This repository has no images yet: track some with run.track(aim.Image(array), name=...).",
    toolbar(state, redraw) {
      const input = h("input", { type: "range", name: "size", min: 0, max: SIZES.length - 1, step: 1,
        value: Math.max(0, SIZES.indexOf(Number(state.size))), "aria-label": "image size" });
      input.addEventListener("change", () => { state.size = SIZES[Number(input.value)]; redraw(); });
      return [h("label", { class: "inline" }, "size ", input)];
    },
    beforeRender(grid, state) {
      grid.style.setProperty("--thumb", `${Number(state.size) || 160}px`);
    },
    card(seq, run, rec, state) {
      const px = Math.ceil((Number(state.size) || 160) * (window.devicePixelRatio || 1));
      const title = sequenceTitle(seq, run, "images");
      const url = objectUrl(seq, rec.index, { size: px });
      const img = h("img", { alt: rec.caption || title, decoding: "async" });
      if (rec.width && rec.height) { img.width = rec.width; img.height = rec.height; }
      if (rec.width && rec.height && Math.max(rec.width, rec.height) < px) img.classList.add("fill");
      if (rec.width && rec.width <= 32) img.classList.add("pixelated"); // e.g. MNIST digits: show the pixels
      const thumb = h("div", { class: "thumb" }, img);
      thumb._load = () => {
        img.src = url;
        return settled(img).then(async (ok) => {
          if (ok) return;
          const box = h("div", { class: "broken", role: "img" }, "cannot show this image");
          img.replaceWith(box);
          const message = await objectError(url);
          if (message) box.textContent = `cannot show this image: ${message}`;
        });
      };
      const el = h("figure", { class: "image-card", title: `${title}\nstep ${seq.step} · #${rec.index} · ${rec.width}×${rec.height} ${rec.format}`,
        onclick: () => openFull(seq, run, rec) },
        thumb,
        h("figcaption", {}, rec.caption ? h("span", { class: "caption" }, rec.caption) : null,
          h("span", { class: "where" }, `${seq.name} · step ${fmtNumber(seq.step)}${seq.records.length > 1 ? ` · #${rec.index}` : ""}`)));
      return { el, target: thumb };
    },
  }, where);
}

function openFull(seq, run, rec) {
  const url = objectUrl(seq, rec.index);
  const img = h("img", { src: url, alt: rec.caption || seq.name, class: "full-image" });
  img.addEventListener("error", async () => {
    img.replaceWith(h("p", { class: "error" }, (await objectError(url)) || "cannot show this image"));
  });
  const dialog = h("dialog", { class: "modal image-modal" },
    h("form", { method: "dialog" },
      h("h2", {}, sequenceTitle(seq, run, "images")),
      h("p", { class: "muted" }, `step ${fmtNumber(seq.step)} · #${rec.index} · ${rec.width}×${rec.height} · ${rec.format} ${rec.mode || ""}`,
        rec.caption ? ` · ${rec.caption}` : ""),
      img,
      h("div", { class: "buttons" }, h("a", { href: url, target: "_blank", class: "button" }, "Open original"),
        h("button", { type: "submit", class: "primary" }, "Close"))));
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
}
